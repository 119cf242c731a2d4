//! Lossless JSON and the canonical form that forwarded bundles are signed over.
//!
//! Owns a small JSON document model ([`Json`]) that keeps every number exactly as written, a strict
//! parser for it, and two serialisers: [`Json::to_canonical`] (what is signed) and
//! [`Json::to_compact`] (what is sent). FHIR says a decimal's trailing zeros are significant
//! (precision is part of the value), so no number here ever goes through f64. The crate builds
//! serde_json with `arbitrary_precision` for the same reason: a `serde_json::Value` from the store
//! keeps `0.750` as written, and [`Json::from_value`] copies its text. The parser here exists
//! because received bytes must also be checked for what serde_json accepts silently (duplicate
//! member names).
//!
//! # The canonical form: RFC 8785 (JCS) with exact numbers
//!
//! The canonical form of a JSON text is RFC 8785 (JSON Canonicalization Scheme) in every respect but
//! one:
//!
//! - no whitespace between tokens;
//! - object members sorted by their names compared as arrays of UTF-16 code units (RFC 8785 §3.2.3),
//!   recursively; array order kept;
//! - strings in the ECMAScript `JSON.stringify` form (RFC 8785 §3.2.2.2): `"` and `\` escaped with a
//!   backslash, U+0008/0009/000A/000C/000D as `\b \t \n \f \r`, other controls below U+0020 as
//!   `\u00xx` (lower-case hex), everything else (including non-ASCII) as literal UTF-8;
//! - `true`, `false`, `null` as themselves;
//! - **numbers: the exact characters of the number token as it appears in the document** (the JSON
//!   grammar of RFC 8259 §6 already forbids leading zeros, `+` signs and bare dots).
//!
//! Why not RFC 8785's number rule: JCS serialises every number as the ECMAScript rendering of the
//! nearest IEEE-754 double. `0.750` becomes `0.75`, `1.0` becomes `1`, and a decimal with more
//! than 17 significant digits is rounded. A signature over that form would not cover the precision
//! of FHIR decimals (`0.750` and `0.75` would verify alike), and two different large decimals could
//! share a signature. FHIR requires decimal precision to be preserved end to end, so the signed
//! form keeps the digits. For documents whose numbers are already in ECMAScript form (integers up
//! to 2^53, decimals without trailing zeros or exponents, which is what most bundles contain),
//! this form is byte-for-byte RFC 8785, so an off-the-shelf JCS library produces the same bytes.
//! A receiver reimplementing it needs a JSON parser that keeps number tokens as text (e.g.
//! `serde_json` with `arbitrary_precision`, Python `json.loads(parse_float=decimal.Decimal)`
//! plus `str()` of the Decimal, Jackson `USE_BIG_DECIMAL_FOR_FLOATS` with `toString()` kept exact).
//!
//! Why not the `serde_jcs` crate: it canonicalises a `serde_json::Value`, so numbers have already
//! been through f64 before it sees them (the precision problem above), and it inherits
//! serde_json's silent last-wins handling of duplicate member names. The scheme is small enough
//! (parser, sort, string escaping) to own here with its tests, including the RFC's own examples.
//!
//! Inputs must be I-JSON (RFC 7493): duplicate member names and unpaired surrogate escapes are
//! rejected, since either would make "the" canonical form ambiguous. Nesting is limited to
//! [`MAX_DEPTH`] so that a hostile file cannot overflow the stack of the verifier.

use std::cmp::Ordering;
use std::fmt::Write as _;

use crate::fhir::json::{EscapeError, unescape};

/// Deepest nesting the parser accepts. FHIR resources nest far less (a stratified MeasureReport
/// inside a Bundle is about 12 levels).
pub const MAX_DEPTH: usize = 128;

/// A JSON value with numbers kept as their exact token text and members in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    Null,
    Bool(bool),
    /// The number token exactly as written (valid RFC 8259 number grammar).
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Object),
}

/// A JSON object: members in insertion order, names unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Object(Vec<(String, Json)>);

impl Object {
    pub fn new() -> Self {
        Object(Vec::new())
    }

    pub fn get(&self, name: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Json> {
        self.0.iter_mut().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Set a member, replacing an existing one in place (keeping its position) or appending.
    pub fn insert(&mut self, name: impl Into<String>, value: Json) {
        let name = name.into();
        match self.get_mut(&name) {
            Some(slot) => *slot = value,
            None => self.0.push((name, value)),
        }
    }

    /// Set a member so that it comes right after `after` (or first when `after` is absent),
    /// replacing an existing one. Used to keep FHIR's conventional `resourceType, id, meta` order.
    pub fn insert_after(&mut self, after: &str, name: impl Into<String>, value: Json) {
        let name = name.into();
        self.remove(&name);
        let at = self
            .0
            .iter()
            .position(|(k, _)| k == after)
            .map_or(0, |i| i + 1);
        self.0.insert(at, (name, value));
    }

    /// Move the named members (those present) to the front, in the order given.
    pub fn move_to_front(&mut self, names: &[&str]) {
        for name in names.iter().rev() {
            if let Some(at) = self.0.iter().position(|(k, _)| k == name) {
                let member = self.0.remove(at);
                self.0.insert(0, member);
            }
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Json> {
        let at = self.0.iter().position(|(k, _)| k == name)?;
        Some(self.0.remove(at).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Json)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Why a JSON text was refused. `offset` is the byte offset in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error("the JSON is not valid UTF-8 (byte {offset})")]
    Utf8 { offset: usize },
    #[error("invalid JSON at byte {offset}: {expected}")]
    Syntax {
        offset: usize,
        expected: &'static str,
    },
    #[error("duplicate member name {name:?} at byte {offset}; I-JSON forbids duplicates")]
    DuplicateName { name: String, offset: usize },
    #[error("unpaired UTF-16 surrogate escape at byte {offset}")]
    LoneSurrogate { offset: usize },
    #[error("JSON nested deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep { offset: usize },
}

impl Json {
    /// Parse a JSON text strictly (RFC 8259 + I-JSON), keeping number tokens and member order.
    pub fn parse(input: &[u8]) -> Result<Json, CanonicalError> {
        let text = std::str::from_utf8(input).map_err(|e| CanonicalError::Utf8 {
            offset: e.valid_up_to(),
        })?;
        let mut p = Parser {
            s: text,
            b: text.as_bytes(),
            i: 0,
        };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.i != p.b.len() {
            return Err(p.err("end of input after the top-level value"));
        }
        Ok(v)
    }

    /// Convert a `serde_json::Value`. With serde_json's `arbitrary_precision` (set in Cargo.toml)
    /// a number keeps the text it was parsed from, so stored decimals come through exactly.
    pub fn from_value(v: &serde_json::Value) -> Json {
        use serde_json::Value as V;
        match v {
            V::Null => Json::Null,
            V::Bool(b) => Json::Bool(*b),
            V::Number(n) => Json::Number(n.to_string()),
            V::String(s) => Json::String(s.clone()),
            V::Array(a) => Json::Array(a.iter().map(Json::from_value).collect()),
            V::Object(o) => Json::Object(Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), Json::from_value(v)))
                    .collect(),
            )),
        }
    }

    /// Like [`Json::from_value`], then `resourceType`, `id`, `meta` first in every object:
    /// a `serde_json::Value` built in code may hold them anywhere, and FHIR readers expect those first.
    pub fn from_fhir_value(v: &serde_json::Value) -> Json {
        fn hoist(j: &mut Json) {
            match j {
                Json::Object(o) => {
                    o.move_to_front(&["resourceType", "id", "meta"]);
                    o.0.iter_mut().for_each(|(_, v)| hoist(v));
                }
                Json::Array(a) => a.iter_mut().for_each(hoist),
                _ => {}
            }
        }
        let mut j = Json::from_value(v);
        hoist(&mut j);
        j
    }

    pub fn str(s: impl Into<String>) -> Json {
        Json::String(s.into())
    }

    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Json::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Json>> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_array_mut(&mut self) -> Option<&mut Vec<Json>> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// Member of an object value (`None` for non-objects).
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.as_object()?.get(name)
    }

    /// The canonical form (see the module docs): what signatures are computed over.
    pub fn to_canonical(&self) -> Vec<u8> {
        let mut out = String::with_capacity(4096);
        write_canonical(self, &mut out);
        out.into_bytes()
    }

    /// Compact JSON in document order: what is sent on the wire. Same string and number rules as
    /// the canonical form, members not re-ordered.
    pub fn to_compact(&self) -> Vec<u8> {
        let mut out = String::with_capacity(4096);
        write_compact(self, &mut out);
        out.into_bytes()
    }
}

/// Parse and canonicalise in one step.
pub fn canonicalize(input: &[u8]) -> Result<Vec<u8>, CanonicalError> {
    Ok(Json::parse(input)?.to_canonical())
}

fn cmp_utf16(a: &str, b: &str) -> Ordering {
    // Fast path: for BMP-below-surrogate text, UTF-8 byte order equals UTF-16 unit order, and
    // ASCII names (all FHIR element names) are the common case.
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

fn write_canonical(v: &Json, out: &mut String) {
    match v {
        Json::Object(o) => {
            let mut members: Vec<&(String, Json)> = o.0.iter().collect();
            members.sort_by(|x, y| cmp_utf16(&x.0, &y.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Json::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_compact(v: &Json, out: &mut String) {
    match v {
        Json::Object(o) => {
            out.push('{');
            for (i, (k, v)) in o.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_compact(v, out);
            }
            out.push('}');
        }
        Json::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_compact(v, out);
            }
            out.push(']');
        }
        scalar => write_scalar(scalar, out),
    }
}

fn write_scalar(v: &Json, out: &mut String) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Number(n) => out.push_str(n),
        Json::String(s) => write_string(s, out),
        Json::Array(_) | Json::Object(_) => write_compact(v, out),
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    // Every character that needs escaping is ASCII, so scanning bytes is safe for UTF-8 and
    // lets unescaped runs (almost all text) be copied in one go.
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x08 => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            0x0c => "\\f",
            b'\r' => "\\r",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, expected: &'static str) -> CanonicalError {
        CanonicalError::Syntax {
            offset: self.i,
            expected,
        }
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, CanonicalError> {
        if depth > MAX_DEPTH {
            return Err(CanonicalError::TooDeep { offset: self.i });
        }
        match self.b.get(self.i) {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err("a JSON value")),
        }
    }

    fn literal(&mut self, word: &'static str, v: Json) -> Result<Json, CanonicalError> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("true, false or null"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, CanonicalError> {
        self.i += 1;
        let mut members: Vec<(String, Json)> = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Json::Object(Object(members)));
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return Err(self.err("a member name string"));
            }
            let at = self.i;
            let name = self.string()?;
            // Linear scan: FHIR objects are small; a hash set would cost more than it saves.
            if members.iter().any(|(k, _)| *k == name) {
                return Err(CanonicalError::DuplicateName { name, offset: at });
            }
            self.ws();
            if self.b.get(self.i) != Some(&b':') {
                return Err(self.err("':' after a member name"));
            }
            self.i += 1;
            self.ws();
            let v = self.value(depth + 1)?;
            members.push((name, v));
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Json::Object(Object(members)));
                }
                _ => return Err(self.err("',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, CanonicalError> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.b.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.err("',' or ']' in an array")),
            }
        }
    }

    fn number(&mut self) -> Result<Json, CanonicalError> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let from = p.i;
            while let Some(b'0'..=b'9') = p.b.get(p.i) {
                p.i += 1;
            }
            p.i - from
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.err("a digit")),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.err("a digit after the decimal point"));
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("a digit in the exponent"));
            }
        }
        Ok(Json::Number(self.s[start..self.i].to_string()))
    }

    fn string(&mut self) -> Result<String, CanonicalError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        let mut run = self.i;
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err("closing '\"'"));
            };
            match c {
                b'"' => {
                    out.push_str(&self.s[run..self.i]);
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    out.push_str(&self.s[run..self.i]);
                    self.escape(&mut out)?;
                    run = self.i;
                }
                0..=0x1f => return Err(self.err("an escaped control character")),
                _ => self.i += 1,
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), CanonicalError> {
        let at = self.i;
        let (c, used) = unescape(self.b, at).map_err(|e| match e {
            EscapeError::Unknown => CanonicalError::Syntax {
                offset: at + 1,
                expected: "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)",
            },
            EscapeError::Hex { at: digits } | EscapeError::LowHex { at: digits } => {
                CanonicalError::Syntax {
                    offset: digits,
                    expected: "four hex digits",
                }
            }
            EscapeError::LoneHigh | EscapeError::LoneLow => {
                CanonicalError::LoneSurrogate { offset: at }
            }
        })?;
        out.push(c);
        self.i += used;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        String::from_utf8(canonicalize(s.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn sorts_members_by_utf16_code_units_rfc8785_example() {
        // RFC 8785 §3.2.3: the sorting example, including a supplementary-plane name (sorts by
        // its high surrogate, before U+FB33) and U+0080 after ASCII.
        let input = r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#;
        let out = canon(input);
        let names: Vec<&str> = [
            "\"\\r\"",
            "\"1\"",
            "\"\u{80}\"",
            "\"\u{f6}\"",
            "\"\u{20ac}\"",
            "\"\u{1f600}\"",
            "\"\u{fb33}\"",
        ]
        .to_vec();
        let mut last = 0;
        for n in names {
            let at = out
                .find(n)
                .unwrap_or_else(|| panic!("{n} missing in {out}"));
            assert!(at >= last, "{n} out of order in {out}");
            last = at;
        }
    }

    #[test]
    fn escapes_strings_like_rfc8785() {
        // RFC 8785 §3.2.2.2 example.
        let input = r#"{"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"}"#;
        assert_eq!(
            canon(input),
            "{\"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}"
        );
    }

    #[test]
    fn rfc8785_literals_and_whitespace() {
        let input = " { \"b\" : [ true , false , null ] ,\n\t\"a\" : { } , \"c\" : [ ] } ";
        assert_eq!(canon(input), r#"{"a":{},"b":[true,false,null],"c":[]}"#);
    }

    #[test]
    fn fhir_decimals_keep_their_precision() {
        // RFC 8785 would emit 0.75 and 1; FHIR decimal precision is significant, so the
        // signed form keeps the token. Whitespace and member order still do not matter.
        let a = canon(r#"{"value": 0.750, "count": 1.0, "big": 12345678901234567890.123}"#);
        assert_eq!(
            a,
            r#"{"big":12345678901234567890.123,"count":1.0,"value":0.750}"#
        );
        let b = canon(r#"{"count":1.0,"big":12345678901234567890.123,"value":0.750}"#);
        assert_eq!(a, b);
        // ... and a changed precision is a changed canonical form (a signature would fail).
        assert_ne!(canon(r#"{"value":0.75}"#), canon(r#"{"value":0.750}"#));
        // Exponents are kept as written too.
        assert_eq!(canon("[1E2,-0,1e-7]"), "[1E2,-0,1e-7]");
    }

    #[test]
    fn ecmascript_form_numbers_are_plain_rfc8785() {
        // Numbers already in ECMAScript form are left exactly as RFC 8785 would write them.
        assert_eq!(
            canon("[0,-1,42,0.5,4.5,9007199254740991]"),
            "[0,-1,42,0.5,4.5,9007199254740991]"
        );
    }

    #[test]
    fn rejects_what_is_not_i_json() {
        assert!(matches!(
            Json::parse(br#"{"a":1,"a":2}"#),
            Err(CanonicalError::DuplicateName { .. })
        ));
        assert!(matches!(
            Json::parse(br#"["\ud800"]"#),
            Err(CanonicalError::LoneSurrogate { .. })
        ));
        assert!(matches!(
            Json::parse(br#"["\udc00\ud800"]"#),
            Err(CanonicalError::LoneSurrogate { .. })
        ));
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "1e",
            ".5",
            "+1",
            "[1] x",
            "\"a\nb\"",
            "tru",
            "{\"a\":1,}",
            "\"\\x\"",
            "NaN",
        ] {
            assert!(Json::parse(bad.as_bytes()).is_err(), "accepted {bad:?}");
        }
        assert!(matches!(
            Json::parse(&[b'"', 0xff, b'"']),
            Err(CanonicalError::Utf8 { offset: 1 })
        ));
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(matches!(
            Json::parse(deep.as_bytes()),
            Err(CanonicalError::TooDeep { .. })
        ));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(Json::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn compact_keeps_order_and_round_trips() {
        let input = r#"{"resourceType":"MeasureReport","id":"x","group":[{"measureScore":{"value":0.750}}],"note":"é\u0001"}"#;
        let v = Json::parse(input.as_bytes()).unwrap();
        let compact = v.to_compact();
        assert!(compact.starts_with(br#"{"resourceType":"MeasureReport","id":"x""#));
        assert_eq!(Json::parse(&compact).unwrap(), v);
        assert!(String::from_utf8_lossy(&compact).contains("\\u0001"));
    }

    #[test]
    fn object_edits_keep_positions() {
        let mut v = Json::parse(br#"{"resourceType":"X","status":"final"}"#).unwrap();
        let o = v.as_object_mut().unwrap();
        o.insert_after("resourceType", "id", Json::str("1"));
        o.insert("status", Json::str("complete"));
        assert_eq!(
            v.to_compact(),
            br#"{"resourceType":"X","id":"1","status":"complete"}"#
        );
    }

    proptest::proptest! {
        /// Canonical form is invariant under whitespace and member order, and parse/compact
        /// round-trips, for arbitrary nested objects of strings and numbers.
        #[test]
        fn canonical_is_invariant_under_reordering(
            pairs in proptest::collection::btree_map("[a-zA-Z\u{80}-\u{10ffff}]{0,6}", "(-?[1-9][0-9]{0,20}(\\.[0-9]{1,8})?|\"[a-z0-9 é€😀]{0,8}\")", 0..8)
        ) {
            let fwd: Vec<String> = pairs.iter().map(|(k, v)| format!("{}: {v}", serde_json::to_string(k).unwrap())).collect();
            let rev: Vec<String> = fwd.iter().rev().cloned().collect();
            let a = format!("{{ {} }}", fwd.join(" ,\n "));
            let b = format!("{{{}}}", rev.join(","));
            let ca = canonicalize(a.as_bytes()).unwrap();
            proptest::prop_assert_eq!(&ca, &canonicalize(b.as_bytes()).unwrap());
            let v = Json::parse(a.as_bytes()).unwrap();
            proptest::prop_assert_eq!(Json::parse(&v.to_compact()).unwrap(), v);
            // The canonical text is itself valid JSON that serde_json agrees has these members.
            let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&ca).unwrap();
            proptest::prop_assert_eq!(parsed.len(), pairs.len());
        }
    }
}
