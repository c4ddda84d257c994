//! The client's address behind proxies. Each proxy appends the address it received the request
//! from to `X-Forwarded-For`, so only the entries written by trusted proxies can be believed:
//! reading from the right, the first address that is not a trusted proxy is the client. Entries
//! left of it were written by the client itself and may be anything.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The address to rate-limit and report: `peer` unless `peer` is a trusted proxy.
pub fn client_addr(headers: &HeaderMap, peer: IpAddr, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer.to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    // Several headers count as one list, in order (RFC 9110 §5.3).
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .flat_map(|v| v.to_str().unwrap_or("?").rsplit(','));
    for entry in entries {
        // A garbled entry from a trusted hop: stop at the last address known to be real.
        let Some(ip) = parse_entry(entry.trim()) else {
            return client;
        };
        client = ip;
        if !is_trusted(&client) {
            return client;
        }
    }
    // Every hop is a proxy: the left-most one is as close to the client as we know.
    client
}

/// `192.0.2.1`, `2001:db8::1`, and the `192.0.2.1:5678` / `[2001:db8::1]:80` forms some
/// proxies write.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .map(|ip| ip.to_canonical())
}

/// Comma-separated networks (`10.0.0.0/8`, `fd00::/8`) or single addresses.
pub fn parse_networks(raw: &str) -> Result<Vec<IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not a network (10.0.0.0/8) or an address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(xff: &[&str], peer: &str, trusted: &str) -> String {
        let mut headers = HeaderMap::new();
        for v in xff {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        let trusted = parse_networks(trusted).unwrap();
        client_addr(&headers, peer.parse().unwrap(), &trusted).to_string()
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let cases: [(&[&str], &str, &str, &str); 7] = [
            (
                &["6.6.6.6, 203.0.113.7"],
                "10.1.2.3",
                "203.0.113.7",
                "the client wrote the first entry; the ingress appended the real peer",
            ),
            (
                &["6.6.6.6, 203.0.113.7, 10.9.9.9"],
                "10.1.2.3",
                "203.0.113.7",
                "two trusted hops",
            ),
            (
                &["6.6.6.6", "203.0.113.7"],
                "10.1.2.3",
                "203.0.113.7",
                "split over two headers",
            ),
            (
                &["203.0.113.7:5555"],
                "::ffff:10.1.2.3",
                "203.0.113.7",
                "a port on the entry, an IPv4-mapped peer",
            ),
            (
                &["10.7.7.7, 10.8.8.8"],
                "10.1.2.3",
                "10.7.7.7",
                "only proxies: the left-most",
            ),
            (
                &["203.0.113.7, nonsense"],
                "10.1.2.3",
                "10.1.2.3",
                "garbage from a hop: the last real address",
            ),
            (&[], "10.1.2.3", "10.1.2.3", "no header: the proxy itself"),
        ];
        for (headers, peer, client, case) in cases {
            assert_eq!(addr(headers, peer, "10.0.0.0/8"), client, "{case}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        assert_eq!(
            addr(&["6.6.6.6"], "203.0.113.7", "10.0.0.0/8"),
            "203.0.113.7"
        );
        assert_eq!(addr(&["6.6.6.6"], "203.0.113.7", ""), "203.0.113.7");
    }

    #[test]
    fn networks_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_networks("10.0.0.0/8, 192.0.2.1 ,fd00::/8")
                .unwrap()
                .len(),
            3
        );
        assert!(
            parse_networks("10.0.0.0/33")
                .unwrap_err()
                .contains("10.0.0.0/33")
        );
    }
}
