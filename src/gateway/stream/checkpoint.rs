//! Checkpoints: the current batch is sealed, and the offsets of sealed batches are committed
//! once all their outputs are acknowledged, oldest first; in transactional mode outputs and
//! offsets commit in one transaction per checkpoint.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    producer::Producer,
};

use super::{
    super::{Error, Result},
    delivery::offsets_of,
    DeliveryMode, Gateway,
};

impl Gateway {
    pub(super) fn begin_transaction(&self) -> Result<()> {
        if !matches!(self.config.mode, DeliveryMode::Transactional { .. }) {
            return Ok(());
        }
        let mut pending = self.lock();
        if !pending.transaction_open {
            self.producer
                .begin_transaction()
                .map_err(|source| Error::Kafka {
                    context: "beginning a transaction".into(),
                    source,
                })?;
            pending.transaction_open = true;
            self.metrics.transactions_in_flight(1);
        }
        Ok(())
    }

    /// Whether a checkpoint is due, `last` being the previous one.
    pub(super) fn due(&self, last: Instant) -> bool {
        let config = &self.config;
        self.lock()
            .due(config.checkpoint_records, config.checkpoint_interval, last)
    }

    /// Seals the current batch at a checkpoint: its offsets are committed once its outputs are
    /// acknowledged ([`Gateway::complete`]), while the next batch is written. With [`BATCHES`]
    /// in flight, waits for them first.
    pub(super) fn seal(&self, consumer: &BaseConsumer<Self>, mode: CommitMode) -> Result<()> {
        let deliveries = self.producer.context();
        let full = self
            .lock()
            .seal(|slot| deliveries.slot(slot).store(0, Ordering::SeqCst));
        if full {
            self.complete(consumer, mode, true)?;
        }
        Ok(())
    }

    /// Commits the offsets of the sealed batches whose outputs are all acknowledged, oldest
    /// first (of all of them, waiting, with `wait`). An output that failed stops the gateway:
    /// nothing after it is committed.
    pub(super) fn complete(
        &self,
        consumer: &BaseConsumer<Self>,
        mode: CommitMode,
        wait: bool,
    ) -> Result<()> {
        let deliveries = self.producer.context();
        loop {
            let batch = {
                let mut pending = self.lock();
                match pending.sealed.front() {
                    None => return Ok(()),
                    Some(oldest) if deliveries.done(oldest) => {}
                    Some(_) if !wait => return Ok(()),
                    // reports come from the producer's thread; the lock held here is only
                    // taken on this thread
                    Some(oldest) => deliveries.wait(oldest),
                }
                pending.sealed.pop_front()
            };
            let Some(batch) = batch else {
                return Ok(());
            };
            if let Some((source, at)) = deliveries.failed().clone() {
                return Err(Error::Kafka {
                    context: format!("an output to {at} was not delivered"),
                    source,
                });
            }
            let offsets = offsets_of(&batch.positions)?;
            if offsets.count() > 0 {
                consumer
                    .commit(&offsets, mode)
                    .map_err(|source| Error::Kafka {
                        context: "committing ingress offsets".into(),
                        source,
                    })?;
            }
            let now = chrono::Utc::now().timestamp_millis();
            for (route, time) in batch.times {
                route.metrics.freshness((now - time).max(0) as f64 / 1000.0);
            }
        }
    }

    /// Waits for every output in flight, then commits the offsets after them (in one
    /// transaction with the outputs, in transactional mode).
    pub(super) fn checkpoint(&self, consumer: &BaseConsumer<Self>, mode: CommitMode) -> Result<()> {
        let transaction_open = std::mem::replace(&mut self.lock().transaction_open, false);
        if transaction_open {
            // every checkpoint waits in this mode: the current batch is the transaction's, and
            // its offsets are committed in it
            let positions = std::mem::take(&mut self.lock().current.positions);
            let offsets = offsets_of(&positions)?;
            let kafka = |context: &'static str| {
                move |source| Error::Kafka {
                    context: context.into(),
                    source,
                }
            };
            let timeout = Duration::from_secs(60);
            let committed = consumer
                .group_metadata()
                .ok_or_else(|| Error::Unexpected("the consumer has no group metadata".into()))
                .and_then(|group| {
                    self.producer
                        .send_offsets_to_transaction(&offsets, &group, timeout)
                        .map_err(kafka("adding offsets to the transaction"))
                })
                .and_then(|()| {
                    self.producer
                        .commit_transaction(timeout)
                        .map_err(kafka("committing the transaction"))
                });
            self.metrics.transactions_in_flight(0);
            if let Err(e) = committed {
                self.producer.abort_transaction(timeout).ok();
                return Err(e);
            }
        }
        self.seal(consumer, mode)?;
        self.complete(consumer, mode, true)
    }
}
