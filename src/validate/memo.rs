//! The walk's memo of clean results: a report repeats the same small values again and again (the
//! population code `{"coding":[{"system":".../measure-population","code":"numerator"}]}` in every
//! stratum, the same 17 ethnic-category codings in every group), and a value of a context-free type
//! ([`super::compile::TypeRule::context_free`]) at one element rule validates the same wherever it
//! appears. So the first clean validation of a value is remembered and an identical value later in
//! the same document is not walked again.
//!
//! Owns: the table. Fingerprints and exact comparison come from [`super::tree`]. The table lives
//! for one validation run (one document), so it never outlives the values it points to.
//!
//! Safe by construction: a hit needs the same element rule and type and a value *equal* to the
//! remembered one (compared in full, not trusted to the hash), and only results without any issue
//! are remembered, so a value with a problem is always walked and reported at its own path. Values
//! with extensions or `_name` companions are never memoised: whether an extension is allowed depends
//! on where it is.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::tree::{N, mix};

/// (element rule address, type index, fingerprint).
pub(crate) type Key = (usize, u16, u64);

/// The remembered clean values of one run.
#[derive(Default)]
pub(crate) struct Memo<'j> {
    seen: FastMap<Key, N<'j>>,
}

impl<'j> Memo<'j> {
    /// Whether an equal value was validated clean under the same key.
    pub fn hit(&self, key: Key, v: &N<'_>) -> bool {
        self.seen.get(&key).is_some_and(|prev| prev.same(v))
    }

    /// Remember a value that validated without any issue (the first one under a key stays).
    pub fn insert(&mut self, key: Key, v: N<'j>) {
        self.seen.entry(key).or_insert(v);
    }
}

/// The validator's per-run tables (memo, slice assignments, native summaries) are keyed by node
/// ids and by content hashes that are already well mixed: one multiply per key is enough.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// Hashes keys of [`FastMap`]s: node ids and fingerprints, one [`mix`] per word.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = mix(self.0, u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = mix(self.0, n);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::Tree;
    use super::*;

    #[test]
    fn a_hit_needs_an_equal_value_not_just_the_key() {
        let t = Tree::parse(br#"[{"code":"a"},{"code":"b"},{"code":"a"}]"#).unwrap();
        let x: Vec<_> = t.root().items().collect();
        let mut m = Memo::default();
        let key = (1, 0, x[0].fingerprint().unwrap());
        m.insert(key, x[0]);
        assert!(m.hit(key, &x[2]));
        // The same key forced onto a different value (a collision): no hit.
        assert!(!m.hit(key, &x[1]));
        // Another rule: no hit.
        assert!(!m.hit((2, 0, key.2), &x[2]));
    }
}
