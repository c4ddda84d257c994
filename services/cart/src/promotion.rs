//! `PUT`/`DELETE /api/v1/cart/promotion`: one promotion code per cart. The order service owns
//! promotions and prices them (`souk_contract::promotions::QUOTE`); the cart only remembers the
//! code and shows what the order service says it is worth now.
//!
//! `GET /cart` shows a stored code that stopped applying (expired, used up, the cart changed)
//! as `promotion: {code, kind, value, applicable: false, reason}` with `discount_cents: 0`,
//! rather than dropping it silently; `applicable: null` when the order service or the catalog
//! cannot be asked (no discount shown). Checkout decides for good.

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::put;
use serde::{Deserialize, Serialize};
use souk_common::client::CallError;
use souk_common::{ApiError, ApiResult, AuthUser, Json};
use souk_contract::ErrorCode;
use souk_contract::promotions::{self, Quote, QuoteLine, QuoteRequest};
use uuid::Uuid;

use crate::AppState;
use crate::cart::{self, CartView};
use crate::catalog::CatalogEntry;
use crate::edit;
use crate::openapi::{CheckoutInProgress, PromotionNotApplicable, PromotionNotFound};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/cart/promotion", put(apply).delete(remove))
}

/// The longest code the order service issues or accepts.
pub(crate) const MAX_CODE_LEN: usize = 64;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CartPromotion {
    /// As the shop spells it.
    pub code: String,
    /// `percent` or `amount`; null when no promotion has this code any more.
    #[schema(schema_with = crate::openapi::promotion_kind, required = true)]
    pub kind: Option<String>,
    #[schema(required = true)]
    pub value: Option<i64>,
    /// Whether it takes something off this cart now; null when that cannot be known (the
    /// order service or the catalog is down; no discount is shown). Checkout decides for good.
    #[schema(required = true)]
    pub applicable: Option<bool>,
    /// When not applicable: `expired`, `not_started`, `exhausted`, `min_subtotal`,
    /// `no_eligible_items`, `customer_limit`, or `not_found` (switched off or removed).
    #[schema(schema_with = crate::openapi::not_applicable_reason, required = true)]
    pub reason: Option<String>,
}

/// A cart line for the quote: promotions name products (and categories), not variants.
pub fn quote_line(quantity: i64, variant: &CatalogEntry) -> QuoteLine {
    QuoteLine {
        product_id: variant.product_id,
        quantity,
        unit_price_cents: variant.price_cents,
        category_ids: variant.category_ids.clone(),
    }
}

async fn quote(
    state: &AppState,
    user: Uuid,
    code: &str,
    lines: Vec<QuoteLine>,
) -> Result<Quote, CallError> {
    let body = QuoteRequest {
        code: code.to_owned(),
        user_id: user,
        lines,
    };
    state
        .orders
        .call::<QuoteRequest, Quote>(Method::POST, promotions::QUOTE, Some(&body), None)
        .await
}

pub async fn stored_code(state: &AppState, user: Uuid) -> ApiResult<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT code FROM cart_promotions WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&state.db)
            .await?,
    )
}

/// The stored code as the cart shows it, and its discount (0 unless it applies).
pub async fn show(
    state: &AppState,
    user: Uuid,
    code: String,
    lines: Option<Vec<QuoteLine>>,
) -> (CartPromotion, i64) {
    let unknown = |code| CartPromotion {
        code,
        kind: None,
        value: None,
        applicable: None,
        reason: None,
    };
    let Some(lines) = lines else {
        return (unknown(code), 0);
    };
    match quote(state, user, &code, lines).await {
        Ok(q) => {
            let discount = if q.applicable { q.discount_cents } else { 0 };
            let view = match q.promotion {
                Some(p) => CartPromotion {
                    code: p.code,
                    kind: Some(p.kind),
                    value: Some(p.value),
                    applicable: Some(q.applicable),
                    reason: q.reason,
                },
                None => CartPromotion {
                    code,
                    kind: None,
                    value: None,
                    applicable: Some(false),
                    reason: Some("not_found".to_owned()),
                },
            };
            (view, discount)
        }
        Err(e) => {
            tracing::warn!(error = %e, "promotion quote unavailable; showing no discount");
            (unknown(code), 0)
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = CartPromotionRequest)]
pub(crate) struct Apply {
    /// Any case; surrounding spaces are ignored.
    #[schema(min_length = 1, max_length = 64)]
    code: String,
}

/// Apply a promotion code to the cart
///
/// One code per cart: a new one replaces the old. The code is checked against the cart as it
/// is now and stored only if it applies; `GET /cart` prices it again on every read, and
/// checkout redeems it for good (409 `promotion_unavailable` there if it stopped applying).
/// Codes are case-insensitive.
#[utoipa::path(
    put,
    path = "/api/v1/cart/promotion",
    operation_id = "applyCartPromotion",
    security(("bearer" = [])),
    request_body(content = Apply, example = json!({"code": "summer-25"})),
    responses(
        (status = 200, description = "The whole cart, priced with the promotion.", body = CartView),
        (status = 404, response = inline(PromotionNotFound)),
        (status = 409, response = inline(CheckoutInProgress)),
        (status = 422, response = inline(PromotionNotApplicable)),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn apply(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<Apply>,
) -> ApiResult<Json<CartView>> {
    let code = body.code.trim();
    if code.is_empty() || code.len() > MAX_CODE_LEN {
        return Err(ApiError::invalid_field(
            "code",
            format!("must be 1-{MAX_CODE_LEN} characters"),
        ));
    }
    let lines = cart::priced_lines(&state, user.id).await?;
    let q = quote(&state, user.id, code, lines).await?;
    let Some(promotion) = q.promotion else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::PromotionNotFound,
            "no promotion has this code",
        ));
    };
    if !q.applicable {
        let reason = q.reason.unwrap_or_default();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::PromotionNotApplicable,
            format!("this code cannot be used for this cart ({reason})"),
        )
        .with_extra("reason", serde_json::json!(reason)));
    }
    let mut tx = edit::begin(&state, user.id).await?;
    sqlx::query(
        "INSERT INTO cart_promotions (user_id, code) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET code = EXCLUDED.code, applied_at = now()",
    )
    .bind(user.id)
    .bind(&promotion.code)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    cart::render(&state, user.id).await.map(Json)
}

/// Remove the cart's promotion code
///
/// Idempotent.
#[utoipa::path(
    delete,
    path = "/api/v1/cart/promotion",
    operation_id = "removeCartPromotion",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The whole cart, priced with the promotion.", body = CartView),
        (status = 409, response = inline(CheckoutInProgress)),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn remove(
    State(state): State<AppState>,
    user: AuthUser,
) -> ApiResult<Json<CartView>> {
    let mut tx = edit::begin(&state, user.id).await?;
    sqlx::query("DELETE FROM cart_promotions WHERE user_id = $1")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    cart::render(&state, user.id).await.map(Json)
}
