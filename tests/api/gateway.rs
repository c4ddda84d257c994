//! The gateway's security and plumbing: token checks, identity headers, limits, failures.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use souk_common::caller::{Caller, PRINCIPAL, PRINCIPAL_SIG, PRINCIPAL_TS, Role};
use souk_testkit::Internal;
use souk_user::tokens::{TokenKeys, generate_private_key_pem};

use crate::helpers::App;

async fn me_status(app: &App, token: &str) -> crate::helpers::Resp {
    app.get("/api/v1/users/me", Some(token)).await
}

#[tokio::test]
async fn bad_tokens_are_401() {
    let app = App::spawn().await;
    let me = app.customer().await;
    app.get("/api/v1/users/me", None)
        .await
        .expect(401, Some("unauthorized"));
    let res = app
        .send(
            app.http
                .get(app.url("/api/v1/users/me"))
                .header("authorization", "Basic abc"),
        )
        .await;
    res.expect(401, Some("unauthorized"));

    let user_id: uuid::Uuid = me.id.parse().unwrap();
    // Expired: the right key, but a lifetime in the past.
    let expired = TokenKeys::from_pem(souk_testkit::test_signing_key_pem(), -120).unwrap();
    me_status(
        &app,
        &expired.access_token(user_id, Role::Customer).unwrap(),
    )
    .await
    .expect(401, Some("unauthorized"));

    // Bad signature: a valid token with its signature altered.
    let (head, sig) = me.token.rsplit_once('.').unwrap();
    let mut sig_bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig_bytes[0] ^= 0x01;
    let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig_bytes));
    me_status(&app, &tampered)
        .await
        .expect(401, Some("unauthorized"));

    // `alg: none`, claiming admin.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        json!({"iss": "souk", "aud": "souk-api", "sub": me.id, "role": "admin", "iat": 0, "exp": 4_000_000_000u64})
            .to_string(),
    );
    me_status(&app, &format!("{header}.{claims}."))
        .await
        .expect(401, Some("unauthorized"));

    // Signed with another key: unknown key id...
    let stranger = TokenKeys::from_pem(&generate_private_key_pem(), 900).unwrap();
    let forged = stranger.access_token(user_id, Role::Admin).unwrap();
    me_status(&app, &forged)
        .await
        .expect(401, Some("unauthorized"));
    // ...and with another key under the real key id.
    let real_kid = jsonwebtoken::decode_header(&me.token).unwrap().kid.unwrap();
    let (_, rest) = forged.split_once('.').unwrap();
    let fake_header =
        URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "typ": "JWT", "kid": real_kid}).to_string());
    me_status(&app, &format!("{fake_header}.{rest}"))
        .await
        .expect(401, Some("unauthorized"));

    // The genuine token still works.
    me_status(&app, &me.token).await.expect(200, None);
}

#[tokio::test]
async fn a_deleted_users_token_is_401_everywhere() {
    let app = App::spawn_with(|c| c.gateway.session_cache_ttl = std::time::Duration::ZERO).await;
    let me = app.customer().await;
    me_status(&app, &me.token).await.expect(200, None);
    sqlx::query("DELETE FROM users WHERE id = $1::uuid")
        .bind(&me.id)
        .execute(&app.db("user").await)
        .await
        .unwrap();
    me_status(&app, &me.token)
        .await
        .expect(401, Some("unauthorized"));
    // Refused at the gateway, before any other service sees it.
    app.get("/api/v1/cart", Some(&me.token))
        .await
        .expect(401, Some("unauthorized"));
}

#[tokio::test]
async fn client_sent_identity_headers_are_ignored() {
    let app = App::spawn().await;
    let me = app.customer().await;
    let admin_id = app.admin().await.id;
    // Headers claiming to be the admin, sent through the gateway with and without a token.
    let forged = |req: reqwest::RequestBuilder| {
        req.header("x-user-id", &admin_id)
            .header("x-user-role", "admin")
            .header(PRINCIPAL, format!("user:{admin_id}:admin"))
            .header(PRINCIPAL_TS, "0")
            .header(PRINCIPAL_SIG, "00")
    };
    let res = app
        .send(forged(app.http.get(app.url("/api/v1/users/me"))))
        .await;
    res.expect(401, Some("unauthorized"));
    let res = app
        .send(forged(
            app.http
                .get(app.url("/api/v1/users/me"))
                .bearer_auth(&me.token),
        ))
        .await;
    assert_eq!(res.expect(200, None)["id"], me.id.as_str());
    let res = app
        .send(forged(
            app.http
                .get(app.url("/api/v1/admin/users"))
                .bearer_auth(&me.token),
        ))
        .await;
    res.expect(403, Some("forbidden"));
}

#[tokio::test]
async fn a_direct_call_with_forged_identity_is_401() {
    let app = App::spawn().await;
    let me = app.customer().await;
    let user_service = app.platform.url("user");
    let http = &app.http;
    // Principal without proof.
    let res = app
        .send(
            http.get(format!("{user_service}/api/v1/users/me"))
                .header(PRINCIPAL, format!("user:{}:admin", me.id)),
        )
        .await;
    res.expect(401, Some("unauthorized"));
    // Principal with a proof made with the wrong secret.
    let caller = Caller::User {
        id: me.id.parse().unwrap(),
        role: Role::Admin,
    };
    let guessed = Internal::new("a-guessed-secret-a-guessed-secret").request(
        user_service,
        "user",
        reqwest::Method::GET,
        "/api/v1/admin/users",
        Some(&caller),
        None,
    );
    let res = app.send(Internal::over_http(http, guessed)).await;
    res.expect(401, Some("unauthorized"));
    // Internal endpoints refuse users, even genuine ones.
    let path = format!("/internal/users/{}", me.id);
    let res = app
        .internal("user", reqwest::Method::GET, &path, Some(&caller), None)
        .await;
    res.expect(403, Some("forbidden"));
    // A correctly signed service call works (the control for the cases above).
    let order = Caller::Service("order".into());
    let res = app
        .internal("user", reqwest::Method::GET, &path, Some(&order), None)
        .await;
    assert_eq!(res.expect(200, None)["email"], me.email.as_str());
}

/// Sends `req` again with the proof headers of `proof`.
fn replay(
    req: reqwest::RequestBuilder,
    proof: &reqwest::header::HeaderMap,
) -> reqwest::RequestBuilder {
    let mut req = req;
    for name in [PRINCIPAL, PRINCIPAL_TS, PRINCIPAL_SIG] {
        req = req.header(name, proof[name].clone());
    }
    req
}

#[tokio::test]
async fn a_captured_proof_works_only_for_its_own_request() {
    let app = App::spawn().await;
    let me = app.customer().await;
    let order = Caller::Service("order".into());
    // A genuine call, as the order service makes it: its headers are what a sniffer gets.
    let path = format!("/internal/users/{}", me.id);
    let genuine = app
        .signed("user", reqwest::Method::GET, &path, Some(&order), None)
        .build()
        .unwrap();
    let proof = genuine.headers().clone();
    let user = app.platform.url("user");
    let res = app
        .send(replay(app.http.get(format!("{user}{path}")), &proof))
        .await;
    assert_eq!(
        res.expect(200, None)["email"],
        me.email.as_str(),
        "the control"
    );

    // Another path on the same service (a shopper's profile as "the order service").
    let other = app.admin().await;
    let res = app
        .send(replay(
            app.http.get(format!("{user}/internal/users/{}", other.id)),
            &proof,
        ))
        .await;
    res.expect(401, Some("unauthorized"));
    // Same path with a query added.
    let res = app
        .send(replay(app.http.get(format!("{user}{path}?x=1")), &proof))
        .await;
    res.expect(401, Some("unauthorized"));
    // A proof made for another service, on a path this service serves to services.
    let product = app.platform.url("product");
    let path = "/internal/products";
    let for_service = |service: &str| {
        app.signed_to(
            product,
            service,
            reqwest::Method::GET,
            path,
            Some(&order),
            None,
        )
    };
    app.send(for_service("cart"))
        .await
        .expect(401, Some("unauthorized"));
    assert_ne!(
        app.send(for_service("product")).await.status,
        401,
        "the control"
    );

    // A write: the same proof with another body is refused, the original body passes.
    let path = "/api/v1/users/me";
    let customer = Caller::User {
        id: me.id.parse().unwrap(),
        role: Role::Customer,
    };
    // Another method on the same path, same (empty) body.
    let read = app
        .signed("user", reqwest::Method::GET, path, Some(&customer), None)
        .build()
        .unwrap();
    let res = app
        .send(replay(
            app.http.patch(format!("{user}{path}")),
            read.headers(),
        ))
        .await;
    res.expect(401, Some("unauthorized"));
    let res = app
        .send(replay(
            app.http.get(format!("{user}{path}")),
            read.headers(),
        ))
        .await;
    assert_eq!(res.expect(200, None)["id"], me.id.as_str(), "the control");
    let body = json!({"name": "Signed Name"});
    let genuine = app
        .signed(
            "user",
            reqwest::Method::PATCH,
            path,
            Some(&customer),
            Some(&body),
        )
        .build()
        .unwrap();
    let proof = genuine.headers().clone();
    let sent = genuine.body().and_then(|b| b.as_bytes()).unwrap().to_vec();
    let res = app
        .send(replay(
            app.http
                .patch(format!("{user}{path}"))
                .header("content-type", "application/json")
                .body(r#"{"name":"Tampered Name"}"#),
            &proof,
        ))
        .await;
    res.expect(401, Some("unauthorized"));
    let res = app
        .send(replay(
            app.http
                .patch(format!("{user}{path}"))
                .header("content-type", "application/json")
                .body(sent),
            &proof,
        ))
        .await;
    assert_eq!(res.expect(200, None)["name"], "Signed Name");
}

#[tokio::test]
async fn unknown_routes_are_404_problem_json() {
    let app = App::spawn().await;
    for path in [
        "/api/v1/nope",
        "/api/v1/productsX",
        "/internal/jwks",
        "/api/v2/products",
        // `/` is the storefront's page; no other page path exists (it routes by `#/...`).
        "/shop",
        "/assets/0000000000000000/app.js",
    ] {
        let res = app.get(path, None).await;
        res.expect(404, Some("not_found"));
    }
    let me = app.customer().await;
    app.get("/api/v1/users/nope", Some(&me.token))
        .await
        .expect(404, Some("not_found"));
}

#[tokio::test]
async fn a_service_that_is_down_is_503() {
    let mut app = App::spawn().await;
    let me = app.customer().await;
    app.platform.platform.stop("cart").await;
    let res = app.get("/api/v1/cart", Some(&me.token)).await;
    res.expect(503, Some("service_unavailable"));
    assert!(
        !res.body["detail"].as_str().unwrap().contains("127.0.0.1"),
        "no internals in errors"
    );
}

#[tokio::test]
async fn a_slow_service_is_504() {
    let app =
        App::spawn_with(|c| c.gateway.request_timeout = std::time::Duration::from_millis(1)).await;
    // Registration hashes a password (tens of milliseconds): far over a 1 ms budget.
    let res = app.register("slow@example.com", "long-enough-1", "S").await;
    res.expect(504, Some("upstream_timeout"));
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let app = App::spawn().await;
    let res = app
        .send(
            app.http
                .get(app.url("/api/v1/nope"))
                .header("x-request-id", "my-trace-123"),
        )
        .await;
    assert_eq!(res.headers["x-request-id"], "my-trace-123");
    let res = app.get("/api/v1/products", None).await;
    let id = res.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

#[tokio::test]
async fn bodies_over_1_mib_are_413() {
    let app = App::spawn().await;
    let big = "x".repeat(1024 * 1024 + 1);
    let res = app
        .send(
            app.http
                .post(app.url("/api/v1/auth/register"))
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    res.expect(413, Some("payload_too_large"));
}

#[tokio::test]
async fn clients_over_their_rate_are_429_with_retry_after() {
    let app = App::spawn_with(|c| {
        c.gateway.rate_limit_per_sec = 0.5;
        c.gateway.rate_limit_burst = 3.0;
    })
    .await;
    for _ in 0..3 {
        assert_ne!(app.get("/api/v1/nope", None).await.status, 429);
    }
    let res = app.get("/api/v1/nope", None).await;
    res.expect(429, Some("rate_limited"));
    assert_eq!(res.headers["retry-after"], "2");
}

#[tokio::test]
async fn keys_openapi_and_ops_routes_are_served() {
    let app = App::spawn().await;
    let me = app.customer().await;
    let jwks = app.get("/.well-known/jwks.json", None).await;
    let key = &jwks.expect(200, None)["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(
        key["kid"],
        jsonwebtoken::decode_header(&me.token)
            .unwrap()
            .kid
            .unwrap()
            .as_str()
    );
    let spec = app.get("/openapi.json", None).await;
    assert_eq!(spec.expect(200, None)["openapi"], "3.1.0");
    let generated = serde_json::to_value(souk::openapi::document()).unwrap();
    assert_eq!(spec.body, generated);
    // The product and cart services serve their own part, in the same frame.
    for (service, part) in [
        ("product", souk_product::openapi()),
        ("cart", souk_cart::openapi()),
    ] {
        let mut expected = souk_common::openapi::base();
        expected.merge(part);
        souk_common::openapi::finish(&mut expected);
        let url = format!("{}/openapi.json", app.platform.url(service));
        let served = app.send(app.http.get(url)).await;
        assert_eq!(
            served.expect(200, None),
            &serde_json::to_value(expected).unwrap(),
            "{service}"
        );
    }
    for service in souk::SERVICES {
        let base = app.platform.url(service);
        assert_eq!(
            app.http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{service}"
        );
        assert_eq!(
            app.http
                .get(format!("{base}/readyz"))
                .send()
                .await
                .unwrap()
                .status(),
            200,
            "{service}"
        );
    }
    let metrics = app
        .http
        .get(format!("{}/metrics", app.platform.ops_url("gateway")))
        .send()
        .await
        .unwrap();
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("http_requests_total")
    );
}

#[tokio::test]
async fn without_the_user_service_a_token_is_refused_once_its_cached_role_is_stale() {
    let ttl = std::time::Duration::from_secs(2);
    let mut app = App::spawn_with(|c| c.gateway.session_cache_ttl = ttl).await;
    let me = app.customer().await;
    app.get("/api/v1/cart", Some(&me.token))
        .await
        .expect(200, None);
    app.platform.platform.stop("user").await;
    // Within the short cache the last answer still stands...
    app.get("/api/v1/cart", Some(&me.token))
        .await
        .expect(200, None);
    tokio::time::sleep(ttl + std::time::Duration::from_millis(200)).await;
    // ...beyond it the token's own role is never taken on trust.
    let res = app.get("/api/v1/cart", Some(&me.token)).await;
    res.expect(503, Some("service_unavailable"));
    assert_eq!(res.headers["retry-after"], "5");
}
