//! The walk's memo of clean results: a report repeats the same small values again and again (the
//! population code `{"coding":[{"system":".../measure-population","code":"numerator"}]}` in every
//! stratum, the same 17 ethnic-category codings in every group), and a value of a context-free type
//! ([`super::compile::TypeRule::context_free`]) at one element rule validates the same wherever it
//! appears. So the first clean validation of a value is remembered and an identical value later in
//! the same document is not walked again.
//!
//! Owns: the fingerprint of a small value, exact equality of two values, and the table. The table
//! lives for one validation run (one document), so it never outlives the values it points to.
//!
//! Safe by construction: a hit needs the same element rule and type and a value *equal* to the
//! remembered one (compared in full, not trusted to the hash), and only results without any issue
//! are remembered, so a value with a problem is always walked and reported at its own path. Values
//! with extensions or `_name` companions are never memoised: whether an extension is allowed depends
//! on where it is.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

/// Values larger than this many JSON nodes are not memoised: hashing them costs more than the
/// walk a hit would save, and large values do not repeat.
const MAX_NODES: u32 = 48;

/// (element rule address, type index, fingerprint).
pub(crate) type Key = (usize, u16, u64);

/// The remembered clean values of one run.
#[derive(Default)]
pub(crate) struct Memo<'j> {
    seen: HashMap<Key, &'j Value, BuildHasherDefault<KeyHasher>>,
}

impl<'j> Memo<'j> {
    /// Whether an equal value was validated clean under the same key.
    pub fn hit(&self, key: Key, v: &Value) -> bool {
        self.seen.get(&key).is_some_and(|prev| equal(prev, v))
    }

    /// Remember a value that validated without any issue (the first one under a key stays).
    pub fn insert(&mut self, key: Key, v: &'j Value) {
        self.seen.entry(key).or_insert(v);
    }
}

/// The fingerprint of `v`, or `None` when it must not be memoised (too large, or it holds an
/// extension or a `_name` companion).
pub(crate) fn fingerprint(v: &Value) -> Option<u64> {
    let mut h = Fx(0);
    let mut budget = MAX_NODES;
    feed(v, &mut h, &mut budget).then_some(h.0)
}

fn feed(v: &Value, h: &mut Fx, budget: &mut u32) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    if let Some(s) = v.as_str() {
        h.word(1);
        h.bytes(s.as_bytes());
    } else if let Some(o) = v.as_object() {
        h.word(2);
        for (k, x) in o.iter() {
            if k.starts_with('_') || k == "extension" || k == "modifierExtension" {
                return false;
            }
            h.bytes(k.as_bytes());
            if !feed(x, h, budget) {
                return false;
            }
        }
        h.word(3);
    } else if let Some(a) = v.as_array() {
        h.word(4);
        for x in a.iter() {
            if !feed(x, h, budget) {
                return false;
            }
        }
        h.word(5);
    } else if let Some(n) = v.as_raw_number() {
        h.word(6);
        h.bytes(n.as_str().as_bytes());
    } else if let Some(b) = v.as_bool() {
        h.word(7 + u64::from(b));
    } else if v.is_null() {
        h.word(9);
    } else {
        // A number parsed without raw text: not expected from the validator's parse.
        return false;
    }
    true
}

/// Exact equality: same kinds, same keys in the same order, same text of strings and numbers.
fn equal(a: &Value, b: &Value) -> bool {
    if let Some(x) = a.as_str() {
        return b.as_str() == Some(x);
    }
    if let Some(x) = a.as_object() {
        let Some(y) = b.as_object() else { return false };
        return x.len() == y.len()
            && x
                .iter()
                .zip(y.iter())
                .all(|((ka, va), (kb, vb))| ka == kb && equal(va, vb));
    }
    if let Some(x) = a.as_array() {
        let Some(y) = b.as_array() else { return false };
        return x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equal(p, q));
    }
    if let Some(x) = a.as_raw_number() {
        return b.as_raw_number().is_some_and(|y| y.as_str() == x.as_str());
    }
    if let Some(x) = a.as_bool() {
        return b.as_bool() == Some(x);
    }
    a.is_null() && b.is_null()
}

/// A small multiplicative hash (the rustc FxHash step). Collisions cost a failed comparison,
/// never a wrong answer: a hit is confirmed by [`equal`].
#[derive(Default)]
struct Fx(u64);

impl Fx {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    #[inline]
    fn word(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(Self::K);
    }

    #[inline]
    fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(last) ^ ((b.len() as u64) << 56));
    }
}

/// Hashes a [`Key`] cheaply: its fingerprint is already a hash.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(Fx::K);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(Fx::K);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(j: &str) -> Value {
        sonic_rs::Deserializer::from_str(j)
            .use_rawnumber()
            .deserialize()
            .unwrap()
    }

    #[test]
    fn equal_values_share_a_fingerprint_and_compare_equal() {
        let a = parse(r#"{"coding":[{"system":"s","code":"c"}],"n":1.50}"#);
        let b = parse(r#"{"coding":[{"system":"s","code":"c"}],"n":1.50}"#);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert!(equal(&a, &b));
    }

    #[test]
    fn any_difference_is_seen() {
        let a = parse(r#"{"coding":[{"system":"s","code":"c"}],"n":1.5}"#);
        for other in [
            r#"{"coding":[{"system":"s","code":"d"}],"n":1.5}"#,
            r#"{"coding":[{"system":"s","code":"c"}],"n":1.50}"#,
            r#"{"coding":[{"code":"c","system":"s"}],"n":1.5}"#,
            r#"{"coding":[{"system":"s","code":"c"},{"system":"s","code":"c"}],"n":1.5}"#,
            r#"{"coding":{"system":"s","code":"c"},"n":1.5}"#,
            r#"{"coding":[{"system":"s","code":"c"}],"n":"1.5"}"#,
            r#"{"coding":[{"system":"s","code":"c"}]}"#,
        ] {
            let b = parse(other);
            assert!(!equal(&a, &b), "{other}");
            assert_ne!(fingerprint(&a), fingerprint(&b), "{other}");
        }
    }

    #[test]
    fn extensions_companions_and_large_values_are_not_memoised() {
        assert!(fingerprint(&parse(r#"{"extension":[{"url":"u","valueString":"x"}]}"#)).is_none());
        assert!(
            fingerprint(&parse(r#"{"coding":[{"code":"c","_code":{"id":"x"}}]}"#)).is_none()
        );
        let big = format!(
            "{{\"coding\":[{}]}}",
            vec![r#"{"system":"s","code":"c"}"#; 40].join(",")
        );
        assert!(fingerprint(&parse(&big)).is_none());
    }

    #[test]
    fn a_hit_needs_an_equal_value_not_just_the_key() {
        let a = parse(r#"{"code":"a"}"#);
        let b = parse(r#"{"code":"b"}"#);
        let mut m = Memo::default();
        let key = (1, 0, fingerprint(&a).unwrap());
        m.insert(key, &a);
        assert!(m.hit(key, &a));
        // Same key forced onto a different value (a collision): no hit.
        assert!(!m.hit(key, &b));
    }
}
