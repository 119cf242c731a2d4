//! JSON string escapes (RFC 8259 section 7), decoded in one place for the gateway's two strict
//! JSON readers: the validator's parse tree (`validate::tree`) and the canonical JSON that
//! signatures are computed over (`deliver::canonical`). Each reports the errors in its own terms.

/// Why an escape sequence is not valid JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EscapeError {
    /// A backslash followed by anything but `" \ / b f n r t u`.
    Unknown,
    /// `\u` without four hex digits at byte `at`.
    Hex { at: usize },
    /// A high surrogate followed by `\u` without four hex digits at byte `at`.
    LowHex { at: usize },
    /// A high surrogate not followed by a `\u` low surrogate.
    LoneHigh,
    /// A low surrogate without a high surrogate before it.
    LoneLow,
}

/// The escape sequence starting at `b[i]` (a backslash): the character it stands for and how many
/// bytes it takes (2, 6, or 12 for a surrogate pair).
pub(crate) fn unescape(b: &[u8], i: usize) -> Result<(char, usize), EscapeError> {
    let c = match b.get(i + 1) {
        Some(b'"') => '"',
        Some(b'\\') => '\\',
        Some(b'/') => '/',
        Some(b'b') => '\u{8}',
        Some(b'f') => '\u{c}',
        Some(b'n') => '\n',
        Some(b'r') => '\r',
        Some(b't') => '\t',
        Some(b'u') => return unicode(b, i),
        _ => return Err(EscapeError::Unknown),
    };
    Ok((c, 2))
}

/// `\uXXXX` at `i`, with its low surrogate when it is a high one.
fn unicode(b: &[u8], i: usize) -> Result<(char, usize), EscapeError> {
    let hi = hex4(b, i + 2).ok_or(EscapeError::Hex { at: i + 2 })?;
    match hi {
        0xD800..=0xDBFF => {
            if b.get(i + 6..i + 8) != Some(b"\\u") {
                return Err(EscapeError::LoneHigh);
            }
            let lo = hex4(b, i + 8).ok_or(EscapeError::LowHex { at: i + 8 })?;
            if !(0xDC00..=0xDFFF).contains(&lo) {
                return Err(EscapeError::LoneHigh);
            }
            let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            Ok((char::from_u32(c).expect("a valid surrogate pair"), 12))
        }
        0xDC00..=0xDFFF => Err(EscapeError::LoneLow),
        _ => Ok((char::from_u32(hi).expect("not a surrogate"), 6)),
    }
}

/// Exactly four hex digits at `at` (not `u32::from_str_radix`, which also takes a sign).
fn hex4(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?
        .iter()
        .try_fold(0, |v, &d| Some(v * 16 + char::from(d).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_and_errors_say_which() {
        assert_eq!(unescape(br#"\n"#, 0), Ok(('\n', 2)));
        assert_eq!(unescape(br#"\u00e9"#, 0), Ok(('é', 6)));
        assert_eq!(unescape(br#"\ud83d\ude00"#, 0), Ok(('😀', 12)));
        assert_eq!(unescape(br#"\x"#, 0), Err(EscapeError::Unknown));
        assert_eq!(unescape(br#"\u+041"#, 0), Err(EscapeError::Hex { at: 2 }));
        assert_eq!(unescape(br#"\u00"#, 0), Err(EscapeError::Hex { at: 2 }));
        assert_eq!(unescape(br#"\ud83dx"#, 0), Err(EscapeError::LoneHigh));
        assert_eq!(unescape(br#"\ud83d\u0041"#, 0), Err(EscapeError::LoneHigh));
        assert_eq!(
            unescape(br#"\ud83d\uzz00"#, 0),
            Err(EscapeError::LowHex { at: 8 })
        );
        assert_eq!(unescape(br#"\ude00"#, 0), Err(EscapeError::LoneLow));
    }
}
