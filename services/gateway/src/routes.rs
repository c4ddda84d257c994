//! Which service owns a public path, whether it needs a signed-in user, and how long it may take.

use axum::http::Method;
use souk_contract::Service;

/// The route label of requests forwarded to `service` (its own metrics have the route
/// templates).
pub fn metrics_route(service: Service) -> &'static str {
    match service {
        Service::User => "proxy:user",
        Service::Product => "proxy:product",
        Service::Cart => "proxy:cart",
        Service::Order => "proxy:order",
        Service::Payment => "proxy:payment",
        // `resolve` never routes to the gateway itself.
        Service::Gateway => "proxy:gateway",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a token, if sent, must still be valid.
    Public,
    /// A signed-in user (the service decides about roles and ownership).
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    Default,
    /// Checkout and cancellation talk to Stripe and may take longer.
    Payments,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// One of `Service::BACKENDS`.
    pub service: Service,
    pub access: Access,
    pub timeout: Timeout,
}

pub const API_PREFIX: &str = "/api/v1/";

/// Matches on whole path segments, so `/api/v1/productsX` matches nothing.
pub fn resolve(method: &Method, path: &str) -> Option<Route> {
    let rest = path.strip_prefix(API_PREFIX)?;
    let mut segments = rest.split('/');
    let first = segments.next()?;
    let second = segments.next().unwrap_or("");
    let route = |service, access| {
        Some(Route {
            service,
            access,
            timeout: Timeout::Default,
        })
    };
    let read_only_public = if method == Method::GET || method == Method::HEAD {
        Access::Public
    } else {
        Access::User
    };
    match first {
        "auth" => match second {
            "register" | "login" | "refresh" => route(Service::User, Access::Public),
            _ => route(Service::User, Access::User),
        },
        "users" => route(Service::User, Access::User),
        "admin" => match second {
            "users" => route(Service::User, Access::User),
            "orders" => route(Service::Order, Access::User),
            _ => None,
        },
        "products" | "categories" => route(Service::Product, read_only_public),
        "cart" => route(Service::Cart, Access::User),
        // Admin only: the order service checks the role (403 for a customer).
        "promotions" => route(Service::Order, Access::User),
        "checkout" => Some(Route {
            service: Service::Order,
            access: Access::User,
            timeout: Timeout::Payments,
        }),
        "orders" => Some(Route {
            service: Service::Order,
            access: Access::User,
            timeout: Timeout::Payments,
        }),
        "payments" if second == "webhook" => route(Service::Payment, Access::Public),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_by_whole_segments() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            resolve(&post, "/api/v1/auth/login").unwrap().access,
            Access::Public
        );
        assert_eq!(
            resolve(&post, "/api/v1/auth/logout").unwrap().access,
            Access::User
        );
        assert_eq!(
            resolve(&get, "/api/v1/products").unwrap().access,
            Access::Public
        );
        assert_eq!(
            resolve(&post, "/api/v1/products").unwrap().access,
            Access::User
        );
        assert_eq!(
            resolve(&get, "/api/v1/admin/orders").unwrap().service,
            Service::Order
        );
        assert_eq!(
            resolve(&post, "/api/v1/checkout").unwrap().timeout,
            Timeout::Payments
        );
        assert_eq!(
            resolve(&get, "/api/v1/promotions").unwrap().service,
            Service::Order
        );
        assert_eq!(
            resolve(&get, "/api/v1/promotions").unwrap().access,
            Access::User
        );
        assert!(resolve(&get, "/api/v1/productsX").is_none());
        assert!(resolve(&get, "/api/v1/admin/other").is_none());
        assert!(resolve(&get, "/internal/users/1").is_none());
        assert!(resolve(&get, "/api/v1/payments").is_none());
    }

    #[test]
    fn routes_go_to_backends_each_with_its_own_metrics_label() {
        let paths = [
            "/api/v1/auth/login",
            "/api/v1/users/me",
            "/api/v1/admin/users",
            "/api/v1/admin/orders",
            "/api/v1/products",
            "/api/v1/categories",
            "/api/v1/cart",
            "/api/v1/promotions",
            "/api/v1/checkout",
            "/api/v1/orders",
            "/api/v1/payments/webhook",
        ];
        let mut reached = std::collections::BTreeSet::new();
        for path in paths {
            let route = resolve(&Method::POST, path).unwrap();
            assert!(Service::BACKENDS.contains(&route.service), "{path}");
            reached.insert(route.service);
        }
        assert_eq!(reached.len(), Service::BACKENDS.len(), "{reached:?}");
        let labels: std::collections::BTreeSet<_> =
            Service::BACKENDS.into_iter().map(metrics_route).collect();
        assert_eq!(labels.len(), Service::BACKENDS.len());
    }
}
