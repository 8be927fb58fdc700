//! The apps a person has let in ("connected apps" on the account page): revoking one ends every grant
//! it holds and tells the app so (OpenID Connect Back-Channel Logout 1.0), for each live session of the
//! person it signed in to, through the same outbox as a logout.

use crate::app::App;

/// Revokes what `client_id` holds of the person and queues a logout token for each of the person's
/// live sessions that signed in to it. Returns whether a consent was withdrawn.
pub async fn revoke(app: &App, person_id: &str, client_id: &str, now: i64) -> anyhow::Result<bool> {
    let withdrawn = app.db.revoke_app(person_id, client_id, now).await?;
    let Some(client) = app.db.client(client_id).await? else {
        return Ok(withdrawn);
    };
    for session in app.db.sessions_of(person_id, now).await? {
        let signed_in = app
            .db
            .session_clients(&session.sid)
            .await?
            .iter()
            .any(|(c, p)| c == client_id && p == person_id);
        if signed_in {
            // The same message as when the session ends: the app drops its session with this person.
            app.logout()
                .queue_for_app(&session.sid, &client, person_id, now)
                .await?;
        }
    }
    Ok(withdrawn)
}
