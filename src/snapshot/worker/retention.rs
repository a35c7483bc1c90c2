//! Retention: a view with `keep` loses its windows that ended more than `keep` before the end of
//! its newest closed window (event time, so every worker and every replay agrees), every
//! version. A window's manifests go first, oldest version first (a reader sees the newest
//! version until the window is gone, never an older one), then its files.
//!
//! Never deleted: a window that may still change (within `amend_for` of the newest closed one;
//! `keep` is at least that long), the window a `latest` view restarts from, and anything of an
//! open window (its files come before its manifest). Files left by an expiry that was
//! interrupted (no manifest any more) go with the next expiry of a newer window.

use std::collections::BTreeMap;

use super::super::{
    manifest::{product_root, Manifest},
    table::Table,
    Error, Result, Store,
};
use crate::product::{LatePolicy, View};

/// Deletes the windows of `view` of `product` past its `keep`, given the end of its newest
/// closed window (`closed_through`, epoch ms) and the manifest its state restarts from
/// (`restart_from`), from its `table` first when it has one; returns how many windows
/// went.
pub(super) async fn expire(
    store: &Store,
    product: &str,
    view: &View,
    closed_through: Option<i64>,
    restart_from: Option<&str>,
    mut table: Option<&mut Table>,
) -> Result<u64> {
    let (Some(keep), Some(closed)) = (view.keep, closed_through) else {
        return Ok(0);
    };
    let keep = if view.late == LatePolicy::Amend {
        keep.0.max(view.amend_for.0)
    } else {
        keep.0
    };
    let cutoff = closed.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
    let dir = format!("{}/{}", product_root(product), view.name);
    let mut windows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for path in store.list(&dir).await? {
        if let Some(label) = window_of(&path) {
            windows.entry(label.to_owned()).or_default().push(path);
        }
    }
    let kept = restart_from.and_then(window_of);
    let mut expired = 0;
    // windows without a manifest, waiting for a newer window to be found expired
    let mut leftovers: Vec<Vec<String>> = Vec::new();
    for (label, paths) in windows {
        if kept == Some(label.as_str()) {
            break;
        }
        let mut manifests: Vec<(u32, &String)> = paths
            .iter()
            .filter_map(|p| Some((version_of(p)?, p)))
            .collect();
        manifests.sort();
        let Some((_, newest)) = manifests.last() else {
            leftovers.push(paths);
            continue;
        };
        let manifest: Manifest =
            serde_json::from_slice(&store.get(newest).await?).map_err(Error::json)?;
        let end = chrono::DateTime::parse_from_rfc3339(&manifest.window_end)
            .map_err(Error::json)?
            .timestamp_millis();
        if end > cutoff {
            break;
        }
        if let Some(table) = table.as_mut() {
            table.expire(store, &label, closed).await?;
        }
        for (_, path) in &manifests {
            store.delete(path).await?;
        }
        let files = paths.iter().filter(|p| version_of(p).is_none());
        for path in leftovers.drain(..).flatten().chain(files.cloned()) {
            store.delete(&path).await?;
        }
        tracing::info!(product, view = %view.name, window = %label, "window expired (past the view's keep)");
        expired += 1;
    }
    Ok(expired)
}

/// The window label of a path `…/window=<label>/…`.
fn window_of(path: &str) -> Option<&str> {
    path.split('/').find_map(|p| p.strip_prefix("window="))
}

/// The version of a window's manifest path `…/window=<label>/v<version>/manifest.json` (a
/// piece's manifest, one directory deeper, is one of the window's files).
fn version_of(path: &str) -> Option<u32> {
    super::super::listing::window_version(path).map(|(_, version)| version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(keep: Option<&str>, late: LatePolicy) -> View {
        serde_norway::from_str::<View>(&format!(
            "{{name: plays, kind: events, window: minute, late: {}, amend_for: 10m{}}}",
            serde_json::to_value(late).unwrap().as_str().unwrap(),
            keep.map(|k| format!(", keep: {k}")).unwrap_or_default()
        ))
        .unwrap()
    }

    const T0: i64 = 1_795_600_800_000;
    const MIN: i64 = 60_000;

    /// A closed window of minute `m`: its file and manifest; an open one only its file.
    async fn window(store: &Store, m: i64, closed: bool) -> String {
        let start = chrono::DateTime::from_timestamp_millis(T0 + m * MIN).unwrap();
        let label = start.format("%Y-%m-%dT%H-%M").to_string();
        let dir = format!("snapshots/player/play-events/plays/window={label}/v1");
        store
            .put_new(&format!("{dir}/part-0.parquet"), vec![1])
            .await
            .unwrap();
        if closed {
            let manifest = serde_json::json!({
                "product": "player.play-events", "view": "plays", "kind": "events",
                "window": label, "window_start": start.to_rfc3339(),
                "window_end": (start + chrono::Duration::minutes(1)).to_rfc3339(),
                "time_zone": "UTC", "version": 1, "files": [], "rows": 0, "sources": {},
                "schema_ids": [], "watermark": start.to_rfc3339()});
            store
                .put_new(
                    &format!("{dir}/manifest.json"),
                    serde_json::to_vec(&manifest).unwrap(),
                )
                .await
                .unwrap();
        }
        label
    }

    #[tokio::test]
    async fn windows_past_keep_go_and_newer_open_or_amendable_ones_stay() {
        let store = Store::open("memory://").unwrap();
        let mut labels = Vec::new();
        for m in 0..20 {
            labels.push(window(&store, m, m < 18).await);
        }
        let count = |store: Store| async move {
            store
                .list("snapshots/player/play-events/plays")
                .await
                .unwrap()
                .len()
        };
        // closed through minute 18: keep 5m keeps the windows ending after minute 13
        let closed = Some(T0 + 18 * MIN);
        let none = view(None, LatePolicy::Drop);
        assert_eq!(
            expire(&store, "player.play-events", &none, closed, None, None)
                .await
                .unwrap(),
            0
        );
        let keep = view(Some("5m"), LatePolicy::Drop);
        assert_eq!(
            expire(&store, "player.play-events", &keep, closed, None, None)
                .await
                .unwrap(),
            13
        );
        let left = store.list("snapshots/player").await.unwrap();
        assert!(
            left.iter()
                .all(|p| labels[13..].iter().any(|l| p.contains(l))),
            "{left:?}"
        );
        // 5 closed windows (file and manifest) and 2 open ones (a file each) are left
        assert_eq!(count(store.clone()).await, 12);
        // an amending view keeps `amend_for` (10m) even with a shorter keep
        let store = Store::open("memory://").unwrap();
        for m in 0..20 {
            window(&store, m, m < 18).await;
        }
        let amending = view(Some("5m"), LatePolicy::Amend);
        assert_eq!(
            expire(&store, "player.play-events", &amending, closed, None, None)
                .await
                .unwrap(),
            8
        );
        // the window a `latest` view restarts from stays, and every newer one
        let restart = format!(
            "snapshots/player/play-events/plays/window={}/v1/manifest.json",
            labels[9]
        );
        let store = Store::open("memory://").unwrap();
        for m in 0..20 {
            window(&store, m, m < 18).await;
        }
        assert_eq!(
            expire(
                &store,
                "player.play-events",
                &keep,
                closed,
                Some(&restart),
                None
            )
            .await
            .unwrap(),
            9
        );
    }

    #[tokio::test]
    async fn files_left_by_an_interrupted_expiry_go_with_the_next_one() {
        let store = Store::open("memory://").unwrap();
        // minute 0 lost its manifest to an interrupted expiry; minutes 1..4 are closed
        window(&store, 0, false).await;
        for m in 1..4 {
            window(&store, m, true).await;
        }
        let keep = view(Some("1m"), LatePolicy::Drop);
        // closed through minute 2: only minute 0 is past keep, and it has no manifest: nothing
        // proves it is not an open window, so it stays
        let closed = Some(T0 + 2 * MIN);
        assert_eq!(
            expire(&store, "player.play-events", &keep, closed, None, None)
                .await
                .unwrap(),
            0
        );
        assert_eq!(store.list("snapshots").await.unwrap().len(), 7);
        // closed through minute 4: minutes 1 and 2 expire, and minute 0's file goes with them
        let closed = Some(T0 + 4 * MIN);
        assert_eq!(
            expire(&store, "player.play-events", &keep, closed, None, None)
                .await
                .unwrap(),
            2
        );
        assert_eq!(store.list("snapshots").await.unwrap().len(), 2);
    }
}
