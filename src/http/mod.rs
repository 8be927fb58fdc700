//! HTTP: axum routers and thin handlers (parse, call a service, render).

mod account;
mod admin;
mod cookies;
mod cross_texts;
mod device;
mod forms;
pub mod i18n;
mod login;
mod messages;
mod observe;
mod oidc;
mod page;
mod pending;
mod qr;
mod scan;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::App;

pub use forms::ClientAddr;
pub use observe::{REQUEST_ID, RequestId};

/// Largest request body accepted anywhere.
pub(crate) const BODY_LIMIT: usize = 64 * 1024;

pub fn router(app: App) -> Router {
    let observe = axum::middleware::from_fn_with_state(app.clone(), observe::observe);
    Router::new()
        .merge(oidc::router())
        .merge(login::router())
        .merge(account::router())
        .merge(admin::router())
        .merge(device::router())
        .merge(scan::router())
        .route("/", get(home))
        .route("/lang/{code}", get(switch_lang))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(observe::metrics))
        .layer(axum::middleware::from_fn(page::in_request_language))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(page::CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            HeaderName::from_static("cache-control"),
            HeaderValue::from_static("no-store"),
        ))
        .layer(observe)
        .with_state(app)
}

/// Ready when the database answers within a second (a load balancer stops sending traffic otherwise).
async fn ready(State(app): State<App>) -> impl IntoResponse {
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), app.db.ping());
    if ping.await.unwrap_or(false) {
        (axum::http::StatusCode::OK, "ready")
    } else {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable",
        )
    }
}

async fn home(
    State(app): State<App>,
    lang: i18n::Lang,
    jar: axum_extra::extract::CookieJar,
) -> axum::response::Response {
    let now = app.now();
    let signed_in = match cookies::session(&app, &jar, now).await {
        Ok(s) => s,
        Err(e) => return page::internal(e, "home page"),
    };
    let admin = match &signed_in {
        Some((session, _)) => match app.db.admin_roles_of(&session.person_id).await {
            Ok(roles) => !roles.is_empty(),
            Err(e) => return page::internal(e.into(), "home page"),
        },
        None => false,
    };
    page::render(page::HomePage {
        t: lang.texts(),
        person_name: signed_in.as_ref().map(|(_, person)| person.name.as_str()),
        admin,
    })
}

/// The language switch: remembers the choice in a cookie and goes back to the page (same origin only).
async fn switch_lang(
    State(app): State<App>,
    jar: axum_extra::extract::CookieJar,
    axum::extract::Path(code): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let lang = i18n::Lang::parse(&code).unwrap_or_default();
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| url::Url::parse(r).ok())
        .map(|u| {
            format!(
                "{}{}",
                u.path(),
                u.query().map(|q| format!("?{q}")).unwrap_or_default()
            )
        })
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    let jar = jar.add(i18n::cookie(lang, app.config.secure_cookies()));
    (jar, axum::response::Redirect::to(&back)).into_response()
}

/// Serves until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    app: App,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
