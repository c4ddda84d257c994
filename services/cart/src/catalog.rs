//! What the cart asks the product service: each variant's current name, price, stock and
//! status (a product without options is its own one variant, same id).

use std::collections::HashMap;

use axum::http::Method;
use souk_common::client::{CallError, ServiceClient};
use souk_contract::catalog::{self, Batch};
pub use souk_contract::catalog::{OptionValues, ProductEntry, VariantEntry as CatalogEntry};
use uuid::Uuid;

/// One call for the whole cart; variants the catalog does not know are absent from the map.
pub async fn lookup(
    client: &ServiceClient,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, CatalogEntry>, CallError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let path = catalog::lookup_path(catalog::VARIANTS, ids);
    let batch: Batch<CatalogEntry> = client.call::<(), _>(Method::GET, &path, None, None).await?;
    Ok(batch.items.into_iter().map(|p| (p.id, p)).collect())
}

/// The product itself (not a variant), when the catalog knows it.
pub async fn product(client: &ServiceClient, id: Uuid) -> Result<Option<ProductEntry>, CallError> {
    let path = catalog::lookup_path(catalog::PRODUCTS, &[id]);
    let batch: Batch<ProductEntry> = client.call::<(), _>(Method::GET, &path, None, None).await?;
    Ok(batch.items.into_iter().find(|p| p.id == id))
}
