//! The parse tree the validator walks: the received JSON parsed once, straight into one flat
//! vector of nodes in document order, each with its key, its text (strings decoded, numbers exactly
//! as written), the byte span it came from, and a fingerprint of its subtree.
//!
//! Why its own parser: the walk, the slicing and pattern checks, the native invariants and the memo
//! each read the same nodes several times. Reading a flat node is a few loads, where
//! `sonic_rs::Value`'s accessors decode a tagged union on every call (and are not inlined across
//! crates): building a tree from a `sonic_rs::Value` cost twice its parse. The first child of node
//! `i` is `i + 1`; the next sibling of a node is its `end`.
//!
//! The FHIRPath evaluator works on `sonic_rs::Value`; the few invariants it evaluates get their
//! focus parsed from the node's byte span ([`N::to_value`]), so the text it sees is the text
//! received.
//!
//! Owns: JSON syntax (RFC 8259: UTF-8, escapes, number grammar, nesting limit), reading the tree
//! ([`N`]) and exact comparison of two subtrees (for the memo). A tree lives for one validation run.

use std::fmt;

/// JSON kind of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    True,
    False,
    /// A number; its text is what the sender wrote.
    Number,
    String,
    Array,
    Object,
}

/// Where a node's key or text is: a range of the input, or (for strings with escapes) of the
/// tree's arena of decoded strings.
#[derive(Clone, Copy, Default)]
struct Text {
    start: u32,
    /// Length; the top bit says "in the arena".
    len: u32,
}

const ARENA: u32 = 1 << 31;

impl Text {
    fn input(start: usize, len: usize) -> Self {
        Text {
            start: start as u32,
            len: len as u32,
        }
    }
    fn arena(start: usize, len: usize) -> Self {
        Text {
            start: start as u32,
            len: len as u32 | ARENA,
        }
    }
}

struct Node {
    /// The member name in the parent object (empty for array items and the root).
    key: Text,
    /// String content or a number as written (empty for other kinds).
    text: Text,
    kind: Kind,
    /// Members or items.
    len: u32,
    /// One past the last node of this subtree: the next sibling.
    end: u32,
    /// Byte span of the whole value in the input.
    span: (u32, u32),
}

/// A parsed document.
pub(crate) struct Tree<'j> {
    input: &'j str,
    arena: String,
    nodes: Vec<Node>,
}

/// Why the input is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.message, self.line, self.column
        )
    }
}

/// Deeper nesting is refused: a FHIR resource is rarely 30 levels deep, and the walk recurses.
const MAX_DEPTH: u32 = 256;

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

#[inline]
pub(crate) fn mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(K)
}

#[inline]
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

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each of 8 bytes that is `"`, `\` or a control character (which end the fast
/// string scan). A byte above a true hit may also be flagged (borrow); none is ever missed, so the
/// lowest flag is exact.
#[inline]
fn special(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
    zero(w ^ (LO * b'"' as u64))
        | zero(w ^ (LO * b'\\' as u64))
        | (w.wrapping_sub(LO * 0x20) & !w & HI)
}

impl<'j> Tree<'j> {
    /// Parse a JSON document.
    pub fn parse(input: &'j [u8]) -> Result<Tree<'j>, ParseError> {
        let text = std::str::from_utf8(input).map_err(|e| {
            error_at(
                input,
                e.valid_up_to(),
                "the bytes are not valid UTF-8".into(),
            )
        })?;
        let mut p = Parser {
            b: input,
            pos: 0,
            depth: 0,
            tree: Tree {
                input: text,
                arena: String::new(),
                nodes: Vec::with_capacity(input.len() / 16 + 16),
            },
        };
        p.ws();
        p.value(Text::default()).map_err(|e| *e)?;
        p.ws();
        if p.pos != input.len() {
            return Err(*p.err("unexpected characters after the JSON value"));
        }
        Ok(p.tree)
    }

    /// Number of JSON values in the document.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The root value.
    pub fn root(&self) -> N<'_> {
        N { tree: self, i: 0 }
    }

    #[inline(always)]
    fn text(&self, t: Text) -> &str {
        let (s, len) = (t.start as usize, (t.len & !ARENA) as usize);
        if t.len & ARENA != 0 {
            &self.arena[s..s + len]
        } else {
            &self.input[s..s + len]
        }
    }
}

fn error_at(input: &[u8], pos: usize, message: String) -> ParseError {
    let before = &input[..pos.min(input.len())];
    let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
    let column = pos
        - before
            .iter()
            .rposition(|&c| c == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    ParseError {
        message,
        line,
        column,
    }
}

/// Errors are boxed so that the parser's results stay small on the happy path.
type PResult<T> = Result<T, Box<ParseError>>;

struct Parser<'j> {
    b: &'j [u8],
    pos: usize,
    depth: u32,
    tree: Tree<'j>,
}

impl Parser<'_> {
    #[cold]
    fn err(&self, message: &str) -> Box<ParseError> {
        Box::new(error_at(self.b, self.pos, message.to_owned()))
    }

    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Parse the value at `pos`; returns its node index.
    fn value(&mut self, key: Text) -> PResult<usize> {
        let i = self.tree.nodes.len();
        let start = self.pos;
        self.tree.nodes.push(Node {
            key,
            text: Text::default(),
            kind: Kind::Null,
            len: 0,
            end: 0,
            span: (0, 0),
        });
        let (kind, text, len) = match self.peek() {
            Some(b'{') => (Kind::Object, Text::default(), self.object()?),
            Some(b'[') => (Kind::Array, Text::default(), self.array()?),
            Some(b'"') => (Kind::String, self.string()?, 0),
            Some(b'-' | b'0'..=b'9') => (Kind::Number, self.number()?, 0),
            Some(b't') => {
                self.literal(b"true")?;
                (Kind::True, Text::default(), 0)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                (Kind::False, Text::default(), 0)
            }
            Some(b'n') => {
                self.literal(b"null")?;
                (Kind::Null, Text::default(), 0)
            }
            Some(_) => {
                return Err(self.err(
                    "expected a value (an object, array, string, number, true, false or null)",
                ));
            }
            None => return Err(self.err("the JSON ends where a value was expected")),
        };
        let end = self.tree.nodes.len() as u32;
        let n = &mut self.tree.nodes[i];
        n.kind = kind;
        n.text = text;
        n.len = len;
        n.end = end;
        n.span = (start as u32, self.pos as u32);
        Ok(i)
    }

    #[inline]
    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(&format!("the JSON nests deeper than {MAX_DEPTH} levels")));
        }
        self.pos += 1;
        self.ws();
        Ok(())
    }

    fn object(&mut self) -> PResult<u32> {
        self.members(b'}', "expected ',' or '}' after a property value", |p| {
            if p.peek() != Some(b'"') {
                return Err(p.err("expected a property name in double quotes"));
            }
            let k = p.string()?;
            p.ws();
            if p.peek() != Some(b':') {
                return Err(p.err("expected ':' after a property name"));
            }
            p.pos += 1;
            p.ws();
            p.value(k).map(drop)
        })
    }

    fn array(&mut self) -> PResult<u32> {
        self.members(b']', "expected ',' or ']' after an array item", |p| {
            p.value(Text::default()).map(drop)
        })
    }

    /// The items of an object or array at `pos` (its opening bracket), each parsed by `item`, up
    /// to `close`: how many there were.
    #[inline]
    fn members(
        &mut self,
        close: u8,
        after_item: &str,
        mut item: impl FnMut(&mut Self) -> PResult<()>,
    ) -> PResult<u32> {
        self.enter()?;
        let mut n = 0u32;
        if self.peek() != Some(close) {
            loop {
                item(self)?;
                n += 1;
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.ws();
                    }
                    Some(c) if c == close => break,
                    _ => return Err(self.err(after_item)),
                }
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(n)
    }

    fn literal(&mut self, word: &[u8]) -> PResult<()> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.err("expected a value (true, false or null are the only bare words)"))
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as written.
    fn number(&mut self) -> PResult<Text> {
        let start = self.pos;
        let digits = |p: &mut Self| {
            let s = p.pos;
            while let Some(b'0'..=b'9') = p.peek() {
                p.pos += 1;
            }
            p.pos - s
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.err("a number must not have leading zeros"));
                }
            }
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.err("expected a digit in a number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(self.err("expected a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("expected a digit in the exponent"));
            }
        }
        Ok(Text::input(start, self.pos - start))
    }

    /// A string at `pos` (the opening quote). Strings without escapes stay in the input.
    fn string(&mut self) -> PResult<Text> {
        let start = self.pos + 1;
        let mut i = start;
        let b = self.b;
        // Eight bytes at a time to the first quote, backslash or control character.
        while i + 8 <= b.len() {
            let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
            let m = special(w);
            if m != 0 {
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        loop {
            match b.get(i) {
                None => {
                    self.pos = i;
                    return Err(self.err("the JSON ends inside a string"));
                }
                Some(b'"') => {
                    self.pos = i + 1;
                    return Ok(Text::input(start, i - start));
                }
                Some(b'\\') => break,
                Some(&c) if c < 0x20 => {
                    self.pos = i;
                    return Err(self.err("a control character must be escaped in a string"));
                }
                Some(_) => i += 1,
            }
        }
        // Escapes: decode into the arena, starting with the plain part already scanned.
        let a0 = self.tree.arena.len();
        self.tree.arena.push_str(&self.tree.input[start..i]);
        loop {
            match b.get(i) {
                None => {
                    self.pos = i;
                    return Err(self.err("the JSON ends inside a string"));
                }
                Some(b'"') => {
                    self.pos = i + 1;
                    let len = self.tree.arena.len() - a0;
                    return Ok(Text::arena(a0, len));
                }
                Some(b'\\') => {
                    let c = match b.get(i + 1) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            let (c, used) = self.unicode_escape(i)?;
                            self.tree.arena.push(c);
                            i += used;
                            continue;
                        }
                        _ => {
                            self.pos = i;
                            return Err(self.err("invalid escape in a string"));
                        }
                    };
                    self.tree.arena.push(c);
                    i += 2;
                }
                Some(&c) if c < 0x20 => {
                    self.pos = i;
                    return Err(self.err("a control character must be escaped in a string"));
                }
                Some(_) => {
                    let run = b[i..]
                        .iter()
                        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                        .unwrap_or(b.len() - i);
                    self.tree.arena.push_str(&self.tree.input[i..i + run]);
                    i += run;
                }
            }
        }
    }

    /// `\uXXXX` at `i` (with its low surrogate, if it is a high one): the char and bytes used.
    fn unicode_escape(&mut self, i: usize) -> PResult<(char, usize)> {
        let hex = |p: &Self, at: usize| -> Option<u32> {
            let h = p.b.get(at..at + 4)?;
            let s = std::str::from_utf8(h).ok()?;
            u32::from_str_radix(s, 16).ok()
        };
        let Some(u) = hex(self, i + 2) else {
            self.pos = i;
            return Err(self.err("\\u must be followed by four hex digits"));
        };
        if (0xD800..0xDC00).contains(&u) {
            if self.b.get(i + 6..i + 8) == Some(b"\\u")
                && let Some(lo) = hex(self, i + 8)
                && (0xDC00..0xE000).contains(&lo)
            {
                let c = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                return Ok((char::from_u32(c).expect("a valid surrogate pair"), 12));
            }
            self.pos = i;
            return Err(self.err("a \\u high surrogate must be followed by a low surrogate"));
        }
        match char::from_u32(u) {
            Some(c) => Ok((c, 6)),
            None => {
                self.pos = i;
                Err(self.err("a \\u low surrogate without a high surrogate"))
            }
        }
    }
}

/// One node of a [`Tree`]: a cheap copyable handle.
#[derive(Clone, Copy)]
pub(crate) struct N<'t> {
    tree: &'t Tree<'t>,
    i: u32,
}

impl<'t> N<'t> {
    #[inline(always)]
    fn node(self) -> &'t Node {
        &self.tree.nodes[self.i as usize]
    }

    #[inline(always)]
    pub fn kind(self) -> Kind {
        self.node().kind
    }

    /// The value as a `sonic_rs::Value`, parsed from the bytes it came from, for the FHIRPath
    /// evaluator. Costs a parse of the subtree: the walk caches it per node for the run.
    pub fn to_value(self) -> sonic_rs::Value {
        let (s, e) = self.node().span;
        sonic_rs::Deserializer::from_str(&self.tree.input[s as usize..e as usize])
            .use_rawnumber()
            .deserialize()
            .expect("a span the tree parsed is JSON")
    }

    /// The JSON text as received.
    pub fn source(self) -> &'t str {
        let (s, e) = self.node().span;
        &self.tree.input[s as usize..e as usize]
    }

    /// Its position in the document: identifies the node within one run (for caches).
    #[inline(always)]
    pub fn id(self) -> u32 {
        self.i
    }

    #[inline(always)]
    pub fn is_object(self) -> bool {
        self.kind() == Kind::Object
    }
    #[inline(always)]
    pub fn is_array(self) -> bool {
        self.kind() == Kind::Array
    }
    #[inline(always)]
    pub fn is_null(self) -> bool {
        self.kind() == Kind::Null
    }
    #[inline(always)]
    pub fn is_number(self) -> bool {
        self.kind() == Kind::Number
    }
    #[inline(always)]
    pub fn is_boolean(self) -> bool {
        matches!(self.kind(), Kind::True | Kind::False)
    }
    #[inline(always)]
    pub fn as_bool(self) -> Option<bool> {
        match self.kind() {
            Kind::True => Some(true),
            Kind::False => Some(false),
            _ => None,
        }
    }
    #[inline(always)]
    pub fn as_str(self) -> Option<&'t str> {
        let n = self.node();
        (n.kind == Kind::String).then(|| self.tree.text(n.text))
    }

    /// A number's text as written.
    #[inline(always)]
    pub fn raw_number(self) -> Option<&'t str> {
        let n = self.node();
        (n.kind == Kind::Number).then(|| self.tree.text(n.text))
    }

    /// Members of an object or items of an array (0 for anything else).
    #[inline(always)]
    pub fn len(self) -> usize {
        self.node().len as usize
    }

    /// A fingerprint of the value's text as received, for the memo; `None` when it holds an
    /// extension or a `_name` companion, which the memo must never reuse (see [`super::memo`]).
    pub fn fingerprint(self) -> Option<u64> {
        let t = self.tree;
        for n in &t.nodes[self.i as usize + 1..self.node().end as usize] {
            if n.key.len & !ARENA == 0 {
                continue;
            }
            let k = t.text(n.key);
            if k.starts_with('_') || k == "extension" || k == "modifierExtension" {
                return None;
            }
        }
        Some(self.text_hash())
    }

    /// Children in order (object members or array items), with their keys.
    #[inline(always)]
    pub fn members(self) -> Members<'t> {
        Members {
            tree: self.tree,
            next: self.i + 1,
            left: self.node().len,
        }
    }

    /// Items of an array (nothing for anything else).
    #[inline(always)]
    pub fn items(self) -> impl Iterator<Item = N<'t>> + 't {
        let mut it = self.members();
        if !self.is_array() {
            it.left = 0;
        }
        it.map(|(_, v)| v)
    }

    /// The member `key` of an object (the first, if repeated).
    #[inline(always)]
    pub fn get(self, key: &str) -> Option<N<'t>> {
        if !self.is_object() {
            return None;
        }
        self.members().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// A hash of the value's text as received (for tables keyed by content).
    pub fn text_hash(self) -> u64 {
        hash_bytes(0x1319_8a2e_0370_7344, self.source().as_bytes())
    }

    /// The same JSON text as received (so the same value, parsed the same way).
    pub fn same(self, other: &N<'_>) -> bool {
        self.source() == other.source()
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

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let i = self.next;
        let n = &self.tree.nodes[i as usize];
        self.next = n.end;
        Some((self.tree.text(n.key), N { tree: self.tree, i }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl ExactSizeIterator for Members<'_> {}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
