//! What the cart asks the product service: each variant's current name, price, stock and
//! status (a product without options is its own one variant, same id).

use std::collections::{BTreeMap, HashMap};

use axum::http::Method;
use serde::Deserialize;
use souk_common::client::{CallError, ServiceClient};
use uuid::Uuid;

pub type OptionValues = BTreeMap<String, String>;

#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEntry {
    /// The variant's id.
    pub id: Uuid,
    pub product_id: Uuid,
    pub name: String,
    #[serde(default)]
    pub option_values: OptionValues,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    /// The product and the variant are both on sale.
    pub active: bool,
    /// For promotions limited to categories.
    #[serde(default)]
    pub category_ids: Vec<Uuid>,
}

#[derive(Deserialize)]
struct Batch<T> {
    items: Vec<T>,
}

/// One call for the whole cart; variants the catalog does not know are absent from the map.
pub async fn lookup(
    client: &ServiceClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, CatalogEntry>, CallError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    let path = format!("/internal/variants?ids={}", list.join(","));
    let batch: Batch<CatalogEntry> = client.call::<(), _>(Method::GET, &path, None, None).await?;
    Ok(batch.items.into_iter().map(|p| (p.id, p)).collect())
}

#[derive(Debug, Deserialize)]
pub struct ProductEntry {
    pub id: Uuid,
    pub has_options: bool,
}

/// The product itself (not a variant), when the catalog knows it.
pub async fn product(client: &ServiceClient, id: Uuid) -> Result<Option<ProductEntry>, CallError> {
    let path = format!("/internal/products?ids={id}");
    let batch: Batch<ProductEntry> = client.call::<(), _>(Method::GET, &path, None, None).await?;
    Ok(batch.items.into_iter().find(|p| p.id == id))
}
