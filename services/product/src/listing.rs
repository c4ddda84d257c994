//! `GET /api/v1/products`: filters, sort and keyset pagination, as static SQL.
//!
//! Six statements (three sorts, with or without a text search) share one filter clause. Every
//! optional filter is `$n IS NULL OR ...`; the service runs them unprepared (sqlx
//! `persistent(false)`), so PostgreSQL plans each run with its actual values, absent filters
//! fold away and the planner sees the real predicates. Parameters: `$1` min price, `$2` max price, `$3` category ids (the
//! category and all its descendants), `$4` limit + 1, `$5` cursor price, `$6` cursor id, `$7`
//! search text (search statements only).
//!
//! Pagination is keyset on the sort key plus `id` (UUID v7, so `newest` is id order): a page
//! continues strictly after the last row of the previous one, so products added meanwhile never
//! shift or repeat rows.
//!
//! Indexes (partial, `WHERE active`): `(id)` for `newest`, `(price_cents, id)` for the price
//! sorts and ranges, GIN on the generated `search` tsvector for `q`, and
//! `product_categories (category_id, product_id)` for the category filter. A category with a
//! price sort (no text search) has a statement of its own that walks
//! `product_categories (category_id, price_cents, product_id) WHERE active` (price and active
//! copied from the product by triggers). The API test
//! `catalog::listing_queries_use_indexes` seeds 10,000 products and checks with `EXPLAIN` that
//! none of these statements seq-scans `products`. Plans recorded there (PostgreSQL 15, 10,000
//! products in 10 categories, ~95% active; `category_ids` is a per-row index-only subplan):
//!
//! ```text
//! newest                 Limit -> Index Scan Backward using products_active_newest
//! newest, page 2         Limit -> Index Scan Backward using products_active_newest
//!                                 Index Cond: (id < cursor)
//! newest + price range   Limit -> Index Scan Backward using products_active_newest
//!                                 Filter: price_cents between min and max
//! price_asc              Limit -> Index Scan using products_active_price
//! price_asc, narrow      Limit -> Sort -> Bitmap Heap Scan on products
//!   range                         -> Bitmap Index Scan on products_active_price
//! price_desc, page 2     Limit -> Index Scan Backward using products_active_price
//!                                 Index Cond: (ROW(price_cents, id) < ROW(cursor))
//! category               Limit -> Index Scan Backward using products_active_newest
//!                                 Filter: hashed SubPlan -> Bitmap Index Scan on
//!                                 product_categories_category
//! category + price_asc   Limit -> Sort (21 rows per category at most) -> Nested Loop
//!   (+ range, page 2,             -> HashAggregate -> Nested Loop -> Function Scan on unnest
//!   10 sub-categories)            -> Limit -> Index Only Scan using
//!                                 product_categories_active_price (Index Cond: category,
//!                                 price range, ROW(price, id) > cursor); then products_pkey
//! q, frequent term       Limit -> Index Scan Backward using products_active_newest
//!                                 Filter: search @@ tsquery (stops after 21 matches)
//! q, rare term           Limit -> Sort -> Bitmap Heap Scan on products
//!                                 -> Bitmap Index Scan on products_active_search (GIN)
//! ```
//!
//! The GIN index is built with `fastupdate = off`: with a pending list the planner (rightly)
//! refuses it until a vacuum.

use serde::{Deserialize, Serialize};
use souk_common::ApiError;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[macro_export]
macro_rules! product_columns {
    () => {
        "p.id, p.sku, p.name, p.description, p.price_cents, p.currency, \
         ARRAY(SELECT pc.category_id FROM product_categories pc WHERE pc.product_id = p.id \
               ORDER BY pc.category_id) AS category_ids, \
         p.stock, p.active, p.options, p.image_url, p.created_at, p.updated_at"
    };
}

macro_rules! listing {
    ($search:expr, $after:expr, $order:expr) => {
        concat!(
            "SELECT ",
            product_columns!(),
            " FROM products p WHERE p.active",
            " AND ($1::bigint IS NULL OR p.price_cents >= $1)",
            " AND ($2::bigint IS NULL OR p.price_cents <= $2)",
            " AND ($3::uuid[] IS NULL OR EXISTS (SELECT 1 FROM product_categories pc",
            " WHERE pc.product_id = p.id AND pc.category_id = ANY($3)))",
            $search,
            $after,
            " ORDER BY ",
            $order,
            " LIMIT $4"
        )
    };
}

/// Category + price order: the next rows of each category of the subtree from
/// `product_categories_active_price` (at most `$4` each), without duplicates (a product in two
/// of the categories), merged in price order. Every product of the global top `$4` is in the
/// top `$4` of one of its categories, so the merge is exact.
macro_rules! by_category_price {
    ($cmp:literal, $dir:literal) => {
        concat!(
            "WITH top AS (SELECT DISTINCT x.product_id, x.price_cents",
            " FROM unnest($3::uuid[]) AS c(id) CROSS JOIN LATERAL (",
            "SELECT pc.product_id, pc.price_cents FROM product_categories pc",
            " WHERE pc.category_id = c.id AND pc.active",
            " AND ($1::bigint IS NULL OR pc.price_cents >= $1)",
            " AND ($2::bigint IS NULL OR pc.price_cents <= $2)",
            " AND ($6::uuid IS NULL OR (pc.price_cents, pc.product_id) ",
            $cmp,
            " ($5::bigint, $6))",
            " ORDER BY pc.price_cents ",
            $dir,
            ", pc.product_id ",
            $dir,
            " LIMIT $4) x)",
            " SELECT ",
            product_columns!(),
            " FROM top JOIN products p ON p.id = top.product_id",
            " ORDER BY top.price_cents ",
            $dir,
            ", top.product_id ",
            $dir,
            " LIMIT $4"
        )
    };
}

macro_rules! search {
    () => {
        " AND p.search @@ websearch_to_tsquery('english', $7)"
    };
}

macro_rules! after_newest {
    () => {
        " AND ($6::uuid IS NULL OR p.id < $6) AND ($5::bigint IS NULL OR true)"
    };
}
macro_rules! after_price_asc {
    () => {
        " AND ($6::uuid IS NULL OR (p.price_cents, p.id) > ($5::bigint, $6))"
    };
}
macro_rules! after_price_desc {
    () => {
        " AND ($6::uuid IS NULL OR (p.price_cents, p.id) < ($5::bigint, $6))"
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(default = "newest")]
pub enum Sort {
    Newest,
    PriceAsc,
    PriceDesc,
}

impl Sort {
    pub fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        match raw.map(str::trim) {
            None | Some("") | Some("newest") => Ok(Sort::Newest),
            Some("price_asc") => Ok(Sort::PriceAsc),
            Some("price_desc") => Ok(Sort::PriceDesc),
            Some(_) => Err(ApiError::invalid_field(
                "sort",
                "must be one of newest, price_asc, price_desc",
            )),
        }
    }
}

/// The statement for a sort, with or without a text search; `by_category`: `$3` is set.
pub fn statement(sort: Sort, search: bool, by_category: bool) -> &'static str {
    match (sort, search) {
        (Sort::PriceAsc, false) if by_category => by_category_price!(">", "ASC"),
        (Sort::PriceDesc, false) if by_category => by_category_price!("<", "DESC"),
        (Sort::Newest, false) => listing!("", after_newest!(), "p.id DESC"),
        (Sort::Newest, true) => listing!(search!(), after_newest!(), "p.id DESC"),
        (Sort::PriceAsc, false) => {
            listing!("", after_price_asc!(), "p.price_cents ASC, p.id ASC")
        }
        (Sort::PriceAsc, true) => {
            listing!(search!(), after_price_asc!(), "p.price_cents ASC, p.id ASC")
        }
        (Sort::PriceDesc, false) => {
            listing!("", after_price_desc!(), "p.price_cents DESC, p.id DESC")
        }
        (Sort::PriceDesc, true) => listing!(
            search!(),
            after_price_desc!(),
            "p.price_cents DESC, p.id DESC"
        ),
    }
}

/// What a `next_cursor` holds: the sort it belongs to and the last row's key.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    pub s: Sort,
    pub p: Option<i64>,
    pub id: Uuid,
}

/// Query parameters as strings, validated here so bad values are problem+json; documented as
/// what a client may send (`limit` and `cursor` by `PageQuery`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A category id; products of its sub-categories (at any depth) are included.
    #[param(value_type = Option<Uuid>)]
    pub category: Option<String>,
    /// Full-text search on name and description (English stemming, web-search syntax:
    /// `"quoted phrase"`, `or`, `-excluded`). At most 200 characters.
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Lowest `price_cents`, inclusive.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub min_price: Option<String>,
    /// Highest `price_cents`, inclusive.
    #[param(value_type = Option<i64>, minimum = 0)]
    pub max_price: Option<String>,
    /// `newest` (default), `price_asc` or `price_desc` (ties broken by id).
    #[param(value_type = Option<Sort>, inline)]
    pub sort: Option<String>,
    #[param(ignore)]
    pub limit: Option<String>,
    #[param(ignore)]
    pub cursor: Option<String>,
}

pub fn price_param(field: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(ApiError::invalid_field(
                field,
                "must be a non-negative integer number of cents",
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sorts_and_prices() {
        assert_eq!(Sort::parse(None).unwrap(), Sort::Newest);
        assert_eq!(Sort::parse(Some("price_desc")).unwrap(), Sort::PriceDesc);
        assert_eq!(Sort::parse(Some("cheap")).unwrap_err().status, 422);
        assert_eq!(price_param("min_price", Some("10")).unwrap(), Some(10));
        assert_eq!(price_param("min_price", Some("")).unwrap(), None);
        assert_eq!(
            price_param("min_price", Some("-1")).unwrap_err().status,
            422
        );
        assert_eq!(
            price_param("min_price", Some("1.5")).unwrap_err().status,
            422
        );
        assert!(statement(Sort::PriceAsc, true, true).contains("websearch_to_tsquery"));
        assert!(!statement(Sort::PriceAsc, false, false).contains("$7"));
        assert!(statement(Sort::PriceDesc, false, true).contains("LATERAL"));
        assert!(!statement(Sort::Newest, false, true).contains("LATERAL"));
    }
}
