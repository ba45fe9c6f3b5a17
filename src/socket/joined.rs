//! [`Joined`]: the channels one connection is subscribed to, as a sorted vector. Most
//! connections hold one to a few channels, where a `HashMap`'s smallest table (four buckets plus
//! control bytes, ~150 bytes) and its hasher state cost more than the entries themselves; a
//! vector grown one entry at a time while small costs 32 bytes per channel, and binary search
//! keeps lookups logarithmic up to `max_channels_per_connection`.

use std::sync::Arc;

/// Channel name → the presence identity used there (presence channels only).
#[derive(Default)]
pub(crate) struct Joined(Vec<(Box<str>, Option<Arc<str>>)>);

/// Below this many entries the vector grows by one at a time (exact fit); above, by half.
const EXACT_UP_TO: usize = 8;

impl Joined {
    /// How many channels.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    fn find(&self, channel: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(c, _)| (**c).cmp(channel))
    }

    /// Whether `channel` is joined.
    pub(crate) fn contains(&self, channel: &str) -> bool {
        self.find(channel).is_ok()
    }

    /// The entry for `channel`, if joined.
    pub(crate) fn get(&self, channel: &str) -> Option<&Option<Arc<str>>> {
        self.find(channel).ok().map(|i| &self.0[i].1)
    }

    /// Joins `channel` (or replaces its identity if already joined).
    pub(crate) fn insert(&mut self, channel: Box<str>, member: Option<Arc<str>>) {
        match self.find(&channel) {
            Ok(i) => self.0[i].1 = member,
            Err(i) => {
                let len = self.0.len();
                if len == self.0.capacity() {
                    self.0
                        .reserve_exact(if len < EXACT_UP_TO { 1 } else { len / 2 });
                }
                self.0.insert(i, (channel, member));
            }
        }
    }

    /// Leaves `channel`; returns whether it was joined. Gives memory back after a spike.
    pub(crate) fn remove(&mut self, channel: &str) -> bool {
        let Ok(i) = self.find(channel) else {
            return false;
        };
        self.0.remove(i);
        if self.0.capacity() > 64 && self.0.len() < self.0.capacity() / 4 {
            self.0.shrink_to_fit();
        }
        true
    }

    /// Every channel, leaving the list empty.
    pub(crate) fn take(&mut self) -> Vec<(Box<str>, Option<Arc<str>>)> {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_remove_keep_order_and_fit() {
        let mut j = Joined::default();
        for c in ["b", "a", "c", "a"] {
            j.insert(c.into(), None);
        }
        assert_eq!(j.len(), 3);
        assert_eq!(j.0.capacity(), 3, "grown one entry at a time");
        j.insert("b".into(), Some("u1".into()));
        assert_eq!(j.get("b"), Some(&Some(Arc::from("u1"))));
        assert!(j.contains("a") && !j.contains("d"));
        assert!(j.remove("a"));
        assert!(!j.remove("a"));
        let names: Vec<_> = j.take().into_iter().map(|(c, _)| c).collect();
        assert_eq!(names, [Box::from("b"), Box::from("c")]);
        assert_eq!(j.len(), 0);
    }
}
