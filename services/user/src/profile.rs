//! The signed-in user's profile, with a shipping address.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use souk_common::address::ShippingAddress;
use souk_common::error::parse_id;
use souk_common::openapi::ValidationFailed;
use souk_common::pagination::PageItem;
use souk_common::{ApiError, ApiResult, AuthUser, FieldError, Json, Role};
use souk_contract::users;
use sqlx::PgPool;
use uuid::Uuid;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users/me", get(me).patch(update_me))
        .route("/internal/users/{id}", get(internal_user))
}

/// A user's profile.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = User)]
pub struct Profile {
    pub id: Uuid,
    #[schema(format = Email)]
    pub email: String,
    pub name: String,
    // Read as the column's text; `Role::parse` accepts only the two roles the column holds.
    #[schema(value_type = Role)]
    pub role: String,
    #[schema(value_type = Option<ShippingAddress>, required = true)]
    pub shipping_address: Option<sqlx::types::Json<ShippingAddress>>,
    /// RFC 3339, UTC.
    pub created_at: DateTime<Utc>,
}

impl PageItem for Profile {
    const PAGE_NAME: &'static str = "UserPage";
    const PAGE_DESCRIPTION: &'static str = "A page of profiles, newest first.";
}

/// The columns a `Profile` reads, as a macro so queries stay `&'static str` (no per-request
/// formatting, and sqlx can see they are not built from input).
#[macro_export]
macro_rules! profile_columns {
    () => {
        "id, email, name, role, shipping_address, created_at"
    };
}

pub async fn load(db: &PgPool, id: Uuid) -> ApiResult<Profile> {
    sqlx::query_as(concat!(
        "SELECT ",
        profile_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?
    // A valid token for an account that no longer exists.
    .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))
}

/// The caller's profile
///
/// The signed-in user's profile. A valid token for an account that no longer exists is 401.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    operation_id = "getMe",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile.", body = Profile),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn me(State(state): State<AppState>, user: AuthUser) -> ApiResult<Json<Profile>> {
    load(&state.db, user.id).await.map(Json)
}

/// Distinguishes an absent field (leave as is) from `null` (clear it).
fn double_option<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct ProfileUpdate {
    /// Cannot be null.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = String, min_length = 1, max_length = 100)]
    name: Option<Option<String>>,
    /// `null` removes the saved address.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<ShippingAddress>)]
    shipping_address: Option<Option<ShippingAddress>>,
}

pub fn validate_name(name: &str, errors: &mut Vec<FieldError>) -> String {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    }
    name
}

/// Change name or default shipping address
///
/// Fields absent from the body are left as they are. `name` cannot be null.
/// `shipping_address: null` removes the saved address; an address object replaces it whole
/// (fields trimmed, `country` upper-cased; errors name e.g. `shipping_address.country`). The
/// role cannot be changed here (unknown fields such as `role` are ignored).
#[utoipa::path(
    patch,
    path = "/api/v1/users/me",
    operation_id = "updateMe",
    security(("bearer" = [])),
    request_body(
        content = ProfileUpdate,
        description = "The fields to change.",
        example = json!({
            "name": "Ada Lovelace",
            "shipping_address": {
                "name": "Ada Lovelace",
                "line1": "12 St James's Square",
                "city": "London",
                "postal_code": "SW1Y 4JH",
                "country": "GB"
            }
        })
    ),
    responses(
        (status = 200, description = "The updated profile.", body = Profile),
        (status = 422, response = ValidationFailed),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(update): Json<ProfileUpdate>,
) -> ApiResult<Json<Profile>> {
    let mut errors = Vec::new();
    let name = match update.name {
        Some(Some(n)) => Some(validate_name(&n, &mut errors)),
        Some(None) => {
            errors.push(FieldError::new("name", "cannot be null"));
            None
        }
        None => None,
    };
    let address = match update.shipping_address {
        Some(Some(a)) => match souk_common::address::normalized(a, "shipping_address") {
            Ok(a) => Some(Some(a)),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let profile: Option<Profile> = sqlx::query_as(concat!(
        "UPDATE users SET
           name = COALESCE($2, name),
           shipping_address = CASE WHEN $3 THEN $4 ELSE shipping_address END,
           updated_at = now()
         WHERE id = $1 RETURNING ",
        profile_columns!(),
        ""
    ))
    .bind(user.id)
    .bind(name)
    .bind(address.is_some())
    .bind(address.flatten().map(sqlx::types::Json))
    .fetch_optional(&state.db)
    .await?;
    profile
        .map(Json)
        .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))
}

/// For sibling services: the account's current role and address (the gateway checks that a
/// token's user still exists; the order service reads the default shipping address and e-mail).
#[tracing::instrument(skip_all)]
async fn internal_user(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<users::User>> {
    let id = parse_id(&id, "user")?;
    let profile: Profile = sqlx::query_as(concat!(
        "SELECT ",
        profile_columns!(),
        " FROM users WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&state.db)
    .await?
    .ok_or_else(|| ApiError::not_found("no such user"))?;
    let role = Role::parse(&profile.role)
        .ok_or_else(|| ApiError::internal(format!("user {id} has role {:?}", profile.role)))?;
    Ok(Json(users::User {
        id: profile.id,
        email: profile.email,
        name: profile.name,
        role,
        shipping_address: profile.shipping_address.map(|a| a.0),
        created_at: profile.created_at,
    }))
}
