//! The product service's internal catalog lookups, for the cart (current prices, stock and
//! status of its lines) and the order service (prices and categories for promotions).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `{"size": "M"}`; empty for a product without options.
pub type OptionValues = BTreeMap<String, String>;

/// `GET` with `?ids=a,b,...` (at most 100): variants by id. A product without options is its
/// own one variant, so its id works too. Unknown ids are absent from the answer.
pub const VARIANTS: &str = "/internal/variants";
/// `GET` with `?ids=a,b,...` (at most 100): products by id.
pub const PRODUCTS: &str = "/internal/products";

/// The path of a batch lookup of these ids.
pub fn lookup_path(endpoint: &str, ids: &[Uuid]) -> String {
    let list: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    format!("{endpoint}?ids={}", list.join(","))
}

/// The answer of both lookups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Batch<T> {
    pub items: Vec<T>,
}

/// One variant, as `VARIANTS` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct VariantEntry {
    pub id: Uuid,
    pub product_id: Uuid,
    pub sku: String,
    /// The product's name.
    pub name: String,
    #[cfg_attr(feature = "sqlx", sqlx(json))]
    pub option_values: OptionValues,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    /// The product and the variant are both on sale.
    pub active: bool,
    /// The product's categories (promotions may be limited to some).
    pub category_ids: Vec<Uuid>,
}

/// One product, as `PRODUCTS` answers it: archived ones too (`active: false`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct ProductEntry {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    /// The lowest active variant's price.
    pub price_cents: i64,
    pub currency: String,
    /// The sum of the active variants' stock.
    pub stock: i64,
    pub active: bool,
    pub category_ids: Vec<Uuid>,
    /// Sold by variant: a cart line needs a `variant_id`.
    pub has_options: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_paths_list_the_ids() {
        let a = Uuid::nil();
        assert_eq!(
            lookup_path(VARIANTS, &[a, a]),
            format!("/internal/variants?ids={a},{a}")
        );
    }
}
