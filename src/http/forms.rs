//! Extractors for protocol requests: form bodies and query strings as [`Params`], the client address.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{Method, header, request::Parts};

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

/// The address of the client, for throttling and audit.
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".into());
        Ok(ClientAddr(addr))
    }
}
