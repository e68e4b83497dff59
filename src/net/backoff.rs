//! Exponential backoff with jitter for reconnects. The RNG is passed in, so
//! tests can use a seeded one.
//!
//! delay(n) = min(max, initial * multiplier^n), then reduced by a random
//! fraction in `[0, jitter)` so links of a pool do not reconnect in lockstep.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::duration_serde;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    #[serde(with = "duration_serde")]
    pub initial: Duration,
    #[serde(with = "duration_serde")]
    pub max: Duration,
    pub multiplier: f64,
    /// Fraction of the delay that is randomised, 0.0..=1.0.
    pub jitter: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

/// Backoff state of one reconnecting link.
#[derive(Debug, Clone)]
pub struct Backoff {
    cfg: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    pub fn new(cfg: BackoffConfig) -> Self {
        Backoff { cfg, attempt: 0 }
    }

    /// Failed attempts since the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// After a successful connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt; counts one failed attempt.
    pub fn next_delay<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let exp = self
            .cfg
            .multiplier
            .max(1.0)
            .powi(self.attempt.min(64) as i32);
        let base = (self.cfg.initial.as_secs_f64() * exp).min(self.cfg.max.as_secs_f64());
        self.attempt = self.attempt.saturating_add(1);
        let jitter = self.cfg.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter * rng.gen::<f64>();
        Duration::from_secs_f64((base * factor).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn grows_caps_and_resets() {
        let cfg = BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.0,
        };
        let mut b = Backoff::new(cfg);
        let mut rng = StdRng::seed_from_u64(1);
        let ms: Vec<u128> = (0..6).map(|_| b.next_delay(&mut rng).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(&mut rng), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_in_range() {
        let cfg = BackoffConfig {
            jitter: 0.5,
            ..BackoffConfig::default()
        };
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let mut b = Backoff::new(cfg.clone());
            let d = b.next_delay(&mut rng);
            assert!(
                d <= Duration::from_millis(100) && d >= Duration::from_millis(50),
                "{d:?}"
            );
        }
    }
}
