//! Register, log in, refresh (with rotation and reuse detection) and log out.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use souk_common::error::unique_violation;
use souk_common::openapi::{ValidationFailed, problem};
use souk_common::{ApiError, ApiResult, AuthUser, FieldError, Json, Role};
use souk_contract::ErrorCode;
use souk_contract::users::{self, JwkSet};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::profile::{Profile, validate_name};
use crate::profile_columns;
use crate::{AppState, password, throttle, tokens};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route(users::JWKS, get(jwks))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenPair {
    /// A JWT (EdDSA); send as `Authorization: Bearer <token>`.
    access_token: String,
    /// Opaque; single use (rotated by `/api/v1/auth/refresh`).
    refresh_token: String,
    #[schema(schema_with = bearer)]
    token_type: &'static str,
    /// Access token lifetime in seconds (default 900).
    #[schema(examples(900))]
    expires_in: i64,
}

/// `token_type` has one value.
fn bearer() -> utoipa::openapi::schema::Object {
    souk_contract::openapi::const_string("Bearer")
}

/// A token pair plus the account's profile: what register, login and refresh answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RegisteredSession {
    user: Profile,
    #[serde(flatten)]
    tokens: TokenPair,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = RegisterRequest)]
pub(crate) struct Registration {
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(min_length = 8, max_length = 1024)]
    password: String,
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

souk_common::problem_responses! {
    EmailTaken => problem(
        "`email_taken`: an account with this e-mail already exists (case-insensitive).",
        ApiError::conflict(ErrorCode::EmailTaken, "an account with this e-mail already exists"),
    );
    InvalidCredentials => problem(
        "`invalid_credentials` (unknown e-mail or wrong password), or `unauthorized` when an invalid access token was sent in `Authorization`.",
        ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::InvalidCredentials, "wrong e-mail or password"),
    );
    InvalidRefreshToken => problem(
        "`invalid_refresh_token`: unknown, expired, spent or revoked (or `unauthorized` when an invalid access token was sent in `Authorization`).",
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidRefreshToken,
            "the refresh token is invalid, expired or revoked",
        ),
    );
}

pub fn validate_email(email: &str, errors: &mut Vec<FieldError>) -> String {
    let email = email.trim().to_owned();
    // Control characters and malformed domains are refused: the confirmation mailer would
    // never accept such an address, leaving the account's order e-mails unsendable.
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && domain.split('.').all(is_domain_label)
        });
    if !valid {
        errors.push(FieldError::new("email", "must be a valid e-mail address"));
    }
    email
}

/// A DNS label: letters (international ones too), digits and inner hyphens.
fn is_domain_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c.is_alphanumeric() || c == '-')
}

pub fn validate_password(password: &str, errors: &mut Vec<FieldError>) {
    let chars = password.chars().count();
    if chars < 8 {
        errors.push(FieldError::new("password", "must be at least 8 characters"));
    } else if chars > 1024 {
        errors.push(FieldError::new(
            "password",
            "must be at most 1024 characters",
        ));
    }
}

/// Create a customer account
///
/// Creates a `customer` account (a request can never make itself admin) and signs it in. The
/// e-mail is trimmed; the name is trimmed and must be 1-100 characters; the password must be
/// 8-1024 characters. Several invalid fields are reported together in `errors`. Registrations
/// are limited per client address (default 30 an hour): over it, 429 `rate_limited` with
/// `Retry-After` until the hour ends; invalid requests (422) are not counted.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    operation_id = "register",
    security((), ("bearer" = [])),
    request_body(
        content = Registration,
        description = "The new account.",
        example = json!({"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"})
    ),
    responses(
        (status = 201, description = "The account and its first token pair.", body = RegisteredSession),
        (status = 409, response = inline(EmailTaken)),
        (status = 422, response = ValidationFailed),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn register(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(body): Json<Registration>,
) -> ApiResult<(StatusCode, Json<RegisteredSession>)> {
    let mut errors = Vec::new();
    let email = validate_email(&body.email, &mut errors);
    validate_password(&body.password, &mut errors);
    let name = validate_name(&body.name, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // Counted once the request is valid, before the hash it costs.
    let limits = state.config.registration_limits;
    let key = throttle::registration_key(&client_address(&headers, peer.map(|c| c.0.0)));
    let refused = match throttle::count(&state.db, &key, limits.window_secs).await? {
        throttle::Count::Counted {
            attempts,
            window_left,
        } if attempts > limits.per_address => Some(window_left),
        throttle::Count::Counted { .. } => None,
        throttle::Count::Blocked(wait) => Some(wait),
    };
    if let Some(wait) = refused {
        return Err(ApiError::too_many_requests(
            wait,
            "too many registrations from this address; try again later",
        ));
    }
    let hash = password::hash(body.password)
        .await
        .map_err(ApiError::internal)?;
    let mut tx = state.db.begin().await?;
    let profile = insert_user(&mut tx, &email, &hash, &name, Role::Customer).await?;
    let tokens = issue(&state, &mut tx, profile.id, Role::Customer, Uuid::now_v7()).await?;
    tx.commit().await?;
    tracing::info!(user_id = %profile.id, "registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisteredSession {
            user: profile,
            tokens,
        }),
    ))
}

pub async fn insert_user(
    tx: &mut Transaction<'_, Postgres>,
    email: &str,
    hash: &str,
    name: &str,
    role: Role,
) -> ApiResult<Profile> {
    sqlx::query_as(concat!("INSERT INTO users (id, email, password_hash, name, role) VALUES ($1, $2, $3, $4, $5) RETURNING ", profile_columns!(), ""))
    .bind(Uuid::now_v7())
    .bind(email)
    .bind(hash)
    .bind(name)
    .bind(role.as_str())
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| match unique_violation(&e) {
        Some("users_email_key") => ApiError::conflict(ErrorCode::EmailTaken, "an account with this e-mail already exists"),
        _ => e.into(),
    })
}

/// Signs an access token and stores a new refresh token in `family`.
async fn issue(
    state: &AppState,
    tx: &mut Transaction<'_, Postgres>,
    user_id: Uuid,
    role: Role,
    family: Uuid,
) -> ApiResult<TokenPair> {
    let access_token = state
        .keys
        .access_token(user_id, role)
        .map_err(ApiError::internal)?;
    let refresh_token = tokens::new_refresh_token();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(days => $5))",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(family)
    .bind(tokens::hash_refresh_token(&refresh_token))
    .bind(state.config.refresh_ttl_days as i32)
    .execute(&mut **tx)
    .await?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.keys.access_ttl_secs,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = LoginRequest)]
pub(crate) struct Credentials {
    email: String,
    password: String,
}

/// The client's address as the gateway states it (it sets `X-Forwarded-For` to exactly one
/// address), else the connection's peer. Anything that is not an IP address is not trusted.
/// The sign-in and registration throttles count per address, an IPv6 client per its /64.
fn client_address(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .or_else(|| peer.map(|p| p.ip()))
        .map_or_else(
            || "unknown".to_owned(),
            souk_common::client_net::rate_limit_network,
        )
}

fn too_many_sign_ins(wait: u64) -> ApiError {
    ApiError::too_many_requests(wait, "too many failed sign-ins; try again later")
}

/// Counts this sign-in against the address, then the account (see `throttle`); refuses
/// before any hashing when either is blocked or its budget is taken by attempts in flight.
async fn admit_sign_in(state: &AppState, account: &str, address: &str) -> ApiResult<()> {
    let limits = state.config.login_limits;
    match throttle::count(&state.db, address, limits.window_secs).await? {
        throttle::Count::Blocked(wait) => return Err(too_many_sign_ins(wait)),
        throttle::Count::Counted {
            attempts,
            window_left,
        } if attempts > limits.per_address => return Err(too_many_sign_ins(window_left)),
        throttle::Count::Counted { .. } => {}
    }
    let refused = match throttle::count(&state.db, account, limits.window_secs).await? {
        throttle::Count::Blocked(wait) => Some(wait),
        // The other attempts of this window are being checked now; a failure among them
        // blocks the account, a success clears it.
        throttle::Count::Counted { attempts, .. } if attempts > limits.per_account => Some(1),
        throttle::Count::Counted { .. } => None,
    };
    if let Some(wait) = refused {
        throttle::uncount(&state.db, address).await?;
        return Err(too_many_sign_ins(wait));
    }
    Ok(())
}

/// Sign in with e-mail and password
///
/// Answers a new token pair and the account's profile (`user`). An unknown e-mail and a wrong
/// password get the same 401 `invalid_credentials`. Failed sign-ins are counted per account
/// (default 5 in a 15-minute window): the failure that reaches the limit locks the account for
/// 1 minute, each next lock twice as long as the last (at most 15 minutes); a sign-in with the
/// right password after a lock clears the count and the backoff. Per client address the limit
/// is only for floods across many accounts (default 1000 failures in 15 minutes, then 15
/// minutes' lock). While locked, every attempt is 429 `rate_limited` with `Retry-After`, even
/// with the right password. Attempts are counted before the password is checked, so parallel
/// guesses cannot exceed the limit.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    operation_id = "login",
    security((), ("bearer" = [])),
    request_body(
        content = Credentials,
        description = "The credentials.",
        example = json!({"email": "ada@example.com", "password": "correct horse battery"})
    ),
    responses(
        (status = 200, description = "Signed in.", body = RegisteredSession),
        (status = 401, response = inline(InvalidCredentials)),
        (status = 422, response = ValidationFailed),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(body): Json<Credentials>,
) -> ApiResult<Json<RegisteredSession>> {
    let limits = state.config.login_limits;
    let account = throttle::account_key(&body.email);
    let address = throttle::address_key(&client_address(&headers, peer.map(|c| c.0.0)));
    admit_sign_in(&state, &account, &address).await?;
    let user: Option<(Uuid, String, String)> =
        sqlx::query_as("SELECT id, password_hash, role FROM users WHERE lower(email) = lower($1)")
            .bind(body.email.trim())
            .fetch_optional(&state.db)
            .await?;
    let (hash, found) = match user {
        Some((id, hash, role)) => (Some(hash), Some((id, role))),
        None => (None, None),
    };
    if !password::verify(body.password, hash).await {
        let lockout = Duration::from_secs(limits.lockout_secs.max(1) as u64);
        let max_lockout = Duration::from_secs(limits.max_lockout_secs.max(1) as u64);
        throttle::failed(
            &state.db,
            &account,
            limits.per_account,
            lockout,
            max_lockout,
        )
        .await?;
        // An address at its limit is blocked for a window, without growth.
        let window = Duration::from_secs(limits.window_secs.max(1) as u64);
        throttle::failed(&state.db, &address, limits.per_address, window, window).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            "wrong e-mail or password",
        ));
    }
    let (id, role) = found.expect("a verified password belongs to a found user");
    throttle::clear(&state.db, &account).await?;
    throttle::uncount(&state.db, &address).await?;
    let role = Role::parse(&role).ok_or_else(|| ApiError::internal("unknown role in database"))?;
    let mut tx = state.db.begin().await?;
    let tokens = issue(&state, &mut tx, id, role, Uuid::now_v7()).await?;
    tx.commit().await?;
    let user = crate::profile::load(&state.db, id).await?;
    Ok(Json(RegisteredSession { user, tokens }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

/// The same member as `RefreshRequest`, named for what it ends.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LogoutRequest {
    refresh_token: String,
}

fn invalid_refresh() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        ErrorCode::InvalidRefreshToken,
        "the refresh token is invalid, expired or revoked",
    )
}

/// Exchange a refresh token for a new pair
///
/// Rotation: the refresh token sent is spent and stops working; the answer carries a new
/// access token and a new refresh token of the same session, and the account's profile
/// (`user`). Presenting an already spent refresh token again is treated as a leak: every
/// token of that session is revoked.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    operation_id = "refreshTokens",
    security((), ("bearer" = [])),
    request_body(content = RefreshRequest, description = "The refresh token to spend."),
    responses(
        (status = 200, description = "A new token pair.", body = RegisteredSession),
        (status = 401, response = inline(InvalidRefreshToken)),
        (status = 422, response = ValidationFailed),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<Json<RegisteredSession>> {
    let hash = tokens::hash_refresh_token(&body.refresh_token);
    let mut tx = state.db.begin().await?;
    // Spend the token: only one concurrent refresh can win this update.
    let spent: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "UPDATE refresh_tokens t SET used_at = now()
         FROM users u
         WHERE t.token_hash = $1 AND t.user_id = u.id
           AND t.used_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > now()
         RETURNING t.user_id, t.family_id, u.role",
    )
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((user_id, family, role)) = spent else {
        drop(tx);
        revoke_family_if_reused(&state.db, &hash).await?;
        return Err(invalid_refresh());
    };
    let role = Role::parse(&role).ok_or_else(|| ApiError::internal("unknown role in database"))?;
    let tokens = issue(&state, &mut tx, user_id, role, family).await?;
    tx.commit().await?;
    let user = crate::profile::load(&state.db, user_id).await?;
    Ok(Json(RegisteredSession { user, tokens }))
}

/// A spent token presented again means it leaked: revoke every token of its family.
async fn revoke_family_if_reused(db: &PgPool, hash: &[u8]) -> ApiResult<()> {
    let revoked = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE revoked_at IS NULL
           AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL)",
    )
    .bind(hash)
    .execute(db)
    .await?;
    if revoked.rows_affected() > 0 {
        tracing::warn!("refresh token reused: its family was revoked");
    }
    Ok(())
}

/// End a session
///
/// Revokes every refresh token of the session the given refresh token belongs to, if it
/// belongs to the caller. An unknown refresh token, or another user's, changes nothing and is
/// still 204. Access tokens already issued stay valid until they expire (`expires_in`).
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    operation_id = "logout",
    security(("bearer" = [])),
    request_body(content = LogoutRequest, description = "The session's current refresh token."),
    responses(
        (status = 204, description = "Signed out (or nothing to do)."),
        (status = 422, response = ValidationFailed),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn logout(
    State(state): State<AppState>,
    user: AuthUser,
    Json(body): Json<LogoutRequest>,
) -> ApiResult<StatusCode> {
    // Ends the whole session (every rotation of this token); another user's token is untouched.
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE revoked_at IS NULL AND family_id =
           (SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2)",
    )
    .bind(tokens::hash_refresh_token(&body.refresh_token))
    .bind(user.id)
    .execute(&state.db)
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The public verification keys; the gateway republishes them at `/.well-known/jwks.json`.
#[tracing::instrument(skip_all)]
async fn jwks(State(state): State<AppState>) -> Json<JwkSet> {
    Json(state.keys.jwks().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_throttled_by_its_slash_64() {
        let peer = |ip: &str| Some(SocketAddr::new(ip.parse().unwrap(), 40000));
        let none = HeaderMap::new();
        assert_eq!(
            client_address(&none, peer("2001:db8:1:2::1")),
            client_address(&none, peer("2001:db8:1:2:ffff:1234:5678:9abc"))
        );
        assert_ne!(
            client_address(&none, peer("2001:db8:1:2::1")),
            client_address(&none, peer("2001:db8:1:3::1"))
        );
        assert_eq!(client_address(&none, peer("203.0.113.7")), "203.0.113.7");
    }

    fn accepted(email: &str) -> bool {
        let mut errors = Vec::new();
        validate_email(email, &mut errors);
        errors.is_empty()
    }

    #[test]
    fn ordinary_addresses_are_accepted() {
        for email in [
            "ann@example.com",
            "a.b+tag@mail.example.co.uk",
            "x@my-shop.de",
            "jo@bücher.de",
        ] {
            assert!(accepted(email), "{email}");
        }
    }

    #[test]
    fn control_characters_and_bad_domains_are_refused() {
        for email in [
            "ctl-x@exa\u{7}mple.com",
            "a\u{0}b@example.com",
            "a@example.com\u{7f}",
            "a@exa_mple.com",
            "a@-example.com",
            "a@example-.com",
            "a@example..com",
            "a@.example.com",
            "a@example.com.",
            "a@b@example.com",
            "a@localhost",
            "@example.com",
        ] {
            assert!(!accepted(email), "{email:?}");
        }
    }
}
