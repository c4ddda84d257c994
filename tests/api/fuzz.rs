//! Schemathesis against the served OpenAPI document, through the gateway, once as an admin and
//! once as a customer: no 500, and every status, content type and body as documented. Needs the
//! `st` program (pinned in scripts/test, found through `SOUK_SCHEMATHESIS`), so `cargo test`
//! skips it and scripts/test runs it with `--include-ignored`.

use std::process::Command;

use crate::helpers::App;

/// Per run (one as each role); the whole fuzzing stays within a few minutes.
const MAX_TIME_SECS: u64 = 75;

#[tokio::test]
#[ignore = "needs schemathesis (SOUK_SCHEMATHESIS); scripts/test runs it"]
async fn schemathesis_finds_no_failures() {
    let st = std::env::var("SOUK_SCHEMATHESIS")
        .expect("SOUK_SCHEMATHESIS names the schemathesis `st` program (scripts/test installs it)");
    // Fuzzing sends thousands of requests from one address: raise the limits for this run only.
    let app = App::spawn_with(|c| {
        c.gateway.rate_limit_per_sec = 1_000_000.0;
        c.gateway.rate_limit_burst = 1_000_000.0;
        c.user.login_limits.per_account = i32::MAX;
        c.user.login_limits.per_address = i32::MAX;
    })
    .await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let schema = app.url("/openapi.json");
    let mut failed = Vec::new();
    for (role, token) in [("admin", &admin.token), ("customer", &customer.token)] {
        // Schemathesis keeps its examples database in the working directory: a scratch one.
        let workdir = std::env::temp_dir().join(format!("{}_fuzz_{role}", app.platform.prefix));
        std::fs::create_dir_all(&workdir).unwrap();
        let mut run = Command::new(&st);
        run.current_dir(&workdir);
        run.args(["run", &schema, "--url", app.platform.gateway()])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--max-time", &MAX_TIME_SECS.to_string()])
            // One worker: CPython 3.11 can fail ast.parse in concurrent threads ("AST constructor
            // recursion depth mismatch"), which hypothesis calls while describing strategies.
            .args(["--workers", "1", "--seed", "1"])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .env("NO_COLOR", "1");
        let status = tokio::task::spawn_blocking(move || run.status())
            .await
            .unwrap()
            .expect("schemathesis runs");
        let _ = std::fs::remove_dir_all(&workdir);
        if !status.success() {
            failed.push(role);
        }
    }
    assert!(
        failed.is_empty(),
        "schemathesis found failures as: {failed:?}"
    );
}
