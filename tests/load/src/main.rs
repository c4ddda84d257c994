//! `souk-load`: seeds a Souk platform through its public API, then plays shoppers against the
//! gateway with goose and prints requests/s, p50/p95/p99 latency and errors per endpoint.
//!
//! Goose reads the command line (`--host`, `--users`, `--hatch-rate`, `--run-time`,
//! `--scenarios browse,cart,checkout`, ...; `souk-load --help`). Seeding reads the environment:
//!
//! | variable | default | |
//! |---|---|---|
//! | `SOUK_ADMIN_EMAIL`, `SOUK_ADMIN_PASSWORD` | required | the admin `souk up` was started with |
//! | `SOUK_LOAD_PRODUCTS` | 10000 | products to ensure exist (SKU `LOAD-00000`...) |
//! | `SOUK_LOAD_USERS` | 1000 | shoppers to register (or log in when they exist) |
//! | `SOUK_LOAD_SEED_CONCURRENCY` | 16 | concurrent product creations |
//! | `SOUK_LOAD_REGISTER_CONCURRENCY` | 4 | concurrent registrations (argon2: CPU-bound) |
//! | `SOUK_LOAD_SUMMARY` | unset | also write the per-endpoint summary there as JSON |
//! | `SOUK_LOAD_SEED_ONLY` | unset | `1`: seed and exit |
//! | `SOUK_LOAD_READY_FILE` | unset | created when seeding is done and the shoppers start (a benchmark's cue to start counting: seeding's sign-ins are not the load) |
//!
//! Data seeding makes is reused by later runs (existing SKUs and e-mails are looked up).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command line talks to its user"
)]

mod report;
mod scenarios;
mod seed;

use std::process::ExitCode;

use anyhow::Context;
use goose::prelude::*;

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> anyhow::Result<T> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{var}: cannot parse {v:?}")),
        _ => Ok(default),
    }
}

/// The gateway URL: goose's `--host`, else `SOUK_LOAD_HOST`, else the `souk up` default.
fn host_from_args() -> String {
    let args: Vec<String> = std::env::args().collect();
    for (i, a) in args.iter().enumerate() {
        if let Some(h) = a.strip_prefix("--host=") {
            return h.to_owned();
        }
        if (a == "--host" || a == "-H") && i + 1 < args.len() {
            return args[i + 1].clone();
        }
    }
    std::env::var("SOUK_LOAD_HOST").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned())
}

async fn run() -> anyhow::Result<bool> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        // Goose prints its options and exits.
        GooseAttack::initialize()?;
        return Ok(true);
    }
    let host = host_from_args();
    let opts = seed::SeedOptions {
        base: host.clone(),
        admin_email: std::env::var("SOUK_ADMIN_EMAIL").context("SOUK_ADMIN_EMAIL is not set")?,
        admin_password: std::env::var("SOUK_ADMIN_PASSWORD")
            .context("SOUK_ADMIN_PASSWORD is not set")?,
        products: env_or("SOUK_LOAD_PRODUCTS", 10_000)?,
        users: env_or("SOUK_LOAD_USERS", 1_000)?,
        product_concurrency: env_or("SOUK_LOAD_SEED_CONCURRENCY", 16)?,
        user_concurrency: env_or("SOUK_LOAD_REGISTER_CONCURRENCY", 4)?,
    };
    eprintln!(
        "seed: {} products, {} shoppers through {host}",
        opts.products, opts.users
    );
    let seeded = seed::seed(&opts).await?;
    if env_or("SOUK_LOAD_SEED_ONLY", 0u8)? == 1 {
        return Ok(true);
    }
    scenarios::DATA
        .set(seeded)
        .map_err(|_| anyhow::anyhow!("seeded twice"))?;
    if let Ok(path) = std::env::var("SOUK_LOAD_READY_FILE") {
        std::fs::write(&path, b"").with_context(|| format!("writing {path}"))?;
    }

    let metrics = GooseAttack::initialize()?
        .register_scenario(scenarios::browse()?.set_weight(3)?)
        .register_scenario(scenarios::cart()?.set_weight(1)?)
        .register_scenario(scenarios::checkout()?.set_weight(1)?)
        .set_default(GooseDefault::Host, host.as_str())?
        .set_default(GooseDefault::Users, 50)?
        .set_default(GooseDefault::HatchRate, "50")?
        .set_default(GooseDefault::RunTime, 30)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoWebSocket, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .execute()
        .await?;
    let summary = report::summarize(&metrics);
    print!("{}", report::table(&summary, metrics.duration));
    if let Ok(path) = std::env::var("SOUK_LOAD_SUMMARY") {
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(summary.iter().all(|e| e.errors == 0))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("souk-load: some requests failed (see the errors column)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("souk-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
