//! Anonymous public catalog reads (`GET /api/v1/products/{id}`, `GET /api/v1/products?…`,
//! `GET /api/v1/categories`) answered from the gateway's memory for a short TTL, so a hot read
//! skips the hop to the product service.
//!
//! Freshness (the catalog's contract: a change made through the API is visible on every replica
//! within 1 s): an entry lives at most `ttl` counted from the moment its upstream request was
//! sent, and the product service answered it from a state no older than its own bound (each
//! product replica drops a changed product on `NOTIFY`, within milliseconds). A change is
//! therefore visible here within `ttl` plus the notification's delay; `ttl` is capped at
//! `MAX_TTL` (900 ms) to leave that delay 100 ms of the second. Writes through this gateway
//! replica that can change the catalog (products, categories, orders, payment webhooks) empty
//! it at once, so a client reads its own writes here as it does on the product service.
//!
//! What is stored: only complete 200 answers of at most `MAX_BODY_BYTES` that the product
//! service did not mark `no-store`/`no-cache`/`private`, nor with `Vary` or `Set-Cookie`.
//! Errors are never stored. Requests with `Authorization` are not served from here: the gateway
//! vouches for the caller to the service, which could answer them differently (today it does not,
//! so this only costs signed-in readers the hop). Cookies are ignored: no service reads them.
//!
//! Single flight: concurrent misses for one key make one upstream call; the others wait for its
//! answer and, when it gives nothing storable (an error, an oversized body), go upstream
//! themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use tokio::sync::oneshot;

use crate::routes::API_PREFIX;

/// The longest TTL accepted: with the product service's notification delay it stays inside 1 s.
pub const MAX_TTL: Duration = Duration::from_millis(900);
/// The default TTL (`SOUK_GATEWAY_CACHE_TTL_MS`).
pub const DEFAULT_TTL: Duration = Duration::from_millis(500);
/// Entries kept at most; past it expired ones are dropped, and if none is, nothing new is stored.
const MAX_ENTRIES: usize = 10_000;
/// Larger answers are relayed, not stored (a listing page at the largest page size fits).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Bodies and keys together, at most.
const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;
/// Longer paths with their queries are not cached (nobody's listing needs one).
const MAX_KEY_BYTES: usize = 1024;

/// Says whether an answer came from the gateway's memory (`hit`) or was fetched for it (`miss`).
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-gateway-cache");

/// Upstream response headers not stored: they describe one exchange, not the resource. The
/// gateway's own layers set the request id of the request being answered, and hyper the date.
const NOT_STORED: [HeaderName; 3] = [
    HeaderName::from_static("x-request-id"),
    header::DATE,
    header::CONTENT_LENGTH,
];

/// Headers a 304 carries along with the `ETag` (RFC 9110 §15.4.5), and the product's `X-Cache`.
const KEPT_ON_304: [HeaderName; 5] = [
    header::CACHE_CONTROL,
    header::EXPIRES,
    header::VARY,
    header::CONTENT_LOCATION,
    HeaderName::from_static("x-cache"),
];

/// The cache key of a request the cache may answer: path and raw query, or `None`.
pub fn key(method: &Method, headers: &HeaderMap, path_and_query: &str) -> Option<String> {
    if method != Method::GET || headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    if path_and_query.len() > MAX_KEY_BYTES {
        return None;
    }
    let path = path_and_query.split('?').next().unwrap_or("");
    let rest = path.strip_prefix(API_PREFIX)?;
    let catalog = match rest.split_once('/') {
        None => rest == "products" || rest == "categories",
        Some(("products", id)) => !id.is_empty() && !id.contains('/'),
        Some(_) => false,
    };
    catalog.then(|| path_and_query.to_owned())
}

/// A stored 200 answer. Shared by every hit through an `Arc`; the body is never copied.
pub struct Entry {
    headers: HeaderMap,
    body: Bytes,
    expires_at: Instant,
}

impl Entry {
    /// The entry for an upstream answer, if it may be stored. `sent_at`: when the upstream
    /// request left, from which the entry's age counts.
    pub fn storable(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        sent_at: Instant,
        ttl: Duration,
    ) -> Option<Self> {
        if status != StatusCode::OK
            || body.len() > MAX_BODY_BYTES
            || headers.contains_key(header::VARY)
            || headers.contains_key(header::SET_COOKIE)
            || headers
                .get_all(header::CACHE_CONTROL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|d| {
                    d.trim()
                        .split('=')
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase()
                })
                .any(|d| matches!(d.as_str(), "no-store" | "no-cache" | "private"))
        {
            return None;
        }
        let mut headers = headers.clone();
        for name in &NOT_STORED {
            headers.remove(name);
        }
        Some(Self {
            headers,
            body,
            expires_at: sent_at + ttl,
        })
    }

    fn size(&self) -> usize {
        self.body.len()
    }

    /// 200 with the stored body, or 304 when the request's `If-None-Match` names its `ETag`
    /// (compared as the product service does: weakly, `*` matches).
    pub fn respond(&self, request: &HeaderMap, source: &'static str) -> Response {
        let source = (CACHE_HEADER, HeaderValue::from_static(source));
        if let Some(etag) = self.headers.get(header::ETAG)
            && if_none_match(request, etag)
        {
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            let headers = res.headers_mut();
            headers.insert(header::ETAG, etag.clone());
            for name in &KEPT_ON_304 {
                for value in self.headers.get_all(name) {
                    headers.append(name, value.clone());
                }
            }
            headers.insert(source.0, source.1);
            return res;
        }
        let mut res = Response::new(Body::from(self.body.clone()));
        *res.headers_mut() = self.headers.clone();
        res.headers_mut().insert(source.0, source.1);
        res
    }
}

fn if_none_match(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let tag = etag.as_bytes();
    let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").as_bytes() == tag)
}

/// What a lookup found.
pub enum Lookup<'a> {
    Hit(Arc<Entry>),
    /// Nobody is fetching this key: the caller does, and must `finish` (or drop) the flight.
    Lead(Flight<'a>),
    /// Another request is fetching it: wait for its entry (`None`: fetch alone).
    Wait(oneshot::Receiver<Option<Arc<Entry>>>),
}

struct InFlight {
    id: u64,
    waiters: Vec<oneshot::Sender<Option<Arc<Entry>>>>,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Arc<Entry>>,
    /// Bytes of the stored bodies and keys.
    bytes: usize,
    flights: HashMap<String, InFlight>,
    next_flight: u64,
}

impl State {
    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= old.size() + key.len();
        }
    }

    /// Makes room for `size` more bytes and one more entry, dropping expired entries if needed.
    fn has_room(&mut self, size: usize, now: Instant) -> bool {
        let fits = |s: &Self| s.entries.len() < MAX_ENTRIES && s.bytes + size <= MAX_TOTAL_BYTES;
        if fits(self) {
            return true;
        }
        let mut freed = 0;
        self.entries.retain(|key, e| {
            let live = e.expires_at > now;
            if !live {
                freed += e.size() + key.len();
            }
            live
        });
        self.bytes -= freed;
        fits(self)
    }
}

pub struct CatalogCache {
    ttl: Duration,
    state: Mutex<State>,
}

impl CatalogCache {
    /// `ttl` zero: nothing is ever stored or served.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl: ttl.min(MAX_TTL),
            state: Mutex::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lookup(&self, key: &str, now: Instant) -> Lookup<'_> {
        let mut state = self.state();
        match state.entries.get(key) {
            Some(entry) if entry.expires_at > now => return Lookup::Hit(entry.clone()),
            Some(_) => state.remove(key),
            None => {}
        }
        if let Some(flight) = state.flights.get_mut(key) {
            let (tx, rx) = oneshot::channel();
            flight.waiters.push(tx);
            return Lookup::Wait(rx);
        }
        state.next_flight += 1;
        let id = state.next_flight;
        state.flights.insert(
            key.to_owned(),
            InFlight {
                id,
                waiters: Vec::new(),
            },
        );
        Lookup::Lead(Flight {
            cache: self,
            key: key.to_owned(),
            id,
        })
    }

    /// Forgets every entry and every fetch under way (their answers are not stored, and their
    /// waiters go upstream themselves): called after a write that may change the catalog.
    pub fn forget_all(&self) {
        let mut state = self.state();
        state.entries.clear();
        state.bytes = 0;
        state.flights.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state().entries.len()
    }
}

/// The one fetch of a key under way. Dropped without `finish` (the client went away), its
/// waiters are told to fetch themselves.
pub struct Flight<'a> {
    cache: &'a CatalogCache,
    key: String,
    id: u64,
}

impl Flight<'_> {
    /// Stores `entry` (unless the cache was emptied since the flight began, or is full) and
    /// hands it to the waiters; `None` sends them upstream themselves.
    pub fn finish(self, entry: Option<Entry>, now: Instant) -> Option<Arc<Entry>> {
        let entry = entry.map(Arc::new);
        let waiters = {
            let mut state = self.cache.state();
            let current = state
                .flights
                .get(&self.key)
                .is_some_and(|f| f.id == self.id);
            if !current {
                // Emptied meanwhile: this answer may predate the write that emptied it.
                return entry;
            }
            let flight = state.flights.remove(&self.key).expect("current flight");
            if let Some(entry) = &entry {
                let size = entry.size() + self.key.len();
                if entry.expires_at > now && state.has_room(size, now) {
                    state.bytes += size;
                    state.entries.insert(self.key.clone(), entry.clone());
                }
            }
            flight.waiters
        };
        for waiter in waiters {
            let _ = waiter.send(entry.clone());
        }
        entry
    }
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut state = self.cache.state();
        if state
            .flights
            .get(&self.key)
            .is_some_and(|f| f.id == self.id)
        {
            state.flights.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_millis(500);

    fn answer(body: &'static str) -> (HeaderMap, Bytes) {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::ETAG, HeaderValue::from_static("\"v1\""));
        headers.insert("x-request-id", HeaderValue::from_static("first-request"));
        (headers, Bytes::from_static(body.as_bytes()))
    }

    fn entry(body: &'static str, sent_at: Instant) -> Entry {
        let (headers, body) = answer(body);
        Entry::storable(StatusCode::OK, &headers, body, sent_at, TTL).expect("storable")
    }

    fn lead<'a>(cache: &'a CatalogCache, key: &str, now: Instant) -> Flight<'a> {
        match cache.lookup(key, now) {
            Lookup::Lead(flight) => flight,
            _ => panic!("expected to lead the fetch of {key}"),
        }
    }

    fn hit(cache: &CatalogCache, key: &str, now: Instant) -> Option<Arc<Entry>> {
        match cache.lookup(key, now) {
            Lookup::Hit(entry) => Some(entry),
            _ => None,
        }
    }

    #[test]
    fn only_anonymous_catalog_reads_have_a_key() {
        let none = HeaderMap::new();
        let get = Method::GET;
        let id = "/api/v1/products/0190a4c2-7e1b-7000-8000-000000000000";
        assert_eq!(key(&get, &none, id).as_deref(), Some(id));
        let listing = "/api/v1/products?category=a&sort=price_asc";
        assert_eq!(key(&get, &none, listing).as_deref(), Some(listing));
        assert!(key(&get, &none, "/api/v1/categories").is_some());

        let mut signed_in = HeaderMap::new();
        signed_in.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(key(&get, &signed_in, id).is_none());
        assert!(key(&Method::HEAD, &none, id).is_none());
        assert!(key(&Method::POST, &none, "/api/v1/products").is_none());
        assert!(key(&get, &none, &format!("{id}/stock")).is_none());
        assert!(key(&get, &none, "/api/v1/products/").is_none());
        assert!(key(&get, &none, "/api/v1/categories/x").is_none());
        assert!(key(&get, &none, "/api/v1/cart").is_none());
        let long = format!("/api/v1/products?q={}", "a".repeat(MAX_KEY_BYTES));
        assert!(key(&get, &none, &long).is_none());
    }

    #[test]
    fn an_entry_lives_for_the_ttl_counted_from_the_request() {
        let cache = CatalogCache::new(TTL);
        let sent = Instant::now();
        let answered = sent + Duration::from_millis(100);
        let stored = lead(&cache, "k", sent).finish(Some(entry("{}", sent)), answered);
        assert!(stored.is_some());
        assert!(hit(&cache, "k", answered).is_some());
        assert!(hit(&cache, "k", sent + TTL - Duration::from_millis(1)).is_some());
        assert!(
            hit(&cache, "k", sent + TTL).is_none(),
            "expired at sent + TTL, not answered + TTL"
        );
        assert!(
            matches!(cache.lookup("k", sent + TTL), Lookup::Lead(_)),
            "an expired entry is fetched again"
        );
    }

    #[test]
    fn the_ttl_is_capped_and_zero_turns_it_off() {
        assert_eq!(CatalogCache::new(Duration::from_secs(5)).ttl(), MAX_TTL);
        assert!(!CatalogCache::new(Duration::ZERO).enabled());
        assert!(CatalogCache::new(TTL).enabled());
    }

    #[test]
    fn errors_oversized_and_uncacheable_answers_are_not_stored() {
        let now = Instant::now();
        let (headers, body) = answer("{}");
        let storable = |status, headers: &HeaderMap, body: Bytes| {
            Entry::storable(status, headers, body, now, TTL).is_some()
        };
        assert!(storable(StatusCode::OK, &headers, body.clone()));
        assert!(!storable(StatusCode::NOT_FOUND, &headers, body.clone()));
        assert!(!storable(
            StatusCode::SERVICE_UNAVAILABLE,
            &headers,
            body.clone()
        ));
        let big = Bytes::from(vec![b' '; MAX_BODY_BYTES + 1]);
        assert!(!storable(StatusCode::OK, &headers, big));
        for (name, value) in [
            (header::CACHE_CONTROL, "no-store"),
            (header::CACHE_CONTROL, "public, No-Cache"),
            (header::CACHE_CONTROL, "private, max-age=60"),
            (header::VARY, "accept-language"),
            (header::SET_COOKIE, "a=b"),
        ] {
            let mut h = headers.clone();
            h.insert(name.clone(), HeaderValue::from_static(value));
            assert!(
                !storable(StatusCode::OK, &h, body.clone()),
                "{name}: {value}"
            );
        }
        let mut public = headers.clone();
        public.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=1"),
        );
        assert!(storable(StatusCode::OK, &public, body));
    }

    #[test]
    fn a_hit_has_no_request_id_of_its_own_and_answers_304_to_its_etag() {
        let cache = CatalogCache::new(TTL);
        let now = Instant::now();
        let entry = lead(&cache, "k", now)
            .finish(Some(entry("{\"a\":1}", now)), now)
            .unwrap();
        let res = entry.respond(&HeaderMap::new(), "hit");
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.headers().get("x-request-id").is_none());
        assert_eq!(res.headers()[&CACHE_HEADER], "hit");
        assert_eq!(res.headers()[header::ETAG], "\"v1\"");

        for sent in ["\"v1\"", "W/\"v1\"", "\"v0\", \"v1\"", "*"] {
            let mut req = HeaderMap::new();
            req.insert(header::IF_NONE_MATCH, HeaderValue::from_static(sent));
            let res = entry.respond(&req, "hit");
            assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(res.headers()[header::ETAG], "\"v1\"");
            assert!(res.headers().get(header::CONTENT_TYPE).is_none());
        }
        let mut other = HeaderMap::new();
        other.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v0\""));
        assert_eq!(entry.respond(&other, "hit").status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let cache = CatalogCache::new(TTL);
        let now = Instant::now();
        let flight = lead(&cache, "k", now);
        let waiters: Vec<_> = (0..3)
            .map(|_| match cache.lookup("k", now) {
                Lookup::Wait(rx) => rx,
                _ => panic!("a second miss must wait for the first"),
            })
            .collect();
        assert!(matches!(cache.lookup("other", now), Lookup::Lead(_)));
        flight.finish(Some(entry("{}", now)), now);
        for rx in waiters {
            let shared = rx.await.expect("answered").expect("an entry");
            assert_eq!(shared.body, Bytes::from_static(b"{}"));
        }
        assert!(hit(&cache, "k", now).is_some());
    }

    #[tokio::test]
    async fn waiters_of_a_failed_or_abandoned_fetch_go_upstream_themselves() {
        let cache = CatalogCache::new(TTL);
        let now = Instant::now();
        let flight = lead(&cache, "k", now);
        let Lookup::Wait(rx) = cache.lookup("k", now) else {
            panic!("must wait");
        };
        flight.finish(None, now);
        assert!(rx.await.expect("answered").is_none(), "nothing to share");
        assert!(hit(&cache, "k", now).is_none(), "an error is not stored");

        let flight = lead(&cache, "k", now);
        let Lookup::Wait(rx) = cache.lookup("k", now) else {
            panic!("must wait");
        };
        drop(flight);
        assert!(rx.await.is_err(), "the fetch went away");
        assert!(matches!(cache.lookup("k", now), Lookup::Lead(_)));
    }

    #[tokio::test]
    async fn a_write_drops_entries_and_fetches_under_way() {
        let cache = CatalogCache::new(TTL);
        let now = Instant::now();
        lead(&cache, "a", now).finish(Some(entry("{}", now)), now);
        let before_write = lead(&cache, "b", now);
        let Lookup::Wait(rx) = cache.lookup("b", now) else {
            panic!("must wait");
        };
        cache.forget_all();
        assert!(hit(&cache, "a", now).is_none());
        assert!(
            rx.await.is_err(),
            "its waiter fetches after the write itself"
        );
        let after_write = lead(&cache, "b", now);
        // The answer read before the write is not stored; the one read after it is.
        before_write.finish(Some(entry("{\"old\":1}", now)), now);
        assert!(hit(&cache, "b", now).is_none());
        after_write.finish(Some(entry("{\"new\":1}", now)), now);
        assert_eq!(
            hit(&cache, "b", now).unwrap().body,
            Bytes::from_static(b"{\"new\":1}")
        );
    }

    #[test]
    fn the_entry_count_is_bounded_and_expired_entries_make_room() {
        let cache = CatalogCache::new(TTL);
        let now = Instant::now();
        for i in 0..MAX_ENTRIES {
            lead(&cache, &i.to_string(), now).finish(Some(entry("{}", now)), now);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        lead(&cache, "one more", now).finish(Some(entry("{}", now)), now);
        assert_eq!(cache.len(), MAX_ENTRIES, "full: not stored");
        assert!(hit(&cache, "one more", now).is_none());

        let later = now + TTL;
        lead(&cache, "one more", later).finish(Some(entry("{}", later)), later);
        assert_eq!(cache.len(), 1, "the expired ones made room");
        assert!(hit(&cache, "one more", later).is_some());
    }

    #[test]
    fn the_stored_bytes_are_bounded() {
        let cache = CatalogCache::new(TTL);
        let now = Instant::now();
        let body = Bytes::from(vec![b' '; MAX_BODY_BYTES]);
        let (headers, _) = answer("");
        // Keys are seven bytes long.
        let fill = MAX_TOTAL_BYTES / (MAX_BODY_BYTES + 7);
        for i in 0..fill + 10 {
            let e = Entry::storable(StatusCode::OK, &headers, body.clone(), now, TTL).unwrap();
            lead(&cache, &format!("k{i:06}"), now).finish(Some(e), now);
        }
        assert_eq!(cache.len(), fill);
        assert!(cache.state().bytes <= MAX_TOTAL_BYTES);
        cache.forget_all();
        assert_eq!(cache.state().bytes, 0);
    }
}
