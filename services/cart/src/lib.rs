//! The cart service.

use axum::Router;
use souk_common::settings::{self, ConfigError};
use souk_common::{db, ops, server};

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub internal_secret: String,
    pub db_max_connections: u32,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            database_url: settings::required("DATABASE_URL")?,
            internal_secret: settings::internal_secret()?,
            db_max_connections: settings::parsed("SOUK_DB_MAX_CONNECTIONS", 10)?,
        })
    }
}

pub async fn app(config: Config) -> anyhow::Result<Router> {
    let db = db::connect(&config.database_url, config.db_max_connections).await?;
    Ok(server::wrap(
        "cart",
        Router::new(),
        vec![ops::database_check(db)],
    ))
}
