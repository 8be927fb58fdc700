//! Pending authorization requests as the browser sees them: each belongs to the browser that started
//! it (the hash of that browser's binding cookie is stored with it). A step of a request opened in any
//! other browser starts it over there (`/authorize/resume` does it) and never continues it: no code,
//! no consent and no login made elsewhere carry over.

use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;

use crate::app::App;
use crate::crypto;
use crate::http::cookies;
use crate::store::requests::PendingRequest;

/// A pending request loaded for this browser.
pub struct Bound {
    /// The request's id as the browser knows it (`req`).
    pub id: String,
    pub id_hash: String,
    /// The hash of this browser's binding secret (the row's `browser_hash`).
    pub browser_hash: String,
    pub row: PendingRequest,
}

pub enum Lookup {
    /// Expired, answered, or never existed.
    Missing,
    /// Started in this browser.
    Bound(Bound),
    /// Started in another browser: to be started over here.
    Foreign(PendingRequest),
}

/// Loads the pending request `req` and says whether it belongs to this browser (constant-time
/// comparison of the binding hashes).
pub async fn load(app: &App, jar: &CookieJar, req: &str, now: i64) -> anyhow::Result<Lookup> {
    let id_hash = crypto::token_hash(req);
    let Some(row) = app.db.auth_request(&id_hash, now).await? else {
        return Ok(Lookup::Missing);
    };
    let presented = cookies::browser_value(app, jar).map(|v| crypto::token_hash(&v));
    let bound = match (&row.browser_hash, &presented) {
        (Some(stored), Some(presented)) => crypto::ct_eq(stored.as_bytes(), presented.as_bytes()),
        _ => false,
    };
    if !bound {
        return Ok(Lookup::Foreign(row));
    }
    Ok(Lookup::Bound(Bound {
        id: req.to_owned(),
        id_hash,
        browser_hash: presented.unwrap_or_default(),
        row,
    }))
}

/// Where a step of a request that belongs to another browser goes: `/authorize/resume` starts it over
/// for this browser.
pub fn restart(req: &str) -> Response {
    Redirect::to(&resume_path(req)).into_response()
}

/// `/authorize/resume?req=…`
pub fn resume_path(req: &str) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("req", req)
        .finish();
    format!("/authorize/resume?{query}")
}

/// A token naming the session a consent or act-as page was shown to (a hash of its `sid`).
pub fn page_owner(sid: &str) -> String {
    crypto::token_hash(&format!("page-owner|{sid}"))
}

/// Whether an answer posted with `who` comes from the session the page was shown to. A form without
/// `who` (not one of our pages) is judged by the CSRF token and the binding alone.
pub fn same_owner(who: Option<&str>, sid: &str) -> bool {
    who.is_none_or(|w| crypto::ct_eq(w.as_bytes(), page_owner(sid).as_bytes()))
}

/// The same page of a request shown again (after an answer posted for another session's page).
pub fn reshow(path: &str, req: &str) -> Response {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("req", req)
        .finish();
    Redirect::to(&format!("{path}?{query}")).into_response()
}
