//! Protocol endpoints.

mod authorize;
mod discovery;
mod introspect;
mod logout;
mod par;
mod token;
mod userinfo;

use axum::Router;
use axum::routing::{get, post};

use crate::app::App;

pub use authorize::respond_error;

pub fn router() -> Router<App> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery::configuration))
        .route("/jwks", get(discovery::jwks))
        .route("/authorize", get(authorize::authorize).post(authorize::authorize))
        .route("/authorize/resume", get(authorize::resume))
        .route("/par", post(par::push))
        .route("/token", post(token::token))
        .route("/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/introspect", post(introspect::introspect))
        .route("/revoke", post(introspect::revoke))
        .route("/logout", get(logout::logout).post(logout::logout))
}
