//! Accounts, sign-in, tokens, profiles and admins, through the gateway.

use serde_json::json;
use souk_testkit::ADMIN_EMAIL;

use crate::helpers::App;

#[tokio::test]
async fn register_returns_tokens_and_a_customer_profile() {
    let app = App::spawn().await;
    let res = app
        .register("Ann@Example.com", "long-enough-1", " Ann ")
        .await;
    let body = res.expect(201, None);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["email"], "Ann@Example.com");
    assert_eq!(body["user"]["name"], "Ann");
    assert_eq!(body["user"]["role"], "customer");
    assert!(body["user"]["shipping_address"].is_null());
    assert!(res.headers.contains_key("x-request-id"));
    // A request can never make itself admin: unknown fields such as `role` are ignored.
    let res = app
        .post("/api/v1/auth/register", None, json!({"email": "b@example.com", "password": "long-enough-1", "name": "B", "role": "admin"}))
        .await;
    assert_eq!(res.expect(201, None)["user"]["role"], "customer");
}

#[tokio::test]
async fn duplicate_email_is_409_whatever_its_case() {
    let app = App::spawn().await;
    app.register("dup@example.com", "long-enough-1", "One")
        .await
        .expect(201, None);
    let res = app
        .register("DUP@example.com", "other-password-2", "Two")
        .await;
    res.expect(409, Some("email_taken"));
}

#[tokio::test]
async fn bad_registrations_are_422_and_create_nothing() {
    let app = App::spawn().await;
    let res = app.register("not-an-email", "short", "").await;
    let body = res.expect(422, Some("validation_failed"));
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password", "name"]);
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": 5, "password": "long-enough-1", "name": "x"}),
    )
    .await
    .expect(422, Some("validation_failed"));
    let res = app
        .send(
            app.http
                .post(app.url("/api/v1/auth/register"))
                .header("content-type", "application/json")
                .body("{\"email\":"),
        )
        .await;
    res.expect(400, Some("malformed_request"));
    // An address no mail server takes would leave the account's order confirmations unsendable.
    for email in [
        "ctl-x@exa\u{7}mple.com",
        "tab\u{1}x@example.com",
        "a@exa_mple.com",
    ] {
        let res = app.register(email, "long-enough-1", "x").await;
        let body = res.expect(422, Some("validation_failed"));
        assert_eq!(body["errors"][0]["field"], "email", "{email:?}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db("user").await)
        .await
        .unwrap();
    assert_eq!(users, 1, "only the seeded admin exists");
}

#[tokio::test]
async fn login_succeeds_and_wrong_password_or_unknown_email_look_the_same() {
    let app = App::spawn().await;
    app.register("login@example.com", "long-enough-1", "L")
        .await
        .expect(201, None);
    let ok = app.login("LOGIN@example.com", "long-enough-1").await;
    assert!(ok.expect(200, None)["access_token"].is_string());
    assert!(ok.body["refresh_token"].is_string());
    assert_eq!(
        ok.body["user"]["email"], "login@example.com",
        "the same shape as register"
    );
    let wrong = app.login("login@example.com", "wrong-password").await;
    let unknown = app.login("nobody@example.com", "long-enough-1").await;
    wrong.expect(401, Some("invalid_credentials"));
    unknown.expect(401, Some("invalid_credentials"));
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
}

#[tokio::test]
async fn profile_can_be_read_and_edited() {
    let app = App::spawn().await;
    let me = app.customer().await;
    let res = app.get("/api/v1/users/me", Some(&me.token)).await;
    let body = res.expect(200, None);
    assert_eq!(body["id"], me.id.as_str());
    assert_eq!(body["role"], "customer");
    assert!(body["created_at"].is_string());

    let address = json!({"name": "Ann Smith", "line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "us"});
    let res = app
        .patch(
            "/api/v1/users/me",
            Some(&me.token),
            json!({"name": "Ann", "shipping_address": address}),
        )
        .await;
    let body = res.expect(200, None);
    assert_eq!(body["name"], "Ann");
    assert_eq!(body["shipping_address"]["country"], "US");
    assert!(body["shipping_address"].get("line2").is_none());

    // Invalid values change nothing.
    let bad = json!({"name": "Zed", "shipping_address": {"name": "", "line1": "x", "city": "y", "postal_code": "1", "country": "USA"}});
    let res = app.patch("/api/v1/users/me", Some(&me.token), bad).await;
    let body = res.expect(422, Some("validation_failed"));
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["shipping_address.name", "shipping_address.country"]
    );
    let res = app.get("/api/v1/users/me", Some(&me.token)).await;
    assert_eq!(res.body["name"], "Ann");
    assert_eq!(res.body["shipping_address"]["city"], "Springfield");

    // `null` clears the address; an absent field leaves it alone.
    let res = app
        .patch(
            "/api/v1/users/me",
            Some(&me.token),
            json!({"shipping_address": null}),
        )
        .await;
    assert!(res.expect(200, None)["shipping_address"].is_null());
    assert_eq!(res.body["name"], "Ann");
    // A user cannot make itself admin through the profile.
    let res = app
        .patch(
            "/api/v1/users/me",
            Some(&me.token),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(res.expect(200, None)["role"], "customer");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = App::spawn().await;
    let me = app.customer().await;
    let first = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": me.refresh}),
        )
        .await;
    let first = first.expect(200, None).clone();
    let rotated = first["refresh_token"].as_str().unwrap();
    assert_eq!(first["user"]["id"], me.id.as_str());
    assert_ne!(rotated, me.refresh);
    app.get("/api/v1/users/me", first["access_token"].as_str())
        .await
        .expect(200, None);

    // The old token is spent; presenting it again is reuse: the family is revoked...
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": me.refresh}),
    )
    .await
    .expect(401, Some("invalid_refresh_token"));
    // ...so even the newest token of that family no longer works.
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": rotated}),
    )
    .await
    .expect(401, Some("invalid_refresh_token"));
    // Another session of the same user is untouched.
    let other = app
        .login(&me.email, "correct-horse-1")
        .await
        .expect(200, None)
        .clone();
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": other["refresh_token"]}),
    )
    .await
    .expect(200, None);
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": "made-up"}),
    )
    .await
    .expect(401, Some("invalid_refresh_token"));
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = App::spawn().await;
    let me = app.customer().await;
    app.post(
        "/api/v1/auth/logout",
        None,
        json!({"refresh_token": me.refresh}),
    )
    .await
    .expect(401, Some("unauthorized"));
    let res = app
        .post(
            "/api/v1/auth/logout",
            Some(&me.token),
            json!({"refresh_token": me.refresh}),
        )
        .await;
    assert_eq!(res.status, 204);
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": me.refresh}),
    )
    .await
    .expect(401, Some("invalid_refresh_token"));
}

#[tokio::test]
async fn admin_routes_are_for_admins_only() {
    // No session caching, so a role change shows on the very next request.
    let app = App::spawn_with(|c| c.gateway.session_cache_ttl = std::time::Duration::ZERO).await;
    let customer = app.customer().await;
    app.get("/api/v1/admin/users", Some(&customer.token))
        .await
        .expect(403, Some("forbidden"));
    app.get("/api/v1/admin/users", None)
        .await
        .expect(401, Some("unauthorized"));
    let path = format!("/api/v1/admin/users/{}", customer.id);
    app.patch(&path, Some(&customer.token), json!({"role": "admin"}))
        .await
        .expect(403, Some("forbidden"));

    let admin = app.admin().await;
    let list = app
        .get("/api/v1/admin/users?limit=1", Some(&admin.token))
        .await;
    let body = list.expect(200, None);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["id"], customer.id.as_str(), "newest first");
    let next = body["next_cursor"].as_str().unwrap();
    let page2 = app
        .get(
            &format!("/api/v1/admin/users?limit=1&cursor={next}"),
            Some(&admin.token),
        )
        .await;
    assert_eq!(page2.expect(200, None)["items"][0]["email"], ADMIN_EMAIL);
    assert!(page2.body["next_cursor"].is_null());
    app.get("/api/v1/admin/users?limit=0", Some(&admin.token))
        .await
        .expect(422, Some("validation_failed"));
    app.get("/api/v1/admin/users?cursor=zzz", Some(&admin.token))
        .await
        .expect(422, Some("validation_failed"));

    app.patch(&path, Some(&admin.token), json!({"role": "owner"}))
        .await
        .expect(422, Some("validation_failed"));
    let promoted = app
        .patch(&path, Some(&admin.token), json!({"role": "admin"}))
        .await;
    assert_eq!(promoted.expect(200, None)["role"], "admin");
    // The old token said customer; the gateway uses the current role.
    app.get("/api/v1/admin/users", Some(&customer.token))
        .await
        .expect(200, None);

    let unknown = format!("/api/v1/admin/users/{}", uuid::Uuid::now_v7());
    app.patch(&unknown, Some(&admin.token), json!({"role": "admin"}))
        .await
        .expect(404, Some("not_found"));
    app.patch(
        "/api/v1/admin/users/not-a-uuid",
        Some(&admin.token),
        json!({"role": "admin"}),
    )
    .await
    .expect(404, Some("not_found"));
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted() {
    let app = App::spawn().await;
    let admin = app.admin().await;
    let path = format!("/api/v1/admin/users/{}", admin.id);
    app.patch(&path, Some(&admin.token), json!({"role": "customer"}))
        .await
        .expect(409, Some("last_admin"));
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited() {
    let app = App::spawn().await;
    app.register("target@example.com", "long-enough-1", "T")
        .await
        .expect(201, None);
    for _ in 0..5 {
        app.login("target@example.com", "wrong-password")
            .await
            .expect(401, Some("invalid_credentials"));
    }
    // Locked now, even with the right password, and the answer says when to retry.
    let res = app.login("target@example.com", "long-enough-1").await;
    res.expect(429, Some("rate_limited"));
    let retry: u64 = res.retry_after();
    assert!((1..=900).contains(&retry));
    // Other accounts are not locked by it.
    let other = app.customer().await;
    app.login(&other.email, "correct-horse-1")
        .await
        .expect(200, None);
}

#[tokio::test]
async fn a_flood_of_failed_sign_ins_from_one_address_does_not_lock_out_other_shoppers() {
    let app = App::spawn().await;
    let shopper = app.customer().await;
    // Password spraying from one address: one guess per account, many accounts.
    for i in 0..40 {
        app.login(&format!("victim-{i}@example.com"), "wrong-password")
            .await
            .expect(401, Some("invalid_credentials"));
    }
    app.login(&shopper.email, "correct-horse-1")
        .await
        .expect(200, None);
    app.login(souk_testkit::ADMIN_EMAIL, souk_testkit::ADMIN_PASSWORD)
        .await
        .expect(200, None);
}

#[tokio::test]
async fn parallel_guesses_cannot_exceed_the_account_limit() {
    let app = App::spawn().await;
    let target = app.customer().await;
    let guesses = (0..30).map(|_| app.login(&target.email, "wrong-password"));
    let answers = futures::future::join_all(guesses).await;
    let checked = answers.iter().filter(|r| r.status == 401).count();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!(checked + refused, 30, "only 401 or 429: {answers:?}");
    assert!(
        checked <= 5,
        "{checked} of 30 parallel guesses were checked; the limit is 5"
    );
    // Another shopper is not affected.
    let other = app.customer().await;
    app.login(&other.email, "correct-horse-1")
        .await
        .expect(200, None);
}

#[tokio::test]
async fn seeding_never_promotes_an_account_whose_password_it_did_not_set() {
    let app = App::spawn().await;
    let pool = app.db("user").await;
    // Someone registers the future admin's e-mail first.
    let squatter = app.customer().await;
    let seeded =
        souk_user::ensure_admin(&pool, &squatter.email, "the-real-admin-password", "Admin")
            .await
            .unwrap();
    assert_eq!(
        seeded,
        souk_user::AdminSeeding::NotPromoted(squatter.id.parse().unwrap())
    );
    let role: String = sqlx::query_scalar("SELECT role FROM users WHERE lower(email) = lower($1)")
        .bind(&squatter.email)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(role, "customer", "the squatter's account was promoted");
    // The seeded admin is idempotent and keeps its password.
    let again = souk_user::ensure_admin(&pool, ADMIN_EMAIL, "another-password-1", "Admin")
        .await
        .unwrap();
    assert!(matches!(again, souk_user::AdminSeeding::AlreadyAdmin(_)));
    // Promoting is explicit (`souk admin promote`), and keeps the account's own password.
    let promoted = souk_user::promote_admin(&pool, &squatter.email)
        .await
        .unwrap();
    assert_eq!(promoted.to_string(), squatter.id);
    app.login(&squatter.email, "correct-horse-1")
        .await
        .expect(200, None);
    app.login(ADMIN_EMAIL, souk_testkit::ADMIN_PASSWORD)
        .await
        .expect(200, None);
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'admin'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(admins, 2);
}

async fn wrong_passwords(app: &App, email: &str, times: usize) {
    for _ in 0..times {
        app.login(email, "wrong-password")
            .await
            .expect(401, Some("invalid_credentials"));
    }
}

#[tokio::test]
async fn account_lockouts_back_off_and_a_right_password_clears_them() {
    let app = App::spawn_with(|c| {
        c.user.login_limits.lockout_secs = 1;
        c.user.login_limits.max_lockout_secs = 4;
    })
    .await;
    let target = app.customer().await;
    let mut blocks = Vec::new();
    for _ in 0..3 {
        wrong_passwords(&app, &target.email, 5).await;
        let res = app.login(&target.email, "correct-horse-1").await;
        res.expect(429, Some("rate_limited"));
        let wait: u64 = res.retry_after();
        blocks.push(wait);
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
    assert_eq!(blocks, [1, 2, 4], "each block doubles the last");
    // The right password after a block clears the count and the backoff.
    app.login(&target.email, "correct-horse-1")
        .await
        .expect(200, None);
    wrong_passwords(&app, &target.email, 5).await;
    let res = app.login(&target.email, "correct-horse-1").await;
    res.expect(429, Some("rate_limited"));
    assert_eq!(res.headers["retry-after"], "1");
}

#[tokio::test]
async fn an_address_over_its_failure_limit_is_refused_for_a_window() {
    let app = App::spawn_with(|c| c.user.login_limits.per_address = 10).await;
    let shopper = app.customer().await;
    for i in 0..10 {
        app.login(&format!("sprayed-{i}@example.com"), "wrong-password")
            .await
            .expect(401, Some("invalid_credentials"));
    }
    let res = app.login(&shopper.email, "correct-horse-1").await;
    res.expect(429, Some("rate_limited"));
    let wait: u64 = res.retry_after();
    assert!(
        (800..=900).contains(&wait),
        "blocked for the window: {wait}"
    );
}

#[tokio::test]
async fn old_throttle_rows_are_pruned() {
    let app = App::spawn().await;
    let pool = app.db("user").await;
    app.login("someone@example.com", "wrong-password")
        .await
        .expect(401, Some("invalid_credentials"));
    let rows = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM throttle")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    assert_eq!(rows().await, 2, "the account and the address");
    souk_user::prune_throttle(&pool).await.unwrap();
    assert_eq!(rows().await, 2, "recent rows stay");
    sqlx::query("UPDATE throttle SET window_start = now() - interval '25 hours'")
        .execute(&pool)
        .await
        .unwrap();
    souk_user::prune_throttle(&pool).await.unwrap();
    assert_eq!(rows().await, 0);
}

#[tokio::test]
async fn registrations_are_throttled_per_address_with_retry_after() {
    let app = App::spawn_with(|c| c.user.registration_limits.per_address = 3).await;
    for i in 0..3 {
        app.register(&format!("new-{i}@example.com"), "correct-horse-1", "N")
            .await
            .expect(201, None);
    }
    // Invalid ones cost no hash and are not counted; they still answer 422.
    app.register("not-an-email", "correct-horse-1", "N")
        .await
        .expect(422, Some("validation_failed"));
    let res = app
        .register("new-4@example.com", "correct-horse-1", "N")
        .await;
    res.expect(429, Some("rate_limited"));
    let wait: u64 = res.retry_after();
    assert!(
        (3000..=3600).contains(&wait),
        "until the window ends: {wait}"
    );
    // Signing in is not affected.
    app.login("new-0@example.com", "correct-horse-1")
        .await
        .expect(200, None);
}
