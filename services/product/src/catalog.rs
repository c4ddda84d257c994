//! Products: public reads, admin writes, and the cart's internal batch lookup.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, put};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use souk_common::error::parse_id;
use souk_common::openapi::{NotModified, ValidationFailed};
use souk_common::pagination::{Page, PageItem, PageQuery};
use souk_common::{AdminUser, ApiError, ApiResult, FieldError, Json, Query};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use souk_contract::ErrorCode;
use souk_contract::catalog::{self, Batch, ProductEntry};

use crate::cache::Cached;
use crate::listing::{self, Cursor, ListQuery, Sort};
use crate::openapi::{
    IF_NONE_MATCH, PRODUCT_ID, ProductInvalid, ProductUpdateInvalid, SkuTaken, SkuTakenOnUpdate,
};
use crate::validate::{self, double_option, not_null};
use crate::variants::{self, NewVariant, ProductOption, Variant};
use crate::{AppState, product_columns};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products", get(list).post(create))
        .route(
            "/api/v1/products/{id}",
            get(show).patch(update).delete(archive),
        )
        .route("/api/v1/products/{id}/stock", put(set_stock))
        .route(catalog::PRODUCTS, get(internal_batch))
}

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    /// The lowest price among the active variants (integer cents).
    #[schema(minimum = 0, maximum = 100_000_000_000_i64, examples(1999))]
    pub price_cents: i64,
    /// Lowercase ISO 4217 code; the shop sells in one currency (default `usd`).
    #[schema(pattern = "^[a-z]{3}$", examples("usd"))]
    pub currency: String,
    pub category_ids: Vec<Uuid>,
    /// The sum of the active variants' stock: units available to sell.
    #[schema(minimum = 0, maximum = 1_000_000_000, examples(50))]
    pub stock: i64,
    /// False once archived.
    pub active: bool,
    /// Empty for a product sold in one variant (whose id is the product's).
    #[schema(value_type = Vec<ProductOption>, max_items = 3)]
    pub options: sqlx::types::Json<Vec<ProductOption>>,
    /// What is sold: one per combination of option values. Shown by `GET /products/{id}` and
    /// the admin writes; absent from listings.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<Variant>)]
    pub variants: Option<Vec<Variant>>,
    /// Optional picture: an absolute http(s) URL of visible ASCII, at most 2,048 characters.
    /// Omitted when the product has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, max_length = 2048, examples("https://cdn.example.com/teapot.png"))]
    pub image_url: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: DateTime<Utc>,
    /// RFC 3339, UTC.
    pub updated_at: DateTime<Utc>,
}

impl PageItem for Product {
    const PAGE_NAME: &'static str = "ProductPage";
    const PAGE_DESCRIPTION: &'static str = "A page of active products in the requested order.";
}

/// The page `listProducts` answers.
pub type ProductPage = Page<Product>;

async fn load(conn: &mut PgConnection, id: Uuid) -> ApiResult<Product> {
    let mut product: Product = sqlx::query_as(concat!(
        "SELECT ",
        product_columns!(),
        " FROM products p WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ApiError::not_found("no such product"))?;
    product.variants = Some(variants::of_product(conn, id).await?);
    Ok(product)
}

/// The category and all its descendants; empty when the category does not exist.
pub async fn subtree(db: &PgPool, id: Uuid) -> ApiResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "WITH RECURSIVE sub(id) AS (
            SELECT id FROM categories WHERE id = $1
            UNION
            SELECT c.id FROM categories c JOIN sub ON c.parent_id = sub.id)
         SELECT id FROM sub",
    )
    .bind(id)
    .fetch_all(db)
    .await?)
}

/// List and search products
///
/// Active products only (archived ones are hidden), keyset-paginated: products added meanwhile
/// never shift or repeat rows. A `next_cursor` belongs to its `sort`: using it with another sort
/// is 422 (field `cursor`). A malformed query string is 400; an invalid filter value, `limit` or
/// `cursor` is 422 naming the parameter in `errors[].field`. An unknown `category` id simply
/// matches nothing.
// Pages are cached by their query string.
#[utoipa::path(
    get,
    path = "/api/v1/products",
    operation_id = "listProducts",
    security((), ("bearer" = [])),
    params(
        ListQuery,
        PageQuery,
        ("If-None-Match" = Option<String>, Header, nullable = false, description = IF_NONE_MATCH),
    ),
    responses(
        (status = 200, description = "A page of products.", body = ProductPage, headers(("ETag" = String, description = "A strong validator of this representation; send it back as `If-None-Match` to get 304 while it is unchanged."))),
        (status = 304, response = NotModified),
    )
)]
#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> ApiResult<Response> {
    let key = raw.unwrap_or_default();
    if let Some(hit) = state.cache.listing(&key) {
        return Ok(hit.respond(&headers, true));
    }
    let ticket = state.cache.ticket();
    let page = list_from_db(&state, query).await?;
    let page = Cached::json(&page).map_err(ApiError::internal)?;
    state.cache.store_listing(ticket, key, page.clone());
    Ok(page.respond(&headers, false))
}

async fn list_from_db(state: &AppState, query: ListQuery) -> ApiResult<Page<Product>> {
    let page = PageQuery {
        limit: query.limit.clone(),
        cursor: query.cursor.clone(),
    };
    let limit = page.limit()?;
    let sort = Sort::parse(query.sort.as_deref())?;
    let cursor: Option<Cursor> = page.cursor()?;
    if let Some(c) = &cursor
        && (c.s != sort || (sort != Sort::Newest && c.p.is_none()))
    {
        return Err(ApiError::invalid_field(
            "cursor",
            "belongs to another sort order; start again without a cursor",
        ));
    }
    let min = listing::price_param("min_price", query.min_price.as_deref())?;
    let max = listing::price_param("max_price", query.max_price.as_deref())?;
    let categories = match query.category.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => {
            let id: Uuid = raw
                .parse()
                .map_err(|_| ApiError::invalid_field("category", "must be a category id"))?;
            Some(subtree(&state.db, id).await?)
        }
    };
    let q = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::invalid_field(
            "q",
            "must be at most 200 characters",
        ));
    }
    // Not prepared: an unnamed statement is planned with its actual values every time, so the
    // absent filters fold away (a named one would switch to a generic plan after five runs).
    let mut stmt =
        sqlx::query_as::<_, Product>(listing::statement(sort, q.is_some(), categories.is_some()))
            .persistent(false)
            .bind(min)
            .bind(max)
            .bind(categories)
            .bind(limit + 1)
            .bind(cursor.as_ref().and_then(|c| c.p))
            .bind(cursor.as_ref().map(|c| c.id));
    if let Some(q) = q {
        stmt = stmt.bind(q);
    }
    let rows = stmt.fetch_all(&state.db).await?;
    Ok(Page::from_rows(rows, limit, |p| Cursor {
        s: sort,
        p: (sort != Sort::Newest).then_some(p.price_cents),
        id: p.id,
    }))
}

/// A product
///
/// Any product by id, archived ones too (`active: false`), so past orders can link to them. An
/// id that is not a UUID is 404.
// Served from the cache when it holds the product; `ETag` + `If-None-Match` answer 304.
#[utoipa::path(
    get,
    path = "/api/v1/products/{id}",
    operation_id = "getProduct",
    security((), ("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = PRODUCT_ID),
        ("If-None-Match" = Option<String>, Header, nullable = false, description = IF_NONE_MATCH),
    ),
    responses(
        (status = 200, description = "The product.", body = Product, headers(("ETag" = String, description = "A strong validator of this representation; send it back as `If-None-Match` to get 304 while it is unchanged."))),
        (status = 304, response = NotModified),
    )
)]
#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = parse_id(&id, "product")?;
    if let Some(hit) = state.cache.product(id) {
        return Ok(hit.respond(&headers, true));
    }
    let ticket = state.cache.ticket();
    let mut conn = state.db.acquire().await?;
    let product = load(&mut conn, id).await?;
    drop(conn);
    let product = Cached::json(&product).map_err(ApiError::internal)?;
    state.cache.store_product(ticket, id, product.clone());
    Ok(product.respond(&headers, false))
}

/// Without `options`: `price_cents` and `stock` are required and the product is its own one
/// variant. With `options`: `variants` (1-300) are required and `price_cents`/`stock` must be
/// left out (422): each variant has its own.
#[derive(Deserialize, ToSchema)]
#[schema(as = ProductCreate)]
struct NewProduct {
    /// No whitespace.
    #[schema(min_length = 1, max_length = 64, pattern = r"^\s*\S+\s*$")]
    sku: String,
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    #[schema(max_length = 10_000)]
    description: String,
    /// Integer cents (minor units). Required without options; with options each variant has
    /// its own.
    #[serde(default)]
    #[schema(value_type = i64, minimum = 0, maximum = 100_000_000_000_i64, examples(1999))]
    price_cents: Option<i64>,
    /// Must be the shop's currency (case-insensitive).
    #[schema(examples("usd"))]
    currency: String,
    #[serde(default)]
    #[schema(max_items = 50)]
    category_ids: Option<Vec<Uuid>>,
    /// Units available to sell.
    #[serde(default)]
    #[schema(value_type = i64, minimum = 0, maximum = 1_000_000_000, examples(50))]
    stock: Option<i64>,
    /// An absolute http(s) URL (`https://cdn.example.com/teapot.png`) of visible ASCII
    /// (percent-encode the rest), at most 2,048 characters. Anything else is 422.
    #[serde(default)]
    #[schema(value_type = String, max_length = 2048, examples("https://cdn.example.com/teapot.png"))]
    image_url: Option<String>,
    #[serde(default)]
    #[schema(max_items = 3)]
    options: Vec<ProductOption>,
    /// Each names one value of every option (422 otherwise); combinations are distinct (422).
    #[serde(default)]
    #[schema(value_type = Vec<NewVariant>, min_items = 1, max_items = 300)]
    variants: Option<Vec<NewVariant>>,
}

/// A product's price and stock are its variants' when it has options, its own otherwise.
fn own_or_variants(
    field: &str,
    value: Option<i64>,
    has_options: bool,
    errors: &mut Vec<FieldError>,
) -> i64 {
    match (value, has_options) {
        (Some(v), false) => v,
        (None, false) => {
            errors.push(FieldError::new(field, "is required"));
            0
        }
        (Some(_), true) => {
            errors.push(FieldError::new(
                field,
                "a product with options has it per variant; leave it out",
            ));
            0
        }
        (None, true) => 0,
    }
}

/// Replaces a product's categories; 422 `category_not_found` names the unknown ones.
async fn set_categories(conn: &mut PgConnection, product: Uuid, ids: &[Uuid]) -> ApiResult<()> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    if ids.len() > 50 {
        return Err(ApiError::invalid_field(
            "category_ids",
            "at most 50 categories",
        ));
    }
    sqlx::query("DELETE FROM product_categories WHERE product_id = $1")
        .bind(product)
        .execute(&mut *conn)
        .await?;
    // `FOR KEY SHARE` keeps the categories from being deleted before this commits.
    let known: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM categories WHERE id = ANY($1) FOR KEY SHARE")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    let unknown: Vec<String> = ids
        .iter()
        .filter(|id| !known.contains(id))
        .map(Uuid::to_string)
        .collect();
    if !unknown.is_empty() {
        let mut e = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::CategoryNotFound,
            format!("no such category: {}", unknown.join(", ")),
        );
        e.errors = vec![FieldError::new("category_ids", "names an unknown category")];
        return Err(e);
    }
    sqlx::query(
        "INSERT INTO product_categories (product_id, category_id) SELECT $1, unnest($2::uuid[])",
    )
    .bind(product)
    .bind(&ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Create a product (admin)
///
/// Text fields are trimmed. `currency` must be the shop's currency (default `usd`;
/// case-insensitive, stored lowercase). `category_ids` (at most 50, duplicates ignored) must
/// name existing categories, else 422 `category_not_found`. Admins only: a customer's token is
/// 403 `forbidden`. A product may have `options` (at most 3) and then `variants`, one per
/// combination it sells, each with its own SKU, price and stock; without options it is its own
/// one variant (same id).
#[utoipa::path(
    post,
    path = "/api/v1/products",
    operation_id = "createProduct",
    security(("bearer" = ["admin"])),
    request_body(
        content = NewProduct,
        description = "The new product.",
        examples(
            ("simple" = (summary = "One variant", value = json!({
                "sku": "TEE-BLK-M", "name": "Black tee, M", "description": "Organic cotton.",
                "price_cents": 1999, "currency": "usd", "stock": 50
            }))),
            ("options" = (summary = "Sizes", value = json!({
                "sku": "TEE-BLK", "name": "Black tee", "description": "Organic cotton.",
                "currency": "usd",
                "options": [{"name": "size", "values": ["S", "M", "L"]}],
                "variants": [
                    {"sku": "TEE-BLK-S", "option_values": {"size": "S"}, "price_cents": 1999, "stock": 20},
                    {"sku": "TEE-BLK-M", "option_values": {"size": "M"}, "price_cents": 1999, "stock": 30}
                ]
            }))),
        ),
    ),
    responses(
        (status = 201, description = "The new product.", body = Product),
        (status = 409, response = inline(SkuTaken)),
        (status = 422, response = inline(ProductInvalid)),
    )
)]
#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<NewProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    let mut errors = Vec::new();
    let sku = validate::sku(&body.sku, &mut errors);
    let name = validate::text("name", &body.name, 1, 200, &mut errors);
    let description = validate::text("description", &body.description, 0, 10_000, &mut errors);
    let options = variants::options(&body.options, &mut errors);
    let has_options = !options.is_empty();
    let price = own_or_variants("price_cents", body.price_cents, has_options, &mut errors);
    let stock = own_or_variants("stock", body.stock, has_options, &mut errors);
    validate::price("price_cents", price, &mut errors);
    let currency = validate::currency(&body.currency, &state.config.currency, &mut errors);
    validate::stock(stock, &mut errors);
    let image_url = body
        .image_url
        .as_deref()
        .map(|v| validate::image_url(v, &mut errors));
    let new_variants = match (&body.variants, has_options) {
        (Some(raw), true) => variants::new_variants(&options, raw, &mut errors),
        (None, true) => {
            errors.push(FieldError::new(
                "variants",
                "a product with options needs its variants",
            ));
            Vec::new()
        }
        (Some(_), false) => {
            errors.push(FieldError::new(
                "variants",
                "variants need options; a product without options is its own one variant",
            ));
            Vec::new()
        }
        (None, false) => Vec::new(),
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let id = Uuid::now_v7();
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO products (id, sku, name, description, price_cents, currency, stock, image_url,
                               options)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(&sku)
    .bind(&name)
    .bind(&description)
    .bind(price)
    .bind(&currency)
    .bind(stock)
    .bind(&image_url)
    .bind(sqlx::types::Json(&options))
    .execute(&mut *tx)
    .await
    .map_err(variants::conflict)?;
    if has_options {
        for v in &new_variants {
            variants::insert(&mut tx, id, Uuid::now_v7(), v).await?;
        }
    } else {
        variants::insert_default(&mut tx, id, &sku, price, stock).await?;
    }
    if let Some(ids) = &body.category_ids {
        set_categories(&mut tx, id, ids).await?;
    }
    let product = load(&mut tx, id).await?;
    tx.commit().await?;
    state.cache.forget_product(id);
    tracing::info!(product_id = %id, %sku, "product created");
    Ok((StatusCode::CREATED, Json(product)))
}

/// Any subset; absent fields are unchanged. Only `category_ids` and `image_url` may be null.
#[derive(Deserialize, ToSchema)]
struct ProductUpdate {
    /// No whitespace.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = r"^\s*\S+\s*$")]
    sku: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, max_length = 10_000)]
    description: Option<Option<String>>,
    /// Only for a product without options (else 422: set it per variant).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = i64, minimum = 0, maximum = 100_000_000_000_i64, examples(1999))]
    price_cents: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, examples("usd"))]
    currency: Option<Option<String>>,
    /// Replaces the categories; `null` or `[]` removes them all.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<Uuid>>, max_items = 50)]
    category_ids: Option<Option<Vec<Uuid>>>,
    /// Only for a product without options (else 422: set it per variant).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = i64, minimum = 0, maximum = 1_000_000_000, examples(50))]
    stock: Option<Option<i64>>,
    /// `true` brings an archived product back.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = bool)]
    active: Option<Option<bool>>,
    /// `null` removes the picture. An absolute http(s) URL
    /// (`https://cdn.example.com/teapot.png`) of visible ASCII (percent-encode the rest), at
    /// most 2,048 characters. Anything else is 422.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 2048, examples("https://cdn.example.com/teapot.png"))]
    image_url: Option<Option<String>>,
    /// Refused (422): options are fixed when the product is created. Not in the document,
    /// which describes what a client may send.
    #[serde(default)]
    #[schema(ignore)]
    options: Option<serde_json::Value>,
}

/// Change a product (admin)
///
/// Any subset of the product's fields; absent fields are left as they are, and `null` is 422
/// except for `category_ids`, where `null` or `[]` removes every category, and `image_url`,
/// where `null` removes the picture. `active: true` brings an archived product back. Same rules
/// as on creation. Admins only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    patch,
    path = "/api/v1/products/{id}",
    operation_id = "updateProduct",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = PRODUCT_ID)),
    request_body(
        content = ProductUpdate,
        description = "The fields to change.",
        example = json!({"price_cents": 1799}),
    ),
    responses(
        (status = 200, description = "The updated product.", body = Product),
        (status = 409, response = inline(SkuTakenOnUpdate)),
        (status = 422, response = inline(ProductUpdateInvalid)),
    )
)]
#[tracing::instrument(skip_all)]
async fn update(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<ProductUpdate>,
) -> ApiResult<Json<Product>> {
    let id = parse_id(&id, "product")?;
    let mut errors = Vec::new();
    let sku = not_null("sku", body.sku, &mut errors).map(|v| validate::sku(&v, &mut errors));
    let name = not_null("name", body.name, &mut errors)
        .map(|v| validate::text("name", &v, 1, 200, &mut errors));
    let description = not_null("description", body.description, &mut errors)
        .map(|v| validate::text("description", &v, 0, 10_000, &mut errors));
    let price = not_null("price_cents", body.price_cents, &mut errors);
    if let Some(p) = price {
        validate::price("price_cents", p, &mut errors);
    }
    let currency = not_null("currency", body.currency, &mut errors)
        .map(|v| validate::currency(&v, &state.config.currency, &mut errors));
    let stock = not_null("stock", body.stock, &mut errors);
    if let Some(s) = stock {
        validate::stock(s, &mut errors);
    }
    let active = not_null("active", body.active, &mut errors);
    let image_url = body
        .image_url
        .map(|v| v.map(|url| validate::image_url(&url, &mut errors)));
    if body.options.is_some() {
        errors.push(FieldError::new(
            "options",
            "options are set when the product is created; add variants with \
             POST /products/{id}/variants",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut tx = state.db.begin().await?;
    let options = variants::lock_product(&mut tx, id).await?;
    if !options.is_empty() {
        for (field, given) in [("price_cents", price.is_some()), ("stock", stock.is_some())] {
            if given {
                errors.push(FieldError::new(
                    field,
                    "this product has options: set it on each variant",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
    }
    sqlx::query(
        "UPDATE products SET
            sku = COALESCE($2, sku), name = COALESCE($3, name),
            description = COALESCE($4, description), currency = COALESCE($5, currency),
            active = COALESCE($6, active),
            image_url = CASE WHEN $7 THEN $8 ELSE image_url END, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&sku)
    .bind(name)
    .bind(description)
    .bind(currency)
    .bind(active)
    .bind(image_url.is_some())
    .bind(image_url.flatten())
    .execute(&mut *tx)
    .await
    .map_err(variants::conflict)?;
    if options.is_empty() {
        // The product's one variant carries its SKU, price and stock (its id is the product's).
        sqlx::query(
            "UPDATE variants SET sku = COALESCE($2, sku), price_cents = COALESCE($3, price_cents),
                stock = COALESCE($4, stock), updated_at = now()
             WHERE id = $1",
        )
        .bind(id)
        .bind(&sku)
        .bind(price)
        .bind(stock)
        .execute(&mut *tx)
        .await
        .map_err(variants::conflict)?;
    }
    if let Some(ids) = body.category_ids {
        set_categories(&mut tx, id, &ids.unwrap_or_default()).await?;
    }
    let product = load(&mut tx, id).await?;
    tx.commit().await?;
    state.cache.forget_product(id);
    Ok(Json(product))
}

/// Archive a product (admin)
///
/// Archives, never deletes: the product gets `active: false`, disappears from
/// `GET /api/v1/products`, cannot be added to a cart or bought, and past orders keep their
/// lines. Idempotent: archiving an archived product is 204 again. Admins only: a customer's
/// token is 403 `forbidden`.
#[utoipa::path(
    delete,
    path = "/api/v1/products/{id}",
    operation_id = "archiveProduct",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = PRODUCT_ID)),
    responses(
        (status = 204, description = "Archived."),
    )
)]
#[tracing::instrument(skip_all)]
async fn archive(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "product")?;
    let found: Option<Uuid> = sqlx::query_scalar(
        "UPDATE products SET active = false,
            updated_at = CASE WHEN active THEN now() ELSE updated_at END
         WHERE id = $1 RETURNING id",
    )
    .bind(id)
    .fetch_optional(&state.db)
    .await?;
    state.cache.forget_product(id);
    found
        .map(|_| StatusCode::NO_CONTENT)
        .ok_or_else(|| ApiError::not_found("no such product"))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = StockUpdate)]
struct StockBody {
    /// Units available to sell.
    #[schema(minimum = 0, maximum = 1_000_000_000, examples(50))]
    stock: i64,
}

/// Set a product's stock (admin)
///
/// Sets the units available to sell (0 to 1,000,000,000). Units held by open checkout
/// reservations are not included. Admins only: a customer's token is 403 `forbidden`. Only for
/// a product without options: one with options is 422
/// (`PATCH /products/{id}/variants/{variant_id}` sets each variant's stock).
#[utoipa::path(
    put,
    path = "/api/v1/products/{id}/stock",
    operation_id = "setProductStock",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = PRODUCT_ID)),
    request_body(
        content = StockBody,
        description = "The new stock.",
        example = json!({"stock": 120}),
    ),
    responses(
        (status = 200, description = "The updated product.", body = Product),
        (status = 422, response = ValidationFailed),
    )
)]
#[tracing::instrument(skip_all)]
async fn set_stock(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<StockBody>,
) -> ApiResult<Json<Product>> {
    let id = parse_id(&id, "product")?;
    let mut errors = Vec::new();
    validate::stock(body.stock, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut tx = state.db.begin().await?;
    if !variants::lock_product(&mut tx, id).await?.is_empty() {
        return Err(ApiError::invalid_field(
            "stock",
            "this product has options: set the stock of each variant",
        ));
    }
    sqlx::query("UPDATE products SET updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE variants SET stock = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(body.stock)
        .execute(&mut *tx)
        .await?;
    let product = load(&mut tx, id).await?;
    tx.commit().await?;
    state.cache.forget_product(id);
    Ok(Json(product))
}

/// `GET /internal/products?ids=a,b,...` (`souk_contract::catalog::PRODUCTS`): archived
/// products included (`active: false`); unknown ids are simply absent. At most 100 ids.
#[tracing::instrument(skip_all)]
async fn internal_batch(
    State(state): State<AppState>,
    Query(query): Query<variants::BatchQuery>,
) -> ApiResult<Json<Batch<ProductEntry>>> {
    let ids = variants::parse_ids(query.ids.as_deref())?;
    let items = sqlx::query_as(
        "SELECT p.id, p.sku, p.name, p.price_cents, p.currency, p.stock, p.active,
                ARRAY(SELECT pc.category_id FROM product_categories pc WHERE pc.product_id = p.id
                      ORDER BY pc.category_id) AS category_ids,
                jsonb_array_length(p.options) > 0 AS has_options
         FROM products p WHERE p.id = ANY($1) ORDER BY p.id",
    )
    .bind(&ids)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Batch { items }))
}
