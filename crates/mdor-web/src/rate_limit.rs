//! Per-address limits on unauthenticated routes (sign-in): a token bucket per client address,
//! in memory. A request that finds its bucket empty is answered 429 with `Retry-After`
//! before any password is hashed, so that one address cannot spend the server's CPU on
//! guesses or spray passwords across many accounts faster than the bucket refills.
//!
//! In memory is enough for one `mdor serve`: a restart refills every bucket, which costs an
//! attacker one burst; the per-account soft lock (`mdor_service::accounts`) is stored and
//! survives restarts. IPv6 clients are counted per /64, the block one subscriber is usually
//! given, so that rotating addresses within it does not buy more attempts.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A bucket's size and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Attempts an address may make at once.
    pub burst: u32,
    /// One more attempt is allowed per this much time, up to `burst`.
    pub refill_every: Duration,
}

impl RateLimit {
    /// Sign-in: ten attempts at once, then one every six seconds (ten a minute).
    pub const SIGN_IN: RateLimit = RateLimit {
        burst: 10,
        refill_every: Duration::from_secs(6),
    };

    /// Refused anonymous requests (an unknown or malformed token or session): generous
    /// enough for a client whose token was just revoked to notice, tight enough that one
    /// address adds at most one audit entry a second once its burst is spent.
    pub const REFUSALS: RateLimit = RateLimit {
        burst: 200,
        refill_every: Duration::from_secs(1),
    };
}

/// Buckets of this many addresses at most are kept; beyond it, full buckets (addresses that
/// have been quiet long enough to have their whole burst back) are forgotten.
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// The buckets of one limited route.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Attempts available, fractional while refilling.
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one attempt from `address`'s bucket at `now`; when it is empty, how long until
    /// the next attempt is allowed, in whole seconds (at least one).
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), u64> {
        let key = bucket_key(address);
        // A panic while holding the lock leaves the map consistent (every update is one
        // assignment), so a poisoned lock is still safe to use.
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED_ADDRESSES && !buckets.contains_key(&key) {
            let limit = self.limit;
            buckets.retain(|_, bucket| bucket.refilled(limit, now).tokens < f64::from(limit.burst));
        }
        let bucket = buckets
            .get(&key)
            .map(|bucket| bucket.refilled(self.limit, now))
            .unwrap_or(Bucket {
                tokens: f64::from(self.limit.burst),
                updated: now,
            });
        if bucket.tokens >= 1.0 {
            buckets.insert(
                key,
                Bucket {
                    tokens: bucket.tokens - 1.0,
                    updated: now,
                },
            );
            return Ok(());
        }
        buckets.insert(key, bucket);
        let wait = self.limit.refill_every.as_secs_f64() * (1.0 - bucket.tokens);
        Err((wait.ceil() as u64).max(1))
    }
}

impl Bucket {
    fn refilled(self, limit: RateLimit, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(self.updated);
        let gained = elapsed.as_secs_f64() / limit.refill_every.as_secs_f64().max(f64::EPSILON);
        Bucket {
            tokens: (self.tokens + gained).min(f64::from(limit.burst)),
            updated: now,
        }
    }
}

/// The address a bucket is kept under: IPv4 as is, IPv6 by its /64 (an IPv4-mapped IPv6
/// address as the IPv4 address it maps).
fn bucket_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        burst: 3,
        refill_every: Duration::from_secs(10),
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_gets_its_burst_then_waits_for_the_refill() {
        let limiter = RateLimiter::new(LIMIT);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(ip("192.0.2.1"), start), Ok(()));
        }
        assert_eq!(limiter.check(ip("192.0.2.1"), start), Err(10));
        // Another address has its own bucket.
        assert_eq!(limiter.check(ip("192.0.2.2"), start), Ok(()));
        // Four seconds on, six remain until the next attempt; at ten it is allowed, once.
        let later = start + Duration::from_secs(4);
        assert_eq!(limiter.check(ip("192.0.2.1"), later), Err(6));
        let refilled = start + Duration::from_secs(10);
        assert_eq!(limiter.check(ip("192.0.2.1"), refilled), Ok(()));
        assert_eq!(limiter.check(ip("192.0.2.1"), refilled), Err(10));
        // A long quiet spell refills only up to the burst.
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(limiter.check(ip("192.0.2.1"), much_later), Ok(()));
        }
        assert!(limiter.check(ip("192.0.2.1"), much_later).is_err());
    }

    #[test]
    fn ipv6_addresses_in_one_slash_64_share_a_bucket() {
        let limiter = RateLimiter::new(LIMIT);
        let now = Instant::now();
        for address in [
            "2001:db8:1:2::1",
            "2001:db8:1:2::2",
            "2001:db8:1:2:ffff:1:2:3",
        ] {
            assert_eq!(limiter.check(ip(address), now), Ok(()));
        }
        assert!(limiter.check(ip("2001:db8:1:2:abcd::9"), now).is_err());
        assert_eq!(limiter.check(ip("2001:db8:1:3::1"), now), Ok(()));
        // An IPv4-mapped address counts as its IPv4 address.
        for _ in 0..3 {
            assert_eq!(limiter.check(ip("198.51.100.7"), now), Ok(()));
        }
        assert!(limiter.check(ip("::ffff:198.51.100.7"), now).is_err());
    }
}
