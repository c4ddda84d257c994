//! Which network a client address stands for when counting its requests.

use std::net::{IpAddr, Ipv6Addr};

/// An IPv4 address itself, or the /64 of an IPv6 address (its last 64 bits cleared): a
/// subscriber line or host gets a whole /64 and may use any address in it, so rotating them
/// must not buy fresh budgets.
pub fn rate_limit_addr(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
}

/// `rate_limit_addr` as text, with the prefix length for an IPv6 network.
pub fn rate_limit_network(ip: IpAddr) -> String {
    match rate_limit_addr(ip) {
        v4 @ IpAddr::V4(_) => v4.to_string(),
        v6 => format!("{v6}/64"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        let key = |ip: &str| rate_limit_network(ip.parse().unwrap());
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:1234:5678:9abc")
        );
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
    }
}
