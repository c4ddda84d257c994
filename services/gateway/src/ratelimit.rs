//! Per-client token buckets (by user id when signed in, else by address). Kept in memory: each
//! gateway replica limits what passes through it, which is what protects the services behind
//! it, and no request pays a round trip to a shared store. Sharded to keep lock contention low.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

const SHARDS: usize = 16;
/// Beyond this many buckets in a shard, full (idle) buckets are dropped.
const MAX_BUCKETS_PER_SHARD: usize = 10_000;

/// Whose bucket a request draws from. A value, not a formatted string: the key is made and
/// hashed on every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    User(Uuid),
    /// An IPv4 address, or an IPv6 address with its last 64 bits cleared.
    Network(IpAddr),
    Unknown,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<ClientKey, Bucket>>>,
}

impl RateLimiter {
    pub fn new(per_sec: f64, burst: f64) -> Self {
        Self {
            per_sec,
            burst: burst.max(1.0),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// `Ok(())` to go ahead, `Err(seconds)` to wait before the next request would pass.
    pub fn check(&self, key: ClientKey) -> Result<(), u64> {
        let mut shard = self.shards[self.hasher.hash_one(key) as usize % SHARDS]
            .lock()
            .expect("rate limit lock");
        let now = Instant::now();
        if shard.len() >= MAX_BUCKETS_PER_SHARD {
            let (per_sec, burst) = (self.per_sec, self.burst);
            shard
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let bucket = shard.entry(key).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        bucket.tokens = (bucket.tokens
            + now.duration_since(bucket.at).as_secs_f64() * self.per_sec)
            .min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// The bucket of a client without a session: its address, or the /64 of an IPv6 one.
pub fn address_key(ip: IpAddr) -> ClientKey {
    ClientKey::Network(souk_common::client_net::rate_limit_addr(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_limits_each_key_alone() {
        let limiter = RateLimiter::new(1.0, 3.0);
        let (a, b) = (
            ClientKey::User(Uuid::now_v7()),
            ClientKey::User(Uuid::now_v7()),
        );
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        assert_eq!(limiter.check(a), Err(1));
        assert!(limiter.check(b).is_ok());
        assert!(limiter.check(ClientKey::Unknown).is_ok());
    }

    #[test]
    fn an_address_key_names_the_client_network() {
        let key = |ip: &str| address_key(ip.parse().unwrap());
        let network = |ip: &str| ClientKey::Network(ip.parse().unwrap());
        assert_eq!(key("203.0.113.7"), network("203.0.113.7"));
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
        assert_eq!(key("2001:db8:1:2:ffff::9"), network("2001:db8:1:2::"));
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:1234:5678:9abc")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}
