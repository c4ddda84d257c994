//! Admin-only user management, and seeding the first admin.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, patch};
use serde::Deserialize;
use souk_common::error::parse_id;
use souk_common::openapi::{ValidationFailed, problem};
use souk_common::pagination::{Page, PageQuery};
use souk_common::{AdminUser, ApiError, ApiResult, FieldError, Json, Query, Role};
use souk_contract::ErrorCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::{insert_user, validate_email, validate_password};
use crate::profile::Profile;
use crate::profile_columns;
use crate::{AppState, password};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/users", get(list))
        .route("/api/v1/admin/users/{id}", patch(set_role))
}

/// The page `listUsers` answers.
pub(crate) type UserPage = Page<Profile>;

/// List accounts (admin)
///
/// Every account, newest first, keyset-paginated. Admins only: a customer's token is 403
/// `forbidden`.
#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    operation_id = "listUsers",
    security(("bearer" = ["admin"])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of profiles.", body = UserPage),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<UserPage>> {
    let limit = page.limit()?;
    let after: Option<Uuid> = page.cursor()?;
    // Ids are UUID v7, so id order is creation order: newest first, keyset on id.
    let rows: Vec<Profile> = sqlx::query_as(concat!(
        "SELECT ",
        profile_columns!(),
        " FROM users WHERE ($1::uuid IS NULL OR id < $1) ORDER BY id DESC LIMIT $2"
    ))
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |p| p.id)))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct RoleChange {
    // Read as text so an unknown role is our 422 naming `role`.
    #[schema(value_type = Role)]
    role: String,
}

souk_common::problem_responses! {
    LastAdmin => problem(
        "`last_admin`: the last admin cannot be demoted.",
        ApiError::conflict(ErrorCode::LastAdmin, "the last admin cannot be demoted"),
    );
}

/// Change an account's role (admin)
///
/// Sets `role` to `customer` or `admin`. Demoting the last admin is 409 `last_admin`. The
/// gateway picks up the new role within its session cache time (default 10 s). Admins only: a
/// customer's token is 403 `forbidden`.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/users/{id}",
    operation_id = "setUserRole",
    security(("bearer" = ["admin"])),
    params(("id" = Uuid, Path, description = "The user's id (anything that is not a UUID is 404).")),
    request_body(content = RoleChange, description = "The new role.", example = json!({"role": "admin"})),
    responses(
        (status = 200, description = "The updated profile.", body = Profile),
        (status = 409, response = inline(LastAdmin)),
        (status = 422, response = ValidationFailed),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn set_role(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(id): Path<String>,
    Json(body): Json<RoleChange>,
) -> ApiResult<Json<Profile>> {
    let id = parse_id(&id, "user")?;
    let role = Role::parse(&body.role)
        .ok_or_else(|| ApiError::invalid_field("role", "must be \"customer\" or \"admin\""))?;
    let mut tx = state.db.begin().await?;
    // Serialise role changes so two admins cannot demote each other into having none.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('souk.user.roles'))")
        .execute(&mut *tx)
        .await?;
    if role == Role::Customer {
        let admins_left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin' AND id <> $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if admins_left == 0 {
            return Err(ApiError::conflict(
                ErrorCode::LastAdmin,
                "the last admin cannot be demoted",
            ));
        }
    }
    let profile: Option<Profile> = sqlx::query_as(concat!(
        "UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING ",
        profile_columns!(),
        ""
    ))
    .bind(id)
    .bind(role.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let profile = profile.ok_or_else(|| ApiError::not_found("no such user"))?;
    tx.commit().await?;
    tracing::info!(user_id = %id, role = role.as_str(), "role changed");
    Ok(Json(profile))
}

/// What seeding the first admin did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminSeeding {
    /// A new admin account, with the given password.
    Created(Uuid),
    /// An admin with this e-mail exists already (its password is left alone).
    AlreadyAdmin(Uuid),
    /// A customer account has this e-mail: seeding did not set its password, so it does not
    /// promote it (whoever registered the e-mail first would become admin). Promoting stays
    /// an explicit act: an admin's `PATCH /api/v1/admin/users/{id}`, or `souk admin promote`.
    NotPromoted(Uuid),
}

/// Creates the admin with this password unless an account has the e-mail already; never
/// promotes one. Idempotent, so it can run at every start.
pub async fn ensure_admin(
    db: &PgPool,
    email: &str,
    password: &str,
    name: &str,
) -> anyhow::Result<AdminSeeding> {
    let mut errors: Vec<FieldError> = Vec::new();
    let email = validate_email(email, &mut errors);
    validate_password(password, &mut errors);
    if let Some(e) = errors.first() {
        anyhow::bail!("admin {}: {}", e.field, e.message);
    }
    if let Some(existing) = existing_account(db, &email).await? {
        return Ok(existing);
    }
    let hash = password::hash(password.to_owned()).await?;
    let mut tx = db.begin().await?;
    let created = insert_user(&mut tx, &email, &hash, name, Role::Admin).await;
    match created {
        Ok(profile) => {
            tx.commit().await?;
            tracing::info!(user_id = %profile.id, "admin created");
            Ok(AdminSeeding::Created(profile.id))
        }
        // Registered (or seeded by another replica) meanwhile: look again.
        Err(e) if e.code == ErrorCode::EmailTaken => {
            drop(tx);
            existing_account(db, &email)
                .await?
                .ok_or_else(|| anyhow::anyhow!("admin {email}: the account vanished"))
        }
        Err(e) => Err(anyhow::anyhow!("{e}")),
    }
}

async fn existing_account(db: &PgPool, email: &str) -> anyhow::Result<Option<AdminSeeding>> {
    let found: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, role FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(db)
            .await?;
    Ok(found.map(|(id, role)| {
        if role == Role::Admin.as_str() {
            AdminSeeding::AlreadyAdmin(id)
        } else {
            tracing::warn!(
                user_id = %id,
                "the admin e-mail to seed belongs to an existing customer account, whose password \
                 seeding did not set: NOT promoted. If the account is yours, promote it with \
                 `souk admin promote --email ...` or an admin's PATCH /api/v1/admin/users/{id}"
            );
            AdminSeeding::NotPromoted(id)
        }
    }))
}

/// Makes an existing account an admin, keeping its password: the explicit act of an operator
/// with access to the user database (`souk admin promote`).
pub async fn promote_admin(db: &PgPool, email: &str) -> anyhow::Result<Uuid> {
    let promoted: Option<Uuid> = sqlx::query_scalar(
        "UPDATE users SET role = 'admin', updated_at = now() WHERE lower(email) = lower($1) RETURNING id",
    )
    .bind(email.trim())
    .fetch_optional(db)
    .await?;
    let id = promoted.ok_or_else(|| anyhow::anyhow!("no account has the e-mail {email}"))?;
    tracing::info!(user_id = %id, "account promoted to admin");
    Ok(id)
}
