//! Outbound HTTP to URLs that users give us (webhook endpoints, workflow HTTP steps, bot
//! base URLs), safe against server-side request forgery: every address a host resolves to
//! is checked inside the connector, after DNS resolution, so a name that resolves to an
//! internal address (or is re-pointed to one after it was saved) is refused; IP literals
//! are checked before the request; redirects are never followed. Private, loopback,
//! link-local, shared (100.64/10), unique-local, IPv4-mapped and NAT64 forms of those,
//! documentation, benchmarking, multicast and reserved ranges (and every IPv4-mapped
//! address) are refused unless the
//! operator lists them in `egress.allow` (for receivers on premises).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::Deserialize;

use crate::config::Section;
use crate::error::{FieldError, Violations};

/// The `[egress]` section: what user-supplied URLs may reach.
#[derive(Debug, Clone, Deserialize)]
pub struct EgressSettings {
    /// Networks allowed although not public (CIDR, e.g. `10.20.0.0/16`, `127.0.0.1/32`).
    pub allow: Vec<String>,
    /// Refuse plain `http://` URLs.
    pub https_only: bool,
}

impl Section for EgressSettings {
    const NAME: &'static str = "egress";

    fn validate(&self) -> Result<(), Violations> {
        let mut violations = Violations::new();
        for (i, net) in self.allow.iter().enumerate() {
            if net.parse::<IpNet>().is_err() {
                violations.push(FieldError::new(
                    format!("allow[{i}]"),
                    format!("{net:?} is not a network in CIDR notation"),
                ));
            }
        }
        violations.into_result()
    }
}

/// Why a URL may not be called.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("is not a valid URL: {0}")]
    Malformed(String),
    #[error("must use https")]
    NotHttps,
    #[error("must be an http or https URL")]
    Scheme,
    #[error("must name a host, without user name or password")]
    Host,
    #[error("leads to {address}, a {range} address")]
    Address {
        address: IpAddr,
        range: &'static str,
    },
    #[error("host {0} does not resolve")]
    Unresolved(String),
}

/// The range `ip` belongs to if it is not a public unicast address.
pub fn internal_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}

fn internal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "this-network",
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => "private",
        (100, 64..=127, _) => "shared (carrier-grade NAT)",
        (127, _, _) => "loopback",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved",
        _ => return None,
    })
}

fn internal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // A mapped address names an IPv4 host through the IPv6 stack: never what a public
    // name resolves to, whatever it maps.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return internal_v4(v4).or(Some("IPv4-mapped"));
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return internal_v4(v4);
    }
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        0xfc00..=0xfdff => "unique-local",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        0x3fff if s[1] <= 0x0fff => "documentation",
        // 2001::/23, Teredo among them, whose addresses carry an IPv4 host.
        0x2001 if s[1] <= 0x01ff => "IETF protocol assignment",
        // 6to4 addresses carry an IPv4 host in their second and third segments.
        0x2002 => "6to4",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only",
        // IPv4-compatible (::a.b.c.d) and other addresses of ::/8.
        0x0000..=0x00ff => "reserved",
        _ => return None,
    })
}

/// An error with every cause after it, in words: a refused address shows as
/// "... : leads to 10.0.0.1, a private address".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut words = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        words = format!("{words}: {cause}");
        source = cause.source();
    }
    words
}

/// The policy of one process, shared by its clients.
#[derive(Debug, Clone)]
pub struct Egress {
    allow: Arc<[IpNet]>,
    https_only: bool,
}

impl Egress {
    /// The policy of `settings` (checked by [`EgressSettings::validate`] at start).
    pub fn new(settings: &EgressSettings) -> Self {
        Self {
            allow: settings
                .allow
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            https_only: settings.https_only,
        }
    }

    fn check_address(&self, address: IpAddr) -> Result<(), Refusal> {
        match internal_range(address) {
            Some(range) if !self.allow.iter().any(|net| net.contains(&address)) => {
                Err(Refusal::Address { address, range })
            }
            _ => Ok(()),
        }
    }

    /// Whether `url` may be called as written: its scheme, and its host when it is an
    /// IP literal (names are checked when they are resolved).
    pub fn check_url(&self, url: &str) -> Result<url::Url, Refusal> {
        let parsed = url::Url::parse(url).map_err(|e| Refusal::Malformed(e.to_string()))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.https_only => return Err(Refusal::NotHttps),
            "http" => {}
            _ => return Err(Refusal::Scheme),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Refusal::Host);
        }
        match parsed.host() {
            Some(url::Host::Ipv4(v4)) => self.check_address(IpAddr::V4(v4))?,
            Some(url::Host::Ipv6(v6)) => self.check_address(IpAddr::V6(v6))?,
            Some(url::Host::Domain(_)) => {}
            None => return Err(Refusal::Host),
        }
        Ok(parsed)
    }

    /// [`check_url`](Self::check_url), then every address its host resolves to now: what
    /// a URL is checked with when it is saved, so a bad one is refused with a reason.
    pub async fn check_resolved(&self, url: &str) -> Result<url::Url, Refusal> {
        let parsed = self.check_url(url)?;
        if let Some(url::Host::Domain(host)) = parsed.host() {
            self.resolve(host).await?;
        }
        Ok(parsed)
    }

    async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, Refusal> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|_| Refusal::Unresolved(host.to_owned()))?
            .collect();
        if addresses.is_empty() {
            return Err(Refusal::Unresolved(host.to_owned()));
        }
        // One internal address refuses the name: a client may connect to any of them.
        for address in &addresses {
            self.check_address(address.ip())?;
        }
        Ok(addresses)
    }

    /// A client that resolves through this policy and never follows a redirect, with
    /// `timeout` for a whole request.
    pub fn client(&self, timeout: Duration) -> reqwest::Client {
        reqwest::Client::builder()
            // A proxy from the environment would resolve the host itself, past this check.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(self.clone()))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .expect("a client with a resolver and no redirects builds")
    }
}

impl Resolve for Egress {
    fn resolve(&self, name: Name) -> Resolving {
        let egress = self.clone();
        Box::pin(async move {
            let addresses = egress.resolve(name.as_str()).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(allow: &[&str]) -> Egress {
        Egress::new(&EgressSettings {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            https_only: false,
        })
    }

    #[test]
    fn internal_ranges_are_named_and_public_addresses_pass() {
        for (address, range) in [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.31.255.1", "private"),
            ("192.168.0.10", "private"),
            ("169.254.169.254", "link-local"),
            ("100.64.0.1", "shared (carrier-grade NAT)"),
            ("0.0.0.0", "this-network"),
            ("192.0.2.1", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd00::1", "unique-local"),
            ("fe80::1", "link-local"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("64:ff9b::a9fe:a9fe", "link-local"),
            ("2001:db8::1", "documentation"),
            ("::127.0.0.1", "reserved"),
            ("::ffff:8.8.8.8", "IPv4-mapped"),
            ("3fff::1", "documentation"),
            ("2001::1", "IETF protocol assignment"),
            (
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                "IETF protocol assignment",
            ),
            ("2002:a00:1::1", "6to4"),
            ("100::1", "discard-only"),
            ("64:ff9b:1::a00:1", "reserved"),
        ] {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(internal_range(ip), Some(range), "{address}");
        }
        for public in [
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
        ] {
            assert_eq!(internal_range(public.parse().unwrap()), None, "{public}");
        }
    }

    #[test]
    fn literals_schemes_and_credentials_are_checked_before_any_request() {
        let e = egress(&[]);
        assert!(matches!(
            e.check_url("http://127.0.0.1:8080/hook"),
            Err(Refusal::Address {
                range: "loopback",
                ..
            })
        ));
        assert!(matches!(
            e.check_url("http://[::ffff:169.254.169.254]/"),
            Err(Refusal::Address { .. })
        ));
        assert_eq!(e.check_url("ftp://example.com/"), Err(Refusal::Scheme));
        assert_eq!(e.check_url("https://u:p@example.com/"), Err(Refusal::Host));
        assert!(matches!(
            e.check_url("not a url"),
            Err(Refusal::Malformed(_))
        ));
        assert!(e.check_url("https://93.184.216.34/hook").is_ok());
        let strict = Egress::new(&EgressSettings {
            allow: vec![],
            https_only: true,
        });
        assert_eq!(
            strict.check_url("http://example.com/"),
            Err(Refusal::NotHttps)
        );
        assert!(
            egress(&["127.0.0.0/8"])
                .check_url("http://127.0.0.1:1/")
                .is_ok()
        );
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        assert!(matches!(
            egress(&[]).check_resolved("http://localhost:9/").await,
            Err(Refusal::Address { .. })
        ));
        assert!(
            egress(&["127.0.0.0/8", "::1/128"])
                .check_resolved("http://localhost:9/")
                .await
                .is_ok()
        );
        assert!(matches!(
            egress(&[])
                .check_resolved("http://no-such-host.invalid/")
                .await,
            Err(Refusal::Unresolved(_))
        ));
    }

    #[tokio::test]
    async fn the_client_refuses_internal_names_and_never_follows_a_redirect() {
        use axum::Router;
        use axum::routing::get;
        let app = Router::new().route("/", get(|| async { "inside" })).route(
            "/away",
            get(|| async {
                (
                    http::StatusCode::FOUND,
                    [(http::header::LOCATION, "http://127.0.0.1:9/")],
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let refused = egress(&[]).client(Duration::from_secs(2));
        let error = refused
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(format!("{error:?}").contains("loopback"), "{error:?}");

        let allowed = egress(&["127.0.0.0/8", "::1/128"]).client(Duration::from_secs(2));
        let answer = allowed
            .get(format!("http://localhost:{port}/away"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), http::StatusCode::FOUND, "not followed");
    }
}
