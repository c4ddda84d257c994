//! What every Souk service shares, and nothing that belongs to one service alone.

pub mod address;
pub mod caller;
pub mod client;
pub mod client_net;
pub mod db;
pub mod error;
mod frame;
pub mod json;
pub mod listener;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod query;
pub mod server;
pub mod settings;
pub mod telemetry;
pub mod text;
pub mod token;

pub use caller::{AdminUser, AuthUser, Caller, InternalAuth, Role};
pub use error::{ApiError, ApiResult, FieldError};
pub use json::Json;
pub use query::Query;
