//! FHIRPath `Decimal`: an exact base-10 number (mantissa and scale), so `0.1 + 0.2 = 0.3` and `1.50`
//! keeps its precision. Arithmetic that overflows gives `None`, which the evaluator turns into empty.

use std::cmp::Ordering;
use std::fmt;

/// Scale kept by division results before trailing zeros are trimmed (the spec asks for at least 8).
const DIV_SCALE: u32 = 16;
/// Largest scale accepted from input; more digits than i128 holds are not meaningful for FHIR.
const MAX_SCALE: u32 = 30;

/// An exact decimal `mantissa / 10^scale`.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    mantissa: i128,
    scale: u32,
}

fn pow10(n: u32) -> Option<i128> {
    10i128.checked_pow(n)
}

impl Decimal {
    /// A decimal from an integer.
    pub fn from_i64(v: i64) -> Self {
        Decimal {
            mantissa: i128::from(v),
            scale: 0,
        }
    }

    /// Parses JSON / FHIRPath number text (`-1.50`, `3`, `1e-3`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (mantissa_text, exp) = match text.find(['e', 'E']) {
            Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
            None => (text, 0),
        };
        let (neg, digits) = match mantissa_text.as_bytes().first()? {
            b'-' => (true, &mantissa_text[1..]),
            b'+' => (false, &mantissa_text[1..]),
            _ => (false, mantissa_text),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let mut mantissa: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            if !b.is_ascii_digit() {
                return None;
            }
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(i128::from(b - b'0'))?;
        }
        let mut scale = i64::try_from(frac_part.len()).ok()? - i64::from(exp);
        while scale < 0 {
            mantissa = mantissa.checked_mul(10)?;
            scale += 1;
        }
        let scale = u32::try_from(scale).ok()?;
        if scale > MAX_SCALE {
            return None;
        }
        Some(Decimal {
            mantissa: if neg { -mantissa } else { mantissa },
            scale,
        })
    }

    /// Number of digits after the decimal point, as written.
    pub fn scale(&self) -> u32 {
        self.scale
    }

    /// The value as an integer when it has no fractional part.
    pub fn to_i64(&self) -> Option<i64> {
        let p = pow10(self.scale)?;
        if self.mantissa % p != 0 {
            return None;
        }
        i64::try_from(self.mantissa / p).ok()
    }

    /// An approximation, for functions such as `sqrt` or `power` that are defined on reals.
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// A decimal from a float (used for results of `sqrt`, `ln`, ...).
    pub fn from_f64(v: f64) -> Option<Self> {
        if !v.is_finite() {
            return None;
        }
        Decimal::parse(&format!("{v}"))
    }

    fn rescale(&self, scale: u32) -> Option<i128> {
        self.mantissa
            .checked_mul(pow10(scale.checked_sub(self.scale)?)?)
    }

    fn aligned(a: &Self, b: &Self) -> Option<(i128, i128, u32)> {
        let s = a.scale.max(b.scale);
        Some((a.rescale(s)?, b.rescale(s)?, s))
    }

    pub fn checked_add(&self, o: &Self) -> Option<Self> {
        let (a, b, s) = Self::aligned(self, o)?;
        Some(Decimal {
            mantissa: a.checked_add(b)?,
            scale: s,
        })
    }

    pub fn checked_sub(&self, o: &Self) -> Option<Self> {
        self.checked_add(&o.neg())
    }

    pub fn checked_mul(&self, o: &Self) -> Option<Self> {
        let scale = self.scale + o.scale;
        if scale > MAX_SCALE + DIV_SCALE {
            return None;
        }
        Some(Decimal {
            mantissa: self.mantissa.checked_mul(o.mantissa)?,
            scale,
        })
        .map(|d| d.trim_to(MAX_SCALE))
    }

    /// `self / o`, `None` when `o` is zero or on overflow; trailing zeros trimmed.
    pub fn checked_div(&self, o: &Self) -> Option<Self> {
        if o.mantissa == 0 {
            return None;
        }
        // (ma / 10^sa) / (mb / 10^sb) = (ma * 10^(sb + S)) / (mb * 10^sa) / 10^S
        let num = self.mantissa.checked_mul(pow10(o.scale + DIV_SCALE)?)?;
        let den = o.mantissa.checked_mul(pow10(self.scale)?)?;
        let q = num / den;
        let r = num % den;
        // Round half away from zero.
        let q = if r.checked_mul(2)?.abs() >= den.abs() {
            if (num < 0) ^ (den < 0) { q - 1 } else { q + 1 }
        } else {
            q
        };
        Some(
            Decimal {
                mantissa: q,
                scale: DIV_SCALE,
            }
            .trimmed(),
        )
    }

    /// Truncating division (`div`), `None` on zero divisor.
    pub fn checked_div_trunc(&self, o: &Self) -> Option<Self> {
        let (a, b, _) = Self::aligned(self, o)?;
        if b == 0 {
            return None;
        }
        Some(Decimal {
            mantissa: a / b,
            scale: 0,
        })
    }

    /// Remainder of truncating division (`mod`), `None` on zero divisor.
    pub fn checked_rem(&self, o: &Self) -> Option<Self> {
        let (a, b, s) = Self::aligned(self, o)?;
        if b == 0 {
            return None;
        }
        Some(Decimal {
            mantissa: a % b,
            scale: s,
        })
    }

    pub fn neg(&self) -> Self {
        Decimal {
            mantissa: -self.mantissa,
            scale: self.scale,
        }
    }

    pub fn abs(&self) -> Self {
        Decimal {
            mantissa: self.mantissa.abs(),
            scale: self.scale,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    /// Removes trailing fractional zeros (`2.500` -> `2.5`).
    pub fn trimmed(mut self) -> Self {
        while self.scale > 0 && self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.scale -= 1;
        }
        self
    }

    fn trim_to(mut self, max: u32) -> Self {
        while self.scale > max {
            self.mantissa /= 10;
            self.scale -= 1;
        }
        self
    }

    /// Rounds to `digits` fractional digits, half away from zero.
    pub fn round(&self, digits: u32) -> Option<Self> {
        if digits >= self.scale {
            return Some(*self);
        }
        let p = pow10(self.scale - digits)?;
        let q = self.mantissa / p;
        let r = self.mantissa % p;
        let q = if r.abs() * 2 >= p {
            q + self.mantissa.signum()
        } else {
            q
        };
        Some(Decimal {
            mantissa: q,
            scale: digits,
        })
    }

    /// Largest integer not greater than the value.
    pub fn floor(&self) -> Option<i128> {
        let p = pow10(self.scale)?;
        Some(self.mantissa.div_euclid(p))
    }

    /// Smallest integer not less than the value.
    pub fn ceiling(&self) -> Option<i128> {
        let p = pow10(self.scale)?;
        let f = self.mantissa.div_euclid(p);
        Some(if self.mantissa.rem_euclid(p) == 0 {
            f
        } else {
            f + 1
        })
    }

    /// Integer part, towards zero.
    pub fn truncate(&self) -> Option<i128> {
        Some(self.mantissa / pow10(self.scale)?)
    }

    /// Exact ordering; falls back to float comparison only when aligning scales would overflow.
    pub fn compare(&self, o: &Self) -> Ordering {
        match Self::aligned(self, o) {
            Some((a, b, _)) => a.cmp(&b),
            None => self
                .to_f64()
                .partial_cmp(&o.to_f64())
                .unwrap_or(Ordering::Equal),
        }
    }
}

impl PartialEq for Decimal {
    fn eq(&self, o: &Self) -> bool {
        self.compare(o) == Ordering::Equal
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.mantissa);
        }
        let digits = self.mantissa.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let sign = if self.mantissa < 0 { "-" } else { "" };
        if digits.len() > scale {
            let (i, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{i}.{frac}")
        } else {
            write!(f, "{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_keeping_precision() {
        assert_eq!(d("1.50").to_string(), "1.50");
        assert_eq!(d("-0.05").to_string(), "-0.05");
        assert_eq!(d("1e3").to_string(), "1000");
        assert_eq!(d("1.5E-2").to_string(), "0.015");
        assert!(Decimal::parse("1.2.3").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse("-").is_none());
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(d("0.1").checked_add(&d("0.2")).unwrap(), d("0.3"));
        assert_eq!(d("1.0"), d("1"));
        assert_eq!(d("5").checked_div(&d("2")).unwrap().to_string(), "2.5");
        assert_eq!(
            d("1").checked_div(&d("3")).unwrap().to_string(),
            "0.3333333333333333"
        );
        assert!(d("1").checked_div(&d("0")).is_none());
        assert_eq!(
            d("5.5").checked_div_trunc(&d("0.7")).unwrap().to_string(),
            "7"
        );
        assert_eq!(d("5.5").checked_rem(&d("0.7")).unwrap().to_string(), "0.6");
        assert_eq!(d("-2.5").round(0).unwrap().to_string(), "-3");
        assert_eq!(d("3.14159").round(3).unwrap().to_string(), "3.142");
        assert_eq!(d("-1.2").floor(), Some(-2));
        assert_eq!(d("1.2").ceiling(), Some(2));
    }
}
