//! How a component's loop waits before it runs again after a failure: 1 s, doubling up to 30 s;
//! a stop ends the wait at once.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// The first wait.
const FIRST: Duration = Duration::from_secs(1);
/// The longest wait.
const MOST: Duration = Duration::from_secs(30);

/// The waits between the runs of one loop.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    /// Waits starting at 1 s.
    pub(crate) fn new() -> Self {
        Self { next: FIRST }
    }

    /// The next wait is the first again (the last run went well for long enough).
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }

    /// Waits before the next run, and doubles the wait after it; `false` when `stop` came
    /// first.
    pub(crate) async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let wait = self.take();
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = stop.cancelled() => false,
        }
    }

    /// The wait due now; the next one is twice as long, up to the longest.
    fn take(&mut self) -> Duration {
        let now = self.next;
        self.next = (now * 2).min(MOST);
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_thirty_seconds_and_start_over_on_reset() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..7).map(|_| backoff.take().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.take(), FIRST);
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_at_once() {
        let stop = CancellationToken::new();
        stop.cancel();
        let mut backoff = Backoff::new();
        backoff.take();
        let started = std::time::Instant::now();
        assert!(!backoff.wait(&stop).await);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
