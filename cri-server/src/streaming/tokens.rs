//! Single-use tokens naming a validated request, as containerd's streaming server hands
//! out: random, consumed by the first connection that presents them, gone after a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// How long a token stays valid (containerd's and kubelet's cache TTL).
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(60);

/// Most tokens outstanding at once (kubelet's cache holds 1000).
const MAX_TOKENS: usize = 1000;

/// Tokens and the requests they stand for.
pub(crate) struct Tokens<T> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, T)>>,
}

impl<T> Tokens<T> {
    pub(crate) fn new(ttl: Duration) -> Tokens<T> {
        Tokens {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `request` under a new random token; `None` when the cache is full.
    pub(crate) fn insert(&self, request: T) -> Option<String> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        entries.retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
        if entries.len() >= MAX_TOKENS {
            return None;
        }
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
        entries.insert(token.clone(), (now, request));
        Some(token)
    }

    /// Takes the request for `token` out: a second use, or one after the TTL, finds
    /// nothing.
    pub(crate) fn consume(&self, token: &str) -> Option<T> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (at, request) = entries.remove(token)?;
        (at.elapsed() < self.ttl).then_some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_single_use_and_expire() {
        let tokens = Tokens::new(Duration::from_millis(50));
        let a = tokens.insert(1).expect("room");
        let b = tokens.insert(2).expect("room");
        assert_ne!(a, b);
        assert_eq!(tokens.consume(&a), Some(1));
        assert_eq!(tokens.consume(&a), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(tokens.consume(&b), None);
        assert_eq!(tokens.consume("nope"), None);
    }
}
