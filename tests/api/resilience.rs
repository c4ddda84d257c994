//! The databases going away under load: every service's connections are terminated
//! (`pg_terminate_backend`, what an admin shutdown or a failover does to them) while shoppers
//! keep calling. Nothing answers 500; what cannot be served is 503 with `Retry-After`; the
//! pools reconnect by themselves within seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use souk_testkit::{eventually, test_server_url};

use crate::helpers::{App, Resp};

/// The calls a shopper makes, one per service database behind the gateway.
const PATHS: [&str; 4] = [
    "/api/v1/products",
    "/api/v1/users/me",
    "/api/v1/cart",
    "/api/v1/orders",
];

async fn terminate_backends(admin: &sqlx::PgPool, prefix: &str) -> u64 {
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE starts_with(datname, $1) AND pid <> pg_backend_pid()",
    )
    .bind(format!("{prefix}_"))
    .fetch_all(admin)
    .await
    .expect("terminating the test databases' backends");
    killed.len() as u64
}

#[track_caller]
fn check_answer(path: &str, res: &Resp) {
    match res.status.as_u16() {
        200 => {}
        503 => {
            assert_eq!(res.content_type(), "application/problem+json", "{path}");
            assert!(
                res.headers.contains_key("retry-after"),
                "{path}: a 503 says when to retry; body: {}",
                res.body
            );
        }
        other => panic!(
            "{path} answered {other} while the database restarted: {}",
            res.body
        ),
    }
}

#[tokio::test]
async fn terminated_database_connections_answer_503_and_recover() {
    // The gateway's rate limit is not what this test is about.
    let app = Arc::new(
        App::spawn_with(|c| {
            c.gateway.rate_limit_per_sec = 100_000.0;
            c.gateway.rate_limit_burst = 100_000.0;
        })
        .await,
    );
    let shopper = app.customer().await;
    let admin_db = sqlx::PgPool::connect(&test_server_url()).await.unwrap();
    let prefix = app.platform.prefix.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..4 {
        let (app, stop, token) = (app.clone(), stop.clone(), shopper.token.clone());
        load.push(tokio::spawn(async move {
            let (mut answers, mut unavailable) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let path = PATHS[(answers as usize + worker) % PATHS.len()];
                let res = app.get(path, Some(&token)).await;
                check_answer(path, &res);
                answers += 1;
                unavailable += u32::from(res.status == 503);
            }
            (answers, unavailable)
        }));
    }
    let mut killed = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        killed += terminate_backends(&admin_db, &prefix).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut answers, mut unavailable) = (0, 0);
    for task in load {
        let (a, u) = task.await.expect("no load worker saw a 500");
        answers += a;
        unavailable += u;
    }
    eprintln!(
        "{killed} backends terminated; {answers} answers under load, {unavailable} of them 503"
    );
    assert!(killed > 0, "some connections were terminated");
    assert!(answers > 20, "the load kept running: {answers} answers");

    // Back within seconds: every service answers 200 again.
    let started = Instant::now();
    for path in PATHS {
        eventually(
            &format!("{path} answering 200 within 10 s of the last termination"),
            Duration::from_secs(10).saturating_sub(started.elapsed()),
            async || {
                let res = app.get(path, Some(&shopper.token)).await;
                check_answer(path, &res);
                res
            },
            |res| res.status == 200,
        )
        .await;
    }
}
