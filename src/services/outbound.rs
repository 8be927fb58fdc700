//! Requests yunid makes on behalf of a client (its `jwks_uri`, its back-channel logout endpoint, and any
//! URL an app names in the future): a dedicated HTTP client that refuses, at connect time, every address
//! that is not a public unicast one — loopback, private, link-local, unique-local, CGNAT, multicast,
//! unspecified, broadcast, documentation and reserved ranges — unless the operator allowed that network
//! (`Config::client_outbound_allow`). Names are checked after DNS resolution by the client's own
//! resolver, so the address checked is the address connected to (no rebinding window); a URL whose host
//! is an IP literal is checked before sending (the resolver never sees it). No redirects are followed
//! and no proxy is used (a proxy would resolve the name itself, past the check).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

/// Why a request for a client was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not an absolute http(s) URL")]
    NotAUrl,
    #[error("{0} is not a public address")]
    Address(IpAddr),
    #[error("{0} resolves to no public address")]
    Name(String),
}

/// An IPv4 address yunid may call for a client: public unicast only.
fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let internal = [
        a == 0,                             // "this network" 0/8, with 0.0.0.0 unspecified
        ip.is_loopback(),                   // 127/8
        ip.is_private(),                    // 10/8, 172.16/12, 192.168/16
        ip.is_link_local(),                 // 169.254/16 (cloud metadata lives here)
        a == 100 && (64..128).contains(&b), // CGNAT 100.64/10 (RFC 6598)
        a == 192 && b == 0 && c == 0,       // IETF protocol assignments 192.0.0/24
        a == 192 && b == 0 && c == 2,       // TEST-NET-1
        a == 198 && (18..20).contains(&b),  // benchmarking 198.18/15
        a == 198 && b == 51 && c == 100,    // TEST-NET-2
        a == 203 && b == 0 && c == 113,     // TEST-NET-3
        ip.is_multicast(),                  // 224/4
        a >= 240,                           // reserved 240/4, broadcast 255.255.255.255
    ];
    !internal.contains(&true)
}

/// An IPv6 address yunid may call for a client: global unicast only, and an IPv4 address carried inside
/// one (mapped, compatible, NAT64, 6to4) must itself be public.
fn public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    match s {
        // ::/96 (unspecified, loopback, IPv4-compatible): never.
        [0, 0, 0, 0, 0, 0, _, _] => false,
        // NAT64 64:ff9b::/96: the IPv4 address it reaches.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => public_v4(embedded(hi, lo)),
        // Local-use NAT64 64:ff9b:1::/48, discard 100::/64: never.
        [0x64, 0xff9b, 1, ..] | [0x100, 0, 0, 0, ..] => false,
        // 6to4 2002::/16: the IPv4 address it tunnels to.
        [0x2002, hi, lo, ..] => public_v4(embedded(hi, lo)),
        // Teredo 2001::/32 and documentation 2001:db8::/32.
        [0x2001, 0, ..] | [0x2001, 0xdb8, ..] => false,
        // Global unicast is 2000::/3; everything else (ULA fc00::/7, link-local fe80::/10, site-local,
        // multicast ff00::/8, reserved) is not.
        [first, ..] => (0x2000..0x4000).contains(&first),
    }
}

/// True when `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    }
}

/// Which addresses requests for clients may reach: public ones, and those in networks the operator
/// allowed.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed: Vec<IpNet>,
}

impl Guard {
    pub fn new(allowed: Vec<IpNet>) -> Guard {
        Guard { allowed }
    }

    /// True when `ip` is not public but lies in a network the operator allowed.
    pub fn allows_internal(&self, ip: IpAddr) -> bool {
        !is_public(ip) && self.permits(ip)
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        is_public(ip) || self.allowed.iter().any(|n| n.contains(&ip))
    }

    /// The URL to request, refused when its host is an address this guard does not permit. A name is
    /// checked later, when the resolver turns it into addresses.
    pub fn check_url(&self, uri: &str) -> Result<url::Url, Refused> {
        let url = url::Url::parse(uri).map_err(|_| Refused::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::NotAUrl);
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !self.permits(ip.into()) => Err(Refused::Address(ip.into())),
            Some(url::Host::Ipv6(ip)) if !self.permits(ip.into()) => Err(Refused::Address(ip.into())),
            Some(_) => Ok(url),
            None => Err(Refused::NotAUrl),
        }
    }
}

/// The resolver of the client HTTP client: the system's, keeping only the addresses the guard permits.
struct GuardedResolver(Arc<Guard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found.into_iter().filter(|a| guard.permits(a.ip())).collect();
            if permitted.is_empty() {
                return Err(Box::new(Refused::Name(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The HTTP client for requests made on behalf of clients.
#[derive(Clone)]
pub struct ClientHttp {
    http: reqwest::Client,
    guard: Arc<Guard>,
}

impl ClientHttp {
    /// `timeout` bounds a whole request (connect, send, answer).
    pub fn new(allowed: Vec<IpNet>, timeout: Duration) -> anyhow::Result<ClientHttp> {
        let guard = Arc::new(Guard::new(allowed));
        let http = reqwest::Client::builder()
            .dns_resolver(GuardedResolver(guard.clone()))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .timeout(timeout)
            .build()?;
        Ok(ClientHttp { http, guard })
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub fn get(&self, uri: &str) -> Result<reqwest::RequestBuilder, Refused> {
        Ok(self.http.get(self.guard.check_url(uri)?))
    }

    pub fn post(&self, uri: &str) -> Result<reqwest::RequestBuilder, Refused> {
        Ok(self.http.post(self.guard.check_url(uri)?))
    }
}

/// A reqwest error for a log line or a stored reason: its message and causes, without the URL (which
/// may carry personal data, such as a holder's ID number in a path).
pub fn error_text(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_addresses_are_not_public() {
        for s in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "100::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "2001::1",
            "2001:db8::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(!is_public(ip(s)), "{s} must not be public");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.32.0.1",
            "192.0.3.1",
            "223.255.255.254",
            "2400:3200::1",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(is_public(ip(s)), "{s} is public");
        }
    }

    #[test]
    fn allowed_networks_are_permitted_and_nothing_else() {
        let guard = Guard::new(vec!["10.20.0.0/16".parse().unwrap()]);
        assert!(guard.permits(ip("10.20.3.4")));
        assert!(guard.permits(ip("::ffff:10.20.3.4")));
        assert!(!guard.permits(ip("10.21.0.1")));
        assert!(!guard.permits(ip("127.0.0.1")));
        assert!(guard.permits(ip("1.1.1.1")));
    }

    #[test]
    fn literal_hosts_are_checked_before_sending() {
        let guard = Guard::default();
        for uri in [
            "http://127.0.0.1:8080/bc",
            "https://[::1]/jwks",
            "http://[::ffff:7f00:1]/x",
            "http://0x7f.1/x",
            "http://2130706433/x",
            "https://169.254.169.254/latest/meta-data",
            "http://0.0.0.0:9000/",
        ] {
            assert!(
                matches!(guard.check_url(uri), Err(Refused::Address(_))),
                "{uri}: {:?}",
                guard.check_url(uri)
            );
        }
        assert_eq!(guard.check_url("file:///etc/passwd"), Err(Refused::NotAUrl));
        assert!(guard.check_url("https://rp.example.cn/jwks").is_ok());
        assert!(guard.check_url("https://8.8.8.8/jwks").is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_by_the_resolver() {
        use reqwest::dns::Resolve;
        let resolver = GuardedResolver(Arc::new(Guard::default()));
        let err = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        assert_eq!(err.to_string(), "localhost resolves to no public address");
        let allowing = GuardedResolver(Arc::new(Guard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ])));
        assert!(allowing.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
