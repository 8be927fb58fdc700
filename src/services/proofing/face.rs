//! Level 3 by face verification. yunid opens a session at the provider (name, ID number, return URL),
//! sends the browser to the provider's page, and when the browser comes back fetches the result server
//! to server. The return URL carries a random state whose hash keys the session here; the session
//! answers only the SSO session (so the browser) and the person that opened it, once, before it expires.
//! What comes back through the browser is only that state: the verdict is the provider's answer to
//! yunid, for the provider session yunid opened.

use serde_json::json;

use super::connectors::Connector;
use super::levels::{BY_ONLINE, METHOD_FACE, id_number, record_check, unavailable};
use super::{Ctx, Event, ProofingError};
use crate::store::persons::PersonRow;
use crate::store::sessions::SessionRow;

/// Opens a face verification session for the signed-in person; returns the provider page to send the
/// browser to. Needs level 2 first (levels are raised step by step).
pub async fn start(
    ctx: &Ctx<'_>,
    session: &SessionRow,
    person: &PersonRow,
    address: &str,
    now: i64,
) -> Result<String, ProofingError> {
    if person.real_name_level < 2 {
        return Err(ProofingError::NeedsLevel(2));
    }
    if !ctx.connectors().configured(Connector::Face) {
        return Err(ProofingError::NotConfigured(Connector::Face));
    }
    if !super::reserve_attempt(ctx, &person.id, address, now).await? {
        return Err(ProofingError::Throttled);
    }
    let state = ctx.rng.token();
    let mut return_url = url::Url::parse(&ctx.settings.face_return_url)
        .map_err(|e| ProofingError::Internal(anyhow::anyhow!("face return URL: {e}")))?;
    return_url.query_pairs_mut().append_pair("state", &state);
    let id = id_number(ctx, person)?;
    let opened = match ctx
        .connectors()
        .face_open(&person.name, id.expose(), return_url.as_str())
        .await
    {
        Ok(s) => s,
        Err(e) => {
            record_check(
                ctx,
                &person.id,
                Connector::Face,
                "unavailable",
                None,
                address,
                now,
            )
            .await?;
            return Err(unavailable(Connector::Face, e));
        }
    };
    // The browser goes to the configured provider page, never to a place the answer names: the
    // session id (checked against the contract's format by the connector) is all the answer adds.
    let mut page = ctx
        .settings
        .face_page
        .clone()
        .ok_or(ProofingError::NotConfigured(Connector::Face))?;
    page.query_pairs_mut().append_pair("session", &opened.session_id);
    ctx.db
        .insert_face_session(
            &crate::crypto::token_hash(&state),
            &person.id,
            &session.sid,
            &opened.session_id,
            now,
            now + ctx.settings.face_session_ttl,
        )
        .await?;
    Ok(page.to_string())
}

/// The browser is back from the provider with `state`: the session it names is used up (whatever the
/// verdict), and the provider's result decides. Passed means completed, passed, live, and a score of at
/// least `face_min_score`.
pub async fn finish(
    ctx: &Ctx<'_>,
    session: &SessionRow,
    person: &PersonRow,
    state: &str,
    address: &str,
    now: i64,
) -> Result<i64, ProofingError> {
    let provider_session = ctx
        .db
        .take_face_session(&crate::crypto::token_hash(state), &person.id, &session.sid, now)
        .await?
        .ok_or(ProofingError::FaceSession)?;
    let result = match ctx.connectors().face_result(&provider_session).await {
        Ok(r) => r,
        Err(e) => {
            record_check(
                ctx,
                &person.id,
                Connector::Face,
                "unavailable",
                None,
                address,
                now,
            )
            .await?;
            return Err(unavailable(Connector::Face, e));
        }
    };
    let passed = result.status == super::connectors::FaceState::Completed
        && result.passed
        && result.liveness
        && result.score >= ctx.settings.face_min_score as f64;
    let outcome = if passed { "match" } else { "no_match" };
    record_check(
        ctx,
        &person.id,
        Connector::Face,
        outcome,
        Some(&result.transaction_id),
        address,
        now,
    )
    .await?;
    let actor = format!("person:{}", person.id);
    if !passed {
        ctx.audit(
            Event {
                actor: &actor,
                action: "proofing.face",
                subject: &person.id,
                address,
                outcome: "failure",
            },
            json!({ "failed": "face", "transaction_id": result.transaction_id }),
            now,
        )
        .await;
        return Err(ProofingError::FaceFailed);
    }
    ctx.db
        .put_evidence(&person.id, "face", &result.transaction_id, now)
        .await?;
    let level = person.real_name_level.max(3);
    ctx.db
        .set_real_name(&person.id, level, METHOD_FACE, BY_ONLINE, now)
        .await?;
    ctx.audit(Event { actor: &actor, action: "proofing.level", subject: &person.id, address, outcome: "success" }, json!({ "real_name_level": level, "checks": [{ "check": "face", "transaction_id": result.transaction_id }] }), now)
    .await;
    Ok(level)
}
