//! The public catalog reads (`GET /products/{id}` and listing pages) served from memory.
//!
//! Freshness: every catalog write notifies channel `souk_catalog` in its own transaction (database
//! triggers, see migrations/product), and each replica's listener drops what the change touches
//! as soon as it commits: a product's entry by id, every listing page on any change. The bound
//! is the notification's delivery time (milliseconds on one host; tests allow 1 s).
//!
//! Safety rules:
//! - Nothing is served from memory unless the listener is connected and listening. A listener
//!   that loses its connection empties the cache and serves from the database until it has
//!   listened again; after (re)connecting it empties the cache again, as it may have missed
//!   notifications meanwhile.
//! - A read from the database is cached only if no invalidation happened since it started
//!   (`Ticket`): a row read just before a write committed can never be stored after the
//!   write's notification was handled.
//! - Only public reads use it. Carts (`/internal/products`), reservations and checkout always
//!   read the row.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use uuid::Uuid;

/// The channel the triggers notify; payload a product id, or `*` for "everything".
pub const CHANNEL: &str = "souk_catalog";
/// Products kept at most (a few hundred bytes each); past it the map starts over.
const MAX_PRODUCTS: usize = 20_000;
/// Listing pages kept at most (about 12 KB each at the default page size).
const MAX_LISTINGS: usize = 256;

/// A response body ready to send, with its strong `ETag`.
#[derive(Clone)]
pub struct Cached {
    body: Bytes,
    etag: HeaderValue,
}

impl Cached {
    pub fn json<T: Serialize>(value: &T) -> Result<Self, serde_json::Error> {
        let body = Bytes::from(serde_json::to_vec(value)?);
        let mut hasher = std::hash::DefaultHasher::new();
        body.hash(&mut hasher);
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", hasher.finish()))
            .expect("hex is a valid header value");
        Ok(Self { body, etag })
    }

    /// 200 with the body, or 304 when `If-None-Match` names this version. `X-Cache` says
    /// whether it came from memory (`hit`) or the database (`miss`).
    pub fn respond(self, request: &HeaderMap, hit: bool) -> Response {
        let source = (
            HeaderName::from_static("x-cache"),
            HeaderValue::from_static(if hit { "hit" } else { "miss" }),
        );
        let matches = request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim())
            .any(|t| t == "*" || t.trim_start_matches("W/").as_bytes() == self.etag.as_bytes());
        if matches {
            return (StatusCode::NOT_MODIFIED, [(ETAG, self.etag), source]).into_response();
        }
        (
            [
                (CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (ETAG, self.etag),
                source,
            ],
            self.body,
        )
            .into_response()
    }
}

/// Taken before a database read; the result may be cached only if it is still current.
#[derive(Clone, Copy)]
pub struct Ticket(u64);

#[derive(Default)]
struct Entries {
    /// True while the listener is listening; nothing is served or stored otherwise.
    live: bool,
    /// Bumped by every invalidation.
    epoch: u64,
    products: HashMap<Uuid, Cached>,
    listings: HashMap<String, Cached>,
}

impl Entries {
    fn forget_all(&mut self) {
        self.epoch += 1;
        self.products.clear();
        self.listings.clear();
    }
}

pub struct CatalogCache {
    enabled: bool,
    entries: RwLock<Entries>,
}

impl CatalogCache {
    /// `enabled: false` never serves nor stores anything (every read goes to the database).
    pub fn new(enabled: bool) -> Arc<Self> {
        Arc::new(Self {
            enabled,
            entries: RwLock::default(),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn product(&self, id: Uuid) -> Option<Cached> {
        if !self.enabled {
            return None;
        }
        let entries = self.read();
        entries
            .live
            .then(|| entries.products.get(&id).cloned())
            .flatten()
    }

    pub fn listing(&self, key: &str) -> Option<Cached> {
        if !self.enabled {
            return None;
        }
        let entries = self.read();
        entries
            .live
            .then(|| entries.listings.get(key).cloned())
            .flatten()
    }

    pub fn ticket(&self) -> Ticket {
        Ticket(self.read().epoch)
    }

    fn store(&self, ticket: Ticket, put: impl FnOnce(&mut Entries)) {
        if !self.enabled {
            return;
        }
        let mut entries = self.write();
        if entries.live && entries.epoch == ticket.0 {
            put(&mut entries);
        }
    }

    pub fn store_product(&self, ticket: Ticket, id: Uuid, value: Cached) {
        self.store(ticket, |e| {
            if e.products.len() >= MAX_PRODUCTS {
                e.products.clear();
            }
            e.products.insert(id, value);
        });
    }

    pub fn store_listing(&self, ticket: Ticket, key: String, value: Cached) {
        self.store(ticket, |e| {
            if e.listings.len() >= MAX_LISTINGS {
                e.listings.clear();
            }
            e.listings.insert(key, value);
        });
    }

    /// A product changed: its own entry and every listing page go. Also called by this
    /// replica's own writes right after they commit, so its next read is fresh without waiting
    /// for the notification.
    pub fn forget_product(&self, id: Uuid) {
        self.forget_products([id]);
    }

    pub fn forget_products(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut entries = self.write();
        entries.epoch += 1;
        for id in ids {
            entries.products.remove(&id);
        }
        entries.listings.clear();
    }

    pub fn forget_all(&self) {
        self.write().forget_all();
    }

    /// A notification's payload: a product id, or anything else (`*`) for everything.
    fn notified(&self, payload: &str) {
        match payload.parse() {
            Ok(id) => self.forget_product(id),
            Err(_) => self.forget_all(),
        }
    }

    fn set_live(&self, live: bool) {
        let mut entries = self.write();
        entries.forget_all();
        entries.live = live;
    }

    /// Whether reads are being served from memory (the listener is listening).
    pub fn is_live(&self) -> bool {
        self.enabled && self.read().live
    }
}

/// Keeps a `LISTEN` connection of its own to the product database and applies notifications
/// to `cache`, reconnecting (with backoff) whenever the connection is lost, until `stop`'s
/// sender is dropped.
pub async fn listener(
    cache: Arc<CatalogCache>,
    database_url: String,
    mut stop: watch::Receiver<()>,
) {
    if !cache.enabled {
        return;
    }
    let mut backoff = Duration::from_millis(50);
    loop {
        let connect = async {
            let mut listener = PgListener::connect(&database_url).await?;
            // On a lost connection, answer at once (the cache goes dark) instead of
            // reconnecting first.
            listener.eager_reconnect(false);
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            c = connect => c,
            _ = stop.changed() => return,
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "catalog cache listener cannot connect; reading from the database");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        // Listening from here on: whatever changed before is not in memory any more.
        cache.set_live(true);
        backoff = Duration::from_millis(50);
        loop {
            let received = tokio::select! {
                r = listener.try_recv() => r,
                _ = stop.changed() => return,
            };
            match received {
                Ok(Some(n)) => cache.notified(n.payload()),
                Ok(None) => {
                    cache.set_live(false);
                    tracing::warn!("catalog cache listener lost its connection; reconnecting");
                    break;
                }
                Err(e) => {
                    cache.set_live(false);
                    tracing::warn!(error = %e, "catalog cache listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(v: i64) -> Cached {
        Cached::json(&serde_json::json!({ "v": v })).unwrap()
    }

    #[test]
    fn serves_only_while_live_and_never_stores_a_read_older_than_a_change() {
        let cache = CatalogCache::new(true);
        let id = Uuid::now_v7();
        let t = cache.ticket();
        cache.store_product(t, id, cached(1));
        assert!(cache.product(id).is_none(), "not live: nothing stored");

        cache.set_live(true);
        let t = cache.ticket();
        cache.store_product(t, id, cached(1));
        cache.store_listing(t, "sort=price_asc".into(), cached(2));
        assert!(cache.product(id).is_some());
        assert!(cache.listing("sort=price_asc").is_some());

        // A read that started before a change must not be stored after it.
        let stale = cache.ticket();
        cache.notified(&id.to_string());
        assert!(cache.product(id).is_none());
        assert!(cache.listing("sort=price_asc").is_none(), "listings go too");
        cache.store_product(stale, id, cached(1));
        assert!(cache.product(id).is_none());

        let t = cache.ticket();
        cache.store_product(t, id, cached(3));
        cache.notified("*");
        assert!(cache.product(id).is_none());

        let t = cache.ticket();
        cache.store_product(t, id, cached(3));
        cache.set_live(false);
        assert!(
            cache.product(id).is_none(),
            "dark: the listener lost its connection"
        );
        cache.set_live(true);
        assert!(cache.product(id).is_none(), "reconnected: emptied");
    }

    #[test]
    fn disabled_never_serves() {
        let cache = CatalogCache::new(false);
        cache.set_live(true);
        let id = Uuid::now_v7();
        cache.store_product(cache.ticket(), id, cached(1));
        assert!(cache.product(id).is_none());
    }

    #[test]
    fn if_none_match_answers_304() {
        let c = cached(1);
        let etag = c.etag.clone();
        let mut headers = HeaderMap::new();
        assert_eq!(c.clone().respond(&headers, true).status(), 200);
        headers.insert(
            IF_NONE_MATCH,
            HeaderValue::from_static("\"other\", W/\"x\""),
        );
        assert_eq!(c.clone().respond(&headers, true).status(), 200);
        headers.append(IF_NONE_MATCH, etag.clone());
        let res = c.clone().respond(&headers, true);
        assert_eq!(res.status(), 304);
        assert_eq!(res.headers()[ETAG], etag);
    }
}
