//! Souk's contract in types, shared by the runner, the gateway, every service and the operator:
//! which services exist, the names of the settings by which they find each other, and the
//! internal endpoints' paths with their bodies. Caller and callee use the same type, so a
//! service cannot ask another in a shape it does not answer. The public API's OpenAPI document
//! lives here too (`openapi`). Nothing here runs: serde, serde_json, uuid and chrono only.

pub mod carts;
pub mod catalog;
pub mod env;
pub mod openapi;
pub mod reservations;
mod service;

pub use service::Service;
