//! Event-time clocks: each partition's highest event time, and the view's watermark.
//!
//! A record is late for its window when the highest event time seen *before it in its own
//! partition*, minus the allowed lateness, has passed the window's end. That decision depends
//! only on the partition's order, so a replay after a crash decides the same way. A window closes
//! when the view's watermark passes its end: the lowest partition watermark, leaving out idle
//! partitions (caught up with their end and quiet for the idle timeout); when every partition is
//! idle, the highest.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// What is known of one partition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Partition {
    /// Highest event time seen (epoch ms).
    max_event: Option<i64>,
    /// When the partition was last found at its end, with nothing received since.
    at_end_since: Option<Instant>,
}

/// The event-time clocks of one view.
#[derive(Debug, Clone)]
pub(super) struct Clocks {
    partitions: BTreeMap<i32, Partition>,
    lateness: i64,
    idle_timeout: Duration,
}

impl Clocks {
    /// Clocks for `partitions`, with the view's allowed lateness and idle timeout.
    pub(super) fn new(
        partitions: impl IntoIterator<Item = i32>,
        lateness: Duration,
        idle: Duration,
    ) -> Self {
        Self {
            partitions: partitions
                .into_iter()
                .map(|p| (p, Partition::default()))
                .collect(),
            lateness: i64::try_from(lateness.as_millis()).unwrap_or(i64::MAX),
            idle_timeout: idle,
        }
    }

    /// Restores a partition's highest event time (from a checkpoint).
    pub(super) fn restore(&mut self, partition: i32, max_event: Option<i64>) {
        self.partitions.entry(partition).or_default().max_event = max_event;
    }

    /// The highest event time seen in `partition`.
    pub(super) fn max_event(&self, partition: i32) -> Option<i64> {
        self.partitions.get(&partition).and_then(|p| p.max_event)
    }

    /// Whether a record of `partition` for a window ending at `window_end` is late (decided
    /// before [`Clocks::observe`] takes the record in).
    pub(super) fn is_late(&self, partition: i32, window_end: i64) -> bool {
        self.max_event(partition)
            .is_some_and(|max| max.saturating_sub(self.lateness) >= window_end)
    }

    /// Takes in a record of `partition` with event time `event`.
    pub(super) fn observe(&mut self, partition: i32, event: i64) {
        let p = self.partitions.entry(partition).or_default();
        p.max_event = Some(p.max_event.map_or(event, |max| max.max(event)));
        p.at_end_since = None;
    }

    /// `partition` has delivered every record it holds, as of `now`.
    pub(super) fn reached_end(&mut self, partition: i32, now: Instant) {
        let p = self.partitions.entry(partition).or_default();
        p.at_end_since.get_or_insert(now);
    }

    /// Each partition's own watermark and whether it is idle at `now`.
    pub(super) fn state(&self, now: Instant) -> Vec<(Option<i64>, bool)> {
        self.partitions
            .values()
            .map(|p| {
                let idle = p
                    .at_end_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= self.idle_timeout);
                (
                    p.max_event.map(|max| max.saturating_sub(self.lateness)),
                    idle,
                )
            })
            .collect()
    }

    /// The view's watermark at `now`: windows ending at or before it are complete.
    pub(super) fn watermark(&self, now: Instant) -> Option<i64> {
        watermark(&self.state(now))
    }
}

/// The watermark over partitions, each with its own watermark and whether it is idle: the
/// lowest of the partitions not idle (none while one of them has delivered nothing), or the
/// highest when every partition is idle.
pub(crate) fn watermark(partitions: &[(Option<i64>, bool)]) -> Option<i64> {
    let mut active = partitions.iter().filter(|(_, idle)| !idle).peekable();
    if active.peek().is_some() {
        active.try_fold(i64::MAX, |min, (w, _)| w.map(|w| min.min(w)))
    } else {
        partitions.iter().filter_map(|(w, _)| *w).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    fn clocks() -> Clocks {
        Clocks::new([0, 1], Duration::from_secs(60), Duration::from_secs(10))
    }

    #[test]
    fn lateness_is_decided_by_the_records_own_partition() {
        let mut c = clocks();
        c.observe(0, 10 * MIN);
        // partition 0 is 9 minutes past a window ending at 1 min (lateness 1 min): late
        assert!(c.is_late(0, MIN));
        // partition 1 has seen nothing: not late there
        assert!(!c.is_late(1, MIN));
        // within the allowed lateness: not late
        assert!(!c.is_late(0, 9 * MIN + 1));
    }

    #[test]
    fn the_slowest_partition_holds_the_watermark_until_it_goes_idle() {
        let start = Instant::now();
        let mut c = clocks();
        c.observe(0, 10 * MIN);
        assert_eq!(
            c.watermark(start),
            None,
            "partition 1 has delivered nothing yet"
        );
        c.observe(1, 5 * MIN);
        assert_eq!(c.watermark(start), Some(4 * MIN));
        c.reached_end(1, start);
        assert_eq!(c.watermark(start + Duration::from_secs(9)), Some(4 * MIN));
        assert_eq!(
            c.watermark(start + Duration::from_secs(10)),
            Some(9 * MIN),
            "an idle partition stops holding the watermark back"
        );
        c.observe(1, 6 * MIN);
        assert_eq!(c.watermark(start + Duration::from_secs(30)), Some(5 * MIN));
    }

    #[test]
    fn a_quiet_topic_closes_its_windows_once_every_partition_is_idle() {
        let start = Instant::now();
        let mut c = clocks();
        c.observe(0, 10 * MIN);
        c.observe(1, 7 * MIN);
        c.reached_end(0, start);
        c.reached_end(1, start);
        assert_eq!(c.watermark(start + Duration::from_secs(11)), Some(9 * MIN));
    }
}
