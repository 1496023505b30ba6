//! Security headers on every response, and the client's address for per-address limits.
//!
//! mdor does not terminate TLS: it listens on loopback behind a reverse proxy that does
//! (`config/mdor.example.toml`). It therefore knows a request came over HTTPS, and who sent
//! it, only from that proxy's `X-Forwarded-Proto` and `X-Forwarded-For` headers, which it
//! believes only when `server.trusted_proxy` is set (a client reaching mdor directly could
//! write them itself). With it set, `Strict-Transport-Security` is sent on responses to
//! requests the proxy marked `https`, and the client address is the one the proxy appended
//! last; without it, no HSTS is sent and the address is the TCP peer's.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::rate_limit::RateLimit;

/// Content Security Policy: only this origin's resources, and never framed (clickjacking).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-ancestors 'none'";
/// Two years, subdomains included: the registry is never meant to be reached over HTTP.
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=63072000; includeSubDomains";

/// How the web layer is deployed.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// Requests come through a reverse proxy whose `X-Forwarded-Proto` and
    /// `X-Forwarded-For` are to be believed.
    pub trusted_proxy: bool,
    /// The per-address limit on sign-in attempts.
    pub sign_in_limit: RateLimit,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            trusted_proxy: false,
            sign_in_limit: RateLimit::SIGN_IN,
        }
    }
}

/// Middleware: sets the security headers on every response, HSTS when the request came
/// over HTTPS, and `Cache-Control: no-store` on every API response (they may carry
/// identifiable data or credentials; none is worth caching).
pub async fn security_headers(
    State(settings): State<WebSettings>,
    request: Request,
    next: Next,
) -> Response {
    let over_https = settings.trusted_proxy && forwarded_https(request.headers());
    let api = request.uri().path().starts_with("/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if over_https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(STRICT_TRANSPORT_SECURITY),
        );
    }
    if api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The client's address: the last one a trusted proxy appended to `X-Forwarded-For`, else
/// the TCP peer's. Without either (a request handed to the router in a test without
/// connection information), the unspecified address, so that such requests share one bucket.
pub fn client_address(
    headers: &HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
    trusted_proxy: bool,
) -> IpAddr {
    let forwarded = trusted_proxy.then(|| last_forwarded_for(headers)).flatten();
    forwarded
        .or_else(|| peer.map(|ConnectInfo(address)| address.ip()))
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The proxy appends the address it received the request from; earlier entries were written
/// by the client or proxies before it and prove nothing.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last_header = headers.get_all("x-forwarded-for").iter().next_back()?;
    let last_entry = last_header.to_str().ok()?.rsplit(',').next()?;
    last_entry.trim().parse().ok()
}

fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy_and_only_its_last_entry() {
        let peer = ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000)));
        let forwarded = headers(&[
            ("x-forwarded-for", "203.0.113.9, 198.51.100.1"),
            ("x-forwarded-for", "192.0.2.44"),
        ]);
        assert_eq!(
            client_address(&forwarded, Some(&peer), true),
            "192.0.2.44".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address(&forwarded, Some(&peer), false),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        let garbage = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(
            client_address(&garbage, Some(&peer), true),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_address(&HeaderMap::new(), None, true),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        );
    }
}
