//! Sign-in throttling for the console: each client IP may fail `POST /console/session` a few
//! times per window, then is refused (429) until the window ends, right secret or not. The
//! table is bounded: when it is full of live windows, sign-ins from addresses not in it are
//! refused too (a spread-out guessing attack then locks the console for everyone for at most
//! one window, rather than growing the table). Refusals are counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Failed sign-ins allowed per IP per window.
pub const MAX_FAILURES: u32 = 5;
/// How long failures count, from an IP's first failure; a locked-out IP waits this out.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once.
pub const MAX_TRACKED: usize = 4096;

/// Why a sign-in is refused before its secret is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Throttled {
    /// This IP failed `MAX_FAILURES` times in the current window.
    #[error("too many failed sign-ins from this address; retry in {0} s")]
    Address(u64),
    /// The table is full of addresses that are failing.
    #[error("too many failed sign-ins; retry in {0} s")]
    Everyone(u64),
}

impl Throttled {
    /// Seconds until a retry may succeed (the `Retry-After` header).
    pub fn retry_after(&self) -> u64 {
        match self {
            Self::Address(s) | Self::Everyone(s) => *s,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

/// Per-IP failed sign-in counts (see the module docs).
#[derive(Debug)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<IpAddr, Failures>>,
    max_failures: u32,
    window: Duration,
    max_tracked: usize,
    refused: AtomicU64,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        Self::new(MAX_FAILURES, WINDOW, MAX_TRACKED)
    }
}

impl SignInThrottle {
    /// A throttle allowing `max_failures` per `window` per IP, tracking `max_tracked` IPs.
    pub fn new(max_failures: u32, window: Duration, max_tracked: usize) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            max_failures: max_failures.max(1),
            window,
            max_tracked: max_tracked.max(1),
            refused: AtomicU64::new(0),
        }
    }

    fn wait(&self, since: Instant, now: Instant) -> u64 {
        let left = (since + self.window).saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }

    /// Whether `ip` may try a secret now; a refusal is counted.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Throttled> {
        let mut map = self.failures.lock();
        let refused = match map.get(&ip) {
            Some(f) if now.duration_since(f.since) >= self.window => {
                map.remove(&ip);
                None
            }
            Some(f) if f.count >= self.max_failures => {
                Some(Throttled::Address(self.wait(f.since, now)))
            }
            Some(_) => None,
            None if map.len() >= self.max_tracked => {
                let window = self.window;
                map.retain(|_, f| now.duration_since(f.since) < window);
                let oldest = map.values().map(|f| f.since).min();
                oldest
                    .filter(|_| map.len() >= self.max_tracked)
                    .map(|since| Throttled::Everyone(self.wait(since, now)))
            }
            None => None,
        };
        drop(map);
        match refused {
            Some(r) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(r)
            }
            None => Ok(()),
        }
    }

    /// Records a wrong secret from `ip` (one that [`Self::check`] let through).
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        let mut map = self.failures.lock();
        if map.len() >= self.max_tracked && !map.contains_key(&ip) {
            return; // only reachable in a race with another failure; the next check refuses
        }
        let f = map.entry(ip).or_insert(Failures {
            count: 0,
            since: now,
        });
        f.count += 1;
    }

    /// A right secret from `ip`: its failures are forgotten.
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures.lock().remove(&ip);
    }

    /// Sign-ins refused by the throttle since start-up.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn an_address_is_locked_out_after_max_failures_until_the_window_ends() {
        let t = SignInThrottle::new(3, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.check(ip(1), t0), Ok(()));
            t.failed(ip(1), t0);
        }
        assert_eq!(t.check(ip(1), t0), Err(Throttled::Address(60)));
        assert_eq!(
            t.check(ip(1), t0 + Duration::from_millis(59_500)),
            Err(Throttled::Address(1))
        );
        assert_eq!(
            t.check(ip(2), t0),
            Ok(()),
            "other addresses are not affected"
        );
        assert_eq!(t.refused(), 2);
        assert_eq!(t.check(ip(1), t0 + Duration::from_secs(60)), Ok(()));
        t.failed(ip(1), t0 + Duration::from_secs(60));
        assert_eq!(t.check(ip(1), t0 + Duration::from_secs(61)), Ok(()));
    }

    #[test]
    fn success_forgets_failures() {
        let t = SignInThrottle::new(2, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        t.failed(ip(1), t0);
        t.succeeded(ip(1));
        t.failed(ip(1), t0);
        assert_eq!(t.check(ip(1), t0), Ok(()));
    }

    #[test]
    fn a_full_table_refuses_new_addresses_until_an_entry_expires() {
        let t = SignInThrottle::new(5, Duration::from_secs(10), 2);
        let t0 = Instant::now();
        t.failed(ip(1), t0);
        t.failed(ip(2), t0 + Duration::from_secs(5));
        assert_eq!(t.check(ip(3), t0), Err(Throttled::Everyone(10)));
        assert_eq!(t.check(ip(1), t0), Ok(()), "tracked addresses still count");
        t.failed(ip(3), t0); // not tracked: the table stays bounded
        assert_eq!(t.failures.lock().len(), 2);
        assert_eq!(t.check(ip(3), t0 + Duration::from_secs(10)), Ok(()));
    }
}
