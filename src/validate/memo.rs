//! The walk's memo of clean results: a report repeats the same small values again and again (the
//! population code `{"coding":[{"system":".../measure-population","code":"numerator"}]}` in every
//! stratum, the same 17 ethnic-category codings in every group), and a value of a context-free type
//! ([`super::compile::TypeRule::context_free`]) at one element rule validates the same wherever it
//! appears. So the first clean validation of a value is remembered and an identical value later in
//! the same document is not walked again. A type that is context-free but for optional elements
//! that are not (a stratum population's `subjectResults` Reference) is remembered only for values
//! without them ([`super::compile::TypeRule::memo_absent`]): a report repeats the same small
//! populations (`numerator`, count 3) across its strata.
//!
//! Owns: the table of clean results, and the run's text identities ([`Memo::canon`]): which earlier
//! node has the same JSON text as a given node. The walk's slice assignments are keyed by the same
//! identities. The hash mix and exact comparison come from [`super::tree`]. The tables live for one
//! validation run (one document), so they never outlive the values they point to.
//!
//! Safe by construction: a hit needs the same element rule and type and a value whose text is
//! *equal* to the remembered one (each node's text is compared in full once, when its identity is
//! first asked for; the hash only finds the candidate), and only results without any issue are
//! remembered, so a value with a problem is always walked and reported at its own path. Values with
//! extensions or `_name` companions are never memoised: whether an extension is allowed depends on
//! where it is.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use smallvec::SmallVec;

use super::tree::{N, mix};

/// (element rule address, type index, text identity).
pub(crate) type Key = (usize, u16, u32);

/// The text identities and remembered clean values of one run.
#[derive(Default)]
pub(crate) struct Memo<'j> {
    /// Per node id: 1 + the id of the first node seen with the same text (0: not asked yet).
    canon: Vec<u32>,
    /// Sampled text hash ([`sample_hash`]) -> the first nodes seen with each text of that hash.
    by_hash: FastMap<u64, SmallVec<[N<'j>; 2]>>,
    /// Keys whose value validated without any issue.
    clean: HashSet<Key, BuildHasherDefault<KeyHasher>>,
}

impl<'j> Memo<'j> {
    /// A memo for a document of `n` JSON values (node ids below `n`).
    pub fn for_nodes(n: usize) -> Self {
        // A report has a few hundred distinct repeated texts per 7,600 values: sized so that
        // the tables are not rehashed seven or eight times while they fill.
        let distinct = (n / 16).min(4096);
        Memo {
            canon: vec![0; n],
            by_hash: FastMap::with_capacity_and_hasher(distinct, Default::default()),
            clean: HashSet::with_capacity_and_hasher(distinct, Default::default()),
        }
    }

    /// The text identity of `v`: the id of the first node asked about whose JSON text equals
    /// `v`'s. Equal identities mean equal text. Each node's text is hashed and compared at most
    /// once per run, however many tables ask about it (the memo, the slice assignments).
    pub fn canon(&mut self, v: N<'j>) -> u32 {
        let id = v.id() as usize;
        if id >= self.canon.len() {
            // Grows to the highest node asked about; most documents ask about nodes in order.
            self.canon
                .resize((id + 1).max(self.canon.len() * 2).max(64), 0);
        }
        match self.canon[id] {
            0 => {}
            c => return c - 1,
        }
        let reps = self
            .by_hash
            .entry(sample_hash(v.source().as_bytes()))
            .or_default();
        let c = match reps.iter().find(|r| r.same(&v)) {
            Some(r) => r.id(),
            None => {
                // A long chain means texts made to collide: past the cap a text keeps its own
                // identity (walked again, never wrong), so the comparisons per node stay bounded.
                if reps.len() < MAX_CHAIN {
                    reps.push(v);
                }
                v.id()
            }
        };
        self.canon[id] = c + 1;
        c
    }

    /// The identities given so far.
    pub fn ids(&self) -> Ids<'_> {
        Ids(&self.canon)
    }

    /// Whether a value equal to `v` validated clean under the same rule and type; if not, the key
    /// to remember it under when it does.
    pub fn hit(&mut self, rule: usize, ty: u16, v: N<'j>) -> Result<(), Key> {
        let key = (rule, ty, self.canon(v));
        match self.clean.contains(&key) {
            true => Ok(()),
            false => Err(key),
        }
    }

    /// Remember a value that validated without any issue, unless it holds an extension or a
    /// `_name` companion ([`N::extension_free`]).
    pub fn insert(&mut self, key: Key, v: N<'j>) {
        if v.extension_free() {
            self.clean.insert(key);
        }
    }
}

/// The identities [`Memo::canon`] has given so far, read-only: the native checks key their
/// tables on them (a stratum's `value`, a population's `code`), since the walk has given those
/// nodes an identity before the checks on the stratum run. Equal identities mean equal text.
#[derive(Clone, Copy, Default)]
pub(crate) struct Ids<'m>(&'m [u32]);

impl Ids<'_> {
    /// `n`'s identity, if it has been given one.
    #[inline]
    pub fn of(self, n: N<'_>) -> Option<u32> {
        match self.0.get(n.id() as usize) {
            Some(&c) if c != 0 => Some(c - 1),
            _ => None,
        }
    }
}

/// Different texts under one [`sample_hash`] that [`Memo::canon`] tells apart.
const MAX_CHAIN: usize = 8;

/// A hash of the length and at most five 8-byte windows of a text (all of it when it is short;
/// else its start, its end and three inside). Identities are settled by comparing the text in
/// full, so the hash only has to spread the texts a document repeats (codings that differ in a
/// code or a display), and reading five words costs far less than hashing every byte of a value.
fn sample_hash(b: &[u8]) -> u64 {
    let n = b.len();
    let mut h = mix(0x2545_f491_4f6c_dd1d, n as u64);
    if n < 8 {
        return mix(h, b.iter().fold(0, |w, &x| w << 8 | u64::from(x)));
    }
    let word = |at: usize| {
        let at = at.min(n - 8);
        u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
    };
    let at = if n <= 40 {
        [0, 8, 16, 24, 32]
    } else {
        [0, n / 4, n / 2, 3 * n / 4, n - 8]
    };
    for a in at {
        h = mix(h, word(a));
    }
    h
}

/// The validator's per-run tables (memo, slice assignments, native summaries) are keyed by node
/// ids and by content hashes that are already well mixed: one multiply per key is enough.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// Hashes keys of [`FastMap`]s: node ids and content hashes, one [`mix`] per word.
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
    fn a_hit_needs_an_equal_value_under_the_same_rule() {
        let t = Tree::parse(br#"[{"code":"a"},{"code":"b"},{"code":"a"}]"#).unwrap();
        let x: Vec<_> = t.root().items().collect();
        let mut m = Memo::default();
        let key = m.hit(1, 0, x[0]).unwrap_err();
        m.insert(key, x[0]);
        assert_eq!(m.hit(1, 0, x[2]), Ok(()));
        // A different value: no hit.
        assert!(m.hit(1, 0, x[1]).is_err());
        // Another rule or type: no hit.
        assert!(m.hit(2, 0, x[2]).is_err());
        assert!(m.hit(1, 1, x[2]).is_err());
    }

    #[test]
    fn identities_follow_the_text_and_survive_hash_collisions() {
        let t = Tree::parse(br#"[{"code":"a"},{"code":"b"},{"code":"a"},{"code" : "a"}]"#).unwrap();
        let x: Vec<_> = t.root().items().collect();
        let mut m = Memo::default();
        assert_eq!(m.canon(x[0]), x[0].id());
        assert_eq!(m.canon(x[1]), x[1].id());
        assert_eq!(m.canon(x[2]), x[0].id());
        // Other whitespace is other text: its own identity (walked again, never wrong).
        assert_eq!(m.canon(x[3]), x[3].id());
        // A collision forced onto the table: `b` found under `a`'s hash keeps its own identity.
        let mut m = Memo::default();
        let h = sample_hash(x[1].source().as_bytes());
        m.by_hash.insert(h, [x[0]].into_iter().collect());
        assert_eq!(m.canon(x[1]), x[1].id());
        assert_eq!(m.canon(x[1]), x[1].id());
    }

    #[test]
    fn texts_made_to_collide_are_told_apart_and_the_chain_stays_bounded() {
        // 48-byte strings that differ only where the sampled hash does not read (byte 9): one
        // hash for all. Each appears twice.
        let texts: Vec<String> = (0..12)
            .map(|i| {
                format!(
                    "\"{}{}{}\"",
                    "a".repeat(8),
                    char::from(b'A' + i),
                    "a".repeat(37)
                )
            })
            .collect();
        let doc = format!("[{}]", [texts.clone(), texts.clone()].concat().join(","));
        let t = Tree::parse(doc.as_bytes()).unwrap();
        let x: Vec<_> = t.root().items().collect();
        let hashes: HashSet<u64> = x
            .iter()
            .map(|n| sample_hash(n.source().as_bytes()))
            .collect();
        assert_eq!(hashes.len(), 1, "the texts were meant to collide");
        let mut m = Memo::default();
        let ids: Vec<u32> = x.iter().map(|&n| m.canon(n)).collect();
        for (i, a) in x.iter().enumerate() {
            for (j, b) in x.iter().enumerate() {
                if ids[i] == ids[j] {
                    assert_eq!(a.source(), b.source(), "equal identity, different text");
                }
            }
        }
        // The first MAX_CHAIN texts are recognised again; the rest keep their own identities.
        for i in 0..12 {
            let (first, copy) = (ids[i], ids[i + 12]);
            assert_eq!(first == copy, i < MAX_CHAIN, "text {i}");
        }
    }

    #[test]
    fn values_with_extensions_are_never_remembered() {
        let t = Tree::parse(br#"[{"extension":[{"url":"u","valueString":"x"}]},{"extension":[{"url":"u","valueString":"x"}]},{"_code":{"id":"i"}},{"_code":{"id":"i"}}]"#).unwrap();
        let x: Vec<_> = t.root().items().collect();
        let mut m = Memo::default();
        for pair in [[x[0], x[1]], [x[2], x[3]]] {
            let key = m.hit(1, 0, pair[0]).unwrap_err();
            m.insert(key, pair[0]);
            assert!(m.hit(1, 0, pair[1]).is_err());
        }
    }
}
