//! The commit step of a product: merges the pieces its source partitions wrote of each window
//! into the window's snapshot, once every partition has closed the window, and publishes the
//! product's watermark, by which a partition gone idle closes its windows.
//!
//! - `events`: the snapshot lists the pieces' files (nothing is rewritten);
//! - `aggregate`: the pieces hold their groups' states, added up here into one file of values;
//! - `latest`: each partition contributes its newest piece at or before the window (every key it
//!   has seen, with its newest row); the snapshot holds, per key, the newest of them.
//!
//! Each snapshot's manifest names the pieces it was made of (`pieces`); a window whose pieces
//! change (a partition amended its piece with late events) gets its next version. Version 1 is
//! made of every partition's version 1 (the events on time), so it is the same in any replay;
//! the newest version is made of the newest pieces. Then the view's table commits the window
//! version, and the windows past the view's `keep` go.
//!
//! Delivery guarantee: **exactly once** into the store: the commit step keeps no state but the
//! store's; a restart lists the snapshots written, and a replay writes the same bytes
//! (create-only). It runs on the worker holding the product's partition 0, one at a time.
//!
//! Limits: the commit step lists the view's files at every round (every second); merging a
//! `latest` view's window holds its keys in memory.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant, SystemTime},
};

use arrow_schema::SchemaRef;
use serde_json::json;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::{
    super::{
        aggregate::Aggregate,
        clock,
        kind::Single,
        latest::Latest,
        listing::{self, Pieces},
        manifest::{self, File, Manifest, SourceRange},
        store::Store,
        table::Table,
        view::{file_of, instant, parse_instant, Put},
        window::Window,
        Error, Result,
    },
    metrics::{delay, Metrics},
    progress::{partitions_progress, same_manifest},
    read_manifest, read_rows, reader, retention, SnapshotterConfig,
};
use crate::{
    broker,
    lineage::{self, facet, EventType, Job, Naming, Run},
    product::{Product, ProductId, View, ViewKind},
    registry::client::Client,
};

/// How often the commit step looks for windows to commit.
const ROUND: Duration = Duration::from_secs(1);

/// The product's watermark per view, as the commit step last published it (none before).
pub(super) async fn read_floors(store: &Store, product_id: &str) -> Result<BTreeMap<String, i64>> {
    match store
        .get_opt(&manifest::watermarks_path(product_id))
        .await?
    {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(Error::json),
        None => Ok(BTreeMap::new()),
    }
}

/// What a round of the commit step knows of a view: windows ending at or before `complete`
/// (epoch ms) are closed in every partition, and the last records arrived at `received`.
struct Round {
    complete: i64,
    received: SystemTime,
}

/// One view's commits.
struct ViewCommits {
    view: View,
    table: Option<Table>,
    /// Per window label: the newest snapshot's version and the pieces it was made of.
    written: BTreeMap<String, (u32, BTreeMap<i32, String>)>,
    /// Per window label: the window's end (epoch ms).
    ends: HashMap<String, i64>,
    /// What the last expiry went by (windows closed through, the window a `latest` view
    /// restarts from): the same again expires nothing more.
    expired_by: Option<(i64, Option<String>)>,
}

/// The pieces of one window a snapshot is made of: per partition, the piece's window label and
/// version.
type Inputs = BTreeMap<i32, (String, u32)>;

/// Runs `product`'s commit step until `stop`.
pub(super) fn run_commits(
    handle: &Handle,
    config: &SnapshotterConfig,
    product: &Product,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<()> {
    let id = product.id();
    let store = &config.store;
    let client = Client::new(&config.registry_url);
    let (decoding, _) = reader(handle, config, product, &client)?;
    let schema = decoding
        .schema()
        .ok_or_else(|| Error::Unexpected("no schema to decode with".into()))?;
    let partitions = partitions_of(config, product)?;
    let committer = Committer {
        handle,
        config,
        product,
        metrics,
        schema,
    };
    let mut views = Vec::new();
    for view in &product.descriptor.views {
        let mut table = handle.block_on(Table::open(
            store,
            id,
            view,
            config.iceberg_catalog.as_ref(),
        ))?;
        let mut written = BTreeMap::new();
        for listed in handle.block_on(listing::list(store, id, &view.name))? {
            let path = manifest::manifest_path(id, &view.name, &listed.window, listed.version);
            let manifest = read_manifest(handle, store, &path)?;
            // a commit step that stopped between a manifest and its table commit
            if let Some(table) = table.as_mut() {
                handle.block_on(table.commit(store, &manifest))?;
            }
            written.insert(listed.window, (listed.version, manifest.pieces));
        }
        views.push(ViewCommits {
            view: view.clone(),
            table,
            written,
            ends: HashMap::new(),
            expired_by: None,
        });
    }
    tracing::info!(
        product = id,
        partitions = partitions.len(),
        "commit step started"
    );
    let mut floors = handle.block_on(read_floors(store, id))?;
    while !stop.is_cancelled() {
        let round = Instant::now();
        let progress = handle.block_on(partitions_progress(store, id))?;
        let mut new_floors = BTreeMap::new();
        for commits in &mut views {
            let name = commits.view.name.clone();
            // each partition's clock and how far it closed windows; none until all have one
            let states: Option<Vec<_>> = partitions
                .iter()
                .map(|p| {
                    let v = progress.get(p)?.views.get(&name)?;
                    Some(((v.watermark, v.idle), v.closed_through))
                })
                .collect();
            let Some(states) = states else {
                continue;
            };
            let clocks: Vec<(Option<i64>, bool)> = states.iter().map(|(c, _)| *c).collect();
            if let Some(floor) = clock::watermark(&clocks) {
                new_floors.insert(name.clone(), floor);
            }
            let complete = states
                .iter()
                .map(|(_, closed)| *closed)
                .try_fold(i64::MAX, |min, c| c.map(|c| min.min(c)));
            let Some(complete) = complete else {
                continue;
            };
            // a `latest` view's partitions restart from their newest pieces, which every later
            // window is made of too
            let restart_from = progress
                .values()
                .filter(|_| commits.view.kind == ViewKind::Latest)
                .filter_map(|p| p.views.get(&name)?.last_manifest.clone())
                .min_by(|a, b| {
                    listing::piece_of(a)
                        .map(|p| p.0)
                        .cmp(&listing::piece_of(b).map(|p| p.0))
                });
            let received = progress
                .values()
                .filter_map(|p| p.received_at)
                .max()
                .and_then(|ms| u64::try_from(ms).ok())
                .map_or(SystemTime::UNIX_EPOCH, |ms| {
                    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
                });
            let round = Round { complete, received };
            committer.commit(commits, &round)?;
            let by = (complete, restart_from);
            if commits.expired_by.as_ref() != Some(&by) {
                let expired = handle.block_on(retention::expire(
                    store,
                    id,
                    &commits.view,
                    Some(complete),
                    by.1.as_deref(),
                    commits.table.as_mut(),
                ))?;
                commits.expired_by = Some(by);
                if expired > 0 {
                    metrics
                        .expired
                        .with_label_values(&[ProductId(id).domain(), id, &name])
                        .inc_by(expired);
                }
            }
            metrics
                .watermark
                .with_label_values(&[ProductId(id).domain(), id, &name])
                .set(complete / 1000);
        }
        if new_floors != floors {
            let bytes = serde_json::to_vec_pretty(&new_floors).map_err(Error::json)?;
            handle.block_on(store.put(&manifest::watermarks_path(id), bytes))?;
            floors = new_floors;
        }
        let rest = ROUND.saturating_sub(round.elapsed());
        handle.block_on(async {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(rest) => {}
            }
        });
    }
    tracing::info!(product = id, "commit step stopped");
    Ok(())
}

/// The partitions of the product's topic.
fn partitions_of(config: &SnapshotterConfig, product: &Product) -> Result<Vec<i32>> {
    let topic = product.topics().product;
    let kafka = |source| Error::Kafka {
        context: format!("reading the partitions of {topic}"),
        source,
    };
    let consumer: rdkafka::consumer::BaseConsumer = broker::client_config(&config.bootstrap)
        .create()
        .map_err(kafka)?;
    let partitions = broker::retry_transient(
        "reading the product topic's partitions",
        Duration::from_secs(120),
        || broker::partitions_of(&consumer, &topic, Duration::from_secs(10)),
    )
    .map_err(kafka)?;
    if partitions.is_empty() {
        return Err(Error::Unexpected(format!(
            "topic {topic} has no partitions; create the product's topics first (`meshline up` does)"
        )));
    }
    Ok(partitions)
}

/// What the commit step of a product works with.
struct Committer<'a> {
    handle: &'a Handle,
    config: &'a SnapshotterConfig,
    product: &'a Product,
    metrics: &'a Metrics,
    /// The product's rows (the reader schema's).
    schema: SchemaRef,
}

impl Committer<'_> {
    /// Writes the snapshots of `commits`' view whose windows every partition closed (ending at or
    /// before the round's `complete`) and whose pieces changed since their last version.
    fn commit(&self, commits: &mut ViewCommits, round: &Round) -> Result<()> {
        let (handle, store) = (self.handle, &self.config.store);
        let id = self.product.id();
        // per window (in order), per partition: the paths of its piece's versions
        let windows = handle.block_on(listing::pieces(store, id, &commits.view.name))?;
        // expired windows are gone from the store
        commits
            .written
            .retain(|label, _| windows.contains_key(label));
        commits.ends.retain(|label, _| windows.contains_key(label));
        let latest = commits.view.kind == ViewKind::Latest;
        // a `latest` view's partition without a piece of a window contributes its newest before it
        let mut before: BTreeMap<i32, String> = BTreeMap::new();
        for (label, pieces) in &windows {
            let end = match commits.ends.get(label) {
                Some(end) => *end,
                None => {
                    let Some(path) = pieces.values().flat_map(|v| v.values()).next() else {
                        continue;
                    };
                    let end = parse_instant(&read_manifest(handle, store, path)?.window_end)?;
                    commits.ends.insert(label.clone(), end);
                    end
                }
            };
            if end > round.complete {
                break;
            }
            let mut newest = Inputs::new();
            let mut firsts = Inputs::new();
            if latest {
                for (p, l) in &before {
                    newest.insert(*p, (l.clone(), newest_version(&windows, l, *p)));
                    firsts.insert(*p, (l.clone(), 1));
                }
            }
            for p in pieces.keys() {
                newest.insert(*p, (label.clone(), newest_version(&windows, label, *p)));
                firsts.insert(*p, (label.clone(), 1));
                if latest {
                    before.insert(*p, label.clone());
                }
            }
            let next = match commits.written.get(label) {
                // version 1 from every partition's version 1: the events on time
                None => {
                    let first = if complete_at(&windows, &firsts) {
                        firsts
                    } else {
                        newest.clone()
                    };
                    self.write(commits, label, 1, &first, &windows, round)?;
                    2
                }
                Some((version, _)) => version + 1,
            };
            if commits
                .written
                .get(label)
                .is_some_and(|(_, named_pieces)| *named_pieces != named(&newest))
            {
                self.write(commits, label, next, &newest, &windows, round)?;
            }
        }
        Ok(())
    }
}

/// The newest version of `partition`'s piece of window `label`.
fn newest_version(windows: &Pieces, label: &str, partition: i32) -> u32 {
    windows
        .get(label)
        .and_then(|w| w.get(&partition))
        .and_then(|v| v.keys().next_back().copied())
        .unwrap_or(1)
}

/// Whether every piece `inputs` names is in the store.
fn complete_at(windows: &Pieces, inputs: &Inputs) -> bool {
    inputs
        .iter()
        .all(|(p, (l, v))| piece_path(windows, *p, l, *v).is_some())
}

/// The manifest path of version `version` of `partition`'s piece of window `label`.
fn piece_path<'a>(
    windows: &'a Pieces,
    partition: i32,
    label: &str,
    version: u32,
) -> Option<&'a String> {
    windows.get(label)?.get(&partition)?.get(&version)
}

/// Inputs as a manifest names them: `<label>/v<version>` per partition.
fn named(inputs: &Inputs) -> BTreeMap<i32, String> {
    inputs
        .iter()
        .map(|(p, (l, v))| (*p, format!("{l}/v{v}")))
        .collect()
}

impl Committer<'_> {
    /// Writes version `version` of window `label` of `commits`' view from the pieces `inputs`: its
    /// files, its manifest, its table commit.
    fn write(
        &self,
        commits: &mut ViewCommits,
        label: &str,
        version: u32,
        inputs: &Inputs,
        windows: &Pieces,
        round: &Round,
    ) -> Result<()> {
        let (handle, config, product, metrics) =
            (self.handle, self.config, self.product, self.metrics);
        let (store, schema) = (&config.store, &self.schema);
        let id = product.id();
        let view = &commits.view;
        // each piece, and whether it is of this window (not an earlier one)
        let mut pieces = Vec::new();
        for (p, (l, v)) in inputs {
            let path = piece_path(windows, *p, l, *v).ok_or_else(|| {
                Error::Unexpected(format!(
                    "piece {l}/v{v} of partition {p} is not in the store"
                ))
            })?;
            pieces.push((l == label, read_manifest(handle, store, path)?));
        }
        let Some((_, first)) = pieces.iter().find(|(here, _)| *here) else {
            return Ok(());
        };
        let (window_start, window_end) = (first.window_start.clone(), first.window_end.clone());
        let window = Window {
            start: parse_instant(&window_start)?,
            end: parse_instant(&window_end)?,
        };
        let dir = manifest::version_dir(id, &view.name, label, version);
        let mut puts: Vec<Put> = Vec::new();
        let files: Vec<File> = match view.kind {
            ViewKind::Events => {
                let mut files: Vec<File> = pieces
                    .iter()
                    .flat_map(|(_, m)| m.files.iter().cloned())
                    .collect();
                files.sort_by(|a, b| a.path.cmp(&b.path));
                files
            }
            ViewKind::Aggregate | ViewKind::Latest => {
                let mut batches = Vec::new();
                for (_, piece) in &pieces {
                    batches.extend(read_rows(handle, store, piece)?);
                }
                let mut single = Single::default();
                if view.kind == ViewKind::Aggregate {
                    let mut aggregate = Aggregate::new(view, schema, config.spill.clone())?;
                    for batch in &batches {
                        aggregate.add_piece(window, batch)?;
                    }
                    aggregate.close(window, &mut |b| single.write(b))?;
                } else {
                    let latest = Latest::new(view, schema.clone(), config.spill.clone())?;
                    latest.merge_pieces(&batches, &mut |b| single.write(b))?;
                }
                match single.finish()? {
                    Some((bytes, rows)) => {
                        // a retry after a crash may merge newer pieces
                        let put = Put::named_by_contents(&dir, bytes);
                        let file = file_of(&put, rows);
                        puts.push(put);
                        vec![file]
                    }
                    None => Vec::new(),
                }
            }
        };
        let mut sources: BTreeMap<i32, SourceRange> = BTreeMap::new();
        let mut schema_ids = Vec::new();
        let mut through = BTreeMap::new();
        for (here, piece) in &pieces {
            if *here {
                sources.extend(piece.sources.iter().map(|(k, v)| (*k, *v)));
                schema_ids.extend(piece.schema_ids.iter().copied());
            }
            through.extend(piece.through.iter().map(|(k, v)| (*k, *v)));
        }
        schema_ids.sort_unstable();
        schema_ids.dedup();
        let manifest = Manifest {
            product: id.to_owned(),
            view: view.name.clone(),
            kind: view.kind,
            window: label.to_owned(),
            window_start,
            window_end: window_end.clone(),
            time_zone: view.time_zone.clone(),
            version,
            rows: files.iter().map(|f| f.rows).sum(),
            files,
            sources,
            schema_ids,
            watermark: instant(round.complete),
            through,
            pieces: named(inputs),
        };
        for put in puts {
            handle.block_on(store.put_new(&put.path, put.bytes))?;
        }
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(Error::json)?;
        handle.block_on(store.put_new_or(
            &manifest::manifest_path(id, &view.name, label, version),
            bytes,
            same_manifest,
        ))?;
        if let Some(table) = commits.table.as_mut() {
            handle.block_on(table.commit(store, &manifest))?;
        }
        commits
            .written
            .insert(label.to_owned(), (version, manifest.pieces.clone()));
        let labels = [ProductId(id).domain(), id, view.name.as_str()];
        metrics.snapshots.with_label_values(&labels).inc();
        if version == 1 {
            if let Some(delay) = delay(&window_end, view.allowed_lateness.0, round.received) {
                metrics.delay.with_label_values(&labels).observe(delay);
            }
        }
        if config.lineage.enabled() {
            report(config, product, &manifest);
        }
        tracing::info!(
            product = %manifest.product,
            view = %manifest.view,
            window = %manifest.window,
            version = manifest.version,
            rows = manifest.rows,
            "snapshot written"
        );
        Ok(())
    }
}

/// Reports a window version written as an OpenLineage run of job
/// `snapshot.<product>.<view>` (`START` and `COMPLETE`; the same run id in any replay): the
/// product topic's events of the window in, the view's rows and files out.
fn report(config: &SnapshotterConfig, product: &Product, manifest: &Manifest) {
    let lineage = &config.lineage;
    let naming = Naming::new(&config.bootstrap, Some(&config.store.uri("")));
    let topic = &product.topics().product;
    let events: u64 = manifest.sources.values().map(|s| s.events).sum();
    let mut input = naming.topic(topic, Some(product));
    input["inputFacets"] = json!({
        "dataQualityMetrics": facet("1-0-3/DataQualityMetricsInputDatasetFacet", json!({
            "rowCount": events,
            "columnMetrics": {},
        })),
    });
    let mut output = naming.view(&manifest.product, &manifest.view);
    output["outputFacets"] = json!({
        "outputStatistics": facet("1-0-2/OutputStatisticsOutputDatasetFacet", json!({
            "rowCount": manifest.rows,
            "size": manifest.files.iter().map(|f| f.bytes).sum::<u64>(),
            "fileCount": manifest.files.len(),
        })),
    });
    let run = Run::of(&format!(
        "{}/{}/{}/{}",
        manifest.product, manifest.view, manifest.window, manifest.version
    ))
    .nominal(
        &lineage::time(&manifest.window_start).unwrap_or_default(),
        &lineage::time(&manifest.window_end).unwrap_or_default(),
    );
    let job = || Job {
        name: format!("snapshot.{}.{}", manifest.product, manifest.view),
        description: format!(
            "meshline's snapshotter writes window {} of view {} of {} (version {}) from {topic}",
            manifest.window, manifest.view, manifest.product, manifest.version
        ),
        processing: "BATCH",
        kind: "SNAPSHOT_WINDOW",
        inputs: vec![input.clone()],
        outputs: vec![output.clone()],
    };
    lineage.emit(lineage.run_event(EventType::Start, &run, job()));
    lineage.emit(lineage.run_event(EventType::Complete, &run, job()));
}
