//! Drops repeats of an event by its CloudEvents (`source`, `id`) within a time window: what a
//! retried send or request produces.

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

/// (`source`, `id`) pairs seen within a window.
#[derive(Debug)]
pub struct Dedup {
    window: Duration,
    seen: HashMap<(String, String), Instant>,
    order: VecDeque<((String, String), Instant)>,
}

impl Dedup {
    /// Remembers pairs for `window`.
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
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
}
