//! The parse tree the validator walks: the received JSON parsed once, straight into one flat
//! vector of nodes in document order, each with its key, its text (strings decoded, numbers exactly
//! as written) and the byte span it came from.
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

use crate::fhir::json::{EscapeError, unescape};

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
/// tree's arena of decoded strings. One word (start in the low half, length in the high half,
/// whose top bit says "in the arena"), so that the parser carries a key in one register and
/// stores it with one instruction.
#[derive(Clone, Copy, Default)]
struct Text(u64);

const ARENA: u64 = 1 << 63;

impl Text {
    #[inline(always)]
    fn input(start: usize, len: usize) -> Self {
        Text(u64::from(start as u32) | u64::from(len as u32) << 32)
    }
    fn arena(start: usize, len: usize) -> Self {
        Text(Self::input(start, len).0 | ARENA)
    }
    #[inline(always)]
    fn start(self) -> usize {
        self.0 as u32 as usize
    }
    #[inline(always)]
    fn len(self) -> usize {
        ((self.0 & !ARENA) >> 32) as usize
    }
    #[inline(always)]
    fn in_arena(self) -> bool {
        self.0 & ARENA != 0
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

/// One bit per byte of `c` (bit k for `c[k]`) that is `"`, `\` or a control character: sixteen
/// bytes in about ten instructions, where most strings (keys, codes, most URLs) end within the
/// first sixteen. SSE2 is part of the x86_64 baseline, so no runtime detection is needed.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn special16(c: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: the load reads exactly the 16 bytes `c` refers to and `_mm_loadu_si128` needs no
    // alignment; the other intrinsics only need SSE2, which the `cfg` above says this build has.
    unsafe {
        let x = _mm_loadu_si128(c.as_ptr().cast());
        let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
        // `x <= 0x1f` per unsigned byte: the minimum with 0x1f is `x` itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
    }
}

/// Whether `c` ends a plain run of string content.
#[inline(always)]
fn is_special(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// The index of the first `"`, `\` or control character at or after `i`, or `b.len()`.
#[inline(always)]
fn scan(b: &[u8], #[allow(unused_mut)] mut i: usize) -> usize {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    while i + 16 <= b.len() {
        let m = special16(b[i..i + 16].try_into().expect("16 bytes"));
        if m != 0 {
            return i + m.trailing_zeros() as usize;
        }
        i += 16;
    }
    scan_words(b, i)
}

/// [`scan`] eight bytes at a time: on other targets, and for the last few bytes of the input on
/// x86_64 (out of line there, so that the parse loop does not hold its constants).
#[inline(never)]
fn scan_words(b: &[u8], mut i: usize) -> usize {
    while i + 8 <= b.len() {
        let m = special(u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes")));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if is_special(c) {
            return i;
        }
        i += 1;
    }
    i
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
        let mut arena = String::new();
        let mut nodes = Vec::with_capacity(input.len() / 16 + 16);
        parse_into(input, text, &mut arena, &mut nodes).map_err(|e| *e)?;
        Ok(Tree {
            input: text,
            arena,
            nodes,
        })
    }

    /// Number of JSON values in the document.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The root value.
    pub fn root(&self) -> N<'_> {
        N { tree: self, i: 0 }
    }

    /// A key or text. Every read of a member name goes through here (tens of thousands per
    /// report), and checked slicing of a `str` costs a bounds check and two char-boundary checks
    /// at each end: about a third of reading a key.
    #[inline(always)]
    fn text(&self, t: Text) -> &str {
        let (s, len) = (t.start(), t.len());
        let whole = if t.in_arena() {
            self.arena.as_str()
        } else {
            self.input
        };
        // A `Text` is only made by the parser, for the content between the quotes of a string
        // (or a number's digits) in `input`, or for a decoded string it appended whole to
        // `arena`; both strings are only appended to while parsing. So both ends sit next to
        // ASCII bytes (a quote, a digit, a sign) or at an end of the appended string.
        parsed_slice(whole, s, s + len)
    }
}

/// `s[a..b]` for a range the parser made, without the bounds and char-boundary checks of `&s[a..b]`
/// (two branches per end): key texts and node spans are sliced tens of thousands of times per
/// report.
///
/// Callers pass only ranges whose ends lie within `s` next to ASCII bytes (quotes, brackets,
/// digits, the first letter of a literal) or at an end of a string the parser appended to the
/// arena whole: char boundaries by construction.
#[inline(always)]
fn parsed_slice(s: &str, a: usize, b: usize) -> &str {
    debug_assert!(
        s.get(a..b).is_some(),
        "{a}..{b} is not a char range of the text"
    );
    // SAFETY: see above; every caller's range comes from the parser, which only records
    // positions of ASCII bytes in (or appended ends of) these strings, which it never changes
    // afterwards.
    unsafe { s.get_unchecked(a..b) }
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

#[cold]
#[inline(never)]
fn fail(b: &[u8], pos: usize, message: &str) -> Box<ParseError> {
    Box::new(error_at(b, pos, message.to_owned()))
}

/// The byte at `i`, or 0 past the end: 0 is a control character, which nothing outside a
/// string accepts, so the end of the input needs no test of its own on the happy path.
#[inline(always)]
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

/// `i` moved past any whitespace, and the byte there (see [`at`]): the parse loop carries
/// that byte, so that it is read once.
#[inline(always)]
fn ws(b: &[u8], i: usize) -> (usize, u8) {
    let c = at(b, i);
    // Compact JSON has none: one comparison in the common case.
    if c > b' ' { (i, c) } else { skip_ws(b, i) }
}

#[inline(never)]
fn skip_ws(b: &[u8], mut i: usize) -> (usize, u8) {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    (i, at(b, i))
}

/// An object or array being parsed: its node, how many members it has so far, its closing
/// bracket (0 for the pseudo-container around the root).
#[derive(Clone, Copy)]
struct Open {
    node: u32,
    len: u32,
    close: u32,
}

/// The document in `b` (`input` is the same bytes as text) into `nodes` and `arena`.
///
/// One loop over values instead of recursion: a leaf's node is pushed once, complete; a
/// container's node is pushed at its opening bracket and completed (members, end, span) at its
/// closing one. The containers still open are a stack, the innermost in `cur`.
fn parse_into(b: &[u8], input: &str, arena: &mut String, nodes: &mut Vec<Node>) -> PResult<()> {
    // The root sits in a pseudo-container with no closing bracket (`close` 0): the parse ends
    // after its one value.
    let mut cur = Open {
        node: 0,
        len: 0,
        close: 0,
    };
    // The containers around `cur`, innermost last: an array, so that the depth limit is also
    // the bounds check.
    let mut open = [cur; MAX_DEPTH as usize];
    let mut depth = 0;
    let (mut i, mut c) = ws(b, 0);
    'value: loop {
        // A member of `cur` starts at `i`; `c` is the byte there.
        cur.len += 1;
        let key = if cur.close == u32::from(b'}') {
            let k;
            (k, i, c) = member_name(b, i, c, input, arena)?;
            k
        } else {
            Text::default()
        };
        let start = i;
        // Most frequent first; `| 0x20` folds `[` onto `{` (and no other byte).
        if c == b'"' {
            let (text, j) = string(b, i, input, arena)?;
            i = j;
            leaf(nodes, key, text, Kind::String, start, i);
        } else if c | 0x20 == b'{' {
            if depth >= MAX_DEPTH as usize {
                return Err(fail(
                    b,
                    i,
                    &format!("the JSON nests deeper than {MAX_DEPTH} levels"),
                ));
            }
            let node = nodes.len() as u32;
            nodes.push(Node {
                key,
                text: Text::default(),
                kind: if c == b'{' { Kind::Object } else { Kind::Array },
                len: 0,
                end: 0,
                span: (i as u32, 0),
            });
            open[depth] = cur;
            depth += 1;
            // `{` + 2 is `}`, `[` + 2 is `]`.
            cur = Open {
                node,
                len: 0,
                close: u32::from(c) + 2,
            };
            (i, c) = ws(b, i + 1);
            if u32::from(c) != cur.close {
                continue 'value;
            }
            // Empty: closed below like any other.
        } else if c == b'-' || c.is_ascii_digit() {
            i = number(b, i)?;
            leaf(
                nodes,
                key,
                Text::input(start, i - start),
                Kind::Number,
                start,
                i,
            );
        } else if c == b't' {
            i = literal(b, i, b"true")?;
            leaf(nodes, key, Text::default(), Kind::True, start, i);
        } else if c == b'f' {
            i = literal(b, i, b"false")?;
            leaf(nodes, key, Text::default(), Kind::False, start, i);
        } else if c == b'n' {
            i = literal(b, i, b"null")?;
            leaf(nodes, key, Text::default(), Kind::Null, start, i);
        } else if i >= b.len() {
            return Err(fail(b, i, "the JSON ends where a value was expected"));
        } else {
            return Err(fail(
                b,
                i,
                "expected a value (an object, array, string, number, true, false or null)",
            ));
        }
        // After a value: the next member of `cur`, or its end (and perhaps its parent's).
        loop {
            if cur.close == 0 {
                break 'value;
            }
            (i, c) = ws(b, i);
            if c == b',' {
                (i, c) = ws(b, i + 1);
                continue 'value;
            }
            if u32::from(c) != cur.close {
                return Err(fail(
                    b,
                    i,
                    if cur.close == u32::from(b'}') {
                        "expected ',' or '}' after a property value"
                    } else {
                        "expected ',' or ']' after an array item"
                    },
                ));
            }
            i += 1;
            let end = nodes.len() as u32;
            let n = &mut nodes[cur.node as usize];
            n.len = cur.len;
            n.end = end;
            n.span.1 = i as u32;
            depth -= 1;
            cur = open[depth];
        }
    }
    let (i, _) = ws(b, i);
    if i != b.len() {
        return Err(fail(b, i, "unexpected characters after the JSON value"));
    }
    Ok(())
}

/// Push a string, number or literal, complete.
#[inline(always)]
fn leaf(nodes: &mut Vec<Node>, key: Text, text: Text, kind: Kind, start: usize, end: usize) {
    let i = nodes.len() as u32;
    nodes.push(Node {
        key,
        text,
        kind,
        len: 0,
        end: i + 1,
        span: (start as u32, end as u32),
    });
}

/// A property name at `i` (`c` is the byte there), its colon and the whitespace after: the
/// name, where its value starts and the byte there.
#[inline(always)]
fn member_name(
    b: &[u8],
    i: usize,
    c: u8,
    input: &str,
    arena: &mut String,
) -> PResult<(Text, usize, u8)> {
    if c != b'"' {
        return Err(fail(b, i, "expected a property name in double quotes"));
    }
    let (k, j) = string(b, i, input, arena)?;
    let (j, c) = ws(b, j);
    if c != b':' {
        return Err(fail(b, j, "expected ':' after a property name"));
    }
    let (j, c) = ws(b, j + 1);
    Ok((k, j, c))
}

/// `word` (`true`, `false` or `null`) at `i`: where it ends.
#[inline(always)]
fn literal(b: &[u8], i: usize, word: &[u8]) -> PResult<usize> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        Err(fail(
            b,
            i,
            "expected a value (true, false or null are the only bare words)",
        ))
    }
}

/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` at `i`, kept as written: where it
/// ends.
#[inline(always)]
fn number(b: &[u8], mut i: usize) -> PResult<usize> {
    let digits = |mut i: usize| {
        while at(b, i).is_ascii_digit() {
            i += 1;
        }
        i
    };
    if at(b, i) == b'-' {
        i += 1;
    }
    match at(b, i) {
        b'0' => {
            i += 1;
            if at(b, i).is_ascii_digit() {
                return Err(fail(b, i, "a number must not have leading zeros"));
            }
        }
        b'1'..=b'9' => i = digits(i + 1),
        _ => return Err(fail(b, i, "expected a digit in a number")),
    }
    if at(b, i) == b'.' {
        let j = digits(i + 1);
        if j == i + 1 {
            return Err(fail(b, j, "expected a digit after the decimal point"));
        }
        i = j;
    }
    // `| 0x20` folds `E` onto `e` (and no other byte).
    if at(b, i) | 0x20 == b'e' {
        i += 1;
        if let b'+' | b'-' = at(b, i) {
            i += 1;
        }
        let j = digits(i);
        if j == i {
            return Err(fail(b, i, "expected a digit in the exponent"));
        }
        i = j;
    }
    Ok(i)
}

/// The string whose opening quote is at `i`: its text and the index after its closing quote.
/// Strings without escapes stay in the input.
#[inline(always)]
fn string(b: &[u8], i: usize, input: &str, arena: &mut String) -> PResult<(Text, usize)> {
    let start = i + 1;
    let j = scan(b, start);
    if at(b, j) == b'"' {
        return Ok((Text::input(start, j - start), j + 1));
    }
    escaped(b, start, j, input, arena)
}

/// The rest of a string from `i`, its first `\`, control character or end of input (`start` is
/// where its content begins): escapes are decoded into the arena, starting with the plain part
/// already scanned.
#[inline(never)]
fn escaped(
    b: &[u8],
    start: usize,
    mut i: usize,
    input: &str,
    arena: &mut String,
) -> PResult<(Text, usize)> {
    let a0 = arena.len();
    arena.push_str(&input[start..i]);
    loop {
        match b.get(i) {
            None => return Err(fail(b, i, "the JSON ends inside a string")),
            Some(b'"') => return Ok((Text::arena(a0, arena.len() - a0), i + 1)),
            Some(b'\\') => {
                let (c, used) = unescape(b, i).map_err(|e| {
                    fail(
                        b,
                        i,
                        match e {
                            EscapeError::Unknown => "invalid escape in a string",
                            EscapeError::Hex { .. } => "\\u must be followed by four hex digits",
                            EscapeError::LowHex { .. } | EscapeError::LoneHigh => {
                                "a \\u high surrogate must be followed by a low surrogate"
                            }
                            EscapeError::LoneLow => "a \\u low surrogate without a high surrogate",
                        },
                    )
                })?;
                arena.push(c);
                i += used;
            }
            Some(&c) if c < 0x20 => {
                return Err(fail(
                    b,
                    i,
                    "a control character must be escaped in a string",
                ));
            }
            Some(_) => {
                let run = scan(b, i);
                arena.push_str(&input[i..run]);
                i = run;
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
    #[inline]
    pub fn source(self) -> &'t str {
        // A span runs from a value's first byte (a quote, bracket, digit, sign or the first
        // letter of a literal) to just past its last (ASCII too).
        let (s, e) = self.node().span;
        parsed_slice(self.tree.input, s as usize, e as usize)
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

    /// Whether the value holds no extension and no `_name` companion anywhere inside: only such
    /// values may be remembered by the memo, since where an extension is allowed depends on the
    /// path (see [`super::memo`]).
    pub fn extension_free(self) -> bool {
        let t = self.tree;
        t.nodes[self.i as usize + 1..self.node().end as usize]
            .iter()
            .filter(|n| n.key.len() != 0)
            .all(|n| {
                let k = t.text(n.key).as_bytes();
                k[0] != b'_'
                    && !(k.len() == 9 && bytes_eq(k, b"extension"))
                    && !(k.len() == 17 && bytes_eq(k, b"modifierExtension"))
            })
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
        self.members()
            .find(|(k, _)| bytes_eq(k.as_bytes(), key.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The same JSON text as received (so the same value, parsed the same way).
    pub fn same(self, other: &N<'_>) -> bool {
        self.source() == other.source()
    }
}

/// `a == b`, without a `memcmp` call for names and codes of up to 16
/// bytes (two overlapping words cover them): a call per member name read adds up.
#[inline(always)]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w8 = |s: &[u8], i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    let w4 = |s: &[u8], i: usize| u32::from_le_bytes(s[i..i + 4].try_into().expect("4 bytes"));
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        8..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        _ => a == b,
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
