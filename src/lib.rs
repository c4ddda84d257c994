//! The `souk` runner: the whole platform in one process (`souk up`, and the test kit's harness),
//! or one service alone (`souk serve`, what a container runs).

pub mod demo;
pub mod local_db;
pub mod local_stripe;
pub mod openapi;
pub mod platform;

/// Every service, in start-up order (the gateway needs the user service's keys).
pub const SERVICES: [&str; 6] = ["user", "product", "cart", "payment", "order", "gateway"];

/// The services that own a database, with their embedded migrations.
pub fn migrator(service: &str) -> Option<&'static sqlx::migrate::Migrator> {
    match service {
        "user" => Some(&souk_user::MIGRATOR),
        "order" => Some(&souk_order::MIGRATOR),
        "product" => Some(&souk_product::MIGRATOR),
        "cart" => Some(&souk_cart::MIGRATOR),
        "payment" => Some(&souk_payment::MIGRATOR),
        _ => None,
    }
}

/// Whether `service` has a database of its own.
pub fn has_database(service: &str) -> bool {
    service != "gateway"
}
