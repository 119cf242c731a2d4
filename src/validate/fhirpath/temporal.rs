//! FHIRPath `Date`, `DateTime` and `Time` with the precision they were written with. Comparison follows
//! the spec: values are compared field by field down to the coarser precision, and when they agree that
//! far but one is more precise the result is *empty* (unknown), not false. Seconds and fractions of a
//! second count as one precision.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};

/// Which of the three temporal types a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemporalKind {
    Date,
    DateTime,
    Time,
}

/// The finest field a value states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
}

/// A date, date-time or time, as precise as written. For a `Time` only the time fields are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Temporal {
    pub kind: TemporalKind,
    pub precision: Precision,
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Fraction of the second, in nanoseconds.
    pub nanos: u32,
    /// Number of fractional second digits written (for printing).
    pub frac_digits: u8,
    /// Offset from UTC in minutes, when stated.
    pub offset: Option<i16>,
}

struct Cursor<'s> {
    b: &'s [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Temporal {
    fn empty(kind: TemporalKind) -> Self {
        Temporal {
            kind,
            precision: Precision::Year,
            year: 0,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            nanos: 0,
            frac_digits: 0,
            offset: None,
        }
    }

    /// Parses a date or date-time (`2024`, `2024-03`, `2024-03-01`, `2024-03-01T10:00:00.5+01:00`).
    /// With `literal`, FHIRPath literal forms are accepted too (`2024-03-01T`, `2024T`, hour-only times);
    /// otherwise only the FHIR `date`/`dateTime`/`instant` forms are.
    pub fn parse_date_time(s: &str, literal: bool) -> Option<Self> {
        let mut c = Cursor {
            b: s.as_bytes(),
            i: 0,
        };
        let mut t = Temporal::empty(TemporalKind::Date);
        t.year = i32::try_from(c.digits(4)?).ok()?;
        if c.eat(b'-') {
            t.month = u8::try_from(c.digits(2)?).ok()?;
            t.precision = Precision::Month;
            if !(1..=12).contains(&t.month) {
                return None;
            }
            if c.eat(b'-') {
                t.day = u8::try_from(c.digits(2)?).ok()?;
                t.precision = Precision::Day;
                if t.day == 0 || t.day > days_in_month(t.year, t.month) {
                    return None;
                }
            }
        }
        if c.eat(b'T') {
            t.kind = TemporalKind::DateTime;
            if c.done() {
                return literal.then_some(t);
            }
            if t.precision != Precision::Day {
                return None;
            }
            t.parse_time_fields(&mut c, literal)?;
            if !c.done() {
                t.offset = Some(parse_offset(&mut c)?);
            }
        }
        c.done().then_some(t)
    }

    /// Parses a time (`10:00`, `10:00:00.123`); with `literal` an hour alone is accepted.
    pub fn parse_time(s: &str, literal: bool) -> Option<Self> {
        let mut c = Cursor {
            b: s.as_bytes(),
            i: 0,
        };
        let mut t = Temporal::empty(TemporalKind::Time);
        t.parse_time_fields(&mut c, literal)?;
        c.done().then_some(t)
    }

    fn parse_time_fields(&mut self, c: &mut Cursor<'_>, literal: bool) -> Option<()> {
        self.hour = u8::try_from(c.digits(2)?).ok()?;
        self.precision = Precision::Hour;
        if self.hour > 23 {
            return None;
        }
        if !c.eat(b':') {
            return literal.then_some(());
        }
        self.minute = u8::try_from(c.digits(2)?).ok()?;
        self.precision = Precision::Minute;
        if self.minute > 59 {
            return None;
        }
        if c.eat(b':') {
            self.second = u8::try_from(c.digits(2)?).ok()?;
            self.precision = Precision::Second;
            if self.second > 59 {
                return None;
            }
            if c.eat(b'.') {
                let start = c.i;
                let mut nanos = 0u32;
                let mut n = 0u8;
                while let Some(d) = c.b.get(c.i).filter(|d| d.is_ascii_digit()) {
                    if n < 9 {
                        nanos = nanos * 10 + u32::from(d - b'0');
                        n += 1;
                    }
                    c.i += 1;
                }
                if c.i == start {
                    return None;
                }
                self.frac_digits = n;
                self.nanos = nanos * 10u32.pow(9 - u32::from(n));
            }
        } else if !literal {
            // FHIR dateTime and time always carry seconds.
            if self.kind == TemporalKind::Time {
                return None;
            }
        }
        Some(())
    }

    /// A date-time value for today's date or now, from the system clock.
    pub fn now(kind: TemporalKind) -> Self {
        let now = time::OffsetDateTime::now_utc();
        let mut t = Temporal::empty(kind);
        t.year = now.year();
        t.month = u8::from(now.month());
        t.day = now.day();
        t.precision = Precision::Day;
        if kind != TemporalKind::Date {
            t.hour = now.hour();
            t.minute = now.minute();
            t.second = now.second();
            t.nanos = now.millisecond() as u32 * 1_000_000;
            t.frac_digits = 3;
            t.precision = Precision::Second;
            t.offset = (kind == TemporalKind::DateTime).then_some(0);
        }
        t
    }

    /// Fields in comparison order, after moving to UTC when an offset is stated.
    fn components(&self) -> [i64; 6] {
        let mut t = *self;
        if let (Some(off), true) = (t.offset, t.precision >= Precision::Hour)
            && off != 0
            && t.kind == TemporalKind::DateTime
        {
            let days = days_from_civil(t.year, t.month, t.day);
            let minutes =
                days * 1440 + i64::from(t.hour) * 60 + i64::from(t.minute) - i64::from(off);
            let (y, m, d) = civil_from_days(minutes.div_euclid(1440));
            let rem = minutes.rem_euclid(1440);
            t.year = y;
            t.month = m;
            t.day = d;
            t.hour = (rem / 60) as u8;
            t.minute = (rem % 60) as u8;
        }
        let secs = i64::from(t.second) * 1_000_000_000 + i64::from(t.nanos);
        match t.kind {
            TemporalKind::Time => [i64::from(t.hour), i64::from(t.minute), secs, 0, 0, 0],
            _ => [
                i64::from(t.year),
                i64::from(t.month),
                i64::from(t.day),
                i64::from(t.hour),
                i64::from(t.minute),
                secs,
            ],
        }
    }

    /// Minutes since the epoch as written (ignoring any offset), for coarse ordering.
    fn minutes(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 1440
            + i64::from(self.hour) * 60
            + i64::from(self.minute)
    }

    fn levels(&self) -> usize {
        match self.kind {
            TemporalKind::Time => self.precision as usize - Precision::Hour as usize + 1,
            _ => self.precision as usize + 1,
        }
    }

    /// Spec ordering: `None` when the values are of incompatible kinds, or equal down to the coarser
    /// precision while their precisions differ.
    pub fn compare(&self, o: &Self) -> Option<Ordering> {
        let time_a = self.kind == TemporalKind::Time;
        let time_b = o.kind == TemporalKind::Time;
        if time_a != time_b {
            return None;
        }
        // An offset on one side only: below day precision the instants cannot be lined up, so the
        // answer is unknown (as the spec's test suite has it); dates alone still compare.
        let (a, b) = if self.offset.is_some() != o.offset.is_some() {
            if self.precision >= Precision::Hour && o.precision >= Precision::Hour {
                let (mut x, mut y) = (*self, *o);
                x.offset = None;
                y.offset = None;
                // Only a difference of more than a day (the widest offset span) is certain.
                let (dx, dy) = (x.minutes(), y.minutes());
                if (dx - dy).abs() > 28 * 60 {
                    return Some(dx.cmp(&dy));
                }
                return None;
            }
            let (mut x, mut y) = (*self, *o);
            x.offset = None;
            y.offset = None;
            (x.components(), y.components())
        } else {
            (self.components(), o.components())
        };
        let (la, lb) = (self.levels(), o.levels());
        for i in 0..la.min(lb) {
            match a[i].cmp(&b[i]) {
                Ordering::Equal => {}
                other => return Some(other),
            }
        }
        (la == lb).then_some(Ordering::Equal)
    }

    /// Equivalence (`~`): different precisions are simply not equivalent.
    pub fn equivalent(&self, o: &Self) -> bool {
        self.levels() == o.levels() && self.compare(o) == Some(Ordering::Equal)
    }
}

fn parse_offset(c: &mut Cursor<'_>) -> Option<i16> {
    if c.eat(b'Z') {
        return Some(0);
    }
    let sign = if c.eat(b'+') {
        1
    } else if c.eat(b'-') {
        -1
    } else {
        return None;
    };
    let h = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let m = c.digits(2)?;
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * i16::try_from(h * 60 + m).ok()?)
}

// Howard Hinnant's civil-day algorithms.
fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

impl fmt::Display for Temporal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(32);
        if self.kind != TemporalKind::Time {
            let _ = write!(s, "{:04}", self.year);
            if self.precision >= Precision::Month {
                let _ = write!(s, "-{:02}", self.month);
            }
            if self.precision >= Precision::Day {
                let _ = write!(s, "-{:02}", self.day);
            }
            if self.kind == TemporalKind::DateTime && self.precision >= Precision::Hour {
                s.push('T');
            }
        }
        if self.precision >= Precision::Hour {
            let _ = write!(s, "{:02}", self.hour);
            if self.precision >= Precision::Minute {
                let _ = write!(s, ":{:02}", self.minute);
            }
            if self.precision >= Precision::Second {
                let _ = write!(s, ":{:02}", self.second);
                if self.frac_digits > 0 {
                    let frac = format!("{:09}", self.nanos);
                    let _ = write!(s, ".{}", &frac[..usize::from(self.frac_digits)]);
                }
            }
            if let Some(off) = self.offset {
                if off == 0 {
                    s.push('Z');
                } else {
                    let sign = if off < 0 { '-' } else { '+' };
                    let off = off.unsigned_abs();
                    let _ = write!(s, "{sign}{:02}:{:02}", off / 60, off % 60);
                }
            }
        }
        f.write_str(&s)
    }
}

impl Temporal {
    /// Adds `amount` of a calendar or UCUM time unit (`years`, `'mo'`, `days`, `'h'`, ...), per the spec's
    /// date arithmetic: fractional amounts are truncated, days are clamped to the end of a month, and a
    /// unit finer than the value's precision is ignored for dates. `None` for non-time units.
    pub fn add(&self, amount: i64, unit: &str) -> Option<Temporal> {
        let mut t = *self;
        enum U {
            Month(i64),
            Second(i64),
        }
        let u = match unit {
            "year" | "years" | "a" => U::Month(amount.checked_mul(12)?),
            "month" | "months" | "mo" => U::Month(amount),
            "week" | "weeks" | "wk" => U::Second(amount.checked_mul(7 * 86_400)?),
            "day" | "days" | "d" => U::Second(amount.checked_mul(86_400)?),
            "hour" | "hours" | "h" => U::Second(amount.checked_mul(3_600)?),
            "minute" | "minutes" | "min" => U::Second(amount.checked_mul(60)?),
            "second" | "seconds" | "s" => U::Second(amount),
            "millisecond" | "milliseconds" | "ms" => U::Second(amount / 1000),
            _ => return None,
        };
        match u {
            U::Month(m) => {
                if t.kind == TemporalKind::Time {
                    return None;
                }
                let total = i64::from(t.year) * 12 + i64::from(t.month) - 1 + m;
                t.year = i32::try_from(total.div_euclid(12)).ok()?;
                t.month = (total.rem_euclid(12) + 1) as u8;
                t.day = t.day.min(days_in_month(t.year, t.month));
            }
            U::Second(s) => {
                if t.kind == TemporalKind::Time {
                    let secs = (i64::from(t.hour) * 3600
                        + i64::from(t.minute) * 60
                        + i64::from(t.second)
                        + s)
                        .rem_euclid(86_400);
                    t.hour = (secs / 3600) as u8;
                    t.minute = (secs % 3600 / 60) as u8;
                    t.second = (secs % 60) as u8;
                    return Some(t);
                }
                if t.precision < Precision::Day {
                    return Some(t);
                }
                let base = days_from_civil(t.year, t.month, t.day).checked_mul(86_400)?
                    + i64::from(t.hour) * 3600
                    + i64::from(t.minute) * 60
                    + i64::from(t.second);
                let total = base.checked_add(s)?;
                let (y, mo, d) = civil_from_days(total.div_euclid(86_400));
                let secs = total.rem_euclid(86_400);
                t.year = y;
                t.month = mo;
                t.day = d;
                if t.precision >= Precision::Hour {
                    t.hour = (secs / 3600) as u8;
                    t.minute = (secs % 3600 / 60) as u8;
                    t.second = (secs % 60) as u8;
                }
            }
        }
        (0..=9999).contains(&t.year).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> Temporal {
        Temporal::parse_date_time(s, false).unwrap()
    }

    #[test]
    fn parses_fhir_forms_and_rejects_bad_ones() {
        assert_eq!(dt("2024").precision, Precision::Year);
        assert_eq!(dt("2024-02-29").precision, Precision::Day);
        assert_eq!(
            dt("2024-02-29T10:11:12.345+01:00").to_string(),
            "2024-02-29T10:11:12.345+01:00"
        );
        assert!(Temporal::parse_date_time("2023-02-29", false).is_none());
        assert!(Temporal::parse_date_time("2024-13", false).is_none());
        assert!(Temporal::parse_date_time("2024-01-01T", false).is_none());
        assert!(Temporal::parse_date_time("2024-01-01T", true).is_some());
        assert!(Temporal::parse_date_time("24-01-01", false).is_none());
        assert!(Temporal::parse_time("25:00:00", false).is_none());
    }

    #[test]
    fn compares_per_precision_and_offset() {
        use Ordering::*;
        assert_eq!(dt("2024-01-02").compare(&dt("2024-01-01")), Some(Greater));
        // Same down to the year, different precision: unknown.
        assert_eq!(dt("2024").compare(&dt("2024-01")), None);
        // Different already at the coarser precision: known.
        assert_eq!(dt("2023").compare(&dt("2024-01")), Some(Less));
        assert_eq!(
            dt("2024-01-01T10:00:00+01:00").compare(&dt("2024-01-01T09:00:00Z")),
            Some(Equal)
        );
        assert_eq!(
            dt("2024-01-01T00:30:00+01:00").compare(&dt("2023-12-31T23:30:00Z")),
            Some(Equal)
        );
        // Seconds and milliseconds are one precision.
        assert_eq!(
            dt("2024-01-01T10:00:00Z").compare(&dt("2024-01-01T10:00:00.000Z")),
            Some(Equal)
        );
        assert!(!dt("2024").equivalent(&dt("2024-01")));
    }
}
