//! Budgets that bound what unauthenticated clients can hold, and logging that stays quiet under
//! attack. [`PendingBudget`] caps the connections that are not WebSockets yet (handshakes in
//! progress, HTTP API connections), server-wide and per client IP; each admitted connection
//! holds a [`PendingSlot`] that gives its place back when dropped. [`QuietLog`] turns a flood of
//! identical failures (accept errors, refused requests) into at most one line per interval,
//! with a count.

use std::collections::HashMap;
use std::fmt::Display;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Why a new connection was refused a pending slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingRefusal {
    /// `server.max_pending_connections` connections are already pending.
    #[error("too many pending connections (server.max_pending_connections)")]
    ServerWide,
    /// This client IP already holds `server.max_pending_per_ip` pending connections.
    #[error("too many pending connections from one IP (server.max_pending_per_ip)")]
    PerIp,
}

/// The cap on connections not yet upgraded to WebSocket (0 in either field: no cap).
#[derive(Debug)]
pub struct PendingBudget {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    total: usize,
    /// Pending connections per IP; an IP is removed when its count drops to zero, so the map
    /// never holds more entries than there are pending connections.
    per_ip: HashMap<IpAddr, usize>,
}

/// One pending connection's place in the budget, given back on drop.
#[derive(Debug)]
pub struct PendingSlot {
    budget: Arc<PendingBudget>,
    ip: IpAddr,
}

impl PendingBudget {
    /// A budget of `max_total` connections, `max_per_ip` per IP (0: unlimited).
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            state: Mutex::new(Pending::default()),
        }
    }

    /// Takes a slot for a connection from `ip`, or says which cap refuses it.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<PendingSlot, PendingRefusal> {
        let mut st = self.state.lock();
        if self.max_total > 0 && st.total >= self.max_total {
            return Err(PendingRefusal::ServerWide);
        }
        let count = st.per_ip.entry(ip).or_insert(0);
        if self.max_per_ip > 0 && *count >= self.max_per_ip {
            return Err(PendingRefusal::PerIp);
        }
        *count += 1;
        st.total += 1;
        Ok(PendingSlot {
            budget: self.clone(),
            ip,
        })
    }

    /// Connections holding a slot now.
    pub fn pending(&self) -> usize {
        self.state.lock().total
    }
}

impl PendingSlot {
    /// The client's address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        let mut st = self.budget.state.lock();
        st.total -= 1;
        if let Some(count) = st.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                st.per_ip.remove(&self.ip);
                // Give back the memory of a spike of distinct IPs once it is over.
                if st.per_ip.capacity() > 1024 && st.per_ip.len() < st.per_ip.capacity() / 8 {
                    st.per_ip.shrink_to_fit();
                }
            }
        }
    }
}

/// The level a [`QuietLog`] writes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `tracing::info!`.
    Info,
    /// `tracing::warn!`.
    Warn,
}

/// A log line that is written at most once per interval, with the number of occurrences since
/// the last line. The first occurrence is written at once; later ones are counted and reported
/// with the next occurrence after the interval has passed.
#[derive(Debug)]
pub struct QuietLog {
    what: &'static str,
    level: Level,
    interval: Duration,
    state: Mutex<Quiet>,
}

#[derive(Debug)]
struct Quiet {
    last: Option<Instant>,
    suppressed: u64,
}

impl QuietLog {
    /// A log of `what` (a plural noun phrase, e.g. "refused API requests").
    pub fn new(what: &'static str, level: Level, interval: Duration) -> Self {
        Self {
            what,
            level,
            interval,
            state: Mutex::new(Quiet {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Records one occurrence; writes a line if the interval has passed since the last one.
    /// Returns whether a line was written.
    pub fn note(&self, detail: &dyn Display) -> bool {
        let now = Instant::now();
        let mut st = self.state.lock();
        if st
            .last
            .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            st.suppressed += 1;
            return false;
        }
        let count = st.suppressed + 1;
        st.last = Some(now);
        st.suppressed = 0;
        drop(st);
        write_line(self.what, self.level, count, self.interval, detail);
        true
    }
}

#[inline(never)]
fn write_line(what: &str, level: Level, count: u64, interval: Duration, detail: &dyn Display) {
    let secs = interval.as_secs_f64();
    match level {
        Level::Info => tracing::info!(
            count,
            "{what}: {count} (at most one line per {secs}s); latest: {detail}"
        ),
        Level::Warn => tracing::warn!(
            count,
            "{what}: {count} (at most one line per {secs}s); latest: {detail}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_caps_total_and_per_ip_and_gives_back() {
        let b = Arc::new(PendingBudget::new(3, 2));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = b.try_acquire(a).unwrap();
        let _s2 = b.try_acquire(a).unwrap();
        assert_eq!(b.try_acquire(a).unwrap_err(), PendingRefusal::PerIp);
        let _s3 = b.try_acquire(c).unwrap();
        assert_eq!(b.try_acquire(c).unwrap_err(), PendingRefusal::ServerWide);
        drop(s1);
        assert_eq!(b.pending(), 2);
        let _s4 = b.try_acquire(a).unwrap();
        let unlimited = Arc::new(PendingBudget::new(0, 0));
        let slots: Vec<_> = (0..100)
            .map(|_| unlimited.try_acquire(a).unwrap())
            .collect();
        assert_eq!(unlimited.pending(), 100);
        drop(slots);
        assert_eq!(unlimited.pending(), 0);
        assert!(unlimited.state.lock().per_ip.is_empty());
    }

    #[test]
    fn quiet_log_writes_once_per_interval() {
        let log = QuietLog::new("test failures", Level::Info, Duration::from_secs(3600));
        assert!(log.note(&"first"));
        for _ in 0..1000 {
            assert!(!log.note(&"again"));
        }
        assert_eq!(log.state.lock().suppressed, 1000);
        let log = QuietLog::new("test failures", Level::Warn, Duration::ZERO);
        assert!(log.note(&"a"));
        assert!(log.note(&"b"));
    }
}
