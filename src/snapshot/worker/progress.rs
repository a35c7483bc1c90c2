//! Progress in the store: where each view resumes, read back after a restart, and the check
//! that a manifest found already written is the one a replay would write.

use std::collections::BTreeMap;

use super::super::{
    manifest::{self, Manifest, Progress},
    store::Store,
    Error, Result,
};

/// The newest progress of source `partition` of `product_id` in `store`, and its path.
pub(crate) async fn load_partition_progress(
    store: &Store,
    product_id: &str,
    partition: i32,
) -> Result<Option<(Progress, String)>> {
    let dir = manifest::progress_dir(product_id, partition);
    let Some(path) = store.list(&dir).await?.pop() else {
        return Ok(None);
    };
    let bytes = store.get(&path).await?;
    let progress = serde_json::from_slice(&bytes).map_err(Error::json)?;
    Ok(Some((progress, path)))
}

/// The newest progress of every source partition of `product_id` in `store` that has one.
pub(crate) async fn partitions_progress(
    store: &Store,
    product_id: &str,
) -> Result<BTreeMap<i32, Progress>> {
    let dir = format!("{}/_progress", manifest::product_root(product_id));
    let mut newest: BTreeMap<i32, String> = BTreeMap::new();
    for path in store.list(&dir).await? {
        let partition = path
            .rsplit('/')
            .nth(1)
            .and_then(|d| d.strip_prefix("partition-"))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(partition) = partition {
            // listed in order: the last is the newest
            newest.insert(partition, path);
        }
    }
    let mut progress = BTreeMap::new();
    for (partition, path) in newest {
        let bytes = store.get(&path).await?;
        progress.insert(
            partition,
            serde_json::from_slice(&bytes).map_err(Error::json)?,
        );
    }
    Ok(progress)
}

/// The progress of `product_id` over its source partitions, as one: per view, each partition's
/// resume point, and windows closed through the lowest of theirs (a window is written once every
/// partition has closed it).
pub async fn load_progress(store: &Store, product_id: &str) -> Result<Option<Progress>> {
    let partitions = partitions_progress(store, product_id).await?;
    if partitions.is_empty() {
        return Ok(None);
    }
    let mut combined = Progress::default();
    let mut closed: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for progress in partitions.values() {
        combined.sequence = combined.sequence.max(progress.sequence);
        for (name, view) in &progress.views {
            let c = closed.entry(name.clone()).or_insert(view.closed_through);
            *c = (*c).min(view.closed_through);
            combined
                .views
                .entry(name.clone())
                .or_default()
                .partitions
                .extend(view.partitions.iter().map(|(p, v)| (*p, *v)));
        }
    }
    for (name, closed) in closed {
        if let Some(view) = combined.views.get_mut(&name) {
            view.closed_through = closed;
        }
    }
    Ok(Some(combined))
}

/// Where to start `partition`: the lowest resume offset of any view; the beginning when a view
/// has no progress there (a new view).
pub(super) fn progress_start(
    progress: &Progress,
    views: &[crate::product::View],
    partition: i32,
) -> Option<i64> {
    let mut start: Option<i64> = None;
    for view in views {
        let resume = progress
            .views
            .get(&view.name)
            .and_then(|v| v.partitions.get(&partition))
            .map(|p| p.resume_from)?;
        start = Some(start.map_or(resume, |s| s.min(resume)));
    }
    start
}

/// Whether two manifests describe the same snapshot (the watermark at closing aside).
pub(super) fn same_manifest(existing: &[u8], new: &[u8]) -> bool {
    let parse = |bytes: &[u8]| {
        serde_json::from_slice::<Manifest>(bytes).ok().map(|mut m| {
            m.watermark.clear();
            m
        })
    };
    matches!((parse(existing), parse(new)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        product::View,
        snapshot::manifest::{PartitionProgress, ViewProgress},
    };

    fn view(name: &str) -> View {
        serde_norway::from_str(&format!("{{name: {name}, kind: events, window: minute}}")).unwrap()
    }

    fn resuming(from: i64) -> ViewProgress {
        let partition = PartitionProgress {
            resume_from: from,
            max_event: None,
            done_through: from - 1,
        };
        ViewProgress {
            partitions: [(0, partition)].into(),
            ..ViewProgress::default()
        }
    }

    #[test]
    fn a_partition_starts_where_its_slowest_view_resumes_and_a_new_view_from_the_beginning() {
        let progress = Progress {
            sequence: 1,
            views: [("a".into(), resuming(40)), ("b".into(), resuming(12))].into(),
            received_at: None,
        };
        assert_eq!(
            progress_start(&progress, &[view("a"), view("b")], 0),
            Some(12)
        );
        assert_eq!(progress_start(&progress, &[view("a")], 0), Some(40));
        assert_eq!(
            progress_start(&progress, &[view("a"), view("new")], 0),
            None
        );
        assert_eq!(
            progress_start(&progress, &[view("a")], 1),
            None,
            "a new partition"
        );
    }

    #[test]
    fn a_manifest_written_at_another_watermark_is_the_same_snapshot() {
        let manifest = |watermark: &str, rows: u64| {
            let json = serde_json::json!({
                "product": "player.play-events", "view": "all", "kind": "events",
                "window": "1970-01-01T00:00", "window_start": "1970-01-01T00:00:00.000Z",
                "window_end": "1970-01-01T00:01:00.000Z", "time_zone": "UTC", "version": 1,
                "files": [], "rows": rows, "sources": {}, "schema_ids": [1],
                "watermark": watermark,
            });
            serde_json::to_vec(&json).unwrap()
        };
        let first = manifest("1970-01-01T00:01:00.000Z", 2);
        assert!(same_manifest(
            &first,
            &manifest("1970-01-01T00:05:00.000Z", 2)
        ));
        assert!(!same_manifest(
            &first,
            &manifest("1970-01-01T00:01:00.000Z", 3)
        ));
        assert!(!same_manifest(&first, b"not json"));
    }
}
