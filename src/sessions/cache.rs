use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Session liveness answers, kept for at most `ttl`.
#[derive(Debug)]
pub struct LiveCache {
    ttl: Duration,
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
    pub fn new(ttl: Duration) -> Self {
        LiveCache { ttl, entries: Mutex::new(HashMap::new()), lookups: Family::default() }
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

    /// Records an answer and returns the one that stands. A session never comes back to life,
    /// so a "dead" already recorded (a revocation racing with this read) beats a "live".
    pub fn put(&self, key: &str, live: bool) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
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
        let cache = LiveCache::new(Duration::from_millis(50));
        assert!(cache.put("a", true));
        assert_eq!(cache.get("a"), Some(true));
        cache.forget("a");
        assert_eq!(cache.get("a"), Some(false));
        assert!(!cache.put("a", true), "a live answer read before the revocation loses");
        cache.put("b", true);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get("b"), None);
    }
}
