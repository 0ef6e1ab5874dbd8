//! Brute-force limits on sign-in and sign-up, checked before any password hash is computed.
//!
//! Sliding windows in memory, per instance: failed sign-ins per account name (as typed, so an
//! unknown name is limited exactly like a real one and the limit tells nothing about which
//! accounts exist) and per client IP; sign-ups per client IP and in total. Behind a load
//! balancer each instance counts what it sees, so the effective limit is at most the number of
//! instances times the configured one.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct LimitSettings {
    /// Failed sign-ins per account name within `window` before further attempts are refused.
    pub failures_per_account: usize,
    /// Failed sign-ins per client IP within `window`.
    pub failures_per_ip: usize,
    pub window: Duration,
    /// Sign-ups per client IP per hour.
    pub signups_per_ip_per_hour: usize,
    /// Sign-ups per minute on this instance, all clients together.
    pub signups_per_minute: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            failures_per_account: 10,
            failures_per_ip: 100,
            window: Duration::from_secs(300),
            signups_per_ip_per_hour: 20,
            signups_per_minute: 60,
        }
    }
}

/// Refused: try again after this many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// Keys tracked per window at most; beyond this the oldest-idle keys are dropped first, so a
/// flood of random names cannot grow memory without bound.
const MAX_KEYS: usize = 100_000;

/// Events per key within a sliding window.
#[derive(Debug)]
struct Window {
    span: Duration,
    events: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Window {
    fn new(span: Duration) -> Window {
        Window { span, events: Mutex::new(HashMap::new()) }
    }

    /// `Err` when `key` already has `max` events within the window.
    fn check(&self, key: &str, max: usize, now: Instant) -> Result<(), RetryAfter> {
        let mut events = self.events.lock().expect("limit window");
        let Some(times) = events.get_mut(key) else { return Ok(()) };
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.span) {
            times.pop_front();
        }
        if times.len() < max {
            return Ok(());
        }
        let oldest = *times.front().expect("at least max > 0 events");
        let left = self.span.saturating_sub(now.duration_since(oldest));
        Err(RetryAfter(left.as_secs().max(1)))
    }

    fn record(&self, key: &str, now: Instant) {
        let mut events = self.events.lock().expect("limit window");
        if events.len() >= MAX_KEYS && !events.contains_key(key) {
            let span = self.span;
            events.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < span));
            if events.len() >= MAX_KEYS {
                let stalest = events.iter().min_by_key(|(_, t)| t.back().copied()).map(|(k, _)| k.clone());
                if let Some(stalest) = stalest {
                    events.remove(&stalest);
                }
            }
        }
        let times = events.entry(key.to_owned()).or_default();
        times.push_back(now);
        // Only the newest `max` events can matter; the cap keeps a hot key small.
        if times.len() > 1_000 {
            times.pop_front();
        }
    }

    fn clear(&self, key: &str) {
        self.events.lock().expect("limit window").remove(key);
    }
}

#[derive(Debug)]
pub struct Limits {
    settings: LimitSettings,
    account_failures: Window,
    ip_failures: Window,
    ip_signups: Window,
    all_signups: Window,
}

impl Limits {
    pub fn new(settings: LimitSettings) -> Limits {
        Limits {
            account_failures: Window::new(settings.window),
            ip_failures: Window::new(settings.window),
            ip_signups: Window::new(Duration::from_secs(3600)),
            all_signups: Window::new(Duration::from_secs(60)),
            settings,
        }
    }

    /// Whether a sign-in for `username` from `ip` may be attempted now.
    pub fn check_sign_in(&self, username: &str, ip: IpAddr) -> Result<(), RetryAfter> {
        let now = Instant::now();
        self.account_failures.check(username, self.settings.failures_per_account, now)?;
        self.ip_failures.check(&ip.to_string(), self.settings.failures_per_ip, now)
    }

    pub fn sign_in_failed(&self, username: &str, ip: IpAddr) {
        let now = Instant::now();
        self.account_failures.record(username, now);
        self.ip_failures.record(&ip.to_string(), now);
    }

    /// A correct password clears the account's failures (not the IP's: one right password must
    /// not buy an attacker a fresh budget for other accounts).
    pub fn sign_in_succeeded(&self, username: &str) {
        self.account_failures.clear(username);
    }

    /// Checks and counts a sign-up attempt from `ip`.
    pub fn sign_up(&self, ip: IpAddr) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let key = ip.to_string();
        self.all_signups.check("", self.settings.signups_per_minute, now)?;
        self.ip_signups.check(&key, self.settings.signups_per_ip_per_hour, now)?;
        self.all_signups.record("", now);
        self.ip_signups.record(&key, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn failures_are_counted_per_account_and_cleared_by_a_success() {
        let limits = Limits::new(LimitSettings { failures_per_account: 3, ..LimitSettings::default() });
        for _ in 0..3 {
            assert_eq!(limits.check_sign_in("alice", IP), Ok(()));
            limits.sign_in_failed("alice", IP);
        }
        let RetryAfter(secs) = limits.check_sign_in("alice", IP).unwrap_err();
        assert!((1..=300).contains(&secs), "{secs}");
        assert_eq!(limits.check_sign_in("bob", IP), Ok(()), "other accounts are not affected");
        limits.sign_in_succeeded("alice");
        assert_eq!(limits.check_sign_in("alice", IP), Ok(()));
    }

    #[test]
    fn the_window_slides() {
        let window = Window::new(Duration::from_millis(50));
        let start = Instant::now();
        window.record("k", start);
        window.record("k", start);
        assert!(window.check("k", 2, start).is_err());
        assert!(window.check("k", 2, start + Duration::from_millis(60)).is_ok());
    }

    #[test]
    fn per_ip_failures_span_accounts_and_signups_have_a_global_rate() {
        let limits =
            Limits::new(LimitSettings { failures_per_ip: 2, signups_per_minute: 2, ..LimitSettings::default() });
        limits.sign_in_failed("a", IP);
        limits.sign_in_failed("b", IP);
        assert!(limits.check_sign_in("c", IP).is_err());
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limits.check_sign_in("c", other).is_ok());
        assert!(limits.sign_up(IP).is_ok() && limits.sign_up(other).is_ok());
        assert!(limits.sign_up("192.0.2.2".parse().unwrap()).is_err(), "the global rate");
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_names() {
        let window = Window::new(Duration::from_secs(300));
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            window.record(&format!("user{i}"), now);
        }
        assert!(window.events.lock().unwrap().len() <= MAX_KEYS);
    }
}
