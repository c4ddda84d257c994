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
use souk_common::pagination::{Page, PageQuery};
use souk_common::{AdminUser, ApiError, ApiResult, FieldError, Json, Query};
use souk_contract::ErrorCode;
use uuid::Uuid;

use crate::AppState;
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

#[derive(Debug, Serialize, sqlx::FromRow)]
struct Promotion {
    id: Uuid,
    code: String,
    kind: String,
    value: i64,
    min_subtotal_cents: i64,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    usage_limit: Option<i32>,
    per_customer_limit: Option<i32>,
    product_ids: Vec<Uuid>,
    category_ids: Vec<Uuid>,
    active: bool,
    /// Orders holding a redemption now (failed and cancelled ones gave theirs back).
    redemptions: i64,
    /// Single-use codes generated for it, and how many of them an order holds.
    single_use_codes: i64,
    single_use_codes_used: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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

#[derive(Deserialize)]
struct NewPromotion {
    code: String,
    kind: String,
    value: i64,
    #[serde(default)]
    min_subtotal_cents: Option<i64>,
    #[serde(default)]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    usage_limit: Option<i64>,
    #[serde(default)]
    per_customer_limit: Option<i64>,
    #[serde(default)]
    product_ids: Option<Vec<Uuid>>,
    #[serde(default)]
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

fn code_taken() -> ApiError {
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

#[tracing::instrument(skip_all)]
async fn create(
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

#[derive(Deserialize)]
struct Batch {
    count: i64,
}

#[derive(Serialize)]
struct Codes {
    codes: Vec<String>,
}

fn generated_code(rng: &mut impl Rng) -> String {
    (0..GENERATED_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// `count` new single-use codes; a collision with any existing code (astronomically rare) is
/// simply drawn again.
#[tracing::instrument(skip_all)]
async fn generate(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
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

#[tracing::instrument(skip_all)]
async fn list(
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

#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Promotion>> {
    let id = parse_id(&id, "promotion")?;
    load(&state, id).await.map(Json)
}

/// A present `null` (clear the value) differs from an absent field (keep it).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    active: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    ends_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "present")]
    usage_limit: Option<Option<i64>>,
}

/// `active`, `ends_at` (null: no end) and `usage_limit` (null: no limit). Lowering the limit
/// below what is redeemed takes nothing back; it stops further redemptions.
#[tracing::instrument(skip_all)]
async fn update(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
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
