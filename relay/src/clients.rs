//! Who a request comes from (its address, seen through trusted proxies),
//! and the per-token count of open long-polls.

use crate::errors::{ApiResult, err};
use crate::serve;
use crate::tokens::TokenHash;
use axum::http::{HeaderMap, StatusCode};
use pushmfa_config::relay::AddrBlock;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

/// The client's address: the connection's peer, or, when the peer is a
/// trusted proxy, the right-most `X-Forwarded-For` hop that is not one.
/// Requests that did not come through [`serve::serve`] (the router called
/// in-process) share the unspecified address.
/// IPv6 clients are counted by their /64 (one customer's prefix), since a
/// single host can use any address in it.
pub fn client_addr(trusted: &[AddrBlock], headers: &HeaderMap) -> IpAddr {
    let Some(conn) = serve::connection() else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    serve::prefix64(forwarded_client(conn.peer(), trusted, headers))
}

fn forwarded_client(peer: IpAddr, trusted: &[AddrBlock], headers: &HeaderMap) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|b| b.contains(ip));
    let mut client = peer;
    if !is_trusted(client) {
        return client;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        // A hop that is not an address ends the walk: the last trusted
        // proxy is then all we know (and all such clients share it).
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// Open long-polls per token.
#[derive(Default)]
pub struct PollCounts(Arc<Mutex<HashMap<TokenHash, usize>>>);

/// One open long-poll; dropping it frees its place.
pub struct PollSlot {
    counts: Arc<Mutex<HashMap<TokenHash, usize>>>,
    token: TokenHash,
}

impl PollCounts {
    /// A place for one more long-poll by `token`, or 429.
    pub fn take(&self, token: TokenHash, max: usize) -> ApiResult<PollSlot> {
        let mut counts = self
            .0
            .lock()
            .map_err(|_| err(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?;
        let n = counts.entry(token).or_insert(0);
        if *n >= max {
            return Err(err(
                StatusCode::TOO_MANY_REQUESTS,
                format!("at most {max} waiting requests per token; close one first"),
            )
            .retry_after(1));
        }
        *n += 1;
        Ok(PollSlot {
            counts: self.0.clone(),
            token,
        })
    }
}

impl Drop for PollSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock() {
            if let Some(n) = counts.get_mut(&self.token) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&self.token);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted = [AddrBlock::parse("10.0.0.0/24").unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Not a trusted peer: its header is ignored.
        assert_eq!(
            forwarded_client(ip("192.0.2.9"), &trusted, &headers(&["198.51.100.1"])),
            ip("192.0.2.9")
        );
        // A client that prepends a forged hop gets its own address.
        assert_eq!(
            forwarded_client(proxy, &trusted, &headers(&["203.0.113.66, 198.51.100.1"])),
            ip("198.51.100.1")
        );
        // Chained trusted proxies, over several header lines.
        assert_eq!(
            forwarded_client(proxy, &trusted, &headers(&["198.51.100.1", "10.0.0.7"])),
            ip("198.51.100.1")
        );
        // Garbage or nothing: the proxy itself.
        assert_eq!(
            forwarded_client(proxy, &trusted, &headers(&["nonsense"])),
            proxy
        );
        assert_eq!(forwarded_client(proxy, &trusted, &headers(&[])), proxy);
        assert_eq!(
            forwarded_client(proxy, &trusted, &headers(&["2001:db8::1"])),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            serve::prefix64(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            serve::prefix64(ip("2001:db8:1:2:bbbb::9")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(serve::prefix64(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(serve::prefix64(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn long_polls_per_token_are_capped_and_given_back() {
        let counts = PollCounts::default();
        let a = counts.take([1; 32], 2).unwrap();
        let _b = counts.take([1; 32], 2).unwrap();
        let e = counts.take([1; 32], 2).err().unwrap();
        assert_eq!(e.0, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            counts.take([2; 32], 2).is_ok(),
            "other tokens are not affected"
        );
        drop(a);
        assert!(counts.take([1; 32], 2).is_ok());
    }
}
