//! Rebalances: an assigned partition starts where its outputs end (its committed offset, then
//! the outputs found at the tails of its product and dead-letter partitions); a revoked one is
//! given up only after every output in flight is acknowledged and its offsets committed.

use std::{sync::Arc, time::Duration};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext},
    types::RDKafkaRespErr,
    ClientContext, Offset, TopicPartitionList,
};

use super::{
    super::{Error, Result},
    Gateway, PATIENCE,
};
use crate::{broker, outputs::resume, product::Topics};

impl ClientContext for Gateway {}

impl ConsumerContext for Gateway {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self
                .assign(consumer, tpl)
                .map(|()| self.metrics.partitions_assigned(tpl.count())),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.metrics.partitions_revoked(tpl.count());
                self.revoke(consumer, tpl)
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error");
                consumer.unassign().map_err(|source| Error::Kafka {
                    context: "giving up partitions after a rebalance error".into(),
                    source,
                })
            }
        };
        if let Err(e) = result {
            // consume nothing from a partition whose resume point is unknown
            consumer.unassign().ok();
            self.metrics.partitions_unassigned();
            self.lock().failed = Some(e);
        }
    }
}

impl Gateway {
    /// Picks each assigned partition's start from its committed offset and its outputs' tails.
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) -> Result<()> {
        let kafka = |context: &str| {
            let context = context.to_owned();
            move |source| Error::Kafka { context, source }
        };
        let committed = broker::retry_transient("reading committed offsets", PATIENCE, || {
            consumer.committed_offsets(tpl.clone(), Duration::from_secs(30))
        })
        .map_err(kafka(
            "reading the committed offsets of assigned partitions",
        ))?;
        let mut starts = Vec::new();
        for element in committed.elements() {
            let (topic, partition) = (element.topic().to_owned(), element.partition());
            let Some(product) = self.contracts.product_of_ingress(&topic) else {
                continue;
            };
            let committed = match element.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            };
            let topics = Topics::of(product);
            let resume = resume::resume(
                &self.reader,
                &[&topics.product, &topics.dlq],
                partition,
                &topic,
                committed,
            )?;
            tracing::info!(
                topic, partition, ?committed, start = ?resume.start, skipped = resume.written.len(),
                "resuming ingress partition"
            );
            // the lag gauge exists from the assignment on (report_lag refreshes it)
            if let Ok((low, high)) =
                self.reader
                    .fetch_watermarks(&topic, partition, Duration::from_secs(1))
            {
                let from = resume.start.unwrap_or(low).max(low);
                self.metrics.lag(product, partition, (high - from).max(0));
            }
            let start = resume.start.map_or(Offset::Beginning, Offset::Offset);
            starts.push((topic.clone(), partition, start));
            self.lock()
                .written
                .insert((Arc::from(topic.as_str()), partition), resume.written);
        }
        for (topic, partition, start) in starts {
            tpl.set_partition_offset(&topic, partition, start)
                .map_err(kafka("setting start offsets"))?;
        }
        consumer
            .assign(tpl)
            .map_err(kafka("assigning ingress partitions"))
    }

    /// Waits for every output in flight and commits, then gives the partitions up.
    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) -> Result<()> {
        let result = self.checkpoint(consumer, CommitMode::Sync);
        {
            let mut pending = self.lock();
            for element in tpl.elements() {
                let key = (Arc::from(element.topic()), element.partition());
                pending.written.remove(&key);
                pending.current.positions.remove(&key);
                if let Some(product) = self.contracts.product_of_ingress(element.topic()) {
                    self.metrics.lag_revoked(product, element.partition());
                }
            }
        }
        consumer.unassign().map_err(|source| Error::Kafka {
            context: "giving up revoked partitions".into(),
            source,
        })?;
        result
    }
}
