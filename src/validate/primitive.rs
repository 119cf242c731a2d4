//! FHIR R4 primitive types: which JSON type carries each, and the lexical rules (the R4 regexes,
//! hand-compiled so that the hot path allocates nothing and runs no regex engine).
//!
//! Owns: format checks on a single primitive value. Must not: know about elements, profiles or
//! paths; callers turn an [`Invalid`] into an issue.

/// A FHIR primitive type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prim {
    Boolean,
    Integer,
    Integer64,
    PositiveInt,
    UnsignedInt,
    Decimal,
    String,
    Code,
    Id,
    Markdown,
    Uri,
    Url,
    Canonical,
    Oid,
    Uuid,
    Base64Binary,
    Instant,
    Date,
    DateTime,
    Time,
}

/// What a value failed, in words: "expected ..." is added by the caller from [`Prim::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

/// JSON representation of a primitive type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    Bool,
    Number,
    String,
}

impl Prim {
    /// The primitive for a FHIR type code (or a FHIRPath system type with its fhir-type name).
    pub fn from_code(code: &str) -> Option<Prim> {
        Some(match code {
            "boolean" => Prim::Boolean,
            "integer" => Prim::Integer,
            "integer64" => Prim::Integer64,
            "positiveInt" => Prim::PositiveInt,
            "unsignedInt" => Prim::UnsignedInt,
            "decimal" => Prim::Decimal,
            "string" => Prim::String,
            "code" => Prim::Code,
            "id" => Prim::Id,
            "markdown" => Prim::Markdown,
            "uri" => Prim::Uri,
            "url" => Prim::Url,
            "canonical" => Prim::Canonical,
            "oid" => Prim::Oid,
            "uuid" => Prim::Uuid,
            "base64Binary" => Prim::Base64Binary,
            "instant" => Prim::Instant,
            "date" => Prim::Date,
            "dateTime" => Prim::DateTime,
            "time" => Prim::Time,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Prim::Boolean => "boolean",
            Prim::Integer => "integer",
            Prim::Integer64 => "integer64",
            Prim::PositiveInt => "positiveInt",
            Prim::UnsignedInt => "unsignedInt",
            Prim::Decimal => "decimal",
            Prim::String => "string",
            Prim::Code => "code",
            Prim::Id => "id",
            Prim::Markdown => "markdown",
            Prim::Uri => "uri",
            Prim::Url => "url",
            Prim::Canonical => "canonical",
            Prim::Oid => "oid",
            Prim::Uuid => "uuid",
            Prim::Base64Binary => "base64Binary",
            Prim::Instant => "instant",
            Prim::Date => "date",
            Prim::DateTime => "dateTime",
            Prim::Time => "time",
        }
    }

    pub fn json_kind(self) -> JsonKind {
        match self {
            Prim::Boolean => JsonKind::Bool,
            Prim::Integer | Prim::PositiveInt | Prim::UnsignedInt | Prim::Decimal => {
                JsonKind::Number
            }
            // integer64 is a string in JSON (R5 type, accepted for completeness).
            _ => JsonKind::String,
        }
    }

    /// Check the exact text of a JSON number for this type (`raw` is a JSON number as written:
    /// the grammar rules out leading zeros and signs other than a leading `-`).
    pub fn check_number(self, raw: &str) -> Result<(), Invalid> {
        match self {
            Prim::Decimal => {
                if raw.len() > 1 && raw.starts_with('0') && !raw.starts_with("0.") {
                    return Err(Invalid("a decimal must not have leading zeros"));
                }
                Ok(())
            }
            Prim::Integer | Prim::PositiveInt | Prim::UnsignedInt => {
                // Every count of a report: up to nine digits is within 0..i32::MAX, and the JSON
                // grammar (no leading zeros) leaves "0" as the only zero.
                if raw.len() <= 9 && raw.bytes().all(|b| b.is_ascii_digit()) {
                    return match (self, raw) {
                        (Prim::PositiveInt, "0") => Err(Invalid("a positiveInt must be 1 or more")),
                        _ => Ok(()),
                    };
                }
                if raw.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                    return Err(Invalid(
                        "a whole number is required (no fraction or exponent)",
                    ));
                }
                let n: i64 = raw
                    .parse()
                    .map_err(|_| Invalid("the number is out of range (32-bit signed integer)"))?;
                let (lo, what) = match self {
                    Prim::PositiveInt => (1, "a positiveInt must be 1 or more"),
                    Prim::UnsignedInt => (0, "an unsignedInt must be 0 or more"),
                    _ => (
                        i64::from(i32::MIN),
                        "the number is below the 32-bit integer range",
                    ),
                };
                if n < lo {
                    return Err(Invalid(what));
                }
                if n > i64::from(i32::MAX) {
                    return Err(Invalid("the number is above the 32-bit integer range"));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Check a JSON string for this type.
    pub fn check_str(self, s: &str) -> Result<(), Invalid> {
        if s.is_empty() {
            return Err(Invalid(
                "empty strings are not allowed (omit the element instead)",
            ));
        }
        match self {
            Prim::String | Prim::Markdown => check_chars(s),
            Prim::Code => {
                check_chars(s)?;
                let b = s.as_bytes();
                if is_ws(b[0]) || is_ws(b[b.len() - 1]) {
                    return Err(Invalid("a code must not start or end with whitespace"));
                }
                if b.windows(2).any(|w| is_ws(w[0]) && is_ws(w[1])) {
                    return Err(Invalid(
                        "a code must not contain more than one whitespace in a row",
                    ));
                }
                Ok(())
            }
            Prim::Id => {
                if s.len() > 64 {
                    return Err(Invalid("an id is at most 64 characters"));
                }
                if !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    return Err(Invalid("an id may only contain A-Z, a-z, 0-9, '-' and '.'"));
                }
                Ok(())
            }
            Prim::Uri | Prim::Url | Prim::Canonical => {
                if s.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20) {
                    return Err(Invalid("a URI must not contain whitespace"));
                }
                if self == Prim::Url && s.starts_with("urn:") {
                    return Err(Invalid("a url must be a locator, not a urn"));
                }
                Ok(())
            }
            Prim::Oid => {
                let rest = s
                    .strip_prefix("urn:oid:")
                    .ok_or(Invalid("an oid starts with 'urn:oid:'"))?;
                let mut parts = rest.split('.');
                let first = parts.next().unwrap_or("");
                if !matches!(first, "0" | "1" | "2") || rest.split('.').count() < 2 {
                    return Err(Invalid(
                        "an oid is urn:oid: then [0-2] and more dotted numbers",
                    ));
                }
                if parts.any(|p| {
                    p.is_empty()
                        || !p.bytes().all(|b| b.is_ascii_digit())
                        || (p.len() > 1 && p.starts_with('0'))
                }) {
                    return Err(Invalid(
                        "an oid is urn:oid: then dotted numbers without leading zeros",
                    ));
                }
                Ok(())
            }
            Prim::Uuid => {
                let rest = s
                    .strip_prefix("urn:uuid:")
                    .ok_or(Invalid("a uuid starts with 'urn:uuid:'"))?;
                let b = rest.as_bytes();
                let ok = b.len() == 36
                    && b.iter().enumerate().all(|(i, &c)| match i {
                        8 | 13 | 18 | 23 => c == b'-',
                        _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
                    });
                if !ok {
                    return Err(Invalid(
                        "a uuid is urn:uuid: then 8-4-4-4-12 lower-case hex digits",
                    ));
                }
                Ok(())
            }
            Prim::Base64Binary => check_base64(s),
            Prim::Date => {
                let n = date(s.as_bytes())?;
                if n != s.len() {
                    return Err(Invalid(
                        "a date is YYYY, YYYY-MM or YYYY-MM-DD without a time",
                    ));
                }
                Ok(())
            }
            Prim::DateTime => {
                let b = s.as_bytes();
                let n = date(b)?;
                if n == b.len() {
                    return Ok(());
                }
                if n != 10 || b[n] != b'T' {
                    return Err(Invalid(
                        "a dateTime is YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz",
                    ));
                }
                let t = time(&b[n + 1..])?;
                zone(
                    &b[n + 1 + t..],
                    "a dateTime with a time must have a time zone",
                )
            }
            Prim::Instant => {
                let b = s.as_bytes();
                let n = date(b)?;
                if n != 10 || b.get(n) != Some(&b'T') {
                    return Err(Invalid("an instant is YYYY-MM-DDThh:mm:ss(.sss)(Z|+hh:mm)"));
                }
                let t = time(&b[n + 1..])?;
                zone(&b[n + 1 + t..], "an instant must have a time zone")
            }
            Prim::Time => {
                let n = time(s.as_bytes())?;
                if n != s.len() {
                    return Err(Invalid("a time is hh:mm:ss(.sss) without a time zone"));
                }
                Ok(())
            }
            Prim::Integer64 => {
                s.parse::<i64>()
                    .map_err(|_| Invalid("an integer64 is a whole number in a string"))?;
                Ok(())
            }
            Prim::Boolean
            | Prim::Integer
            | Prim::PositiveInt
            | Prim::UnsignedInt
            | Prim::Decimal => Ok(()),
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// R4 strings: any Unicode except control characters other than tab, CR and LF; at most 1 MB.
fn check_chars(s: &str) -> Result<(), Invalid> {
    if s.len() > 1024 * 1024 {
        return Err(Invalid("a string is at most 1 MB"));
    }
    if s.bytes()
        .any(|b| b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n'))
    {
        return Err(Invalid(
            "control characters other than tab, CR and LF are not allowed",
        ));
    }
    Ok(())
}

fn check_base64(s: &str) -> Result<(), Invalid> {
    let mut n = 0usize;
    let mut pad = 0usize;
    for b in s.bytes() {
        match b {
            b'=' => pad += 1,
            _ if is_ws(b) => continue,
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' if pad == 0 => {}
            _ => {
                return Err(Invalid(
                    "base64Binary allows A-Z, a-z, 0-9, '+', '/' and '=' padding",
                ));
            }
        }
        n += 1;
    }
    if !n.is_multiple_of(4) || pad > 2 {
        return Err(Invalid(
            "base64Binary length must be a multiple of 4 characters",
        ));
    }
    Ok(())
}

fn digits(b: &[u8], n: usize) -> Option<u32> {
    if b.len() < n {
        return None;
    }
    let mut v = 0u32;
    for &c in &b[..n] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Parse the date part (YYYY, YYYY-MM, YYYY-MM-DD); returns how many bytes it used.
fn date(b: &[u8]) -> Result<usize, Invalid> {
    let y = digits(b, 4).ok_or(Invalid("a date starts with a four-digit year"))?;
    if y == 0 {
        return Err(Invalid("year 0000 is not allowed"));
    }
    if b.len() == 4 || b[4] != b'-' {
        return Ok(4);
    }
    let m = digits(&b[5..], 2).ok_or(Invalid("the month must be two digits"))?;
    if !(1..=12).contains(&m) {
        return Err(Invalid("the month must be 01 to 12"));
    }
    if b.len() == 7 || b[7] != b'-' {
        return Ok(7);
    }
    let d = digits(&b[8..], 2).ok_or(Invalid("the day must be two digits"))?;
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if d == 0 || d > days {
        return Err(Invalid("the day does not exist in that month"));
    }
    Ok(10)
}

/// hh:mm:ss(.fraction); returns bytes used.
fn time(b: &[u8]) -> Result<usize, Invalid> {
    let bad = Invalid("a time is hh:mm:ss with an optional fraction");
    let h = digits(b, 2).ok_or(bad)?;
    let mi = (b.get(2) == Some(&b':'))
        .then(|| digits(&b[3..], 2))
        .flatten()
        .ok_or(bad)?;
    let s = (b.get(5) == Some(&b':'))
        .then(|| digits(&b[6..], 2))
        .flatten()
        .ok_or(bad)?;
    if h > 23 || mi > 59 || s > 60 {
        return Err(Invalid("hours 00-23, minutes 00-59, seconds 00-60"));
    }
    let mut n = 8;
    if b.get(8) == Some(&b'.') {
        n = 9;
        while b.get(n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
        if n == 9 {
            return Err(Invalid("a fraction of a second needs at least one digit"));
        }
    }
    Ok(n)
}

fn zone(b: &[u8], missing: &'static str) -> Result<(), Invalid> {
    match b {
        [] => Err(Invalid(missing)),
        [b'Z'] => Ok(()),
        [b'+' | b'-', rest @ ..] if rest.len() == 5 && rest[2] == b':' => {
            let h = digits(rest, 2).ok_or(Invalid("a time zone is Z or +hh:mm / -hh:mm"))?;
            let m = digits(&rest[3..], 2).ok_or(Invalid("a time zone is Z or +hh:mm / -hh:mm"))?;
            if (h < 14 && m < 60) || (h == 14 && m == 0) {
                Ok(())
            } else {
                Err(Invalid("a time zone offset is at most 14:00"))
            }
        }
        _ => Err(Invalid("a time zone is Z or +hh:mm / -hh:mm")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: Prim, s: &str) -> bool {
        p.check_str(s).is_ok()
    }

    #[test]
    fn dates_follow_the_r4_regex_and_calendar() {
        for s in ["2024", "2024-02", "2024-02-29", "0001-01-01"] {
            assert!(ok(Prim::Date, s), "{s}");
        }
        for s in [
            "2023-02-29",
            "2024-13",
            "24",
            "2024-1-01",
            "0000",
            "2024-01-01T00:00:00Z",
            "2024-04-31",
        ] {
            assert!(!ok(Prim::Date, s), "{s}");
        }
    }

    #[test]
    fn datetimes_need_a_zone_when_a_time_is_given() {
        for s in [
            "2024",
            "2024-05-01",
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:00.123+01:00",
            "2024-05-01T23:59:60-14:00",
        ] {
            assert!(ok(Prim::DateTime, s), "{s}");
        }
        for s in [
            "2024-05-01T10:00:00",
            "2024-05-01T10:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T10:00:00+15:00",
            "2024-05-01 10:00:00Z",
            "2024-05-01T10:00:00.Z",
        ] {
            assert!(!ok(Prim::DateTime, s), "{s}");
        }
    }

    #[test]
    fn instants_are_full_precision_with_zone() {
        assert!(ok(Prim::Instant, "2024-05-01T10:00:00.000Z"));
        assert!(!ok(Prim::Instant, "2024-05-01"));
        assert!(!ok(Prim::Instant, "2024-05-01T10:00:00"));
    }

    #[test]
    fn times() {
        assert!(ok(Prim::Time, "23:59:59.5"));
        assert!(!ok(Prim::Time, "23:59"));
        assert!(!ok(Prim::Time, "23:59:59Z"));
    }

    #[test]
    fn ids_codes_strings_uris() {
        assert!(ok(Prim::Id, "abc-1.2"));
        assert!(!ok(Prim::Id, "abc_1"));
        assert!(!ok(Prim::Id, &"a".repeat(65)));
        assert!(ok(Prim::Code, "a b"));
        assert!(!ok(Prim::Code, " a"));
        assert!(!ok(Prim::Code, "a  b"));
        assert!(!ok(Prim::String, ""));
        assert!(!ok(Prim::String, "a\u{1}b"));
        assert!(ok(Prim::String, "line\nbreak"));
        assert!(ok(Prim::Uri, "urn:uuid:x"));
        assert!(!ok(Prim::Uri, "http://a b"));
        assert!(!ok(Prim::Url, "urn:x"));
        assert!(ok(Prim::Oid, "urn:oid:2.16.840.1"));
        assert!(!ok(Prim::Oid, "urn:oid:3.1"));
        assert!(ok(
            Prim::Uuid,
            "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"
        ));
        assert!(!ok(
            Prim::Uuid,
            "urn:uuid:C757873D-EC9A-4326-A141-556F43239520"
        ));
        assert!(ok(Prim::Base64Binary, "aGVsbG8="));
        assert!(!ok(Prim::Base64Binary, "aGVsbG8"));
        assert!(!ok(Prim::Base64Binary, "aGVs*G8="));
    }

    #[test]
    fn numbers_by_exact_text() {
        assert!(Prim::Integer.check_number("-2147483648").is_ok());
        assert!(Prim::Integer.check_number("2147483648").is_err());
        assert!(Prim::Integer.check_number("1.0").is_err());
        assert!(Prim::Integer.check_number("1e2").is_err());
        assert!(Prim::PositiveInt.check_number("0").is_err());
        assert!(Prim::UnsignedInt.check_number("0").is_ok());
        assert!(Prim::UnsignedInt.check_number("-1").is_err());
        assert!(Prim::Decimal.check_number("0.750").is_ok());
        assert!(Prim::Decimal.check_number("1e-3").is_ok());
        // The short path (up to nine digits) and the long one agree at their border.
        assert!(Prim::PositiveInt.check_number("1").is_ok());
        assert!(Prim::PositiveInt.check_number("999999999").is_ok());
        assert!(Prim::PositiveInt.check_number("2147483647").is_ok());
        assert!(Prim::PositiveInt.check_number("-1").is_err());
        assert!(Prim::UnsignedInt.check_number("4294967295").is_err());
    }
}
