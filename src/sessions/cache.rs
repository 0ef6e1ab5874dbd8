use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Session liveness answers, kept for at most `ttl`; and for `stale_if_error` more, as the
/// answer to go by while the database cannot be asked.
#[derive(Debug)]
pub struct LiveCache {
    ttl: Duration,
    stale_if_error: Duration,
    entries: Mutex<HashMap<String, (bool, Instant)>>,
    lookups: Family<CacheLookup, Counter>,
}

/// A [`LiveCache::get`] that found a fresh answer (`hit`) or not (`miss`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLookup {
    pub result: &'static str,
}

/// Past this many entries, expired ones are swept before an insert.
const SWEEP_AT: usize = 100_000;

impl LiveCache {
    pub fn new(ttl: Duration, stale_if_error: Duration) -> Self {
        LiveCache { ttl, stale_if_error, entries: Mutex::new(HashMap::new()), lookups: Family::default() }
    }

    pub fn lookups(&self) -> &Family<CacheLookup, Counter> {
        &self.lookups
    }

    pub fn get(&self, key: &str) -> Option<bool> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = entries.get(key).filter(|(_, at)| at.elapsed() < self.ttl).map(|(live, _)| *live);
        self.lookups.get_or_create(&CacheLookup { result: if found.is_some() { "hit" } else { "miss" } }).inc();
        found
    }

    /// The last answer, even past `ttl` (but not past `stale_if_error` more): only for when the
    /// database is unreachable.
    pub fn get_stale(&self, key: &str) -> Option<bool> {
        let entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.get(key).filter(|(_, at)| at.elapsed() < self.ttl + self.stale_if_error).map(|(live, _)| *live)
    }

    /// Records an answer and returns the one that stands. A session never comes back to life,
    /// so a "dead" already recorded (a revocation racing with this read) beats a "live".
    pub fn put(&self, key: &str, live: bool) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl + self.stale_if_error);
        }
        if live && entries.get(key).is_some_and(|(known, _)| !known) {
            return false;
        }
        entries.insert(key.to_owned(), (live, Instant::now()));
        live
    }

    /// The session was revoked here: answer "dead" from now on, without asking the database.
    pub fn forget(&self, key: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        entries.insert(key.to_owned(), (false, Instant::now()));
    }

    /// Forgets every answer: the next check of each session asks the database.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_revocations_win() {
        let cache = LiveCache::new(Duration::from_millis(50), Duration::ZERO);
        assert!(cache.put("a", true));
        assert_eq!(cache.get("a"), Some(true));
        cache.forget("a");
        assert_eq!(cache.get("a"), Some(false));
        assert!(!cache.put("a", true), "a live answer read before the revocation loses");
        cache.put("b", true);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("b"), None);
    }

    #[test]
    fn stale_answers_outlive_the_ttl_only_up_to_their_bound() {
        let cache = LiveCache::new(Duration::from_millis(20), Duration::from_millis(200));
        cache.put("live", true);
        cache.put("dead", false);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(cache.get("live"), None, "past the ttl the database must be asked again");
        assert_eq!(cache.get_stale("live"), Some(true));
        assert_eq!(cache.get_stale("dead"), Some(false), "a dead session stays dead");
        assert_eq!(cache.get_stale("never-seen"), None);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(cache.get_stale("live"), None, "too old to stand in for the database");
    }
}
