//! Souk operator: reconciles a `Shop` (`souk.dev/v1alpha1`) into a running Souk platform.
//!
//! Layout: [`crd`] (the resource), pure builders ([`objects`], [`database`], [`network`],
//! [`secrets`], [`desired`]), pure decisions ([`rollout`], [`status`], [`validate`]), and the
//! impure parts ([`reconcile`], [`leader`], [`metrics`]).

pub mod crd;
pub mod database;
pub mod desired;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod network;
pub mod objects;
pub mod reconcile;
pub mod rollout;
pub mod secrets;
pub mod status;
pub mod validate;

#[cfg(test)]
mod tests;
