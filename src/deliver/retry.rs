//! When to try a failed delivery again: exponential backoff with full jitter, `Retry-After`
//! (seconds or HTTP date), and the retry horizon after which a delivery is dead-lettered.
//!
//! Pure (the caller passes the clock and the random draw), so every rule is unit-tested here.

use std::time::Duration;

use time::OffsetDateTime;
use time::macros::format_description;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Upper bound of the first retry's delay.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Give up this long after the delivery was queued.
    pub horizon: Duration,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again at this instant.
    RetryAt(OffsetDateTime),
    /// The horizon has passed: dead-letter.
    GiveUp,
}

impl Backoff {
    /// Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): a delay drawn
    /// uniformly from `[0, min(max, initial * 2^attempts))`, so that receivers coming back after
    /// an outage are not hit by every queue at once. `unit` is a uniform draw from `[0, 1)`.
    pub fn delay(&self, attempts: u32, unit: f64) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32.checked_shl(attempts.min(31)).unwrap_or(u32::MAX))
            .min(self.max);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The next attempt after `attempts` failed ones (this one included), given when the
    /// delivery was queued and the receiver's `Retry-After`, if any. The receiver's wish is a
    /// floor (never sooner than it asked), the horizon a ceiling: the last attempt happens at
    /// the horizon, and a failure at or after it gives up.
    pub fn next(
        &self,
        attempts: u32,
        unit: f64,
        queued_at: OffsetDateTime,
        now: OffsetDateTime,
        retry_after: Option<OffsetDateTime>,
    ) -> Next {
        let deadline = queued_at + self.horizon;
        if now >= deadline {
            return Next::GiveUp;
        }
        let mut at = now + self.delay(attempts.saturating_sub(1), unit);
        if let Some(wish) = retry_after {
            at = at.max(wish);
        }
        Next::RetryAt(at.min(deadline))
    }
}

/// A `Retry-After` header value (RFC 9110 §10.2.3): delay-seconds or an HTTP-date, as the
/// instant to retry at. `None` for anything else (it is then ignored, not an error).
pub fn retry_after(value: &str, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        // A year is more than any horizon; larger values would only overflow.
        return Some(now + Duration::from_secs(seconds.min(366 * 24 * 3600)));
    }
    let imf = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(value, imf)
        .ok()
        .map(|t| t.assume_utc())
}

/// A uniform draw from `[0, 1)` from the operating system's generator (the jitter needs no
/// reproducibility, only independence between instances).
pub fn unit_random() -> f64 {
    let mut bytes = [0u8; 8];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            horizon: Duration::from_secs(3600),
        }
    }

    #[test]
    fn delay_grows_exponentially_up_to_the_cap() {
        let b = backoff();
        let almost_one = 0.999_999;
        assert!(b.delay(0, almost_one) < Duration::from_secs(1));
        assert!(b.delay(3, almost_one) > Duration::from_millis(7_900));
        assert!(b.delay(3, almost_one) < Duration::from_secs(8));
        assert!(b.delay(20, almost_one) <= Duration::from_secs(60));
        assert!(b.delay(200, almost_one) <= Duration::from_secs(60));
        assert_eq!(b.delay(5, 0.0), Duration::ZERO);
    }

    #[test]
    fn retry_after_is_a_floor_and_the_horizon_a_ceiling() {
        let b = backoff();
        let queued = datetime!(2026-11-01 09:00 UTC);
        let now = queued + Duration::from_secs(10);
        let wish = now + Duration::from_secs(120);
        assert_eq!(b.next(1, 0.5, queued, now, Some(wish)), Next::RetryAt(wish));
        let late = queued + Duration::from_secs(3590);
        assert_eq!(
            b.next(9, 0.9, queued, late, None),
            Next::RetryAt(queued + Duration::from_secs(3600))
        );
        assert_eq!(
            b.next(10, 0.9, queued, queued + Duration::from_secs(3600), None),
            Next::GiveUp
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = datetime!(2026-11-01 09:00 UTC);
        assert_eq!(
            retry_after("120", now),
            Some(now + Duration::from_secs(120))
        );
        assert_eq!(
            retry_after("Sun, 01 Nov 2026 09:05:00 GMT", now),
            Some(datetime!(2026-11-01 09:05 UTC))
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

    #[test]
    fn unit_random_is_in_range() {
        for _ in 0..1000 {
            let u = unit_random();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }
}
