//! Whether a code applies to a cart, and what it takes off: the cart's quote
//! (`souk_contract::promotions::QUOTE`, read only) and checkout's redemption, which decides the
//! same way but under a lock on the promotion's row, in the transaction that lets the order go
//! on to reserve stock.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use souk_common::{ApiResult, Json};
use souk_contract::promotions::{self, LineShare, PromotionRef, Quote, QuoteLine, QuoteRequest};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::discount::{self, Kind};

pub fn router() -> Router<AppState> {
    Router::new().route(promotions::QUOTE, post(quote))
}

/// A promotion as seen through one of its codes, with what is already redeemed of it.
#[derive(Debug, sqlx::FromRow)]
struct Snapshot {
    promotion_id: Uuid,
    /// The code as stored (the shopper may have typed it in another case).
    code: String,
    kind: String,
    value: i64,
    min_subtotal_cents: i64,
    product_ids: Vec<Uuid>,
    category_ids: Vec<Uuid>,
    not_started: bool,
    expired: bool,
    /// A single-use code that an order holds.
    code_used: bool,
    usage_limit: Option<i32>,
    per_customer_limit: Option<i32>,
    redeemed: i64,
    redeemed_by_user: i64,
}

/// What a usable code does to a cart.
#[derive(Debug)]
pub struct Applied {
    pub promotion: PromotionRef,
    pub promotion_id: Uuid,
    pub eligible: Vec<Uuid>,
    pub discount_cents: i64,
    pub shares: Vec<LineShare>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No active promotion has this code.
    Unknown,
    /// Known, but not usable for this cart: the reason the API names.
    NotApplicable(&'static str, PromotionRef),
}

/// Codes are at most this long (the admin's own codes and generated ones alike).
pub const MAX_CODE_LEN: usize = 64;

/// Reads the promotion behind `code`; with `lock`, holds its row until the transaction ends,
/// so that concurrent redemptions of one promotion are decided one after the other.
async fn snapshot(
    conn: &mut PgConnection,
    code: &str,
    user_id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<(Snapshot, bool)>> {
    let found: Option<(Uuid, bool)> = sqlx::query_as(
        "SELECT c.promotion_id, c.single_use FROM promotion_codes c
         JOIN promotions p ON p.id = c.promotion_id
         WHERE lower(c.code) = lower($1) AND p.active",
    )
    .bind(code)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((promotion_id, single_use)) = found else {
        return Ok(None);
    };
    if lock {
        sqlx::query("SELECT 1 FROM promotions WHERE id = $1 FOR UPDATE")
            .bind(promotion_id)
            .execute(&mut *conn)
            .await?;
    }
    // Read after the lock: every redemption committed before it is counted.
    let snapshot: Option<Snapshot> = sqlx::query_as(
        "SELECT p.id AS promotion_id, c.code, p.kind, p.value, p.min_subtotal_cents,
                p.product_ids, p.category_ids,
                COALESCE(p.starts_at > now(), false) AS not_started,
                COALESCE(p.ends_at <= now(), false) AS expired,
                (c.single_use AND c.order_id IS NOT NULL) AS code_used,
                p.usage_limit, p.per_customer_limit,
                (SELECT count(*) FROM redemptions r
                  WHERE r.promotion_id = p.id AND r.state = 'redeemed') AS redeemed,
                (SELECT count(*) FROM redemptions r
                  WHERE r.promotion_id = p.id AND r.state = 'redeemed' AND r.user_id = $3)
                  AS redeemed_by_user
         FROM promotion_codes c JOIN promotions p ON p.id = c.promotion_id
         WHERE lower(c.code) = lower($1) AND p.id = $2 AND p.active",
    )
    .bind(code)
    .bind(promotion_id)
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(snapshot.map(|s| (s, single_use)))
}

/// The lines a promotion applies to: those of its products or its categories; all of them
/// when it names neither.
fn eligible(s: &Snapshot, line: &QuoteLine) -> bool {
    (s.product_ids.is_empty() && s.category_ids.is_empty())
        || s.product_ids.contains(&line.product_id)
        || line.category_ids.iter().any(|c| s.category_ids.contains(c))
}

fn evaluate(s: &Snapshot, lines: &[QuoteLine]) -> Result<Applied, Refusal> {
    let promotion = PromotionRef {
        code: s.code.clone(),
        kind: s.kind.clone(),
        value: s.value,
    };
    let refuse = |reason| Err(Refusal::NotApplicable(reason, promotion.clone()));
    if s.not_started {
        return refuse("not_started");
    }
    if s.expired {
        return refuse("expired");
    }
    if s.code_used || s.usage_limit.is_some_and(|l| s.redeemed >= i64::from(l)) {
        return refuse("exhausted");
    }
    if s.per_customer_limit
        .is_some_and(|l| s.redeemed_by_user >= i64::from(l))
    {
        return refuse("customer_limit");
    }
    let flags: Vec<bool> = lines.iter().map(|l| eligible(s, l)).collect();
    if !flags.iter().any(|e| *e) {
        return refuse("no_eligible_items");
    }
    let subtotal = lines
        .iter()
        .fold(0i64, |sum, l| sum.saturating_add(l.total_cents()));
    if subtotal < s.min_subtotal_cents {
        return refuse("min_subtotal");
    }
    let Some(kind) = Kind::parse(&s.kind) else {
        return Err(Refusal::Unknown);
    };
    let totals: Vec<(i64, bool)> = lines
        .iter()
        .zip(&flags)
        .map(|(l, e)| (l.total_cents(), *e))
        .collect();
    let (discount_cents, shares) = discount::allocate(kind, s.value, &totals);
    Ok(Applied {
        promotion,
        promotion_id: s.promotion_id,
        eligible: lines
            .iter()
            .zip(&flags)
            .filter(|(_, e)| **e)
            .map(|(l, _)| l.product_id)
            .collect(),
        discount_cents,
        shares: lines
            .iter()
            .zip(shares)
            .map(|(l, d)| LineShare {
                product_id: l.product_id,
                discount_cents: d,
            })
            .collect(),
    })
}

/// What `code` would take off these lines for this user now (no lock, nothing written).
pub async fn check(
    conn: &mut PgConnection,
    code: &str,
    user_id: Uuid,
    lines: &[QuoteLine],
) -> sqlx::Result<Result<Applied, Refusal>> {
    if code.is_empty() || code.len() > MAX_CODE_LEN {
        return Ok(Err(Refusal::Unknown));
    }
    Ok(match snapshot(conn, code, user_id, false).await? {
        None => Err(Refusal::Unknown),
        Some((s, _)) => evaluate(&s, lines),
    })
}

/// Redeems `code` for `order_id` inside the caller's transaction, or says why it cannot be.
/// The promotion's row stays locked until that transaction ends, so limits hold under any
/// concurrency; a single-use code is taken by a conditional update (one order only).
pub async fn redeem(
    tx: &mut PgConnection,
    code: &str,
    user_id: Uuid,
    order_id: Uuid,
    lines: &[QuoteLine],
) -> sqlx::Result<Result<Applied, Refusal>> {
    if code.is_empty() || code.len() > MAX_CODE_LEN {
        return Ok(Err(Refusal::Unknown));
    }
    let Some((s, single_use)) = snapshot(tx, code, user_id, true).await? else {
        return Ok(Err(Refusal::Unknown));
    };
    let applied = match evaluate(&s, lines) {
        Ok(a) => a,
        Err(r) => return Ok(Err(r)),
    };
    if single_use {
        let taken = sqlx::query(
            "UPDATE promotion_codes SET order_id = $2
             WHERE lower(code) = lower($1) AND single_use AND order_id IS NULL",
        )
        .bind(code)
        .bind(order_id)
        .execute(&mut *tx)
        .await?;
        if taken.rows_affected() != 1 {
            return Ok(Err(Refusal::NotApplicable("exhausted", applied.promotion)));
        }
    }
    sqlx::query(
        "INSERT INTO redemptions (order_id, promotion_id, code, user_id, eligible_product_ids, discount_cents)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(order_id)
    .bind(applied.promotion_id)
    .bind(&applied.promotion.code)
    .bind(user_id)
    .bind(&applied.eligible)
    .bind(applied.discount_cents)
    .execute(&mut *tx)
    .await?;
    Ok(Ok(applied))
}

#[tracing::instrument(skip_all)]
async fn quote(
    State(state): State<AppState>,
    Json(body): Json<QuoteRequest>,
) -> ApiResult<Json<Quote>> {
    let mut conn = state.db.acquire().await?;
    let code = body.code.trim();
    let answer = match check(&mut conn, code, body.user_id, &body.lines).await? {
        Ok(a) => Quote {
            promotion: Some(a.promotion),
            applicable: true,
            reason: None,
            discount_cents: a.discount_cents,
            lines: a.shares,
        },
        Err(Refusal::Unknown) => Quote {
            promotion: None,
            applicable: false,
            reason: None,
            discount_cents: 0,
            lines: Vec::new(),
        },
        Err(Refusal::NotApplicable(reason, promotion)) => Quote {
            promotion: Some(promotion),
            applicable: false,
            reason: Some(reason.to_owned()),
            discount_cents: 0,
            lines: Vec::new(),
        },
    };
    Ok(Json(answer))
}
