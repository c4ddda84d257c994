//! Finding a PostgreSQL server for `souk up`: `SOUK_DATABASE_URL`, else one answering on
//! 127.0.0.1:5432, else a private cluster under `.souk/postgres` made with the system's
//! `initdb` and `pg_ctl`.

#![allow(
    clippy::print_stdout,
    reason = "`souk up` tells its user which database it uses"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::Connection;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PRIVATE_PORT: u16 = 54329;

pub async fn server_url(state_dir: &Path) -> anyhow::Result<String> {
    if let Some(url) = souk_common::settings::optional("SOUK_DATABASE_URL")? {
        check(&url)
            .await
            .with_context(|| "SOUK_DATABASE_URL: cannot connect".to_string())?;
        return Ok(url);
    }
    if check(DEFAULT_SERVER).await.is_ok() {
        return Ok(DEFAULT_SERVER.to_owned());
    }
    println!(
        "no PostgreSQL on 127.0.0.1:5432; starting a private one under {}",
        state_dir.display()
    );
    start_private(state_dir).await
}

async fn check(url: &str) -> anyhow::Result<()> {
    let conn =
        tokio::time::timeout(Duration::from_secs(3), sqlx::PgConnection::connect(url)).await??;
    conn.close().await?;
    Ok(())
}

fn pg_bin(name: &str) -> anyhow::Result<PathBuf> {
    if let Ok(path) = which(name) {
        return Ok(path);
    }
    // Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<version>/bin.
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|p| p.exists())
        .with_context(|| {
            format!(
                "PostgreSQL's `{name}` was not found; install PostgreSQL or set SOUK_DATABASE_URL"
            )
        })
}

fn which(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .context("not in PATH")
}

async fn start_private(state_dir: &Path) -> anyhow::Result<String> {
    let data = state_dir.join("postgres");
    let url = format!("postgres://postgres@127.0.0.1:{PRIVATE_PORT}/postgres");
    if check(&url).await.is_ok() {
        return Ok(url);
    }
    if !data.join("PG_VERSION").exists() {
        std::fs::create_dir_all(&data)?;
        let status = Command::new(pg_bin("initdb")?)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "-D"])
            .arg(&data)
            .status()?;
        if !status.success() {
            bail!("initdb failed for {}", data.display());
        }
    }
    let log = state_dir.join("postgres.log");
    let status = Command::new(pg_bin("pg_ctl")?)
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-o"])
        .arg(format!(
            "-p {PRIVATE_PORT} -k {} -c listen_addresses=127.0.0.1",
            data.display()
        ))
        .arg("start")
        .status()?;
    if !status.success() {
        bail!("pg_ctl could not start PostgreSQL; see {}", log.display());
    }
    check(&url).await?;
    Ok(url)
}
