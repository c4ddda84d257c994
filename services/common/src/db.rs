//! Connection pools, database creation and migrations.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, PgPool};

/// Pool with bounded size and acquire timeout, so an overloaded database answers 503, not a hang.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse()?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.log_statements(tracing::log::LevelFilter::Trace))
        .await?;
    Ok(pool)
}

/// Splits `postgres://host/db` into options for the server's maintenance database and the name.
fn server_and_name(url: &str) -> anyhow::Result<(PgConnectOptions, String)> {
    let options: PgConnectOptions = url.parse()?;
    let name = options
        .get_database()
        .ok_or_else(|| anyhow::anyhow!("database URL names no database: {url}"))?
        .to_owned();
    Ok((options.database("postgres"), name))
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Creates the database named in `url` if it does not exist yet.
pub async fn create_if_missing(url: &str) -> anyhow::Result<()> {
    let (server, name) = server_and_name(url)?;
    let mut conn = sqlx::PgConnection::connect_with(&server).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        match sqlx::query(AssertSqlSafe(format!(
            "CREATE DATABASE {}",
            quote_ident(&name)
        )))
        .execute(&mut conn)
        .await
        {
            Ok(_) => {}
            // Another process created it between the check and the create.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await?;
    Ok(())
}

/// Drops the database named in `url`, closing whatever is still connected to it.
pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let (server, name) = server_and_name(url)?;
    let mut conn = sqlx::PgConnection::connect_with(&server).await?;
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(&name)
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}

/// Runs a service's embedded migrations. Safe to run from several processes: sqlx takes an
/// advisory lock.
pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    migrator.run(pool).await?;
    Ok(())
}

/// Replaces the database name in a server URL: `postgres://h:5432/x` -> `postgres://h:5432/<name>`.
pub fn with_database(server_url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(server_url)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}
