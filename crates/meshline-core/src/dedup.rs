//! Drops repeats of an event by its CloudEvents (`source`, `id`) within a time window: what a
//! retried send or request produces.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    time::{Duration, Instant},
};

/// What [`Dedup::claim`] found for a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Neither written nor being written: claimed now, until [`Dedup::confirm`] or
    /// [`Dedup::release`].
    New,
    /// Written within the window: a repeat.
    Written,
    /// Claimed by an earlier request whose write has not ended yet.
    InFlight,
}

/// (`source`, `id`) pairs seen within a window.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    seen: HashMap<(String, String), Instant>,
    order: VecDeque<((String, String), Instant)>,
    /// Claimed, not yet confirmed or released.
    claimed: HashSet<(String, String)>,
}

impl Dedup {
    /// Remembers pairs for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            seen: HashMap::new(),
            order: VecDeque::new(),
            claimed: HashSet::new(),
        }
    }

    /// Claims a pair before it is written, so that a repeat arriving meanwhile is told apart
    /// from a new event.
    pub fn claim(&mut self, source: &str, id: &str) -> Claim {
        if self.seen(source, id) {
            return Claim::Written;
        }
        if !self.claimed.insert((source.to_owned(), id.to_owned())) {
            return Claim::InFlight;
        }
        Claim::New
    }

    /// A claimed pair was written: a repeat for the window from now.
    pub fn confirm(&mut self, source: &str, id: &str) {
        self.claimed.remove(&(source.to_owned(), id.to_owned()));
        self.insert(source, id);
    }

    /// A claimed pair was not written: it may be sent again.
    pub fn release(&mut self, source: &str, id: &str) {
        self.claimed.remove(&(source.to_owned(), id.to_owned()));
    }

    /// Whether the pair was seen within the window.
    pub fn seen(&mut self, source: &str, id: &str) -> bool {
        self.expire(Instant::now());
        self.seen.contains_key(&(source.to_owned(), id.to_owned()))
    }

    /// Remembers the pair for the window from now.
    pub fn insert(&mut self, source: &str, id: &str) {
        let now = Instant::now();
        let key = (source.to_owned(), id.to_owned());
        self.seen.insert(key.clone(), now);
        self.order.push_back((key, now));
    }

    /// Whether this is the first time the pair is seen within the window (and remembers it).
    pub fn first(&mut self, source: &str, id: &str) -> bool {
        if self.seen(source, id) {
            return false;
        }
        self.insert(source, id);
        true
    }

    fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            if now.duration_since(*at) < self.window {
                break;
            }
            if self.seen.get(key) == Some(at) {
                self.seen.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_drops_repeats_within_the_window_only() {
        let mut d = Dedup::new(Duration::from_millis(50));
        assert!(d.first("/player", "1"));
        assert!(!d.first("/player", "1"));
        assert!(d.first("/labels", "1"), "ids are per source");
        std::thread::sleep(Duration::from_millis(60));
        assert!(d.first("/player", "1"), "the window has passed");
    }

    #[test]
    fn a_claim_holds_until_confirmed_or_released() {
        let mut d = Dedup::new(Duration::from_secs(60));
        assert_eq!(d.claim("/player", "1"), Claim::New);
        assert_eq!(d.claim("/player", "1"), Claim::InFlight);
        d.release("/player", "1");
        assert_eq!(
            d.claim("/player", "1"),
            Claim::New,
            "released: may be sent again"
        );
        d.confirm("/player", "1");
        assert_eq!(d.claim("/player", "1"), Claim::Written);
        assert_eq!(d.claim("/labels", "1"), Claim::New, "ids are per source");
    }
}
