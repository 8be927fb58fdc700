//! The account page's linked upstream accounts, and unlinking one (`POST /account/upstreams/{id}/unlink`:
//! the signed-in person, CSRF token, only their own link; the sessions it started end, and it does not
//! link again by number).

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use serde_json::json;

use super::{CsrfForm, action, time};
use crate::app::App;
use crate::http::forms::ClientAddr;
use crate::http::i18n::Lang;
use crate::services::federation::flow;
use crate::store::audit::NewEvent;

/// (upstream id, display name, linked at)
pub(super) async fn linked(app: &App, person_id: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    Ok(flow::links_of(&app.federation(), person_id)
        .await
        .map_err(anyhow::Error::from)?
        .into_iter()
        .map(|(id, name, at)| (id, name, time(at)))
        .collect())
}

pub(super) async fn unlink(
    State(app): State<App>,
    lang: Lang,
    jar: CookieJar,
    ClientAddr(address): ClientAddr,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let a = app.clone();
    action(&app, lang, jar, form, |session, person| async move {
        let now = a.now();
        let Some(sids) = flow::unlink(&a.federation(), &person.id, &id, now)
            .await
            .map_err(anyhow::Error::from)?
        else {
            return Ok(true);
        };
        // The yunid sessions that upstream account started end with the link (this one too, if so).
        // So do their grants, offline ones included: apps see it at the next refresh.
        for sid in &sids {
            a.logout().end_session(sid, now).await?;
            a.db.revoke_all_session_families(sid, now).await?;
        }
        crate::services::audit::record_quietly(
            &a.db,
            a.now(),
            NewEvent {
                actor: &format!("person:{}", person.id),
                action: "upstream.unlink",
                subject: &person.id,
                address: &address,
                outcome: "success",
                detail: json!({ "upstream": id, "sessions_ended": sids.len() }).to_string(),
                ..Default::default()
            },
        )
        .await;
        Ok(!sids.contains(&session.sid))
    })
    .await
}
