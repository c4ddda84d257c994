//! Order history, cancellation, and the admin's view and status changes.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use souk_common::error::parse_id;
use souk_common::openapi::ValidationFailed;
use souk_common::pagination::{Page, PageItem, PageQuery};
use souk_common::{AdminUser, ApiError, ApiResult, AuthUser, Json, Query};
use souk_contract::ErrorCode;
use uuid::Uuid;

use crate::model::{self, Order, OrderRow};
use crate::openapi::{CancelUnfinished, CannotCancel, IllegalMove};
use crate::saga::{self, Driver, Stop};
use crate::state::{OrderStatus, SagaState};
use crate::{AppState, order_columns};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/orders", get(list_mine))
        .route("/api/v1/orders/{id}", get(get_one))
        .route("/api/v1/orders/{id}/cancel", post(cancel))
        .route("/api/v1/admin/orders", get(list_all))
        .route(
            "/api/v1/admin/orders/{id}",
            axum::routing::patch(set_status),
        )
}

impl PageItem for Order {
    const PAGE_NAME: &'static str = "OrderPage";
    const PAGE_DESCRIPTION: &'static str = "A page of orders, newest first.";
}

/// The page `listMyOrders` and `listAllOrders` answer.
pub type OrderPage = Page<Order>;

async fn page(
    state: &AppState,
    user: Option<Uuid>,
    status: Option<OrderStatus>,
    page: &PageQuery,
) -> ApiResult<Page<Order>> {
    let limit = page.limit()?;
    let before: Option<Uuid> = page.cursor()?;
    // Ids are UUID v7: id order is creation order, so newest first is a keyset on id.
    let rows: Vec<OrderRow> = sqlx::query_as(concat!(
        "SELECT ",
        order_columns!(),
        " FROM orders
         WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)
           AND ($3::uuid IS NULL OR id < $3) AND status IS NOT NULL
         ORDER BY id DESC LIMIT $4"
    ))
    .bind(user)
    .bind(status)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    let page = Page::from_rows(rows, limit, |r| r.id);
    let next_cursor = page.next_cursor;
    Ok(Page {
        items: model::views(&state.db, page.items).await?,
        next_cursor,
    })
}

/// The caller's orders
///
/// The caller's own orders, newest first, keyset-paginated.
#[utoipa::path(
    get,
    path = "/api/v1/orders",
    operation_id = "listMyOrders",
    security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of orders.", body = OrderPage),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_mine(
    State(state): State<AppState>,
    user: AuthUser,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Order>>> {
    page(&state, Some(user.id), None, &q).await.map(Json)
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AdminQuery {
    /// Only orders in this status (422, field `status`, for anything else).
    #[param(value_type = Option<OrderStatus>)]
    status: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// Every order (admin)
///
/// All users' orders, newest first, keyset-paginated, optionally filtered by `status`. Admins
/// only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/orders",
    operation_id = "listAllOrders",
    security(("bearer" = ["admin"])),
    params(AdminQuery, PageQuery),
    responses(
        (status = 200, description = "A page of orders.", body = OrderPage),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_all(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<AdminQuery>,
) -> ApiResult<Json<Page<Order>>> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<OrderStatus>().map_err(|_| {
            let all: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid_field("status", format!("must be one of {}", all.join(", ")))
        })?),
    };
    page(&state, None, status, &q.page).await.map(Json)
}

/// An order's path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct OrderPath {
    /// The order's id (anything that is not a UUID is 404).
    #[param(value_type = Uuid)]
    id: String,
}

/// The order if the caller may see it: its owner or an admin. Anyone else gets 404, so order
/// ids cannot be probed.
async fn visible(state: &AppState, user: &AuthUser, id: &str) -> ApiResult<Order> {
    let id = parse_id(id, "order")?;
    let order = model::load(&state.db, id).await?;
    if order.user_id != user.id && !user.is_admin() {
        return Err(ApiError::not_found("no such order"));
    }
    Ok(order)
}

/// An order
///
/// Visible to its owner and to admins. Another user's order is 404 (not 403), so order ids
/// cannot be probed.
#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    operation_id = "getOrder",
    security(("bearer" = [])),
    params(OrderPath),
    responses(
        (status = 200, description = "The order.", body = Order),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    user: AuthUser,
    Path(OrderPath { id }): Path<OrderPath>,
) -> ApiResult<Json<Order>> {
    visible(&state, &user, &id).await.map(Json)
}

/// Cancel an order
///
/// Owner only (anyone else, admins included, gets 404). Allowed while the order is `pending`
/// and waiting for the shopper's payment (the PaymentIntent is cancelled at Stripe first, then
/// the stock released and the cart given back; if the payment had succeeded meanwhile it is
/// refunded) or `paid` (refunded first, then restocked); the answer is the order with
/// `status: cancelled`. Any other status, or a checkout still running, is 409
/// `illegal_transition`. No request body.
#[utoipa::path(
    post,
    path = "/api/v1/orders/{id}/cancel",
    operation_id = "cancelOrder",
    security(("bearer" = [])),
    params(OrderPath),
    responses(
        (status = 200, description = "The cancelled order.", body = Order),
        (status = 409, response = inline(CannotCancel)),
        (status = 503, response = inline(CancelUnfinished)),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    user: AuthUser,
    Path(OrderPath { id }): Path<OrderPath>,
) -> ApiResult<Json<Order>> {
    let id = parse_id(&id, "order")?;
    let row = model::row(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such order"))?;
    if row.user_id != user.id {
        return Err(ApiError::not_found("no such order"));
    }
    // One statement, so the order is moved only from the state it is in at that moment.
    let statuses: Vec<OrderStatus> = SagaState::CANCELS.iter().map(|c| c.0).collect();
    let froms: Vec<SagaState> = SagaState::CANCELS.iter().map(|c| c.1).collect();
    let tos: Vec<SagaState> = SagaState::CANCELS.iter().map(|c| c.2).collect();
    let moved: Option<SagaState> = sqlx::query_scalar(
        "UPDATE orders o SET saga_state = m.to_state,
           lease_until = now() + make_interval(secs => $2), updated_at = now()
         FROM unnest($3::text[], $4::text[], $5::text[]) AS m (status, from_state, to_state)
         WHERE o.id = $1 AND o.status = m.status AND o.saga_state = m.from_state
         RETURNING o.saga_state",
    )
    .bind(id)
    .bind(state.config.lease.as_secs_f64())
    .bind(statuses)
    .bind(froms)
    .bind(tos)
    .fetch_optional(&state.db)
    .await?;
    if moved.is_none() {
        return Err(cannot_cancel(row.status));
    }
    match saga::advance(&state, id, Driver::Request).await {
        Stop::Interrupted(e) => Err(e),
        _ => Ok(Json(model::load(&state.db, id).await?)),
    }
}

pub(crate) fn cannot_cancel(status: OrderStatus) -> ApiError {
    let detail = match status {
        OrderStatus::Pending => {
            "this order's checkout is still running; try again shortly".to_owned()
        }
        s => format!("an order that is {s} cannot be cancelled"),
    };
    ApiError::conflict(ErrorCode::IllegalTransition, detail)
}

pub(crate) fn illegal_move(from: OrderStatus, to: &str) -> ApiError {
    ApiError::conflict(
        ErrorCode::IllegalTransition,
        format!("an order that is {from} cannot become {to}"),
    )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = OrderStatusChange)]
pub(crate) struct StatusChange {
    #[schema(schema_with = crate::openapi::admin_status)]
    status: String,
}

/// Move an order along (admin)
///
/// `paid -> shipped -> delivered`, one step at a time. Any other transition (including one for
/// an order whose checkout is still finishing) is 409 `illegal_transition`; a `status` other
/// than `shipped` or `delivered` is 422. Admins only: a customer's token is 403 `forbidden`.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/orders/{id}",
    operation_id = "setOrderStatus",
    security(("bearer" = ["admin"])),
    params(OrderPath),
    request_body(
        content = StatusChange,
        description = "The new status.",
        example = json!({"status": "shipped"}),
    ),
    responses(
        (status = 200, description = "The updated order.", body = Order),
        (status = 409, response = inline(IllegalMove)),
        (status = 422, response = ValidationFailed),
    ),
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn set_status(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(OrderPath { id }): Path<OrderPath>,
    Json(body): Json<StatusChange>,
) -> ApiResult<Json<Order>> {
    let id = parse_id(&id, "order")?;
    let to = body.status.parse::<OrderStatus>().ok();
    let Some((to, from)) = to.and_then(|to| Some((to, OrderStatus::admin_source(to)?))) else {
        return Err(ApiError::invalid_field(
            "status",
            "must be \"shipped\" or \"delivered\"",
        ));
    };
    // Only a finished checkout: the saga no longer changes the status.
    let moved = sqlx::query(
        "UPDATE orders SET status = $2, updated_at = now() WHERE id = $1 AND status = $3 AND saga_state = $4",
    )
    .bind(id)
    .bind(to)
    .bind(from)
    .bind(SagaState::Done)
    .execute(&state.db)
    .await?;
    if moved.rows_affected() == 0 {
        let row = model::row(&state.db, id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such order"))?;
        return Err(illegal_move(row.status, &body.status));
    }
    Ok(Json(model::load(&state.db, id).await?))
}
