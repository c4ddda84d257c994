use crate::env;

/// A Souk service. All run from the one `souk` binary (`souk serve <name>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    User,
    Product,
    Cart,
    Order,
    Payment,
    Gateway,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::User,
        Service::Product,
        Service::Cart,
        Service::Order,
        Service::Payment,
        Service::Gateway,
    ];
    /// The services behind the gateway, each with a database of its own.
    pub const BACKENDS: [Service; 5] = [
        Service::User,
        Service::Product,
        Service::Cart,
        Service::Order,
        Service::Payment,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Service::User => "user",
            Service::Product => "product",
            Service::Cart => "cart",
            Service::Order => "order",
            Service::Payment => "payment",
            Service::Gateway => "gateway",
        }
    }

    pub fn from_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }

    pub fn has_db(self) -> bool {
        self != Service::Gateway
    }

    /// The services that call this one (the gateway is called from outside).
    pub fn callers(self) -> &'static [Service] {
        match self {
            Service::User => &[Service::Gateway, Service::Order],
            Service::Product => &[Service::Gateway, Service::Cart, Service::Order],
            Service::Cart => &[Service::Gateway, Service::Order],
            Service::Order => &[Service::Gateway, Service::Cart, Service::Payment],
            Service::Payment => &[Service::Gateway, Service::Order],
            Service::Gateway => &[],
        }
    }

    /// The variable its callers find its base URL in; none for the gateway.
    pub fn url_env(self) -> Option<&'static str> {
        match self {
            Service::User => Some(env::USER_URL),
            Service::Product => Some(env::PRODUCT_URL),
            Service::Cart => Some(env::CART_URL),
            Service::Order => Some(env::ORDER_URL),
            Service::Payment => Some(env::PAYMENT_URL),
            Service::Gateway => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_backend_has_a_url_and_a_database() {
        for s in Service::ALL {
            assert_eq!(Service::from_name(s.name()), Some(s));
        }
        assert_eq!(Service::from_name("shipping"), None);
        for s in Service::BACKENDS {
            assert!(s.has_db() && s.url_env().is_some(), "{s:?}");
            for caller in s.callers() {
                assert!(
                    *caller == Service::Gateway || Service::BACKENDS.contains(caller),
                    "{caller:?}"
                );
            }
        }
        assert!(!Service::Gateway.has_db());
    }
}
