//! The Kafka side: the embedded broker and the topics each data product derives from its
//! descriptor; the client settings every component shares are the SDK's (`meshline_sdk::kafka`).

#[cfg(feature = "embedded-broker")]
pub mod embedded;

use std::{net::SocketAddr, time::Duration};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    types::RDKafkaErrorCode,
};

pub use meshline_sdk::kafka::{
    check_reachable, client_config, is_transient, partitions_of, producer_config, retry_transient,
    send_blocking, send_parts_blocking, while_queue_full, while_queue_full_async, ENV_PREFIX,
    FETCH_QUEUE_BACKOFF_MS,
};

use crate::product::{Catalog, Product};

/// Errors of the Kafka side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address is taken.
    #[error("cannot listen on {addr}: the address is in use; stop the process that holds it (`ss -ltnp | grep {}`), or pick another address with `--listen`, or use a running cluster with `--bootstrap HOST:PORT`", addr.port())]
    PortInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The listen address cannot be bound for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The broker's storage cannot be opened.
    #[error("embedded broker storage: {message}")]
    Storage {
        /// What went wrong.
        message: String,
    },
    /// The embedded broker failed to start.
    #[cfg(feature = "embedded-broker")]
    #[error("embedded broker failed to start: {0}")]
    Embedded(Box<tansu_broker::Error>),
    /// A client setting, reachability or sending failed.
    #[error(transparent)]
    Client(#[from] meshline_sdk::kafka::Error),
    /// A topic exists with a layout the descriptor does not declare.
    #[error("topic `{topic}` has {actual} partitions but its descriptor declares {declared}; a product's topics must keep the declared count (Kafka cannot shrink a topic): fix `partitions` in {descriptor} or recreate the topic")]
    PartitionMismatch {
        /// The topic.
        topic: String,
        /// Partitions found.
        actual: usize,
        /// Partitions declared.
        declared: i32,
        /// The descriptor file.
        descriptor: String,
    },
    /// Topics differ from what the descriptors declare.
    #[error("the products' topics differ from their descriptors: {problems}")]
    TopicMismatch {
        /// Each difference.
        problems: String,
    },
    /// Any other client error.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Topic-level configuration of a product's three topics.
pub fn topic_config(product: &Product) -> Vec<(&'static str, String)> {
    let mut config = vec![
        ("cleanup.policy", "delete".to_owned()),
        (
            "retention.ms",
            product.descriptor.retention.as_retention_ms().to_string(),
        ),
    ];
    if let Some(min) = product.descriptor.min_insync_replicas {
        config.push(("min.insync.replicas", min.to_string()));
    }
    config
}

/// What meshline does with the products' topics at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CreateTopics {
    /// Creates none: they must exist, with the declared partitions.
    Never,
    /// Creates the missing ones; existing ones must have the declared partitions.
    #[default]
    Missing,
    /// Creates none: they must exist with the declared partitions, replication and
    /// configuration (`cleanup.policy`, `retention.ms`, `min.insync.replicas`).
    Validate,
}

impl std::str::FromStr for CreateTopics {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "never" => Ok(Self::Never),
            "missing" => Ok(Self::Missing),
            "validate" => Ok(Self::Validate),
            other => Err(format!("`{other}` is not one of never, missing, validate")),
        }
    }
}

/// The largest record that `topics` all take: the smallest `max.message.bytes` of their
/// configurations, as the broker describes them; `None` when the broker describes none (it then
/// applies its own default, which the caller assumes).
pub async fn max_message_bytes(client: &rdkafka::ClientConfig, topics: &[&str]) -> Option<usize> {
    let admin: AdminClient<DefaultClientContext> = client.create().ok()?;
    let resources: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin.describe_configs(&resources, &options).await.ok()?;
    described
        .into_iter()
        .filter_map(|resource| {
            resource
                .ok()?
                .get("max.message.bytes")?
                .value
                .as_deref()?
                .parse::<usize>()
                .ok()
        })
        .min()
}

/// Creates every product's missing topics (`<id>`, `<id>.ingress`, `<id>.dlq`) with the declared
/// partitions, replication and configuration; see [`provision_topics`].
pub async fn ensure_topics(bootstrap: &str, catalog: &Catalog) -> Result<Vec<String>> {
    provision_topics(bootstrap, catalog, CreateTopics::Missing).await
}

/// Creates the products' topics as `mode` says, then checks them: a partition count that
/// differs from the descriptor is always an error (the gateway maps ingress partition p to
/// product partition p), and with [`CreateTopics::Validate`] so is any declared setting the
/// cluster does not have. Answers the topics' names.
pub async fn provision_topics(
    bootstrap: &str,
    catalog: &Catalog,
    mode: CreateTopics,
) -> Result<Vec<String>> {
    let names: Vec<String> = catalog
        .iter()
        .flat_map(|p| p.topics().all().map(str::to_owned))
        .collect();
    if mode == CreateTopics::Missing {
        create_topics(bootstrap, catalog).await?;
    }
    let problems = check_topics(bootstrap, catalog, mode == CreateTopics::Validate).await?;
    if !problems.is_empty() {
        return Err(Error::TopicMismatch {
            problems: problems.join("; "),
        });
    }
    Ok(names)
}

async fn create_topics(bootstrap: &str, catalog: &Catalog) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let configs: Vec<_> = catalog.iter().map(topic_config).collect();
    let topics: Vec<_> = catalog.iter().map(Product::topics).collect();
    let mut new_topics = Vec::new();
    for ((product, config), topics) in catalog.iter().zip(&configs).zip(&topics) {
        // -1: the broker's `default.replication.factor`
        let replication = product.descriptor.replication_factor.map_or(-1, i32::from);
        for topic in topics.all() {
            let new = config.iter().fold(
                NewTopic::new(
                    topic,
                    product.descriptor.partitions,
                    TopicReplication::Fixed(replication),
                ),
                |t, (k, v)| t.set(k, v),
            );
            new_topics.push(new);
        }
    }
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::Kafka(KafkaError::AdminOp(code)))
                    .inspect_err(|_| tracing::error!(%topic, %code, "cannot create topic"));
            }
        }
    }
    Ok(())
}

/// What differs between the cluster's topics and the descriptors: missing topics and partition
/// counts always, replication and configuration with `settings`.
async fn check_topics(bootstrap: &str, catalog: &Catalog, settings: bool) -> Result<Vec<String>> {
    struct Expected {
        topic: String,
        partitions: i32,
        replication: Option<i16>,
        config: Vec<(&'static str, String)>,
        descriptor: String,
    }
    let expected: Vec<Expected> = catalog
        .iter()
        .flat_map(|p| {
            p.topics().all().map(|t| Expected {
                topic: t.to_owned(),
                partitions: p.descriptor.partitions,
                replication: p.descriptor.replication_factor,
                config: topic_config(p),
                descriptor: p.path.display().to_string(),
            })
        })
        .collect();
    let consumer: BaseConsumer = client_config(bootstrap).create()?;
    let metadata =
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, Duration::from_secs(10)))
            .await
            .map_err(|e| Error::Storage {
                message: format!("metadata task failed: {e}"),
            })??;
    let mut problems = Vec::new();
    for e in &expected {
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == e.topic) else {
            problems.push(format!(
                "topic `{}` does not exist (declared by {}); create it, or start with `--create-topics missing`",
                e.topic, e.descriptor
            ));
            continue;
        };
        let actual = topic.partitions().len();
        if actual != usize::try_from(e.partitions).unwrap_or(0) {
            problems.push(
                Error::PartitionMismatch {
                    topic: e.topic.clone(),
                    actual,
                    declared: e.partitions,
                    descriptor: e.descriptor.clone(),
                }
                .to_string(),
            );
        }
        if let (true, Some(declared)) = (settings, e.replication) {
            let actual = topic.partitions().first().map_or(0, |p| p.replicas().len());
            if actual != usize::try_from(declared).unwrap_or(0) {
                problems.push(format!(
                    "topic `{}` has replication factor {actual} but {} declares {declared}",
                    e.topic, e.descriptor
                ));
            }
        }
    }
    let existing: Vec<&Expected> = expected
        .iter()
        .filter(|e| metadata.topics().iter().any(|t| t.name() == e.topic))
        .collect();
    if settings && !existing.is_empty() {
        let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create()?;
        let resources: Vec<ResourceSpecifier<'_>> = existing
            .iter()
            .map(|e| ResourceSpecifier::Topic(&e.topic))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let described = admin.describe_configs(&resources, &options).await?;
        for (e, result) in existing.iter().zip(described) {
            let resource = match result {
                Ok(resource) => resource,
                Err(code) => {
                    problems.push(format!(
                        "cannot read the configuration of topic `{}`: {code}",
                        e.topic
                    ));
                    continue;
                }
            };
            for (key, declared) in &e.config {
                let actual = resource.get(key).and_then(|entry| entry.value.clone());
                if actual.as_deref() != Some(declared.as_str()) {
                    problems.push(format!(
                        "topic `{}` has {key}={} but {} declares {declared}",
                        e.topic,
                        actual.as_deref().unwrap_or("(unset)"),
                        e.descriptor
                    ));
                }
            }
        }
    }
    Ok(problems)
}
