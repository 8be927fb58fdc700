//! The apps a person has let in ("connected apps" on the account page): revoking one ends every grant
//! it holds and tells the app so (OpenID Connect Back-Channel Logout 1.0), for each live session of the
//! person it signed in to, through the same outbox as a logout.

use crate::app::App;
use crate::services::oidc::claims;
use crate::store::logout::Delivery;

/// Revokes what `client_id` holds of the person and queues a logout token for each of the person's
/// live sessions that signed in to it. Returns whether a consent was withdrawn.
pub async fn revoke(app: &App, person_id: &str, client_id: &str, now: i64) -> anyhow::Result<bool> {
    let withdrawn = app.db.revoke_app(person_id, client_id, now).await?;
    let Some(client) = app.db.client(client_id).await? else {
        return Ok(withdrawn);
    };
    let Some(uri) = client.backchannel_logout_uri.clone() else {
        return Ok(withdrawn);
    };
    for session in app.db.sessions_of(person_id, now).await? {
        let signed_in = app
            .db
            .session_clients(&session.sid)
            .await?
            .iter()
            .any(|(c, p)| c == client_id && p == person_id);
        if !signed_in {
            continue;
        }
        // The same message as when the session ends: the app drops its session with this person.
        let delivery = Delivery {
            id: uuid::Uuid::now_v7().to_string(),
            client_id: client.id.clone(),
            uri: uri.clone(),
            subject: claims::subject(app, &client, person_id),
            sid: session.sid.clone(),
            attempts: 0,
        };
        app.db.enqueue_logout(&delivery, now).await?;
    }
    Ok(withdrawn)
}
