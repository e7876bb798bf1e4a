//! Exponential backoff with jitter, for redialing the gateway.
//!
//! Each delay is twice the one before, starting at `min` and capped at
//! `max`, then shortened by a random fraction of up to `jitter` of itself
//! (proportional jitter: `delay * (1 - jitter * r)`, `r` uniform in
//! `[0, 1)`), so agents that lost the gateway together do not all dial it
//! again in the same instant. Every delay is therefore within
//! `[min * (1 - jitter), max]`.
//!
//! The randomness comes from a small xorshift generator seeded from the
//! standard library's per-process random hash keys: good enough to spread
//! redials, not meant for anything secret. This module only computes
//! delays; the caller sleeps them on tokio's clock.

use core::fmt;
use core::hash::{BuildHasher, Hasher};
use core::time::Duration;
use std::collections::hash_map::RandomState;

/// Why [`ExponentialBackoff::try_new`] refused its arguments.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackoffError {
    /// The first delay is zero: the backoff would never wait.
    #[error("the minimum backoff must be greater than zero")]
    ZeroMin,
    /// The first delay is longer than the cap.
    #[error("the minimum backoff {min:?} is greater than the maximum {max:?}")]
    MinAboveMax {
        /// The first delay given.
        min: Duration,
        /// The cap given.
        max: Duration,
    },
    /// The jitter is not a fraction between 0 and 1.
    #[error("the backoff jitter must be between 0 and 1, not {0}")]
    Jitter(f64),
}

/// Delays that double from `min` up to `max`, with proportional jitter.
///
/// Call [`next_delay`](Self::next_delay) after each failure and
/// [`reset`](Self::reset) after a success.
#[derive(Clone)]
pub struct ExponentialBackoff {
    min: Duration,
    max: Duration,
    jitter: f64,
    /// The delay before jitter that the next call gives.
    next: Duration,
    rng: XorShift64,
}

impl fmt::Debug for ExponentialBackoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExponentialBackoff")
            .field("min", &self.min)
            .field("max", &self.max)
            .field("jitter", &self.jitter)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl ExponentialBackoff {
    /// A backoff starting at `min`, doubling up to `max`, each delay
    /// shortened by up to the fraction `jitter` of itself.
    ///
    /// Refuses a zero `min`, a `min` above `max`, and a `jitter` outside
    /// `0..=1` (or not a number).
    pub fn try_new(min: Duration, max: Duration, jitter: f64) -> Result<Self, BackoffError> {
        if min.is_zero() {
            return Err(BackoffError::ZeroMin);
        }
        if min > max {
            return Err(BackoffError::MinAboveMax { min, max });
        }
        if !(0.0..=1.0).contains(&jitter) {
            return Err(BackoffError::Jitter(jitter));
        }
        Ok(ExponentialBackoff {
            min,
            max,
            jitter,
            next: min,
            rng: XorShift64::seeded(),
        })
    }

    /// The first delay, before jitter.
    pub fn min(&self) -> Duration {
        self.min
    }

    /// The cap on every delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// The fraction of a delay that jitter may take off.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The delay to wait now; the one after it will be twice as long
    /// (before jitter), up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = base.saturating_mul(2).min(self.max);
        if self.jitter == 0.0 {
            return base;
        }
        let factor = 1.0 - self.jitter * self.rng.next_unit();
        // `factor` is within (0, 1], so the product is within (0, base];
        // a base too large for an `f64` round trip is kept as it is.
        Duration::try_from_secs_f64(base.as_secs_f64() * factor)
            .map_or(base, |delay| delay.min(base))
    }

    /// Starts over from `min` (after a success).
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Marsaglia's xorshift64: tiny, fast, never zero once seeded non-zero.
#[derive(Clone, Debug)]
struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// Seeded from the standard library's random hash keys (which differ
    /// per process and per call), so two agents do not share a sequence.
    fn seeded() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x9E37_79B9_7F4A_7C15);
        let seed = hasher.finish();
        XorShift64 {
            state: if seed == 0 {
                0x2545_F491_4F6C_DD1D
            } else {
                seed
            },
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    /// Uniform in `[0, 1)`: the top 53 bits as a fraction.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_until_capped_without_jitter() {
        let mut backoff = ExponentialBackoff::try_new(100 * MS, 1000 * MS, 0.0).unwrap();
        let delays: Vec<_> = (0..7).map(|_| backoff.next_delay()).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1000, 1000, 1000].map(|ms| ms * MS)
        );
    }

    #[test]
    fn jittered_delays_stay_within_bounds() {
        let (min, max, jitter) = (100 * MS, 3000 * MS, 0.5);
        let mut backoff = ExponentialBackoff::try_new(min, max, jitter).unwrap();
        let floor = min.mul_f64(1.0 - jitter);
        let mut base = min;
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..1000 {
            let delay = backoff.next_delay();
            assert!(delay <= max, "{delay:?} above the cap");
            assert!(delay >= floor, "{delay:?} below min * (1 - jitter)");
            assert!(delay <= base, "{delay:?} above its base {base:?}");
            assert!(delay >= base.mul_f64(1.0 - jitter), "{delay:?} too short");
            distinct.insert(delay);
            base = (base * 2).min(max);
        }
        assert!(
            distinct.len() > 10,
            "the jitter is not random: {distinct:?}"
        );
    }

    #[test]
    fn full_jitter_never_reaches_zero_from_a_huge_cap() {
        let mut backoff = ExponentialBackoff::try_new(MS, Duration::MAX, 1.0).unwrap();
        for _ in 0..200 {
            assert!(backoff.next_delay() <= Duration::MAX);
        }
    }

    #[test]
    fn reset_goes_back_to_min() {
        let mut backoff = ExponentialBackoff::try_new(50 * MS, 1000 * MS, 0.0).unwrap();
        for _ in 0..10 {
            backoff.next_delay();
        }
        assert_eq!(backoff.next_delay(), 1000 * MS);
        backoff.reset();
        assert_eq!(backoff.next_delay(), 50 * MS);
        assert_eq!(backoff.next_delay(), 100 * MS);
    }

    #[test]
    fn min_equal_to_max_is_constant() {
        let mut backoff = ExponentialBackoff::try_new(70 * MS, 70 * MS, 0.0).unwrap();
        for _ in 0..5 {
            assert_eq!(backoff.next_delay(), 70 * MS);
        }
    }

    #[test]
    fn refuses_bad_arguments() {
        let s = Duration::from_secs(1);
        assert_eq!(
            ExponentialBackoff::try_new(Duration::ZERO, s, 0.1).unwrap_err(),
            BackoffError::ZeroMin
        );
        assert_eq!(
            ExponentialBackoff::try_new(2 * s, s, 0.1).unwrap_err(),
            BackoffError::MinAboveMax { min: 2 * s, max: s }
        );
        for jitter in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                ExponentialBackoff::try_new(s, s, jitter),
                Err(BackoffError::Jitter(_))
            ));
        }
        assert!(ExponentialBackoff::try_new(s, s, 0.0).is_ok());
        assert!(ExponentialBackoff::try_new(s, s, 1.0).is_ok());
    }
}
