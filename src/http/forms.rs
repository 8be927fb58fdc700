//! Extractors for protocol requests: form bodies and query strings as [`Params`], the client address.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{Method, header, request::Parts};

use crate::app::App;
use crate::error::{Error, OAuthError};
use crate::services::params::Params;

/// Parameters from the query (GET) or an `application/x-www-form-urlencoded` body (POST).
pub struct ProtocolParams(pub Params);

impl<S: Send + Sync> FromRequest<S> for ProtocolParams {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if req.method() == Method::GET {
            return Ok(ProtocolParams(Params::from_query(
                req.uri().query().unwrap_or(""),
            )));
        }
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(
                OAuthError::invalid_request("expected an application/x-www-form-urlencoded body").into(),
            );
        }
        let body = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| OAuthError::invalid_request("request body too large or unreadable"))?;
        Ok(ProtocolParams(Params::from_pairs(
            form_urlencoded::parse(&body).into_owned(),
        )))
    }
}

/// The address of the client, for throttling and audit: the TCP peer, or, when the peer is a trusted
/// proxy, the rightmost `X-Forwarded-For` hop that is not itself a trusted proxy (the hops to its left
/// were written by the client and prove nothing).
pub struct ClientAddr(pub String);

impl FromRequestParts<App> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
        else {
            return Ok(ClientAddr("unknown".into()));
        };
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        Ok(ClientAddr(
            client_ip(peer, &forwarded, &app.trusted_proxies).to_string(),
        ))
    }
}

fn client_ip(peer: IpAddr, forwarded: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    for hop in forwarded.iter().rev() {
        if !is_trusted(&client) {
            break;
        }
        // A hop a trusted proxy wrote but that is no address: keep that proxy as the client.
        match hop.parse::<IpAddr>() {
            Ok(ip) => client = ip,
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_counts_only_behind_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.1/32".parse().unwrap()];
        // From an untrusted peer the header is ignored.
        assert_eq!(
            client_ip(ip("198.51.100.9"), &["203.0.113.5"], &trusted),
            ip("198.51.100.9")
        );
        // Behind one trusted proxy: the hop it appended.
        assert_eq!(
            client_ip(ip("10.1.2.3"), &["203.0.113.5"], &trusted),
            ip("203.0.113.5")
        );
        // A spoofed hop on the left does not win over the rightmost untrusted one.
        assert_eq!(
            client_ip(ip("10.1.2.3"), &["1.1.1.1", "203.0.113.5", "192.0.2.1"], &trusted),
            ip("203.0.113.5")
        );
        // Garbage from a trusted chain: the nearest trusted proxy is the client.
        assert_eq!(client_ip(ip("10.1.2.3"), &["nonsense"], &trusted), ip("10.1.2.3"));
        // No header: the peer.
        assert_eq!(client_ip(ip("10.1.2.3"), &[], &trusted), ip("10.1.2.3"));
        // Nothing trusted: the peer, whatever the header says.
        assert_eq!(client_ip(ip("10.1.2.3"), &["203.0.113.5"], &[]), ip("10.1.2.3"));
    }
}
