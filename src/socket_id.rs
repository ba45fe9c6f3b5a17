//! [`SocketId`]: a connection's id, unique for the life of the process.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A connection's id, `"<a>.<b>"` on the wire. `a` is random, `b` a process-wide counter, so ids
/// are unique for the life of the process and unguessable enough to be useless to forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    a: u64,
    b: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl SocketId {
    /// A fresh, never reused id.
    pub fn generate() -> Self {
        Self {
            a: rand::random_range(1..=999_999_999),
            b: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Parses `^\d+\.\d+$` (the form every SDK validates); `None` otherwise.
    pub fn parse(s: &str) -> Option<Self> {
        let (a, b) = s.split_once('.')?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 19 && p.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return None;
        }
        Some(Self {
            a: a.parse().ok()?,
            b: b.parse().ok()?,
        })
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.a, self.b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_ids_are_pusher_shaped_and_unique() {
        let a = SocketId::generate();
        let b = SocketId::generate();
        assert_ne!(a, b);
        let s = a.to_string();
        assert_eq!(SocketId::parse(&s), Some(a));
        for bad in ["", "1", "1.", ".1", "a.1", "1.2.3", "-1.2", "1.2 "] {
            assert_eq!(SocketId::parse(bad), None, "{bad}");
        }
    }
}
