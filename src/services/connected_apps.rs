//! The apps a person has let in ("connected apps" on the account page): revoking one ends every grant
//! it holds and tells the app so (OpenID Connect Back-Channel Logout 1.0), for each live session of the
//! person it signed in to, through the same outbox as a logout.

use crate::services::oidc::BoxFuture;
use crate::store::Db;
use crate::store::clients::Client;

/// Telling an app that a session of a person ended for it, as logouts do (`services::logout`).
pub trait Backchannel: Send + Sync {
    /// Queues the logout tokens `client` gets for session `sid` of `person_id`.
    fn queue_for_app<'a>(
        &'a self,
        sid: &'a str,
        client: &'a Client,
        person_id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectedAppsError {
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ConnectedAppsError {
    fn from(e: sqlx::Error) -> Self {
        ConnectedAppsError::Internal(e.into())
    }
}

/// Revokes what `client_id` holds of the person and queues a logout token for each of the person's
/// live sessions that signed in to it. Returns whether a consent was withdrawn.
pub async fn revoke(
    db: &Db,
    backchannel: &dyn Backchannel,
    person_id: &str,
    client_id: &str,
    now: i64,
) -> Result<bool, ConnectedAppsError> {
    let withdrawn = db.revoke_app(person_id, client_id, now).await?;
    let Some(client) = db.client(client_id).await? else {
        return Ok(withdrawn);
    };
    for session in db.sessions_of(person_id, now).await? {
        let signed_in = db
            .session_clients(&session.sid)
            .await?
            .iter()
            .any(|(c, p)| c == client_id && p == person_id);
        if signed_in {
            // The same message as when the session ends: the app drops its session with this person.
            backchannel
                .queue_for_app(&session.sid, &client, person_id, now)
                .await?;
        }
    }
    Ok(withdrawn)
}
