//! Souk's contract in types, shared by the runner, the gateway, every service and the operator:
//! which services exist, the error codes of their answers, the names of the settings by which
//! they find each other, and the internal endpoints' paths with their bodies. Caller and callee
//! use the same type, so a service cannot ask another in a shape it does not answer. Nothing
//! here runs: serde (and serde_json for free-form members), uuid and chrono only. The public
//! API's OpenAPI document lives here too (`openapi`).

pub mod carts;
pub mod catalog;
pub mod env;
mod error_code;
pub mod openapi;
pub mod orders;
pub mod payments;
pub mod promotions;
pub mod reservations;
mod service;
pub mod stripe;
pub mod users;

pub use error_code::{ErrorCode, UnknownErrorCode};
pub use service::Service;
