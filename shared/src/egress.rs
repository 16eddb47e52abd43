//! The SSRF guard: requests to URLs a tenant chose (lead `webhooks` targets, the profile's
//! `bot_webhook_url`, a Bitrix24 `webhook_url`, a Telegram CRM `api_base`) reach public
//! addresses only.
//!
//! With [`EgressPolicy::allow_private`] off (AWS: `ALLOW_PRIVATE_TARGETS=false`, the
//! template's setting) a request is refused when
//! * its URL is not `https://`,
//! * its host is a literal address that is not public (checked before sending, see
//!   [`TargetClient`]),
//! * its host name resolves only to such addresses — checked on the resolved addresses at
//!   connect time by the client's own resolver, which hands the connector only the public
//!   ones, so a name that answers a public address at save time and a private one later
//!   (DNS rebinding) cannot reach it,
//! * a redirect leads to such a URL (each hop is checked the same way; at most
//!   [`MAX_REDIRECTS`] are followed).
//!
//! Not public: loopback, RFC 1918, link-local (169.254/16 with the cloud metadata address,
//! fe80::/10), CGNAT 100.64/10, `0.0.0.0/8`, multicast, broadcast and the reserved and
//! documentation ranges, unique-local fc00::/7, and IPv4 addresses embedded in IPv6
//! (mapped, compatible, NAT64) of those. The dev server turns the guard off
//! (`ALLOW_PRIVATE_TARGETS=true`, and `http://` allowed) so a lead webhook can point at
//! `http://127.0.0.1:8080` on a laptop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Redirects followed at the most (each hop checked again).
pub const MAX_REDIRECTS: usize = 3;

/// Whether tenant-chosen URLs may reach private addresses (and plain `http://`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressPolicy {
    pub allow_private: bool,
}

impl EgressPolicy {
    /// AWS: public `https://` targets only.
    pub const PUBLIC_ONLY: Self = Self {
        allow_private: false,
    };
    /// The dev server and tests: anything, `http://` too.
    pub const ALLOW_PRIVATE: Self = Self {
        allow_private: true,
    };

    /// Checks a URL as the client will read it (WHATWG parsing, so `http://2130706433/`
    /// is the literal 127.0.0.1 here too): the scheme and a literal host; host names are
    /// checked when they are resolved.
    pub fn check_url(self, url: &str) -> Result<(), Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|_| Refused::new("", "not a URL"))?;
        let host = parsed.host_str().unwrap_or_default();
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_private => {}
            _ => return Err(Refused::new(host, "not an https:// URL")),
        }
        let ip = match parsed.host() {
            None => return Err(Refused::new(host, "no host")),
            Some(url::Host::Domain(_)) => return Ok(()),
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        };
        match non_public(ip) {
            Some(kind) if !self.allow_private => Err(Refused::new(host, kind)),
            _ => Ok(()),
        }
    }
}

/// Why a target was refused. Names the host (never a path or query, which may hold a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the target {host} is refused: {reason}; tenant-configured targets must be public https:// URLs"
)]
pub struct Refused {
    pub host: String,
    pub reason: String,
}

impl Refused {
    fn new(host: &str, reason: impl Into<String>) -> Self {
        Self {
            host: host.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The guard's refusal inside a failed request, when that is why it failed.
pub fn refusal(err: &reqwest::Error) -> Option<Refused> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = e.source();
    }
    None
}

/// What kind of non-public address `ip` is; `None` for a public one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let kind = match (a, b, c) {
        (0, ..) => "a 0.0.0.0/8 address",
        (127, ..) => "a loopback address",
        (10, ..) | (192, 168, _) => "a private (RFC 1918) address",
        (172, 16..=31, _) => "a private (RFC 1918) address",
        (169, 254, _) => "a link-local address (incl. the cloud metadata service)",
        (100, 64..=127, _) => "a carrier-grade NAT address",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, ..) => "a multicast address",
        (240..=255, ..) => "a reserved or broadcast address",
        _ => return None,
    };
    Some(kind)
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4).map(|_| "an IPv4-mapped non-public address");
    }
    let s = ip.segments();
    let kind = match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "the unspecified address",
        [0, 0, 0, 0, 0, 0, 0, 1] => "a loopback address",
        // IPv4-compatible (deprecated) and NAT64 addresses carry an IPv4 address.
        [0, 0, 0, 0, 0, 0, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            let v4 = Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
            return non_public_v4(v4).map(|_| "an IPv6 address embedding a non-public IPv4");
        }
        [first, ..] if first & 0xfe00 == 0xfc00 => "a unique-local address",
        [first, ..] if first & 0xffc0 == 0xfe80 => "a link-local address",
        [first, ..] if first & 0xffc0 == 0xfec0 => "a site-local address",
        [first, ..] if first & 0xff00 == 0xff00 => "a multicast address",
        [0x2001, 0x0db8, ..] => "a documentation address",
        _ => return None,
    };
    Some(kind)
}

/// Resolves names as the system does, then keeps only public addresses (none left: the
/// connection is refused, naming the kind of the first).
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|a| non_public(a.ip()).is_none())
                .collect();
            if public.is_empty() {
                let kind = resolved
                    .first()
                    .and_then(|a| non_public(a.ip()))
                    .unwrap_or("no address");
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(Refused::new(&host, format!("it resolves to {kind}")));
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// Follows at most [`MAX_REDIRECTS`] redirects, each to a URL `policy` admits.
pub fn redirect_policy(policy: EgressPolicy) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            let host = attempt.url().host_str().unwrap_or_default().to_owned();
            return attempt.error(Refused::new(&host, "too many redirects"));
        }
        match policy.check_url(attempt.url().as_str()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    })
}

/// The HTTP client of a process under `policy` (provider APIs share it; every client
/// shares [`crate::tls`]'s root store). With private targets refused, names resolve to
/// public addresses only.
pub fn http_client(policy: EgressPolicy) -> reqwest::Client {
    builder(policy)
        .redirect(redirect_policy(policy))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The same client, but following no redirect at all (Standard Webhooks deliveries: a
/// redirect is not a delivery).
pub fn http_client_without_redirects(policy: EgressPolicy) -> reqwest::Client {
    builder(policy)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

fn builder(policy: EgressPolicy) -> reqwest::ClientBuilder {
    let builder = crate::providers::client_builder();
    if policy.allow_private {
        builder
    } else {
        // A proxy would resolve the target itself, past the guard.
        builder
            .no_proxy()
            .dns_resolver(Arc::new(PublicOnlyResolver))
    }
}

/// The client for URLs a tenant chose: every request's URL is checked as written, and
/// the underlying client (built under the same policy) checks what names resolve to.
#[derive(Clone)]
pub struct TargetClient {
    http: reqwest::Client,
    policy: EgressPolicy,
}

impl TargetClient {
    pub fn new(policy: EgressPolicy) -> Self {
        Self {
            http: http_client(policy),
            policy,
        }
    }

    /// Private targets and `http://` allowed (the dev server, tests).
    pub fn local() -> Self {
        Self::new(EgressPolicy::ALLOW_PRIVATE)
    }

    pub fn policy(&self) -> EgressPolicy {
        self.policy
    }

    /// The underlying client, for provider APIs on operator-configured bases (sharing it
    /// keeps one TLS root store per process).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, Refused> {
        self.policy.check_url(url)?;
        Ok(self.http.post(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        EgressPolicy::PUBLIC_ONLY.check_url(url).is_err()
    }

    #[test]
    fn every_non_public_range_is_refused_as_a_literal() {
        for url in [
            "https://127.0.0.1/",
            "https://127.255.0.9/x",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://100.127.255.254/",
            "https://0.0.0.0/",
            "https://0.1.2.3/",
            "https://224.0.0.1/",
            "https://239.255.255.250/",
            "https://255.255.255.255/",
            "https://[::1]/",
            "https://[::]/",
            "https://[fc00::1]/",
            "https://[fd12:3456::1]/",
            "https://[fe80::1]/",
            "https://[ff02::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://017700000001/",
        ] {
            assert!(refused(url), "{url} must be refused");
        }
    }

    #[test]
    fn public_https_is_allowed_and_http_only_where_private_targets_are() {
        for url in [
            "https://8.8.8.8/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
            "https://[2606:4700::1111]/",
            "https://[::ffff:8.8.8.8]/",
            "https://crm.example.com/hook",
        ] {
            assert!(!refused(url), "{url} is public");
        }
        assert!(refused("http://crm.example.com/hook"), "plain http in AWS");
        assert!(refused("ftp://crm.example.com/"));
        assert!(refused("not a url"));
        let local = EgressPolicy::ALLOW_PRIVATE;
        assert_eq!(local.check_url("http://127.0.0.1:8080/hook"), Ok(()));
        assert_eq!(local.check_url("https://[::1]/"), Ok(()));
        assert!(local.check_url("ftp://127.0.0.1/").is_err());
    }

    async fn redirecting_to(location: &'static str) -> crate::testing::FakeServer {
        crate::testing::FakeServer::start_with_headers(move |_| {
            (
                302,
                vec![("location", location.to_owned())],
                serde_json::Value::Null,
            )
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_redirect_to_the_metadata_address_is_refused() {
        let server = redirecting_to("https://169.254.169.254/latest/meta-data/").await;
        // The first hop is the local test server (allowed by building the client without
        // the resolver); the redirect goes through the guard's policy.
        let client = reqwest::Client::builder()
            .redirect(redirect_policy(EgressPolicy::PUBLIC_ONLY))
            .build()
            .unwrap();
        let err = client.get(&server.base).send().await.unwrap_err();
        let refused = refusal(&err).expect("refused by the guard");
        assert_eq!(refused.host, "169.254.169.254");
        assert!(refused.reason.contains("link-local"), "{refused}");
    }

    #[tokio::test]
    async fn redirects_past_the_limit_are_refused() {
        let server = crate::testing::FakeServer::start_with_headers(|req| {
            let hop: usize = req.path.trim_start_matches("/hop").parse().unwrap_or(0);
            (
                302,
                vec![("location", format!("/hop{}", hop + 1))],
                serde_json::Value::Null,
            )
        })
        .await
        .unwrap();
        let client = reqwest::Client::builder()
            .redirect(redirect_policy(EgressPolicy::ALLOW_PRIVATE))
            .build()
            .unwrap();
        let err = client
            .get(format!("{}/hop0", server.base))
            .send()
            .await
            .unwrap_err();
        assert!(refusal(&err).is_some_and(|r| r.reason == "too many redirects"));
        assert_eq!(server.requests().len(), MAX_REDIRECTS + 1);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_connect_and_allowed_locally() {
        let server = crate::testing::FakeServer::start(|_| (200, serde_json::json!({"ok": true})))
            .await
            .unwrap();
        let by_name = server.base.replace("127.0.0.1", "localhost");
        let err = http_client(EgressPolicy::PUBLIC_ONLY)
            .get(&by_name)
            .send()
            .await
            .unwrap_err();
        let refused = refusal(&err).expect("refused by the resolver");
        assert_eq!(refused.host, "localhost");
        assert!(refused.reason.contains("loopback"), "{refused}");
        assert!(server.requests().is_empty(), "nothing reached the server");
        let ok = http_client(EgressPolicy::ALLOW_PRIVATE)
            .get(&by_name)
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let err = TargetClient::new(EgressPolicy::PUBLIC_ONLY)
            .post(&server.base)
            .unwrap_err();
        assert!(
            err.reason.contains("https"),
            "plain http refused before sending: {err}"
        );
    }

    #[test]
    fn a_refusal_names_the_host_not_the_path() {
        let err = EgressPolicy::PUBLIC_ONLY
            .check_url("https://10.0.0.7/rest/1/secretkey123/")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("10.0.0.7") && text.contains("private"),
            "{text}"
        );
        assert!(!text.contains("secretkey123"), "{text}");
    }
}
