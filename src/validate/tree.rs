//! The walk's view of a parsed document: every JSON value of the `sonic_rs` tree laid out once, in
//! document order, in one flat vector, with its key, its text and a fingerprint of its subtree.
//!
//! Why: the walk, the slicing and pattern checks, the native invariants and the memo each read the
//! same nodes several times, and `sonic_rs::Value`'s accessors decode a tagged union on every call
//! (they are not inlined across crates). Reading a flat node is a few loads. The first child of
//! node `i` is `i + 1`; the next sibling of a node is its `end`. Every node keeps its
//! `sonic_rs::Value`, so FHIRPath (which evaluates on `sonic_rs::Value`) sees the same document.
//!
//! Owns: building the tree from a parsed value, reading it ([`N`]) and exact comparison of two
//! subtrees (for the memo). Lives for one validation run.

use sonic_rs::{JsonContainerTrait, JsonType, JsonValueTrait, Value};

/// JSON kind of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    True,
    False,
    /// A number; its text is what the sender wrote (the parse keeps raw numbers).
    Number,
    String,
    Array,
    Object,
}

struct Node<'j> {
    value: &'j Value,
    /// The member name in the parent object ("" for array items and the root).
    key: &'j str,
    /// String content ("" for other kinds; a number's text is in [`Tree::numbers`]).
    text: &'j str,
    kind: Kind,
    /// Members or items; for a number with its text, its index in [`Tree::numbers`].
    len: u32,
    /// One past the last node of this subtree: the next sibling.
    end: u32,
    /// Fingerprint of the subtree (kinds, keys, texts); 0 when the subtree holds an extension or a
    /// `_name` companion, which the memo must never reuse (see [`super::memo`]).
    hash: u64,
}

/// A parsed document laid out for the walk.
pub(crate) struct Tree<'j> {
    nodes: Vec<Node<'j>>,
    /// Numbers as written (`sonic_rs` hands them out as owned values, not borrowed text).
    numbers: Vec<sonic_rs::RawNumber>,
}

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[inline]
fn mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(K)
}

fn hash_bytes(mut h: u64, b: &[u8]) -> u64 {
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        h = mix(h, u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    // The tail byte by byte: a copy into a buffer would be a `memcpy` call per string.
    let mut last = 0u64;
    for (k, &x) in chunks.remainder().iter().enumerate() {
        last |= u64::from(x) << (8 * k);
    }
    mix(h, last ^ ((b.len() as u64) << 56))
}

impl<'j> Tree<'j> {
    /// Lay out `root`. `size_hint` is the document's length in bytes (to size the vector once).
    pub fn build(root: &'j Value, size_hint: usize) -> Self {
        let mut t = Tree {
            nodes: Vec::with_capacity(size_hint / 10 + 16),
            numbers: Vec::new(),
        };
        t.add(root, "");
        t
    }

    fn add(&mut self, v: &'j Value, key: &'j str) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            value: v,
            key,
            text: "",
            kind: Kind::Null,
            len: 0,
            end: 0,
            hash: 0,
        });
        let (kind, text, len, hash);
        // One type read, then one accessor: each `sonic_rs` accessor decodes the node again.
        match v.get_type() {
            JsonType::String => {
                let s = v.as_str().unwrap_or_default();
                (kind, text, len) = (Kind::String, s, 0);
                hash = hash_bytes(1, s.as_bytes());
            }
            JsonType::Object => {
                let o = v.as_object().expect("an object");
                (kind, text, len) = (Kind::Object, "", o.len() as u32);
                let mut h = 2u64;
                let mut clean = true;
                for (k, x) in o.iter() {
                    let c = self.add(x, k);
                    let ch = self.nodes[c].hash;
                    clean &= ch != 0
                        && !k.starts_with('_')
                        && k != "extension"
                        && k != "modifierExtension";
                    h = mix(hash_bytes(h, k.as_bytes()), ch);
                }
                hash = if clean { mix(h, 3) | 1 } else { 0 };
            }
            JsonType::Array => {
                let a = v.as_array().expect("an array");
                (kind, text, len) = (Kind::Array, "", a.len() as u32);
                let mut h = 4u64;
                let mut clean = true;
                for x in a.iter() {
                    let c = self.add(x, "");
                    let ch = self.nodes[c].hash;
                    clean &= ch != 0;
                    h = mix(h, ch);
                }
                hash = if clean { mix(h, 5) | 1 } else { 0 };
            }
            JsonType::Number => match v.as_raw_number() {
                Some(n) => {
                    (kind, text, len) = (Kind::Number, "", self.numbers.len() as u32);
                    hash = hash_bytes(6, n.as_str().as_bytes()) | 1;
                    self.numbers.push(n);
                }
                None => {
                    // Parsed without raw numbers (a caller's own value): its text is re-printed
                    // when read.
                    (kind, text, len) = (Kind::Number, "", u32::MAX);
                    hash = 0;
                }
            },
            JsonType::Boolean => {
                let b = v.as_bool().unwrap_or_default();
                (kind, text, len) = (if b { Kind::True } else { Kind::False }, "", 0);
                hash = mix(7, u64::from(b)) | 1;
            }
            JsonType::Null => {
                (kind, text, len) = (Kind::Null, "", 0);
                hash = mix(9, 0) | 1;
            }
        }
        let end = self.nodes.len() as u32;
        let n = &mut self.nodes[i];
        n.kind = kind;
        n.text = text;
        n.len = len;
        n.end = end;
        n.hash = hash;
        i
    }

    /// The root value.
    pub fn root(&self) -> N<'_> {
        N { tree: self, i: 0 }
    }
}

/// One node of a [`Tree`]: a cheap copyable handle.
#[derive(Clone, Copy)]
pub(crate) struct N<'t> {
    tree: &'t Tree<'t>,
    i: u32,
}

impl<'t> N<'t> {
    #[inline]
    fn node(self) -> &'t Node<'t> {
        &self.tree.nodes[self.i as usize]
    }

    #[inline]
    pub fn kind(self) -> Kind {
        self.node().kind
    }

    /// The same value as parsed, for FHIRPath and the rules that read `sonic_rs` values.
    #[inline]
    pub fn value(self) -> &'t Value {
        self.node().value
    }

    #[inline]
    pub fn is_object(self) -> bool {
        self.kind() == Kind::Object
    }
    #[inline]
    pub fn is_array(self) -> bool {
        self.kind() == Kind::Array
    }
    #[inline]
    pub fn is_null(self) -> bool {
        self.kind() == Kind::Null
    }
    #[inline]
    pub fn is_number(self) -> bool {
        self.kind() == Kind::Number
    }
    #[inline]
    pub fn is_boolean(self) -> bool {
        matches!(self.kind(), Kind::True | Kind::False)
    }
    #[inline]
    pub fn as_bool(self) -> Option<bool> {
        match self.kind() {
            Kind::True => Some(true),
            Kind::False => Some(false),
            _ => None,
        }
    }
    #[inline]
    pub fn as_str(self) -> Option<&'t str> {
        let n = self.node();
        (n.kind == Kind::String).then_some(n.text)
    }

    /// A number's text as written (`None` for other kinds, or a number parsed without its text).
    #[inline]
    pub fn raw_number(self) -> Option<&'t str> {
        let n = self.node();
        if n.kind != Kind::Number {
            return None;
        }
        self.tree.numbers.get(n.len as usize).map(|r| r.as_str())
    }

    /// Members of an object or items of an array.
    #[inline]
    pub fn len(self) -> usize {
        let n = self.node();
        match n.kind {
            Kind::Object | Kind::Array => n.len as usize,
            _ => 0,
        }
    }

    /// The subtree fingerprint, `None` when it holds an extension or a `_name` companion.
    #[inline]
    pub fn fingerprint(self) -> Option<u64> {
        let h = self.node().hash;
        (h != 0).then_some(h)
    }

    /// Children in order (object members or array items), with their keys.
    #[inline]
    pub fn members(self) -> Members<'t> {
        let n = self.node();
        let left = match n.kind {
            Kind::Object | Kind::Array => n.len,
            _ => 0,
        };
        Members {
            tree: self.tree,
            next: self.i + 1,
            left,
        }
    }

    /// Items of an array (empty for anything else).
    #[inline]
    pub fn items(self) -> impl Iterator<Item = N<'t>> + 't {
        let it = if self.is_array() {
            self.members()
        } else {
            Members {
                tree: self.tree,
                next: 0,
                left: 0,
            }
        };
        it.map(|(_, v)| v)
    }

    /// The member `key` of an object (the first, if repeated).
    #[inline]
    pub fn get(self, key: &str) -> Option<N<'t>> {
        if !self.is_object() {
            return None;
        }
        self.members().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Exactly the same JSON: kinds, keys in the same order, texts.
    pub fn same(self, other: &N<'_>) -> bool {
        let a = &self.tree.nodes[self.i as usize..self.node().end as usize];
        let b = &other.tree.nodes[other.i as usize..other.node().end as usize];
        fn number<'a>(t: &'a Tree<'_>, n: &Node<'_>) -> Option<&'a str> {
            t.numbers.get(n.len as usize).map(|r| r.as_str())
        }
        a.len() == b.len()
            && a.iter().zip(b).enumerate().all(|(j, (x, y))| {
                x.kind == y.kind
                    && x.text == y.text
                    // The subtree's own key is where it sits, not part of its content.
                    && (j == 0 || x.key == y.key)
                    && match x.kind {
                        Kind::Number => number(self.tree, x) == number(other.tree, y),
                        _ => x.len == y.len,
                    }
            })
    }
}

/// Iterator over an object's members or an array's items.
pub(crate) struct Members<'t> {
    tree: &'t Tree<'t>,
    next: u32,
    left: u32,
}

impl<'t> Iterator for Members<'t> {
    type Item = (&'t str, N<'t>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let i = self.next;
        let n = &self.tree.nodes[i as usize];
        self.next = n.end;
        Some((n.key, N { tree: self.tree, i }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Members<'_> {}

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
    fn lays_out_members_in_document_order() {
        let v = parse(r#"{"a":[1,{"b":"x"},null],"c":true,"d":1.50}"#);
        let t = Tree::build(&v, 0);
        let r = t.root();
        let keys: Vec<_> = r.members().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "c", "d"]);
        let a = r.get("a").unwrap();
        assert!(a.is_array());
        assert_eq!(a.len(), 3);
        let items: Vec<_> = a.items().map(|x| x.kind()).collect();
        assert_eq!(items, [Kind::Number, Kind::Object, Kind::Null]);
        assert_eq!(a.items().nth(1).unwrap().get("b").unwrap().as_str(), Some("x"));
        assert_eq!(r.get("c").unwrap().as_bool(), Some(true));
        assert_eq!(r.get("d").unwrap().raw_number(), Some("1.50"));
        assert!(r.get("zz").is_none());
        assert!(a.get("a").is_none());
    }

    #[test]
    fn equal_subtrees_compare_same_and_share_a_fingerprint() {
        let v = parse(
            r#"[{"coding":[{"system":"s","code":"c"}]},{"coding":[{"system":"s","code":"c"}]},
                {"coding":[{"system":"s","code":"d"}]},{"coding":[{"code":"c","system":"s"}]},
                {"coding":[{"system":"s","code":"c"}],"text":"t"}]"#,
        );
        let t = Tree::build(&v, 0);
        let x: Vec<_> = t.root().items().collect();
        assert!(x[0].same(&x[1]));
        assert_eq!(x[0].fingerprint(), x[1].fingerprint());
        for other in &x[2..] {
            assert!(!x[0].same(other));
            assert_ne!(x[0].fingerprint(), other.fingerprint());
        }
    }

    #[test]
    fn extensions_and_companions_have_no_fingerprint() {
        let v = parse(
            r#"[{"extension":[{"url":"u","valueString":"x"}]},{"code":"c","_code":{"id":"x"}},
                {"coding":[{"modifierExtension":[]}]},{"code":"c"}]"#,
        );
        let t = Tree::build(&v, 0);
        let x: Vec<_> = t.root().items().collect();
        assert!(x[0].fingerprint().is_none());
        assert!(x[1].fingerprint().is_none());
        assert!(x[2].fingerprint().is_none());
        assert!(x[3].fingerprint().is_some());
    }
}
