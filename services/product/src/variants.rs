//! Options and variants: what is sold and stocked.
//!
//! A product with `options` (at most 3, each with its values) has one variant per combination
//! it sells; a product without options has exactly one variant whose id and SKU are the
//! product's own. Stock, price and reservations are per variant; the product's `stock` and
//! `price_cents` follow its variants (a database trigger, see the `variants` migration).
//!
//! Lock order: a writer locks the product row before any of its variants, because the trigger
//! updates the product row after each variant change.

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use serde::{Deserialize, Serialize};
use souk_common::error::{parse_id, unique_violation};
use souk_common::pagination::MAX_LIMIT;
use souk_common::{AdminUser, ApiError, ApiResult, FieldError, Json, Query};
use souk_contract::ErrorCode;
use souk_contract::catalog::{self, Batch, VariantEntry};
use sqlx::PgConnection;
use sqlx::types::Json as Jsonb;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::openapi::{
    OptionValuesSchema, PRODUCT_ID, SkuTakenOnUpdate, VARIANT_ID, VariantConflict, VariantInvalid,
    VariantUpdateInvalid,
};
use crate::validate::{self, double_option, not_null};

pub const MAX_OPTIONS: usize = 3;
pub const MAX_OPTION_VALUES: usize = 100;
/// Variants per product (a request creating them is one transaction).
pub const MAX_VARIANTS: usize = 300;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/products/{id}/variants", post(create))
        .route("/api/v1/products/{id}/variants/{variant_id}", patch(update))
        .route(catalog::VARIANTS, get(internal_batch))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[schema(examples(json!({"name": "size", "values": ["S", "M", "L"]})))]
pub struct ProductOption {
    /// Unique within the product (case-insensitive).
    #[schema(min_length = 1, max_length = 50)]
    pub name: String,
    /// Distinct values.
    #[schema(min_items = 1, max_items = 100, min_length = 1, max_length = 50)]
    pub values: Vec<String>,
}

pub use souk_contract::catalog::OptionValues;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Variant {
    /// What cart lines and order lines are keyed by. For a product without options: the
    /// product's own id.
    pub id: Uuid,
    pub sku: String,
    #[schema(value_type = OptionValuesSchema)]
    pub option_values: Jsonb<OptionValues>,
    /// Integer cents (minor units).
    #[schema(minimum = 0, maximum = 100_000_000_000_i64, examples(1999))]
    pub price_cents: i64,
    /// Units of this variant available to sell.
    #[schema(minimum = 0, maximum = 1_000_000_000, examples(50))]
    pub stock: i64,
    /// False: not for sale (the product's other variants may be).
    pub active: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(as = VariantCreate)]
pub struct NewVariant {
    /// No whitespace; unique among all products and variants.
    #[schema(min_length = 1, max_length = 64, pattern = r"^\s*\S+\s*$")]
    sku: String,
    // Required for the document: a product that takes new variants has options, so `{}` is
    // always 422 here (the default only lets the create-product check name the field).
    #[serde(default)]
    #[schema(value_type = OptionValuesSchema, required = true)]
    option_values: OptionValues,
    /// Integer cents (minor units).
    #[schema(minimum = 0, maximum = 100_000_000_000_i64, examples(1999))]
    price_cents: i64,
    /// Units of this variant available to sell.
    #[schema(minimum = 0, maximum = 1_000_000_000, examples(50))]
    stock: i64,
    #[serde(default)]
    #[schema(value_type = bool, default = true)]
    active: Option<bool>,
}

/// A variant that passed validation, ready to insert.
pub struct CleanVariant {
    sku: String,
    option_values: OptionValues,
    price_cents: i64,
    stock: i64,
    active: bool,
}

/// Trims and checks options: at most 3, names and values 1 to 50 characters, no duplicates
/// (names compared case-insensitively), 1 to 100 values each.
pub fn options(raw: &[ProductOption], errors: &mut Vec<FieldError>) -> Vec<ProductOption> {
    if raw.len() > MAX_OPTIONS {
        errors.push(FieldError::new(
            "options",
            format!("at most {MAX_OPTIONS} options"),
        ));
    }
    let mut names = BTreeSet::new();
    let mut clean = Vec::with_capacity(raw.len());
    for (i, option) in raw.iter().enumerate() {
        let name = validate::text(&format!("options[{i}].name"), &option.name, 1, 50, errors);
        if !names.insert(name.to_lowercase()) {
            errors.push(FieldError::new(
                format!("options[{i}].name"),
                "another option has this name",
            ));
        }
        if !(1..=MAX_OPTION_VALUES).contains(&option.values.len()) {
            errors.push(FieldError::new(
                format!("options[{i}].values"),
                format!("must hold 1 to {MAX_OPTION_VALUES} values"),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut values = Vec::with_capacity(option.values.len());
        for (j, value) in option.values.iter().enumerate() {
            let field = format!("options[{i}].values[{j}]");
            let value = validate::text(&field, value, 1, 50, errors);
            if !seen.insert(value.clone()) {
                errors.push(FieldError::new(field, "duplicate value"));
            }
            values.push(value);
        }
        clean.push(ProductOption { name, values });
    }
    clean
}

/// Checks a combination against the product's options: one value for each option, each one of
/// that option's values, nothing else. A product without options takes only `{}`.
fn combination(
    field: &str,
    options: &[ProductOption],
    raw: &OptionValues,
    errors: &mut Vec<FieldError>,
) -> OptionValues {
    let mut clean = OptionValues::new();
    for (name, value) in raw {
        let (name, value) = (name.trim(), value.trim());
        match options.iter().find(|o| o.name == name) {
            None if options.is_empty() => errors.push(FieldError::new(
                field,
                "this product has no options: leave option_values empty",
            )),
            None => errors.push(FieldError::new(
                field,
                format!("\"{name}\" is not an option of this product"),
            )),
            Some(o) if !o.values.iter().any(|v| v == value) => errors.push(FieldError::new(
                field,
                format!(
                    "\"{value}\" is not a value of option \"{name}\" ({})",
                    o.values.join(", ")
                ),
            )),
            Some(_) => {
                clean.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    for o in options {
        if !raw.keys().any(|k| k.trim() == o.name) {
            errors.push(FieldError::new(
                field,
                format!("needs a value for option \"{}\"", o.name),
            ));
        }
    }
    clean
}

/// Validates the variants of a new product (`variants[i]...` fields).
pub fn new_variants(
    options: &[ProductOption],
    raw: &[NewVariant],
    errors: &mut Vec<FieldError>,
) -> Vec<CleanVariant> {
    if raw.is_empty() || raw.len() > MAX_VARIANTS {
        errors.push(FieldError::new(
            "variants",
            format!("a product with options needs 1 to {MAX_VARIANTS} variants"),
        ));
    }
    let mut seen = BTreeSet::new();
    let mut clean = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        let variant = new_variant(&format!("variants[{i}]."), options, v, errors);
        if !seen.insert(variant.option_values.clone()) {
            errors.push(FieldError::new(
                format!("variants[{i}].option_values"),
                "another variant has this combination",
            ));
        }
        clean.push(variant);
    }
    clean
}

fn new_variant(
    prefix: &str,
    options: &[ProductOption],
    v: &NewVariant,
    errors: &mut Vec<FieldError>,
) -> CleanVariant {
    let sku = validate::sku_in(&format!("{prefix}sku"), &v.sku, errors);
    validate::price(&format!("{prefix}price_cents"), v.price_cents, errors);
    validate::stock_in(&format!("{prefix}stock"), v.stock, errors);
    let option_values = combination(
        &format!("{prefix}option_values"),
        options,
        &v.option_values,
        errors,
    );
    CleanVariant {
        sku,
        option_values,
        price_cents: v.price_cents,
        stock: v.stock,
        active: v.active.unwrap_or(true),
    }
}

/// The 409 `sku_taken` detail.
pub const SKU_TAKEN: &str = "a product or variant with this SKU already exists";

/// 409 `sku_taken` for a SKU in use; 422 for a combination the product already sells.
pub fn conflict(e: sqlx::Error) -> ApiError {
    match unique_violation(&e) {
        Some("variants_sku_key" | "products_sku_key") => {
            ApiError::conflict(ErrorCode::SkuTaken, SKU_TAKEN)
        }
        Some("variants_combination_key") => ApiError::invalid_field(
            "option_values",
            "another variant of this product has this combination",
        ),
        _ => e.into(),
    }
}

pub async fn insert(
    conn: &mut PgConnection,
    product_id: Uuid,
    id: Uuid,
    v: &CleanVariant,
) -> ApiResult<()> {
    sqlx::query(
        "INSERT INTO variants (id, product_id, sku, option_values, price_cents, stock, active)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(product_id)
    .bind(&v.sku)
    .bind(Jsonb(&v.option_values))
    .bind(v.price_cents)
    .bind(v.stock)
    .bind(v.active)
    .execute(conn)
    .await
    .map_err(conflict)?;
    Ok(())
}

/// The one variant of a product without options: the product's id, SKU, price and stock.
pub async fn insert_default(
    conn: &mut PgConnection,
    product_id: Uuid,
    sku: &str,
    price_cents: i64,
    stock: i64,
) -> ApiResult<()> {
    let v = CleanVariant {
        sku: sku.to_owned(),
        option_values: OptionValues::new(),
        price_cents,
        stock,
        active: true,
    };
    insert(conn, product_id, product_id, &v).await
}

pub async fn of_product(conn: &mut PgConnection, product_id: Uuid) -> ApiResult<Vec<Variant>> {
    Ok(sqlx::query_as(
        "SELECT id, sku, option_values, price_cents, stock, active FROM variants
         WHERE product_id = $1 ORDER BY id",
    )
    .bind(product_id)
    .fetch_all(conn)
    .await?)
}

/// Locks the product (before any of its variants) and answers its options; 404 if unknown.
pub async fn lock_product(
    conn: &mut PgConnection,
    product_id: Uuid,
) -> ApiResult<Vec<ProductOption>> {
    let options: Option<Jsonb<Vec<ProductOption>>> =
        sqlx::query_scalar("SELECT options FROM products WHERE id = $1 FOR UPDATE")
            .bind(product_id)
            .fetch_optional(conn)
            .await?;
    options
        .map(|o| o.0)
        .ok_or_else(|| ApiError::not_found("no such product"))
}

/// Add a variant to a product with options (admin)
///
/// A new combination of the product's option values, with its own SKU, price and stock. The
/// product's `price_cents` (lowest active variant) and `stock` (sum) follow. A product without
/// options has exactly one variant (its own id) and takes no others (422). Admins only: a
/// customer's token is 403 `forbidden`.
#[utoipa::path(
    post,
    path = "/api/v1/products/{id}/variants",
    operation_id = "createVariant",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = PRODUCT_ID)),
    request_body(
        content = NewVariant,
        description = "The variant.",
        example = json!({
            "sku": "TEE-BLK-XL", "option_values": {"size": "XL"}, "price_cents": 2199, "stock": 10
        }),
    ),
    responses(
        (status = 201, description = "The new variant.", body = Variant),
        (status = 409, response = inline(VariantConflict)),
        (status = 422, response = inline(VariantInvalid)),
    )
)]
#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<NewVariant>,
) -> ApiResult<(StatusCode, Json<Variant>)> {
    let product_id = parse_id(&id, "product")?;
    let mut tx = state.db.begin().await?;
    let options = lock_product(&mut tx, product_id).await?;
    if options.is_empty() {
        return Err(ApiError::invalid_field(
            "option_values",
            "this product has no options, so it has exactly one variant (its own id)",
        ));
    }
    let mut errors = Vec::new();
    let variant = new_variant("", &options, &body, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM variants WHERE product_id = $1")
        .bind(product_id)
        .fetch_one(&mut *tx)
        .await?;
    if count as usize >= MAX_VARIANTS {
        return Err(ApiError::conflict(
            ErrorCode::TooManyVariants,
            format!("a product has at most {MAX_VARIANTS} variants"),
        ));
    }
    let id = Uuid::now_v7();
    insert(&mut tx, product_id, id, &variant).await?;
    let created = one(&mut tx, product_id, id).await?;
    tx.commit().await?;
    state.cache.forget_product(product_id);
    tracing::info!(%product_id, variant_id = %id, sku = %created.sku, "variant created");
    Ok((StatusCode::CREATED, Json(created)))
}

async fn one(conn: &mut PgConnection, product_id: Uuid, id: Uuid) -> ApiResult<Variant> {
    sqlx::query_as(
        "SELECT id, sku, option_values, price_cents, stock, active FROM variants
         WHERE id = $1 AND product_id = $2",
    )
    .bind(id)
    .bind(product_id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found("no such variant of this product"))
}

/// Any subset; absent fields are unchanged; none may be null.
#[derive(Deserialize, ToSchema)]
struct VariantUpdate {
    /// No whitespace; unique among all products and variants.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = r"^\s*\S+\s*$")]
    sku: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = OptionValuesSchema)]
    option_values: Option<Option<OptionValues>>,
    /// Integer cents (minor units).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = i64, minimum = 0, maximum = 100_000_000_000_i64, examples(1999))]
    price_cents: Option<Option<i64>>,
    /// Units of this variant available to sell.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = i64, minimum = 0, maximum = 1_000_000_000, examples(50))]
    stock: Option<Option<i64>>,
    /// The one variant of a product without options cannot be switched off on its own: archive
    /// the product (422).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = bool)]
    active: Option<Option<bool>>,
}

/// Change a variant (admin)
///
/// Any of `sku`, `option_values`, `price_cents`, `stock`, `active`. For a product without
/// options its one variant is the product: its SKU follows the product's, and it is taken off
/// sale by archiving the product. A variant of another product is 404. Admins only.
#[utoipa::path(
    patch,
    path = "/api/v1/products/{id}/variants/{variant_id}",
    operation_id = "updateVariant",
    security(("bearer" = ["admin"])),
    params(
        ("id" = Uuid, Path, description = PRODUCT_ID),
        ("variant_id" = Uuid, Path, description = VARIANT_ID),
    ),
    request_body(
        content = VariantUpdate,
        description = "The changes.",
        example = json!({"price_cents": 1799, "stock": 25}),
    ),
    responses(
        (status = 200, description = "The updated variant.", body = Variant),
        (status = 409, response = inline(SkuTakenOnUpdate)),
        (status = 422, response = inline(VariantUpdateInvalid)),
    )
)]
#[tracing::instrument(skip_all)]
async fn update(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path((id, variant_id)): Path<(String, String)>,
    Json(body): Json<VariantUpdate>,
) -> ApiResult<Json<Variant>> {
    let product_id = parse_id(&id, "product")?;
    let variant_id = parse_id(&variant_id, "variant")?;
    let mut errors = Vec::new();
    let sku = not_null("sku", body.sku, &mut errors).map(|v| validate::sku(&v, &mut errors));
    let price = not_null("price_cents", body.price_cents, &mut errors);
    if let Some(p) = price {
        validate::price("price_cents", p, &mut errors);
    }
    let stock = not_null("stock", body.stock, &mut errors);
    if let Some(s) = stock {
        validate::stock(s, &mut errors);
    }
    let active = not_null("active", body.active, &mut errors);
    let raw_values = not_null("option_values", body.option_values, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let mut tx = state.db.begin().await?;
    let options = lock_product(&mut tx, product_id).await?;
    one(&mut tx, product_id, variant_id).await?;
    let option_values = raw_values.map(|v| combination("option_values", &options, &v, &mut errors));
    if options.is_empty() && active == Some(false) {
        errors.push(FieldError::new(
            "active",
            "a product without options is taken off sale by archiving it (DELETE /products/{id})",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if options.is_empty()
        && let Some(sku) = &sku
    {
        sqlx::query("UPDATE products SET sku = $2, updated_at = now() WHERE id = $1")
            .bind(product_id)
            .bind(sku)
            .execute(&mut *tx)
            .await
            .map_err(conflict)?;
    }
    sqlx::query(
        "UPDATE variants SET sku = COALESCE($2, sku), option_values = COALESCE($3, option_values),
            price_cents = COALESCE($4, price_cents), stock = COALESCE($5, stock),
            active = COALESCE($6, active), updated_at = now()
         WHERE id = $1",
    )
    .bind(variant_id)
    .bind(sku)
    .bind(option_values.map(Jsonb))
    .bind(price)
    .bind(stock)
    .bind(active)
    .execute(&mut *tx)
    .await
    .map_err(conflict)?;
    let updated = one(&mut tx, product_id, variant_id).await?;
    tx.commit().await?;
    state.cache.forget_product(product_id);
    Ok(Json(updated))
}

/// `?ids=a,b,...` (at most 100) for the internal batch lookups.
pub fn parse_ids(raw: Option<&str>) -> ApiResult<Vec<Uuid>> {
    let mut ids = Vec::new();
    for raw in raw.unwrap_or("").split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        ids.push(
            raw.parse::<Uuid>()
                .map_err(|_| ApiError::invalid_field("ids", "must be comma-separated ids"))?,
        );
    }
    if ids.len() as i64 > MAX_LIMIT {
        return Err(ApiError::invalid_field("ids", "at most 100 ids"));
    }
    Ok(ids)
}

#[derive(Deserialize)]
pub struct BatchQuery {
    pub ids: Option<String>,
}

/// `GET /internal/variants?ids=a,b,...` (`souk_contract::catalog::VARIANTS`): variants by id (a
/// product without options: its own id), archived ones included (`active: false`); unknown ids
/// are simply absent.
#[tracing::instrument(skip_all)]
async fn internal_batch(
    State(state): State<AppState>,
    Query(query): Query<BatchQuery>,
) -> ApiResult<Json<Batch<VariantEntry>>> {
    let ids = parse_ids(query.ids.as_deref())?;
    let items = sqlx::query_as(
        "SELECT v.id, v.product_id, v.sku, p.name, v.option_values, v.price_cents, p.currency,
                v.stock, p.active AND v.active AS active,
                ARRAY(SELECT pc.category_id FROM product_categories pc WHERE pc.product_id = p.id
                      ORDER BY pc.category_id) AS category_ids
         FROM variants v JOIN products p ON p.id = v.product_id
         WHERE v.id = ANY($1) ORDER BY v.id",
    )
    .bind(&ids)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Batch { items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size_colour() -> Vec<ProductOption> {
        vec![
            ProductOption {
                name: "size".into(),
                values: vec!["S".into(), "M".into()],
            },
            ProductOption {
                name: "colour".into(),
                values: vec!["red".into()],
            },
        ]
    }

    fn values(pairs: &[(&str, &str)]) -> OptionValues {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_combination_names_every_option_with_one_of_its_values() {
        let options = size_colour();
        let mut e = Vec::new();
        let ok = combination(
            "v",
            &options,
            &values(&[("size", " M "), ("colour", "red")]),
            &mut e,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(ok, values(&[("size", "M"), ("colour", "red")]));
        for bad in [
            values(&[("size", "XL"), ("colour", "red")]),
            values(&[("size", "M")]),
            values(&[("size", "M"), ("colour", "red"), ("fit", "slim")]),
            values(&[]),
        ] {
            let mut e = Vec::new();
            combination("v", &options, &bad, &mut e);
            assert!(!e.is_empty(), "{bad:?} accepted");
        }
        let mut e = Vec::new();
        combination("v", &[], &values(&[("size", "M")]), &mut e);
        assert_eq!(e.len(), 1);
        let mut e = Vec::new();
        combination("v", &[], &values(&[]), &mut e);
        assert!(e.is_empty());
    }

    #[test]
    fn options_are_bounded_and_unique() {
        let mut e = Vec::new();
        options(&size_colour(), &mut e);
        assert!(e.is_empty());
        let four: Vec<ProductOption> = (0..4)
            .map(|i| ProductOption {
                name: format!("o{i}"),
                values: vec!["a".into()],
            })
            .collect();
        let mut e = Vec::new();
        options(&four, &mut e);
        assert_eq!(e.len(), 1);
        let mut e = Vec::new();
        options(
            &[
                ProductOption {
                    name: "Size".into(),
                    values: vec!["S".into(), "S".into()],
                },
                ProductOption {
                    name: "size".into(),
                    values: vec![],
                },
            ],
            &mut e,
        );
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "options[0].values[1]",
                "options[1].name",
                "options[1].values"
            ]
        );
    }

    #[test]
    fn duplicate_combinations_in_one_request_are_refused() {
        let options = size_colour();
        let v = |size: &str, sku: &str| NewVariant {
            sku: sku.into(),
            option_values: values(&[("size", size), ("colour", "red")]),
            price_cents: 100,
            stock: 1,
            active: None,
        };
        let mut e = Vec::new();
        new_variants(&options, &[v("S", "A"), v("S", "B")], &mut e);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].field, "variants[1].option_values");
        let mut e = Vec::new();
        new_variants(&options, &[], &mut e);
        assert_eq!(e[0].field, "variants");
    }
}
