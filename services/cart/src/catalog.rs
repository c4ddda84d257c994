//! What the cart asks the product service: current name, price, stock and status.

use std::collections::HashMap;

use axum::http::Method;
use serde::Deserialize;
use souk_common::client::{CallError, ServiceClient};
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEntry {
    pub id: Uuid,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    pub active: bool,
    /// For promotions limited to categories.
    #[serde(default)]
    pub category_ids: Vec<Uuid>,
}

#[derive(Deserialize)]
struct Batch {
    items: Vec<CatalogEntry>,
}

/// One call for the whole cart; products the catalog does not know are absent from the map.
pub async fn lookup(
    client: &ServiceClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, CatalogEntry>, CallError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let path = format!("/internal/products?ids={}", list.join(","));
    let batch: Batch = client.call::<(), _>(Method::GET, &path, None, None).await?;
    Ok(batch.items.into_iter().map(|p| (p.id, p)).collect())
}
