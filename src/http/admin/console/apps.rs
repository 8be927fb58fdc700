//! Department apps in the console: the list, registering one, rotating a secret. A new secret is shown
//! exactly once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::auth::{self, admin};
use super::labels::labels;
use super::{Posted, Problem, View, problem_page, render};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::http::page;
use crate::services::admin::Admin;
use crate::services::registry::NewClient;

pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/apps", get(apps).post(create_app))
        .route("/admin/apps/{id}/rotate", post(rotate))
}

async fn app_list(app: &App, admin: &Admin) -> Vec<(String, String, String)> {
    app.db
        .all_clients()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| admin.can_manage_client(c) && !crate::services::console::is_console(c))
        .map(|c| (c.name, c.id, c.department))
        .collect()
}

/// A new client secret travels from the form post to the page that shows it once in a short-lived,
/// encrypted cookie (POST/redirect/GET): reloading the page neither shows it again nor registers twice.
const SECRET_COOKIE: &str = "yunid_console_secret";
const SECRET_AAD: &[u8] = b"yunid/console/secret-once";

fn secret_once(app: &App, jar: CookieJar, client_id: &str, secret: &str) -> Response {
    let sealed = app.secrets.encrypt(
        &serde_json::json!([client_id, secret, app.now()]).to_string(),
        SECRET_AAD,
    );
    match sealed {
        Ok(sealed) => {
            let c = auth::cookie(app, SECRET_COOKIE, sealed);
            (jar.add(c), Redirect::to("/admin/apps")).into_response()
        }
        Err(e) => problem_page(Lang::Zh, Problem::internal(e)),
    }
}

/// The secret to show now, if one is waiting (the cookie goes at once).
fn take_secret(app: &App, jar: CookieJar) -> (CookieJar, Option<(String, String)>) {
    let Some(c) = jar.get(&auth::cookie_name(app, SECRET_COOKIE)) else {
        return (jar, None);
    };
    let shown = app
        .secrets
        .decrypt(c.value(), SECRET_AAD)
        .ok()
        .and_then(|s| serde_json::from_str::<(String, String, i64)>(&s).ok())
        // Only moments after the form post: a cookie left behind shows nothing later.
        .filter(|(_, _, at)| app.now() - at <= 120)
        .map(|(id, secret, _)| (id, secret));
    (jar.add(auth::removal(app, SECRET_COOKIE)), shown)
}

async fn apps(State(app): State<App>, lang: Lang, jar: CookieJar) -> Response {
    let admin = match admin(&app, &jar, lang, "/admin/apps").await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (jar, shown) = take_secret(&app, jar);
    let list = app_list(&app, &admin).await;
    let v = View {
        title: labels(lang).apps,
        section: "apps",
        secret: shown.as_ref().map(|(id, s)| (id.as_str(), s.as_str())),
        apps: list,
        ..View::default()
    };
    render(&app, jar, lang, &admin, v, StatusCode::OK)
}

#[derive(Deserialize)]
struct NewAppForm {
    csrf: Option<String>,
    name: String,
    #[serde(default)]
    department: String,
    redirect_uri: String,
}

async fn create_app(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Form(f): Form<NewAppForm>,
) -> Response {
    let posted = match Posted::check(&app, &jar, lang, f.csrf.as_deref(), address).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let (admin, ctx) = (&posted.admin, posted.ctx(&app));
    if !admin.can_create_client_in(&f.department) {
        let _ = ctx.audit_forbidden("client.create").await;
        return page::fail(
            lang,
            StatusCode::FORBIDDEN,
            crate::http::messages::Msg::NotAllowed("client.create"),
        );
    }
    let new = NewClient {
        name: f.name,
        redirect_uris: vec![f.redirect_uri],
        department: f.department,
        ..NewClient::default()
    };
    match app.registry().add_client(new, app.now()).await {
        Ok((client, secret)) => {
            let _ = ctx.audit_success("client.create", &client.id).await;
            secret_once(&app, jar, &client.id, &secret.unwrap_or_default())
        }
        Err(e) => {
            let message = super::problem_text::detail(lang, StatusCode::UNPROCESSABLE_ENTITY, &e.to_string());
            let list = app_list(&app, admin).await;
            let v = View {
                title: labels(lang).apps,
                section: "apps",
                error: Some(&message),
                apps: list,
                ..View::default()
            };
            render(&app, jar, lang, admin, v, StatusCode::UNPROCESSABLE_ENTITY)
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn rotate(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    let posted = match Posted::check(&app, &jar, lang, f.csrf.as_deref(), address).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let ctx = posted.ctx(&app);
    match crate::http::admin::apps::rotate_client_secret(&ctx, &id).await {
        Ok(secret) => secret_once(&app, jar, &id, &secret),
        Err(p) => problem_page(lang, p),
    }
}
