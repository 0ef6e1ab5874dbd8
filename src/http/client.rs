//! Who is calling: the client IP (from the socket, or from `X-Forwarded-For` when the socket
//! is a trusted proxy) and the user agent.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};

use super::AppState;
use crate::sessions::ClientInfo;

/// The proxies whose `X-Forwarded-For` is believed: addresses or CIDR blocks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl std::str::FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list such as `10.0.0.0/8,192.0.2.7,::1`.
    fn from_str(text: &str) -> Result<Self, String> {
        let mut blocks = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (address, bits) = match item.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (item, None),
            };
            let address: IpAddr =
                address.parse().map_err(|_| format!("{item:?} is not an IP address or CIDR block"))?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{item:?}: bad prefix length"))?,
                None => max,
            };
            blocks.push((address, bits));
        }
        Ok(TrustedProxies(blocks))
    }
}

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|(block, bits)| in_block(ip, *block, *bits))
    }
}

fn in_block(ip: IpAddr, block: IpAddr, bits: u8) -> bool {
    let (ip, block, width) = match (ip.to_canonical(), block) {
        (IpAddr::V4(ip), IpAddr::V4(block)) => (u128::from(ip.to_bits()), u128::from(block.to_bits()), 32),
        (IpAddr::V6(ip), IpAddr::V6(block)) => (ip.to_bits(), block.to_bits(), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (block >> shift)
}

/// The client's address: the socket's, unless the socket is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
pub fn client_ip(trusted: &TrustedProxies, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(ip) => continue,
            Ok(ip) => return ip,
            // Garbage in the chain: trust nothing to its left.
            Err(_) => return peer,
        }
    }
    peer
}

pub fn client_info(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> ClientInfo {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ip = client_ip(&state.trusted_proxies, peer.ip(), headers);
    ClientInfo { ip: ip.to_string(), user_agent: user_agent.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", xff.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() {
        let trusted: TrustedProxies = "10.0.0.0/8, 192.0.2.7".parse().unwrap();
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "198.51.100.9".parse().unwrap();
        assert_eq!(client_ip(&trusted, stranger, &headers("1.2.3.4")), stranger, "anyone can write the header");
        assert_eq!(client_ip(&trusted, proxy, &headers("1.2.3.4")).to_string(), "1.2.3.4");
        // A client-supplied entry left of the real one is ignored.
        assert_eq!(client_ip(&trusted, proxy, &headers("6.6.6.6, 1.2.3.4, 192.0.2.7")).to_string(), "1.2.3.4");
        assert_eq!(client_ip(&trusted, proxy, &headers("junk")), proxy);
        assert_eq!(client_ip(&trusted, proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn blocks_parse_and_match() {
        let trusted: TrustedProxies = "::1,fd00::/8,127.0.0.1".parse().unwrap();
        assert!(trusted.contains("::1".parse().unwrap()));
        assert!(trusted.contains("fd12::1".parse().unwrap()));
        assert!(trusted.contains("::ffff:127.0.0.1".parse().unwrap()), "IPv4-mapped addresses");
        assert!(!trusted.contains("127.0.0.2".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.internal".parse::<TrustedProxies>().is_err());
        assert_eq!("".parse::<TrustedProxies>().unwrap(), TrustedProxies::default());
        assert!("0.0.0.0/0".parse::<TrustedProxies>().unwrap().contains("8.8.8.8".parse().unwrap()));
    }
}
