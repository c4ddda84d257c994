//! Seeding through the public API only: an admin makes categories and products, shoppers
//! register. Idempotent: what exists already (409) is looked up instead of made again, so a
//! second run against the same platform reuses the first run's data.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt, stream};
use reqwest::{Client, Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

/// Words the product names and descriptions are made of; searches pick from the same lists.
pub const ADJECTIVES: [&str; 16] = [
    "sturdy", "elegant", "compact", "vintage", "rugged", "silky", "bright", "quiet", "classic",
    "modern", "cozy", "sleek", "handmade", "organic", "portable", "bold",
];
pub const MATERIALS: [&str; 12] = [
    "cotton", "leather", "walnut", "steel", "ceramic", "linen", "bamboo", "wool", "copper",
    "glass", "canvas", "marble",
];
pub const NOUNS: [&str; 20] = [
    "lamp", "chair", "kettle", "backpack", "scarf", "mug", "notebook", "jacket", "bowl", "clock",
    "blanket", "sneaker", "wallet", "teapot", "shelf", "pillow", "bottle", "basket", "candle",
    "rug",
];

const PASSWORD: &str = "load-test-password-1";

pub struct SeedOptions {
    pub base: String,
    pub admin_email: String,
    pub admin_password: String,
    pub products: usize,
    pub users: usize,
    /// Concurrent product creations (cheap requests).
    pub product_concurrency: usize,
    /// Concurrent registrations (each one is an argon2 hash, ~tens of ms of CPU).
    pub user_concurrency: usize,
}

#[derive(Clone, Debug)]
pub struct ProductRef {
    pub id: String,
}

#[derive(Clone, Debug)]
pub struct Shopper {
    pub access_token: String,
}

pub struct Seeded {
    pub categories: Vec<String>,
    pub products: Vec<ProductRef>,
    pub shoppers: Vec<Shopper>,
}

/// A tiny client over the public API: JSON in and out, 429s waited out and retried.
#[derive(Clone)]
pub struct Api {
    http: Client,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(64)
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        for attempt in 0.. {
            let mut req = self
                .http
                .request(method.clone(), format!("{}/api/v1{path}", self.base));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let res = req
                .send()
                .await
                .with_context(|| format!("{method} {path}"))?;
            let status = res.status();
            if status == StatusCode::TOO_MANY_REQUESTS && attempt < 20 {
                let wait = res
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait.min(5))).await;
                continue;
            }
            let bytes = res.bytes().await?;
            let value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            return Ok((status, value));
        }
        unreachable!("the loop returns")
    }

    async fn expect(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        ok: &[StatusCode],
    ) -> anyhow::Result<(StatusCode, Value)> {
        let (status, value) = self.call(method.clone(), path, token, body).await?;
        if !ok.contains(&status) {
            bail!("{method} {path}: unexpected {status}: {value}");
        }
        Ok((status, value))
    }
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Value>,
    next_cursor: Option<String>,
}

fn str_field(v: &Value, field: &str) -> anyhow::Result<String> {
    v.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("no {field:?} in {v}"))
}

/// Deterministic product `i`: name, description, price and category from its number.
fn product_body(i: usize, categories: &[String]) -> Value {
    let adj = ADJECTIVES[i % ADJECTIVES.len()];
    let mat = MATERIALS[(i / ADJECTIVES.len()) % MATERIALS.len()];
    let noun = NOUNS[(i * 7 + i / 13) % NOUNS.len()];
    // Prices spread from $1.00 to $500.00, not in step with the names.
    let price = 100 + (i as i64 * 7919) % 49_901;
    json!({
        "sku": format!("LOAD-{i:05}"),
        "name": format!("{adj} {mat} {noun} #{i}"),
        "description": format!(
            "A {adj} {noun} made of {mat}. Part of the Souk load-test catalog, item {i}: \
             ships fast, lasts long, and is {} friendly.",
            ADJECTIVES[(i / 3) % ADJECTIVES.len()]
        ),
        "price_cents": price,
        "currency": "usd",
        "category_ids": [categories[i % categories.len()]],
        // Enough that a long checkout run never runs out.
        "stock": 1_000_000,
    })
}

pub async fn seed(opts: &SeedOptions) -> anyhow::Result<Seeded> {
    let api = Api::new(&opts.base)?;
    let started = Instant::now();
    let (_, login) = api
        .expect(
            Method::POST,
            "/auth/login",
            None,
            Some(&json!({"email": opts.admin_email, "password": opts.admin_password})),
            &[StatusCode::OK],
        )
        .await
        .context("logging in as the admin (SOUK_ADMIN_EMAIL / SOUK_ADMIN_PASSWORD of `souk up`)")?;
    let admin = str_field(&login, "access_token")?;

    let categories = seed_categories(&api, &admin).await?;
    let t = Instant::now();
    let created = seed_products(&api, &admin, opts, &categories).await?;
    eprintln!(
        "seed: {} products ensured ({created} created) in {:.1}s",
        opts.products,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let products = load_products(&api).await?;
    eprintln!(
        "seed: {} active products listed in {:.1}s",
        products.len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let shoppers = seed_shoppers(&api, opts).await?;
    eprintln!(
        "seed: {} shoppers ready in {:.1}s ({} at a time)",
        shoppers.len(),
        t.elapsed().as_secs_f64(),
        opts.user_concurrency
    );
    eprintln!("seed: done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(Seeded {
        categories,
        products,
        shoppers,
    })
}

/// Two top-level categories with four children each; returns the ids of all of them.
async fn seed_categories(api: &Api, admin: &str) -> anyhow::Result<Vec<String>> {
    let existing = |items: &Value, slug: &str| -> Option<String> {
        items["items"]
            .as_array()?
            .iter()
            .find(|c| c["slug"] == slug)
            .and_then(|c| c["id"].as_str().map(str::to_owned))
    };
    let mut ids = Vec::new();
    for (p, parent) in ["home", "apparel"].into_iter().enumerate() {
        let slug = format!("load-{parent}");
        let (_, all) = api
            .expect(Method::GET, "/categories", None, None, &[StatusCode::OK])
            .await?;
        let parent_id = match existing(&all, &slug) {
            Some(id) => id,
            None => {
                let (_, c) = api
                    .expect(
                        Method::POST,
                        "/categories",
                        Some(admin),
                        Some(&json!({"name": format!("Load {parent}"), "slug": slug})),
                        &[StatusCode::CREATED],
                    )
                    .await?;
                str_field(&c, "id")?
            }
        };
        ids.push(parent_id.clone());
        for child in 0..4 {
            let slug = format!("load-{parent}-{child}");
            let id = match existing(&all, &slug) {
                Some(id) => id,
                None => {
                    let (_, c) = api
                        .expect(
                            Method::POST,
                            "/categories",
                            Some(admin),
                            Some(&json!({
                                "name": format!("Load {parent} {}", p * 4 + child),
                                "slug": slug,
                                "parent_id": parent_id,
                            })),
                            &[StatusCode::CREATED],
                        )
                        .await?;
                    str_field(&c, "id")?
                }
            };
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Creates products `0..n` with bounded concurrency; a taken SKU means it exists already.
async fn seed_products(
    api: &Api,
    admin: &str,
    opts: &SeedOptions,
    categories: &[String],
) -> anyhow::Result<usize> {
    let created = Arc::new(AtomicUsize::new(0));
    stream::iter(0..opts.products)
        .map(|i| {
            let created = created.clone();
            async move {
                let body = product_body(i, categories);
                let (status, _) = api
                    .expect(
                        Method::POST,
                        "/products",
                        Some(admin),
                        Some(&body),
                        &[StatusCode::CREATED, StatusCode::CONFLICT],
                    )
                    .await?;
                if status == StatusCode::CREATED {
                    created.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(opts.product_concurrency.max(1))
        .try_collect::<()>()
        .await?;
    Ok(created.load(Ordering::Relaxed))
}

/// Every active product with plenty of stock, by walking the public listing.
async fn load_products(api: &Api) -> anyhow::Result<Vec<ProductRef>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/products?limit=100".to_owned(),
            Some(c) => format!("/products?limit=100&cursor={c}"),
        };
        let (_, page) = api
            .expect(Method::GET, &path, None, None, &[StatusCode::OK])
            .await?;
        let page: Page = serde_json::from_value(page)?;
        out.extend(
            page.items
                .iter()
                .filter(|p| p["stock"].as_i64().unwrap_or(0) >= 10_000)
                .filter_map(|p| p["id"].as_str())
                .map(|id| ProductRef { id: id.to_owned() }),
        );
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    if out.is_empty() {
        bail!("no active product with stock to shop for");
    }
    Ok(out)
}

/// Registers shoppers `0..n` (or logs in those that exist). Registration hashes a password, so
/// this is the slow part of seeding.
async fn seed_shoppers(api: &Api, opts: &SeedOptions) -> anyhow::Result<Vec<Shopper>> {
    stream::iter(0..opts.users)
        .map(|i| async move {
            let email = format!("shopper-{i:04}@load.souk.test");
            let (status, v) = api
                .expect(
                    Method::POST,
                    "/auth/register",
                    None,
                    Some(&json!({"email": email, "password": PASSWORD, "name": format!("Shopper {i}")})),
                    &[StatusCode::CREATED, StatusCode::CONFLICT],
                )
                .await?;
            let tokens = if status == StatusCode::CREATED {
                v
            } else {
                api.expect(
                    Method::POST,
                    "/auth/login",
                    None,
                    Some(&json!({"email": email, "password": PASSWORD})),
                    &[StatusCode::OK],
                )
                .await?
                .1
            };
            anyhow::Ok(Shopper {
                access_token: str_field(&tokens, "access_token")?,
            })
        })
        .buffered(opts.user_concurrency.max(1))
        .try_collect()
        .await
}
