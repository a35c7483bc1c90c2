//! Every product's contract as registered: the checks of its latest version and the writer
//! schemas of all its versions (an event written with an older registered schema is valid).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use super::{Error, Result};
use crate::{
    contract::{Contract, WriterSchema},
    formats,
    product::{SchemaFormat, Topics},
    registry::{api::VersionId, client::Client},
};

/// One product's registered contract.
#[derive(Debug)]
pub struct Registered {
    /// The checks of the latest version.
    pub contract: Contract,
    /// The latest schema id (what JSON data sent over HTTP is encoded with).
    pub latest_id: u32,
    /// The version of the product's subject whose contract this is.
    pub version: u32,
    /// Writer schemas by id: every version registered under the product's subject.
    pub schemas: HashMap<u32, Arc<WriterSchema>>,
    fetched: Instant,
}

impl Registered {
    /// The writer schema of `id`, if registered under the product's subject.
    pub fn schema(&self, id: u32) -> Option<Arc<WriterSchema>> {
        self.schemas.get(&id).cloned()
    }

    async fn fetch(registry: &Client, product: &str) -> Result<Self> {
        let subject = format!("{product}-value");
        let wrap = |source| Error::Registry {
            product: product.to_owned(),
            source: Box::new(source),
        };
        let latest = registry
            .version(&subject, VersionId::Latest)
            .await
            .map_err(wrap)?;
        let latest_id = latest.id.unwrap_or_default();
        let version = latest.version.unwrap_or_default();
        let message = formats::message_of(&latest);
        let mut schemas = HashMap::new();
        for version in registry.versions(&subject).await.map_err(wrap)? {
            let body = registry
                .version(&subject, VersionId::Number(version))
                .await
                .map_err(wrap)?;
            if let Some(id) = body.id {
                let schema = formats::writer_schema(registry, id, product, message.as_deref())
                    .await
                    .map_err(wrap)?;
                schemas.insert(id, Arc::new(schema));
            }
        }
        let schema = match schemas.get(&latest_id) {
            Some(schema) => schema.avro.clone(),
            None => {
                formats::writer_schema(registry, latest_id, product, message.as_deref())
                    .await
                    .map_err(wrap)?
                    .avro
            }
        };
        let format = SchemaFormat::of_schema_type(latest.schema_type.as_deref())
            .unwrap_or(SchemaFormat::Avro);
        let contract = Contract::from_registered(
            product,
            schema,
            latest.metadata.as_ref(),
            latest.rule_set.as_ref(),
        )?
        .with_format(format);
        Ok(Self {
            contract,
            latest_id,
            version,
            schemas,
            fetched: Instant::now(),
        })
    }
}

/// A product's registered contract that cannot be loaded.
#[derive(Debug)]
struct Broken {
    why: String,
    /// The version and schema id of the subject's latest version that was read, when known.
    at: Option<(Option<u32>, Option<u32>)>,
}

/// The registered contracts of the gateway's products, refreshed from the registry when an
/// event names a schema id the gateway has not seen (at most once per [`Contracts::REFRESH`]),
/// and when a new version of a product's contract is registered ([`Contracts::watch`]).
#[derive(Debug)]
pub struct Contracts {
    registry: Client,
    by_product: RwLock<HashMap<String, Arc<Registered>>>,
    /// Products whose registered contract cannot be loaded: why, and the latest version and id
    /// it was read at (unknown when it failed at start). Their events are dead-lettered as
    /// `contract_unavailable` until another version is registered.
    broken: RwLock<HashMap<String, Broken>>,
    by_ingress: HashMap<String, String>,
    /// How long an event with an uncached schema id waits for an unreachable registry.
    schema_wait: Duration,
    /// Per product: since when its refreshes fail (the registry is unreachable).
    unavailable_since: std::sync::Mutex<HashMap<String, std::time::Instant>>,
}

impl Contracts {
    /// The shortest time between two refreshes of one product.
    pub const REFRESH: Duration = Duration::from_secs(2);
    /// How long events with an uncached schema id wait for an unreachable registry by default.
    pub const SCHEMA_WAIT: Duration = Duration::from_secs(120);
    /// How often [`Contracts::watch`] asks the registry for each product's latest version.
    pub const WATCH: Duration = Duration::from_secs(2);

    /// Loads the registered contract of every product in `products`. An unreachable registry
    /// or an unregistered product is an error; a registered contract that is not valid affects
    /// only its product.
    pub async fn load(
        registry: Client,
        products: impl IntoIterator<Item = String>,
    ) -> Result<Self> {
        let mut by_ingress = HashMap::new();
        let mut loaded = Vec::new();
        for product in products {
            by_ingress.insert(Topics::of(&product).ingress, product.clone());
            loaded.push((
                product.clone(),
                Registered::fetch(&registry, &product).await,
            ));
        }
        let contracts = Self {
            registry,
            by_product: RwLock::default(),
            broken: RwLock::default(),
            by_ingress,
            schema_wait: Self::SCHEMA_WAIT,
            unavailable_since: std::sync::Mutex::default(),
        };
        for (product, registered) in loaded {
            match registered {
                Ok(registered) => contracts.install(&product, Arc::new(registered)),
                Err(Error::Contract(e)) => _ = contracts.mark_broken(&product, e, None),
                Err(e) => return Err(e),
            }
        }
        Ok(contracts)
    }

    /// The products the gateway serves.
    pub fn products(&self) -> impl Iterator<Item = &str> {
        self.by_ingress.values().map(String::as_str)
    }

    /// The version of `product`'s subject whose contract is enforced; 0 when none is loaded.
    pub fn version(&self, product: &str) -> u32 {
        self.get(product).map_or(0, |c| c.version)
    }

    /// Enforces `registered` for `product` from now on.
    fn install(&self, product: &str, registered: Arc<Registered>) {
        self.unavailable_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(product);
        self.broken
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(product);
        self.by_product
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(product.to_owned(), registered);
    }

    /// `product`'s contract, read at `at` (version and id), cannot be loaded: its events are
    /// dead-lettered until another version is registered. Whether that is news.
    fn mark_broken(
        &self,
        product: &str,
        error: crate::contract::Error,
        at: Option<(Option<u32>, Option<u32>)>,
    ) -> bool {
        let why = error.to_string();
        let mut broken = self
            .broken
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let news = broken.get(product).is_none_or(|b| b.why != why);
        if news {
            tracing::error!(product, error = %why, "the registered contract cannot be loaded; the product's events go to its dead-letter topic as contract_unavailable");
            self.by_product
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(product);
        }
        broken.insert(product.to_owned(), Broken { why, at });
        news
    }

    /// Why the contract of `product` cannot be loaded, if it cannot.
    pub fn unavailable(&self, product: &str) -> Option<String> {
        self.broken
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(product)
            .map(|b| b.why.clone())
    }

    /// Asks the registry for the latest version of every product's subject and loads the
    /// contracts that changed (or that could not be loaded before); returns the products
    /// whose contract changed. An unreachable registry leaves every contract as it is.
    pub async fn poll(&self) -> Vec<String> {
        let mut changed = Vec::new();
        for product in self.products() {
            let subject = format!("{product}-value");
            let Ok(latest) = self.registry.version(&subject, VersionId::Latest).await else {
                continue;
            };
            let at = (latest.version, latest.id);
            let unchanged = match self.get(product) {
                Some(current) => (Some(current.version), Some(current.latest_id)) == at,
                None => self
                    .broken
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(product)
                    .is_some_and(|b| b.at == Some(at)),
            };
            if unchanged {
                continue;
            }
            match Registered::fetch(&self.registry, product).await {
                Ok(fresh) => {
                    tracing::info!(product, version = fresh.version, "contract loaded");
                    self.install(product, Arc::new(fresh));
                    changed.push(product.to_owned());
                }
                Err(Error::Contract(e)) => {
                    if self.mark_broken(product, e, Some(at)) {
                        changed.push(product.to_owned());
                    }
                }
                Err(_) => {}
            }
        }
        changed
    }

    /// Polls the registry every [`Contracts::WATCH`] until `stop`, calling `changed` with each
    /// product whose contract changed.
    pub async fn watch(
        self: Arc<Self>,
        stop: tokio_util::sync::CancellationToken,
        mut changed: impl FnMut(&Self, &str) + Send,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Self::WATCH) => {}
            }
            for product in self.poll().await {
                changed(&self, &product);
            }
        }
    }

    /// Sets how long an event with an uncached schema id waits for an unreachable registry
    /// before it goes to the dead-letter topic as `schema_unavailable`.
    pub fn with_schema_wait(mut self, wait: Duration) -> Self {
        self.schema_wait = wait;
        self
    }

    /// A refresh of `product` failed: how long its refreshes have been failing, and whether
    /// that is past the wait.
    pub fn refresh_failed(&self, product: &str) -> (Duration, bool) {
        let mut since = self
            .unavailable_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let failing = since
            .entry(product.to_owned())
            .or_insert_with(std::time::Instant::now)
            .elapsed();
        (failing, failing >= self.schema_wait)
    }

    /// The product whose ingress topic is `topic`.
    pub fn product_of_ingress(&self, topic: &str) -> Option<&str> {
        self.by_ingress.get(topic).map(String::as_str)
    }

    /// The ingress topics of every product.
    pub fn ingress_topics(&self) -> Vec<&str> {
        self.by_ingress.keys().map(String::as_str).collect()
    }

    /// The contract of `product`, if the gateway serves it.
    pub fn get(&self, product: &str) -> Option<Arc<Registered>> {
        self.by_product
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(product)
            .cloned()
    }

    /// The contract of `product`, fetched again unless it was fetched less than
    /// [`Contracts::REFRESH`] ago. An unreachable registry is an error (the event waits), not
    /// a verdict on the event.
    pub async fn refresh(&self, product: &str) -> Result<Option<Arc<Registered>>> {
        match self.get(product) {
            None => return Ok(None),
            Some(current) if current.fetched.elapsed() < Self::REFRESH => return Ok(Some(current)),
            Some(_) => {}
        }
        let fresh = Arc::new(Registered::fetch(&self.registry, product).await?);
        self.install(product, fresh.clone());
        Ok(Some(fresh))
    }
}
