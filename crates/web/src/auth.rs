//! HTTP basic authentication against bcrypt hashes.
//!
//! bcrypt is deliberately slow (tens of milliseconds at cost 10), so, like
//! exporter-toolkit, outcomes are cached: the key is an HMAC (with a
//! per-process random key) of the user name, the stored hash and the offered
//! password, so neither passwords nor anything an attacker could brute-force
//! offline sit in memory. The hashing itself runs on the blocking pool, a
//! few at a time, so it never stalls the async runtime and a flood of bad
//! credentials cannot take every core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http::HeaderValue;
use ring::hmac;
use tokio::sync::Semaphore;

use crate::config::WebConfig;

/// How many outcomes the cache keeps.
pub(crate) const CACHE_CAPACITY: usize = 1024;

/// A bcrypt hash (cost 10, like the usual configured ones) of a password no
/// one knows, checked for unknown users so that timing does not tell which
/// user names exist. (exporter-toolkit's "fakepassword" hash.)
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Checks credentials; one per [`serve`](crate::serve) call, shared by its
/// connections.
pub(crate) struct Authenticator {
    key: hmac::Key,
    cache: Mutex<Cache>,
    bcrypt_slots: Arc<Semaphore>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    pub(crate) fn new() -> Authenticator {
        let rng = ring::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .expect("the system random number generator works");
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Authenticator {
            key,
            cache: Mutex::new(Cache::default()),
            bcrypt_slots: Arc::new(Semaphore::new((cores / 2).max(1))),
        }
    }

    /// Whether a request with this `Authorization` header may pass.
    pub(crate) async fn check(&self, config: &WebConfig, header: Option<&HeaderValue>) -> bool {
        if config.users.is_empty() {
            return true;
        }
        let Some((user, password)) = header.and_then(parse_basic) else {
            return false;
        };
        let stored = std::str::from_utf8(&user)
            .ok()
            .and_then(|u| config.users.get(u));
        let known_user = stored.is_some();
        let hash = stored.map_or(DUMMY_HASH, String::as_str).to_owned();

        let mut mac = hmac::Context::with_key(&self.key);
        for part in [&user[..], hash.as_bytes(), &password[..]] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let cache_key: [u8; 32] = mac
            .sign()
            .as_ref()
            .try_into()
            .expect("HMAC-SHA256 tags are 32 bytes");

        if let Some(ok) = self.lock_cache().get(&cache_key) {
            return ok && known_user;
        }
        let ok = match self.bcrypt_slots.clone().acquire_owned().await {
            Ok(permit) => tokio::task::spawn_blocking(move || {
                let _permit = permit;
                bcrypt::verify(&password, &hash).unwrap_or(false)
            })
            .await
            .unwrap_or(false),
            Err(_) => false, // the semaphore is never closed
        };
        let ok = ok && known_user;
        self.lock_cache().insert(cache_key, ok);
        ok
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.lock_cache().entries.len()
    }
}

/// `Basic <base64(user:password)>` → (user, password).
fn parse_basic(header: &HeaderValue) -> Option<(Vec<u8>, Vec<u8>)> {
    let value = header.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let encoded = rest.trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = decoded[..colon].to_vec();
    let password = decoded[colon + 1..].to_vec();
    Some((user, password))
}

/// Outcomes of past checks, least recently used evicted first.
#[derive(Default)]
struct Cache {
    entries: HashMap<[u8; 32], (bool, u64)>,
    clock: u64,
}

impl Cache {
    fn get(&mut self, key: &[u8; 32]) -> Option<bool> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(ok, used)| {
            *used = clock;
            *ok
        })
    }

    fn insert(&mut self, key: [u8; 32], ok: bool) {
        self.clock += 1;
        if self.entries.len() >= CACHE_CAPACITY && !self.entries.contains_key(&key) {
            // Runs only after a bcrypt computation, which costs far more than
            // this scan.
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (ok, self.clock));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[test]
    fn parses_basic_headers() {
        assert_eq!(
            parse_basic(&header("alice", "pa:ss")),
            Some((b"alice".to_vec(), b"pa:ss".to_vec()))
        );
        let lower = HeaderValue::from_static("basic YWxpY2U6eA==");
        assert_eq!(
            parse_basic(&lower),
            Some((b"alice".to_vec(), b"x".to_vec()))
        );
        for bad in [
            "Bearer YWxpY2U6eA==",
            "Basic",
            "Basic !!!",
            "Basic YWxpY2U=",
        ] {
            assert_eq!(parse_basic(&HeaderValue::from_static(bad)), None, "{bad}");
        }
    }

    #[test]
    fn dummy_hash_is_a_valid_hash() {
        assert!(DUMMY_HASH.parse::<bcrypt::HashParts>().is_ok());
        assert_eq!(bcrypt::verify("fakepassword", DUMMY_HASH).ok(), Some(true));
    }

    #[test]
    fn cache_is_bounded_and_keeps_recent_entries() {
        let mut cache = Cache::default();
        let key = |i: usize| {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k
        };
        cache.insert(key(0), true);
        for i in 1..CACHE_CAPACITY * 2 {
            assert_eq!(cache.get(&key(0)), Some(true), "entry 0 stays while used");
            cache.insert(key(i), false);
            assert!(cache.entries.len() <= CACHE_CAPACITY);
        }
        assert_eq!(cache.get(&key(1)), None, "old unused entries were evicted");
    }

    #[tokio::test]
    async fn checks_and_caches() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let config = WebConfig::from_yaml(
            &format!("basic_auth_users:\n  alice: '{hash}'\n"),
            Path::new("."),
        )
        .unwrap();
        let auth = Authenticator::new();
        assert!(auth.check(&config, Some(&header("alice", "secret"))).await);
        assert_eq!(auth.cached(), 1);
        assert!(auth.check(&config, Some(&header("alice", "secret"))).await);
        assert_eq!(auth.cached(), 1, "second check answered from the cache");
        assert!(!auth.check(&config, Some(&header("alice", "wrong"))).await);
        assert!(
            !auth
                .check(&config, Some(&header("mallory", "secret")))
                .await
        );
        assert!(
            !auth
                .check(&config, Some(&header("mallory", "fakepassword")))
                .await
        );
        assert!(!auth.check(&config, None).await);
        assert!(auth.check(&WebConfig::none(), None).await);
    }
}
