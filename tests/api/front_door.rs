//! The public port under abuse: spoofed client addresses, slow and many connections, and
//! requests crafted to inflate the metrics.

use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::App;

/// The test client connects from loopback, so trusting loopback makes it play the ingress.
fn behind_loopback_ingress() -> Vec<ipnet::IpNet> {
    vec!["127.0.0.0/8".parse().unwrap()]
}

#[tokio::test]
async fn a_spoofed_forwarded_for_does_not_escape_the_rate_limit() {
    let app = App::spawn_with(|c| {
        c.gateway.rate_limit_per_sec = 0.5;
        c.gateway.rate_limit_burst = 3.0;
        c.gateway.trusted_proxies = behind_loopback_ingress();
    })
    .await;
    let from = |xff: &str| {
        app.http
            .get(app.url("/api/v1/nope"))
            .header("x-forwarded-for", xff)
    };
    // The client writes a new first entry each time; the ingress appends the real address.
    for spoof in ["1.1.1.1", "2.2.2.2", "3.3.3.3"] {
        let res = app.send(from(&format!("{spoof}, 203.0.113.7"))).await;
        assert_ne!(res.status, 429, "{spoof}");
    }
    let res = app.send(from("4.4.4.4, 203.0.113.7")).await;
    res.expect(429, Some("rate_limited"));
    // Another real client behind the same ingress is not affected.
    let res = app.send(from("1.1.1.1, 203.0.113.8")).await;
    assert_ne!(res.status, 429);
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_for_is_ignored() {
    let app = App::spawn_with(|c| {
        c.gateway.rate_limit_per_sec = 0.5;
        c.gateway.rate_limit_burst = 3.0;
    })
    .await;
    for i in 0..3 {
        let res = app
            .send(
                app.http
                    .get(app.url("/api/v1/nope"))
                    .header("x-forwarded-for", format!("198.51.100.{i}")),
            )
            .await;
        assert_ne!(res.status, 429);
    }
    let res = app
        .send(
            app.http
                .get(app.url("/api/v1/nope"))
                .header("x-forwarded-for", "198.51.100.99"),
        )
        .await;
    res.expect(429, Some("rate_limited"));
}

/// A stand-in for the product service that answers with the `X-Forwarded-For` it received.
async fn echo_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let xff: Vec<_> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        // A stand-in for the product service: an empty page, as the document has it, that
        // also tells what it was told.
        axum::Json(json!({ "items": [], "next_cursor": null, "x_forwarded_for": xff }))
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn services_are_told_the_real_client_address() {
    let echo = echo_upstream().await;
    let app = App::spawn_with(|c| {
        c.gateway.trusted_proxies = behind_loopback_ingress();
        c.gateway.upstreams.product = echo.clone();
        // The echo's answer depends on the caller (the catalog's never does): the gateway's
        // catalog cache would hand the first answer to the second request.
        c.gateway.catalog_cache_ttl = Duration::ZERO;
    })
    .await;
    let res = app
        .send(
            app.http
                .get(app.url("/api/v1/products"))
                .header("x-forwarded-for", "6.6.6.6")
                .header("x-forwarded-for", "7.7.7.7, 203.0.113.7"),
        )
        .await;
    assert_eq!(
        res.expect(200, None)["x_forwarded_for"],
        json!(["203.0.113.7"])
    );
    // Straight from the ingress with no header: the ingress itself.
    let res = app.get("/api/v1/products", None).await;
    assert_eq!(
        res.expect(200, None)["x_forwarded_for"],
        json!(["127.0.0.1"])
    );
}

fn gateway_addr(app: &App) -> String {
    app.platform
        .gateway()
        .trim_start_matches("http://")
        .to_owned()
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_others_are_still_served() {
    let app = App::spawn_with(|c| {
        c.connections.header_read_timeout = Duration::from_secs(1);
        c.connections.body_read_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = gateway_addr(&app);
    // Hundreds of clients that start a request and trickle its headers.
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /api/v1/products HTTP/1.1\r\nhost: shop\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let trickle = tokio::spawn(async move {
        let start = Instant::now();
        let mut open = slow.len();
        let mut closed = vec![false; slow.len()];
        while open > 0 && start.elapsed() < Duration::from_secs(10) {
            for (s, closed) in slow.iter_mut().zip(closed.iter_mut()) {
                if *closed {
                    continue;
                }
                let mut buf = [0; 64];
                let gone =
                    match tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await {
                        Ok(_) => true,
                        Err(_) => s.write_all(b"x-slow: 1\r\n").await.is_err(),
                    };
                if gone {
                    *closed = true;
                    open -= 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        (open, start.elapsed())
    });
    let start = Instant::now();
    app.get("/api/v1/products", None).await.expect(200, None);
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1500),
        "a normal client waited {took:?}"
    );
    let (still_open, after) = trickle.await.unwrap();
    assert_eq!(
        still_open, 0,
        "slow clients still connected after {after:?}"
    );
    assert!(
        after < Duration::from_secs(5),
        "cut off only after {after:?}"
    );
}

#[tokio::test]
async fn a_slow_body_is_cut_off_with_408() {
    let app = App::spawn_with(|c| c.connections.body_read_timeout = Duration::from_secs(1)).await;
    let mut s = TcpStream::connect(gateway_addr(&app)).await.unwrap();
    s.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nhost: shop\r\ncontent-type: application/json\r\n\
          content-length: 200\r\n\r\n{\"email\":",
    )
    .await
    .unwrap();
    let mut buf = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("the gateway answers without waiting for the rest")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
}

#[tokio::test]
async fn invented_methods_and_paths_add_no_metric_series() {
    let app = App::spawn_with(|c| c.gateway.rate_limit_burst = 10_000.0).await;
    let product = app.platform.url("product").to_owned();
    for i in 0..20 {
        let method = reqwest::Method::from_bytes(format!("INVENTED{i}").as_bytes()).unwrap();
        for base in [app.platform.gateway(), product.as_str()] {
            for path in [
                format!("/api/v1/products/{}", uuid::Uuid::new_v4()),
                format!("/made-up-{i}/x"),
            ] {
                let _ = app
                    .http
                    .request(method.clone(), format!("{base}{path}"))
                    .send()
                    .await
                    .unwrap();
                let _ = app.http.get(format!("{base}{path}")).send().await.unwrap();
            }
        }
    }
    let metrics = app
        .http
        .get(format!("{}/metrics", app.platform.ops_url("gateway")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    for invented in [
        "INVENTED",
        "made-up-",
        "/api/v1/products/0",
        "/api/v1/products/1",
    ] {
        assert!(!metrics.contains(invented), "{invented:?} became a label");
    }
    assert!(metrics.contains(r#"method="other""#));
    assert!(metrics.contains(r#"route="/api/v1/products/{id}""#));
    assert!(metrics.contains(r#"route="proxy:product""#));
}

#[tokio::test]
async fn metrics_and_readiness_detail_are_only_on_the_ops_port() {
    let app = App::spawn().await;
    for service in souk::SERVICES {
        let public = app.platform.url(service);
        let ops = app.platform.ops_url(service);
        let get = |url: String| {
            let http = app.http.clone();
            async move {
                let res = http.get(url).send().await.unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            }
        };
        assert_eq!(get(format!("{public}/metrics")).await.0, 404, "{service}");
        assert_eq!(get(format!("{public}/healthz")).await.0, 200, "{service}");
        assert_eq!(get(format!("{public}/readyz")).await, (200, "ready".into()));
        let (status, body) = get(format!("{ops}/metrics")).await;
        assert_eq!(status, 200, "{service}");
        assert!(body.contains("http_requests_total"), "{service}");
        assert_eq!(get(format!("{ops}/readyz")).await.0, 200, "{service}");
        // The ops port serves nothing else.
        assert_eq!(
            get(format!("{ops}/api/v1/products")).await.0,
            404,
            "{service}"
        );
    }
    // Through the gateway, too, there are no metrics.
    app.get("/metrics", None)
        .await
        .expect(404, Some("not_found"));
}

/// A stand-in for a product pod that is going away: every other request it reads (the 1st,
/// the 3rd, ...) it answers by closing the connection, as a pod closing a kept-alive
/// connection under a request does; the others get an empty catalog page.
async fn closing_upstream() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if counter.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) {
                    return; // closed without an answer
                }
                let body = r#"{"items":[],"next_cursor":null}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn a_read_is_sent_again_when_its_upstream_connection_breaks_and_a_write_is_not() {
    use std::sync::atomic::Ordering;
    let (upstream, seen) = closing_upstream().await;
    let app = App::spawn_with(|c| {
        c.gateway.upstreams.product = upstream.clone();
        c.gateway.catalog_cache_ttl = Duration::ZERO;
    })
    .await;
    let admin = app.admin().await;
    // The first attempt breaks; the gateway asks again and the shopper never sees it.
    app.get("/api/v1/products", None).await.expect(200, None);
    assert_eq!(seen.load(Ordering::SeqCst), 2, "the read went twice");
    // A write that breaks may have been carried out: it is not sent a second time.
    let res = app
        .post(
            "/api/v1/products",
            Some(&admin.token),
            json!({"sku": "X-1", "name": "Pot", "description": "", "price_cents": 100,
                   "currency": "usd", "stock": 1}),
        )
        .await;
    res.expect(502, Some("bad_gateway"));
    assert_eq!(seen.load(Ordering::SeqCst), 3, "the write went once");
}
