//! Shared test helpers: a running platform, an HTTP client, and shortcuts for common calls.

#![allow(dead_code, reason = "each test module uses its own part of these")]

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use souk::platform::PlatformConfig;
use souk_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, Internal, Payload, TestPlatform};

/// Order recovery within about a second: a crashed checkout's lease runs out after 1 s and the
/// recovery loop looks every 200 ms (60 s and 10 s by default).
pub fn fast_recovery(config: &mut PlatformConfig) {
    config.order.lease = Duration::from_secs(1);
    config.order.recovery_interval = Duration::from_millis(200);
}

/// A 3-D Secure payment window of 2 s (20 min by default), Stripe asked every second, and
/// fast recovery: an order waiting for the shopper expires while the test waits.
pub fn short_payment_window(config: &mut PlatformConfig) {
    config.order.payment_window = Duration::from_secs(2);
    config.order.payment_poll = Duration::from_secs(1);
    fast_recovery(config);
}

pub struct App {
    pub platform: TestPlatform,
    pub http: reqwest::Client,
}

/// An answer: status, headers and the JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `Retry-After` header in seconds; panics when it is missing or not a number.
    #[track_caller]
    pub fn retry_after(&self) -> u64 {
        self.headers["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("Retry-After is a number of seconds: {:?}", self.headers))
    }

    /// Asserts the status and, for errors, that the body is problem+json with this `code`.
    #[track_caller]
    pub fn expect(&self, status: u16, code: Option<&str>) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        if let Some(code) = code {
            assert_eq!(
                self.content_type(),
                "application/problem+json",
                "body: {}",
                self.body
            );
            assert_eq!(self.body["code"], code, "body: {}", self.body);
            assert_eq!(self.body["status"], status);
        }
        &self.body
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub email: String,
    pub token: String,
    pub refresh: String,
}

/// Every test is one client of its own gateway, so the production rate limit (100 at once,
/// 50/s after) is a race with the machine's speed: a test of 250 quick requests passes on a
/// busy machine and meets 429 on a fast one. Tests run unlimited unless `adjust` sets a limit,
/// as the rate limit's own tests do.
fn unlimited(config: &mut PlatformConfig, adjust: impl FnOnce(&mut PlatformConfig)) {
    config.gateway.rate_limit_per_sec = 1_000_000.0;
    config.gateway.rate_limit_burst = 1_000_000.0;
    adjust(config);
}

impl App {
    pub async fn spawn() -> App {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(adjust: impl FnOnce(&mut PlatformConfig)) -> App {
        let platform = TestPlatform::start_with(|c| unlimited(c, adjust))
            .await
            .expect("platform starts");
        App {
            platform,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.platform.gateway())
    }

    /// Sends `req`; an answer of this platform's gateway is checked against the public OpenAPI
    /// document (`openapi::check`), calls straight to a service are not.
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let (client, req) = req.build_split();
        let req = req.expect("the request is well-formed");
        let to_gateway = reqwest::Url::parse(self.platform.gateway())
            .is_ok_and(|gateway| gateway.origin() == req.url().origin());
        let (method, path) = (req.method().clone(), req.url().path().to_owned());
        let res = client
            .execute(req)
            .await
            .expect("request reaches the gateway");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        if to_gateway {
            let content_type = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            crate::openapi::check(&method, &path, status, content_type, &bytes);
        }
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(reqwest::Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }
    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(reqwest::Method::PATCH, path, token, Some(body))
            .await
    }
    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(reqwest::Method::PUT, path, token, Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(reqwest::Method::DELETE, path, token, None).await
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> Resp {
        self.post(
            "/api/v1/auth/register",
            None,
            json!({"email": email, "password": password, "name": name}),
        )
        .await
    }

    /// Registers a new customer with a unique e-mail.
    pub async fn customer(&self) -> Session {
        let email = format!("shopper-{}@example.com", uuid::Uuid::new_v4().simple());
        let res = self.register(&email, "correct-horse-1", "Shopper").await;
        let body = res.expect(201, None);
        session(body, &email)
    }

    pub async fn login(&self, email: &str, password: &str) -> Resp {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Signs in as the admin seeded at start-up.
    pub async fn admin(&self) -> Session {
        let res = self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let body = res.expect(200, None).clone();
        let me = self
            .get("/api/v1/users/me", body["access_token"].as_str())
            .await;
        Session {
            id: me.body["id"].as_str().unwrap().to_owned(),
            email: ADMIN_EMAIL.to_owned(),
            token: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    /// A connection to one service's own database, for checks the API cannot make.
    pub async fn db(&self, service: &str) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.platform.database_url(service))
            .await
            .expect("test database")
    }
}

pub fn session(body: &Value, email: &str) -> Session {
    Session {
        id: body["user"]["id"].as_str().expect("user id").to_owned(),
        email: email.to_owned(),
        token: body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned(),
    }
}

/// Payments: a platform with the Stripe emulator and an SMTP sink, and calls made straight to
/// a service as another service (or as a user) would make them.
impl App {
    /// Like `spawn`, plus a Stripe emulator (webhooks to this gateway) and an SMTP sink.
    pub async fn spawn_shop() -> App {
        Self::spawn_shop_with(|_| {}).await
    }

    pub async fn spawn_shop_with(adjust: impl FnOnce(&mut PlatformConfig)) -> App {
        let platform = TestPlatform::start_shop_with(|c| unlimited(c, adjust))
            .await
            .expect("platform with the Stripe emulator and SMTP sink starts");
        App {
            platform,
            http: reqwest::Client::new(),
        }
    }

    /// Messages delivered to the SMTP sink so far.
    pub fn mail(&self) -> Vec<String> {
        self.platform.mail()
    }

    /// Calls `service` directly (not through the gateway), signed as `caller` (None: unsigned).
    pub async fn internal(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        caller: Option<&souk_common::Caller>,
        body: Option<Value>,
    ) -> Resp {
        self.send(self.signed(service, method, path, caller, body.as_ref()))
            .await
    }

    /// A request straight to `service`, with a proof (when `caller` is set) for exactly this
    /// method, path, service and body, as a sibling service would send it.
    pub fn signed(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        caller: Option<&souk_common::Caller>,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        self.signed_to(
            self.platform.url(service),
            service,
            method,
            path,
            caller,
            body,
        )
    }

    /// Like `signed`, to the instance of `service` at `base` (a replica, say).
    pub fn signed_to(
        &self,
        base: &str,
        service: &str,
        method: reqwest::Method,
        path: &str,
        caller: Option<&souk_common::Caller>,
        body: Option<&Value>,
    ) -> reqwest::RequestBuilder {
        let request = Internal::default().request(
            base,
            service,
            method,
            path,
            caller,
            body.map(Payload::json),
        );
        Internal::over_http(&self.http, request)
    }

    /// Calls `service` directly as the order service would.
    pub async fn as_order_service(
        &self,
        service: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let caller = souk_common::Caller::Service("order".into());
        self.internal(service, method, path, Some(&caller), body)
            .await
    }
}
