//! Owns what every request and response passes through before and after its handler:
//! the `Host` allow-list (a page on another site that rebinds its DNS name to 127.0.0.1
//! must not reach an open API) and the security headers (the cockpit runs only its own
//! scripts, is never framed, and no response is sniffed as another type).

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Paths answered whatever the `Host`: the probes of an orchestrator call them by address.
const ANY_HOST: [&str; 2] = ["/healthz", "/readyz"];

/// Refuses a request whose `Host` is not allowed (421, JSON); adds the security headers.
pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .map(str::to_string);
    if !ANY_HOST.contains(&request.uri().path()) && !state.auth.host_allowed(host.as_deref()) {
        return ApiError::MisdirectedHost(format!(
            "this server does not answer to host {:?}: add it to auth.allowed_hosts",
            host.unwrap_or_default()
        ))
        .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(host.as_deref())) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

/// The cockpit's scripts and WASM from this origin only; its websocket to this host
/// (named besides `'self'` for browsers that do not match `ws:` to it); inline styles
/// (Leptos sets `style` attributes); no frames, plugins, forms or `<base>`.
fn content_security_policy(host: Option<&str>) -> String {
    let websocket = host
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|h| format!(" ws://{h} wss://{h}"))
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'{websocket}; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'none'; object-src 'none'"
    )
}

/// The host name of a `Host` header, lower case, without its port.
pub(crate) fn host_name(host: &str) -> String {
    let name = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.to_ascii_lowercase()
}

/// Names that reach this machine only: `localhost` (and its subdomains, which browsers
/// resolve to loopback themselves), 127.0.0.0/8 and `[::1]`.
pub(crate) fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port_and_case() {
        assert_eq!(host_name("Vigie.Example.com:8080"), "vigie.example.com");
        assert_eq!(host_name("127.0.0.1:3000"), "127.0.0.1");
        assert_eq!(host_name("[::1]:3000"), "[::1]");
        assert_eq!(host_name("[::1]"), "[::1]");
        assert_eq!(host_name("localhost"), "localhost");
    }

    #[test]
    fn only_loopback_names_are_loopback() {
        for name in [
            "localhost",
            "wall.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
        ] {
            assert!(is_loopback_name(name), "{name}");
        }
        for name in [
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1",
            "[::2]",
            "",
        ] {
            assert!(!is_loopback_name(name), "{name}");
        }
    }

    #[test]
    fn the_policy_names_the_websocket_of_a_plain_host_only() {
        let csp = content_security_policy(Some("wall.example:8080"));
        assert!(csp.contains("connect-src 'self' ws://wall.example:8080 wss://wall.example:8080;"));
        assert!(csp.contains("frame-ancestors 'none'"));
        let injected = content_security_policy(Some("x; script-src *"));
        assert!(injected.contains("connect-src 'self';"), "{injected}");
    }
}
