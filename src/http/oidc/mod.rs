//! Protocol endpoints.

mod authorize;
mod device;
mod discovery;
mod errors;
mod introspect;
mod logout;
mod par;
mod register;
mod revoke;
mod token;
mod userinfo;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::App;

pub fn router() -> Router<App> {
    // What a browser-based app may call from its own origin: discovery, the JWKS, the token endpoint and
    // userinfo. No cookie is involved, so any origin (`*`) and never credentials. The authorization and
    // end-session endpoints are navigations, and the pages are ours alone: no CORS there.
    let cross_origin = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::configuration).options(preflight),
        )
        .route("/jwks", get(discovery::jwks).options(preflight))
        .route("/token", post(token::token).options(preflight))
        .route(
            "/userinfo",
            get(userinfo::userinfo)
                .post(userinfo::userinfo)
                .options(preflight),
        )
        .layer(SetResponseHeaderLayer::overriding(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ))
        // RFC 6750 §3: a script must be able to read why its bearer token was refused.
        .layer(SetResponseHeaderLayer::overriding(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate"),
        ));
    Router::new()
        .merge(cross_origin)
        .route("/authorize", get(authorize::authorize).post(authorize::authorize))
        .route("/authorize/resume", get(authorize::resume))
        .route("/par", post(par::push))
        .route("/device_authorization", post(device::authorize))
        .route("/introspect", post(introspect::introspect))
        .route("/revoke", post(revoke::revoke))
        .route("/logout", get(logout::logout).post(logout::logout))
        .route("/connect/register", post(register::register))
        .route(
            "/connect/register/{client_id}",
            get(register::read).put(register::update).delete(register::delete),
        )
}

/// A CORS preflight (Fetch, "CORS protocol"): the methods and request headers these endpoints take.
async fn preflight() -> impl IntoResponse {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Authorization, Content-Type",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "600"),
        ],
    )
}
