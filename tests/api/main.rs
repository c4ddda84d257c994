//! Black-box tests across services: each test starts the whole platform in-process on free
//! ports against its own fresh databases, and talks to it over HTTP through the gateway.

#![allow(
    clippy::unwrap_used,
    reason = "a test that fails at an unwrap is doing its job"
)]

mod browser;
mod cart;
mod catalog;
mod catalog_cache;
mod checkout;
mod checkout_once;
mod demo;
mod docs_page;
mod faults;
mod front_door;
mod fuzz;
mod gateway;
mod helpers;
mod hostile;
mod openapi;
mod payments;
mod promotions;
mod refunds;
mod reservations;
mod resilience;
mod storefront;
mod storefront_promotions;
mod three_d_secure;
mod traces;
mod users;
mod variants;
