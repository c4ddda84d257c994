//! `/api/v1/promotions` (admin): promotions, their batches of single-use codes, and how much of
//! each has been redeemed.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize};
use souk_common::error::{parse_id, unique_violation};
use souk_common::openapi::ValidationFailed;
use souk_common::pagination::{Page, PageItem, PageQuery};
use souk_common::{AdminUser, ApiError, ApiResult, FieldError, Json, Query};
use souk_contract::ErrorCode;
use uuid::Uuid;

use crate::AppState;
use crate::openapi::CodeTaken;
use crate::redeem::MAX_CODE_LEN;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/promotions", get(list).post(create))
        .route("/api/v1/promotions/{id}", get(show).patch(update))
        .route("/api/v1/promotions/{id}/codes", post(generate))
}

/// Generated codes: no 0/O, 1/I/L, so a code read aloud or off paper is typed right.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// 31^12 ≈ 2^59 codes: unguessable by trying, short enough to type.
const GENERATED_LEN: usize = 12;
const MAX_BATCH: i64 = 10_000;
/// Products or categories a promotion may name.
const MAX_TARGETS: usize = 1_000;

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub(crate) struct Promotion {
    id: Uuid,
    /// The promotion's own code, reusable within its limits; compared case-insensitively.
    #[schema(examples("SUMMER-25"))]
    code: String,
    #[schema(value_type = crate::discount::Kind)]
    kind: String,
    /// Percent (1-100) or cents, per `kind`.
    #[schema(minimum = 1)]
    value: i64,
    /// The cart's subtotal (all lines) must reach this.
    #[schema(minimum = 0)]
    min_subtotal_cents: i64,
    #[schema(required = true)]
    starts_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    ends_at: Option<DateTime<Utc>>,
    /// Most orders that may hold a redemption at once (failed and cancelled orders give theirs
    /// back); null: no limit.
    #[schema(required = true, minimum = 1)]
    usage_limit: Option<i32>,
    /// Most orders of one customer that may hold a redemption; null: no limit.
    #[schema(required = true, minimum = 1)]
    per_customer_limit: Option<i32>,
    /// Lines of these products are eligible (with `category_ids`: either matches). Both empty:
    /// every line.
    product_ids: Vec<Uuid>,
    /// Lines of products directly in one of these categories are eligible.
    category_ids: Vec<Uuid>,
    /// An inactive promotion's codes are unknown to shoppers (404 `promotion_not_found`).
    active: bool,
    /// Orders holding a redemption now.
    #[schema(minimum = 0)]
    redemptions: i64,
    /// Single-use codes generated for this promotion.
    #[schema(minimum = 0)]
    single_use_codes: i64,
    /// Of those, the ones an order holds.
    #[schema(minimum = 0)]
    single_use_codes_used: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl PageItem for Promotion {
    const PAGE_NAME: &'static str = "PromotionPage";
    const PAGE_DESCRIPTION: &'static str = "A page of promotions, newest first.";
}

/// The page `listPromotions` answers.
pub(crate) type PromotionPage = Page<Promotion>;

/// A promotion's path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct PromotionPath {
    /// The promotion's id (a malformed one is 404).
    #[param(value_type = Uuid)]
    id: String,
}

const COLUMNS: &str = "p.id, p.code, p.kind, p.value, p.min_subtotal_cents, p.starts_at, p.ends_at,
    p.usage_limit, p.per_customer_limit, p.product_ids, p.category_ids, p.active,
    (SELECT count(*) FROM redemptions r WHERE r.promotion_id = p.id AND r.state = 'redeemed') AS redemptions,
    (SELECT count(*) FROM promotion_codes c WHERE c.promotion_id = p.id AND c.single_use) AS single_use_codes,
    (SELECT count(*) FROM promotion_codes c WHERE c.promotion_id = p.id AND c.single_use
       AND c.order_id IS NOT NULL) AS single_use_codes_used,
    p.created_at, p.updated_at";

async fn load(state: &AppState, id: Uuid) -> ApiResult<Promotion> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM promotions p WHERE p.id = $1"
    )))
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("no such promotion"))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PromotionCreate)]
pub(crate) struct NewPromotion {
    /// Trimmed; unique among all codes (case-insensitive), generated ones included: else 409
    /// `code_taken`.
    #[schema(pattern = "^[A-Za-z0-9_-]{3,64}$")]
    code: String,
    #[schema(value_type = crate::discount::Kind)]
    kind: String,
    /// Percent 1-100, or a positive number of cents in the shop's currency.
    #[schema(minimum = 1)]
    value: i64,
    #[serde(default)]
    #[schema(minimum = 0, nullable = false)]
    min_subtotal_cents: Option<i64>,
    #[serde(default)]
    #[schema(nullable = false)]
    starts_at: Option<DateTime<Utc>>,
    /// After `starts_at`.
    #[serde(default)]
    #[schema(nullable = false)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    #[schema(minimum = 1, nullable = false)]
    usage_limit: Option<i64>,
    #[serde(default)]
    #[schema(minimum = 1, nullable = false)]
    per_customer_limit: Option<i64>,
    #[serde(default)]
    #[schema(max_items = 1000, nullable = false)]
    product_ids: Option<Vec<Uuid>>,
    #[serde(default)]
    #[schema(max_items = 1000, nullable = false)]
    category_ids: Option<Vec<Uuid>>,
}

fn check_code(code: &str, errors: &mut Vec<FieldError>) {
    let ok = (3..=MAX_CODE_LEN).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !ok {
        errors.push(FieldError::new(
            "code",
            format!("must be 3-{MAX_CODE_LEN} letters, digits, '-' or '_'"),
        ));
    }
}

fn check_limit(field: &str, limit: Option<i64>, errors: &mut Vec<FieldError>) {
    if limit.is_some_and(|l| !(1..=i64::from(i32::MAX)).contains(&l)) {
        errors.push(FieldError::new(
            field,
            "must be a positive integer, or absent",
        ));
    }
}

fn check_window(
    starts: Option<DateTime<Utc>>,
    ends: Option<DateTime<Utc>>,
    errors: &mut Vec<FieldError>,
) {
    if let (Some(s), Some(e)) = (starts, ends)
        && e <= s
    {
        errors.push(FieldError::new("ends_at", "must be after starts_at"));
    }
}

fn validate(body: &NewPromotion) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_code(&body.code, &mut errors);
    match body.kind.as_str() {
        "percent" if !(1..=100).contains(&body.value) => {
            errors.push(FieldError::new("value", "a percent must be from 1 to 100"));
        }
        "amount" if body.value <= 0 => {
            errors.push(FieldError::new(
                "value",
                "an amount must be a positive number of cents",
            ));
        }
        "percent" | "amount" => {}
        _ => errors.push(FieldError::new("kind", "must be \"percent\" or \"amount\"")),
    }
    if body.min_subtotal_cents.is_some_and(|m| m < 0) {
        errors.push(FieldError::new(
            "min_subtotal_cents",
            "must not be negative",
        ));
    }
    check_window(body.starts_at, body.ends_at, &mut errors);
    check_limit("usage_limit", body.usage_limit, &mut errors);
    check_limit("per_customer_limit", body.per_customer_limit, &mut errors);
    for (field, ids) in [
        ("product_ids", &body.product_ids),
        ("category_ids", &body.category_ids),
    ] {
        if ids.as_ref().is_some_and(|v| v.len() > MAX_TARGETS) {
            errors.push(FieldError::new(field, format!("at most {MAX_TARGETS} ids")));
        }
    }
    errors
}

pub(crate) fn code_taken() -> ApiError {
    ApiError::conflict(
        ErrorCode::CodeTaken,
        "this code is already in use (codes are compared case-insensitively)",
    )
}

/// Every code shares one case-insensitive unique index: a violation is a taken code.
fn code_conflict(e: sqlx::Error) -> ApiError {
    if unique_violation(&e).is_some() {
        code_taken()
    } else {
        e.into()
    }
}

/// Create a promotion (admin)
///
/// The promotion owns its code; single-use codes are added with `POST
/// /promotions/{id}/codes`. Admins only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    post,
    path = "/api/v1/promotions",
    operation_id = "createPromotion",
    security(("bearer" = ["admin"])),
    request_body(
        content = NewPromotion,
        example = json!({
            "code": "SUMMER-25",
            "kind": "percent",
            "value": 25,
            "ends_at": "2026-09-01T00:00:00Z",
            "usage_limit": 500,
            "per_customer_limit": 1
        }),
    ),
    responses(
        (status = 201, description = "The new promotion.", body = Promotion),
        (status = 409, response = inline(CodeTaken)),
        (status = 422, response = ValidationFailed),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn create(
    State(state): State<AppState>,
    _admin: AdminUser,
    Json(mut body): Json<NewPromotion>,
) -> ApiResult<Response> {
    body.code = body.code.trim().to_owned();
    let errors = validate(&body);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let id = Uuid::now_v7();
    let dedup = |ids: Option<Vec<Uuid>>| {
        let mut ids = ids.unwrap_or_default();
        ids.sort();
        ids.dedup();
        ids
    };
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO promotions (id, code, kind, value, min_subtotal_cents, starts_at, ends_at,
            usage_limit, per_customer_limit, product_ids, category_ids)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id)
    .bind(&body.code)
    .bind(&body.kind)
    .bind(body.value)
    .bind(body.min_subtotal_cents.unwrap_or(0))
    .bind(body.starts_at)
    .bind(body.ends_at)
    .bind(body.usage_limit.map(|l| l as i32))
    .bind(body.per_customer_limit.map(|l| l as i32))
    .bind(dedup(body.product_ids))
    .bind(dedup(body.category_ids))
    .execute(&mut *tx)
    .await
    .map_err(code_conflict)?;
    // The promotion's own code shares the table of single-use codes, so neither kind can
    // take the other's code.
    sqlx::query(
        "INSERT INTO promotion_codes (code, promotion_id, single_use) VALUES ($1, $2, false)",
    )
    .bind(&body.code)
    .bind(id)
    .execute(&mut *tx)
    .await
    .map_err(code_conflict)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(load(&state, id).await?)).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CodeBatchRequest)]
pub(crate) struct Batch {
    #[schema(minimum = 1, maximum = 10000)]
    count: i64,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = CodeBatch)]
pub(crate) struct Codes {
    /// New single-use codes: 12 characters from a CSPRNG, without 0/O/1/I/L. Each can be
    /// redeemed by one order at a time; a failed or cancelled order gives it back.
    // The pattern and example apply to each code: `ALPHABET`, `GENERATED_LEN` characters.
    #[schema(pattern = "^[A-HJKMNP-Z2-9]{12}$", examples("K7QX3MZP9HTD"))]
    codes: Vec<String>,
}

fn generated_code(rng: &mut impl Rng) -> String {
    (0..GENERATED_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Generate single-use codes (admin)
///
/// `count` (1-10,000) new codes, unique among all codes. Admins only: a customer's token is
/// 403 `forbidden`.
#[utoipa::path(
    post,
    path = "/api/v1/promotions/{id}/codes",
    operation_id = "createPromotionCodes",
    security(("bearer" = ["admin"])),
    params(PromotionPath),
    request_body(content = Batch),
    responses(
        (status = 201, description = "The new codes.", body = Codes),
        (status = 422, response = ValidationFailed),
    ),
)]
// A collision with any existing code (astronomically rare) is simply drawn again.
#[tracing::instrument(skip_all)]
pub(crate) async fn generate(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(PromotionPath { id }): Path<PromotionPath>,
    Json(body): Json<Batch>,
) -> ApiResult<Response> {
    let id = parse_id(&id, "promotion")?;
    if !(1..=MAX_BATCH).contains(&body.count) {
        return Err(ApiError::invalid_field(
            "count",
            format!("must be from 1 to {MAX_BATCH}"),
        ));
    }
    load(&state, id).await?;
    let mut codes: Vec<String> = Vec::with_capacity(body.count as usize);
    let mut tx = state.db.begin().await?;
    while codes.len() < body.count as usize {
        // The OS generator: a CSPRNG, so one code says nothing about the others.
        let mut rng = rand::rngs::OsRng;
        let wanted = body.count as usize - codes.len();
        let draw: Vec<String> = (0..wanted).map(|_| generated_code(&mut rng)).collect();
        let mut added: Vec<String> = sqlx::query_scalar(
            "INSERT INTO promotion_codes (code, promotion_id, single_use)
             SELECT c, $2, true FROM unnest($1::text[]) AS c
             ON CONFLICT DO NOTHING RETURNING code",
        )
        .bind(&draw)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        codes.append(&mut added);
    }
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(Codes { codes })).into_response())
}

/// List promotions (admin)
///
/// Newest first, keyset-paginated. Admins only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    get,
    path = "/api/v1/promotions",
    operation_id = "listPromotions",
    security(("bearer" = ["admin"])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of promotions.", body = PromotionPage),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Promotion>>> {
    let limit = q.limit()?;
    let before: Option<Uuid> = q.cursor()?;
    // Ids are UUID v7: newest first is a keyset on id.
    let rows: Vec<Promotion> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM promotions p WHERE ($1::uuid IS NULL OR p.id < $1)
         ORDER BY p.id DESC LIMIT $2"
    )))
    .bind(before)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |p| p.id)))
}

/// One promotion with its redemption count (admin)
///
/// Admins only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    get,
    path = "/api/v1/promotions/{id}",
    operation_id = "getPromotion",
    security(("bearer" = ["admin"])),
    params(PromotionPath),
    responses(
        (status = 200, description = "The promotion.", body = Promotion),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn show(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(PromotionPath { id }): Path<PromotionPath>,
) -> ApiResult<Json<Promotion>> {
    let id = parse_id(&id, "promotion")?;
    load(&state, id).await.map(Json)
}

/// A present `null` (clear the value) differs from an absent field (keep it).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PromotionUpdate)]
pub(crate) struct Change {
    #[serde(default)]
    #[schema(nullable = false)]
    active: Option<bool>,
    /// null: no end. After `starts_at`; may be in the past (ends it now).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    ends_at: Option<Option<DateTime<Utc>>>,
    /// null: no limit. Lowering it below what is redeemed takes nothing back.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    usage_limit: Option<Option<i64>>,
}

/// Switch a promotion off or on, or change its end or usage limit (admin)
///
/// Only `active`, `ends_at` and `usage_limit` change; absent fields are kept, `null` clears.
/// Admins only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    patch,
    path = "/api/v1/promotions/{id}",
    operation_id = "updatePromotion",
    security(("bearer" = ["admin"])),
    params(PromotionPath),
    request_body(content = Change),
    responses(
        (status = 200, description = "The promotion.", body = Promotion),
        (status = 422, response = ValidationFailed),
    ),
)]
// Lowering the limit below what is redeemed stops further redemptions only.
#[tracing::instrument(skip_all)]
pub(crate) async fn update(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(PromotionPath { id }): Path<PromotionPath>,
    Json(body): Json<Change>,
) -> ApiResult<Json<Promotion>> {
    let id = parse_id(&id, "promotion")?;
    let current = load(&state, id).await?;
    let mut errors = Vec::new();
    if let Some(ends) = body.ends_at {
        check_window(current.starts_at, ends, &mut errors);
    }
    if let Some(limit) = body.usage_limit {
        check_limit("usage_limit", limit, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    sqlx::query(
        "UPDATE promotions SET active = COALESCE($2, active),
            ends_at = CASE WHEN $3 THEN $4 ELSE ends_at END,
            usage_limit = CASE WHEN $5 THEN $6 ELSE usage_limit END,
            updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(body.active)
    .bind(body.ends_at.is_some())
    .bind(body.ends_at.flatten())
    .bind(body.usage_limit.is_some())
    .bind(body.usage_limit.flatten().map(|l| l as i32))
    .execute(&state.db)
    .await?;
    load(&state, id).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_long_and_unambiguous() {
        let mut rng = rand::rngs::OsRng;
        for _ in 0..1_000 {
            let code = generated_code(&mut rng);
            assert!(code.len() >= 10);
            assert!(
                !code.contains(['0', 'O', '1', 'I', 'L']),
                "no ambiguous characters: {code}"
            );
        }
    }

    #[test]
    fn admin_input_is_validated() {
        let good = || NewPromotion {
            code: "SUMMER-25".into(),
            kind: "percent".into(),
            value: 25,
            min_subtotal_cents: None,
            starts_at: None,
            ends_at: None,
            usage_limit: None,
            per_customer_limit: None,
            product_ids: None,
            category_ids: None,
        };
        assert!(validate(&good()).is_empty());
        let field = |p: NewPromotion| validate(&p).remove(0).field;
        assert_eq!(
            field(NewPromotion {
                value: 101,
                ..good()
            }),
            "value"
        );
        assert_eq!(field(NewPromotion { value: 0, ..good() }), "value");
        let amount = || NewPromotion {
            kind: "amount".into(),
            ..good()
        };
        assert_eq!(
            field(NewPromotion {
                value: 0,
                ..amount()
            }),
            "value"
        );
        assert_eq!(
            field(NewPromotion {
                kind: "bogo".into(),
                ..good()
            }),
            "kind"
        );
        assert_eq!(
            field(NewPromotion {
                code: "a b".into(),
                ..good()
            }),
            "code"
        );
        let now = Utc::now();
        assert_eq!(
            field(NewPromotion {
                starts_at: Some(now),
                ends_at: Some(now),
                ..good()
            }),
            "ends_at"
        );
        assert_eq!(
            field(NewPromotion {
                usage_limit: Some(0),
                ..good()
            }),
            "usage_limit"
        );
    }
}
