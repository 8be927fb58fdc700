//! What happens next for a valid request, given the browser's session: login (or step-up), the
//! act-as choice, consent, or the code. Reads the session, its person and the consent in one
//! statement; issuing writes the answered marker (for a pending request), the grant family and the
//! code.

use serde_json::Value;

use super::pending::Pending;
use super::{Ctx, Next, Page, Stop};
use crate::crypto;
use crate::scope::ScopeSet;
use crate::services::oidc::authorize::{self, AuthRequest, Decision, Refusal, Situation};
use crate::services::oidc::claims;
use crate::store::clients::Client;
use crate::store::families::{Family, NewCode};
use crate::store::orgs::{Organisation, Representation};
use crate::store::sessions::SessionRow;

/// The browser's live session as a request sees it: the session (of an active person) and what that
/// person consented to for the request's app.
pub struct Signed {
    pub session: SessionRow,
    pub consented: Option<ScopeSet>,
}

/// Reads the session a cookie names, with the consent for `client_id`, in one statement; refreshes
/// its idle timer at most every half minute.
pub async fn signed(
    ctx: &Ctx<'_>,
    cookie: Option<&str>,
    client_id: &str,
    now: i64,
) -> anyhow::Result<Option<Signed>> {
    let Some(cookie) = cookie else {
        return Ok(None);
    };
    let hash = crypto::token_hash(cookie);
    let idle_since = now - ctx.settings.session_idle_ttl;
    let Some((session, person, consented)) = ctx
        .db
        .live_session_for_client(&hash, client_id, now, idle_since)
        .await?
    else {
        return Ok(None);
    };
    if now - session.last_seen > 30 {
        ctx.db.touch_session(&hash, now).await?;
    }
    if !person.status.is_active() {
        return Ok(None);
    }
    Ok(Some(Signed { session, consented }))
}

/// The browser presenting a request: its binding secret and session cookie, when it has them.
#[derive(Clone, Copy, Default)]
pub struct Browser<'a> {
    pub binding: Option<&'a str>,
    pub session: Option<&'a str>,
}

/// Decides and acts: send to login, to act-as, to consent, or issue the code. `pending` is the
/// request as the browser carried it, when it belongs to this browser. `known`: the browser's session
/// as the sign-in this same HTTP request made wrote it (not read again); else the session cookie's.
pub async fn advance(
    ctx: &Ctx<'_>,
    client: &Client,
    req: AuthRequest,
    pending: Option<&Pending>,
    browser: Browser<'_>,
    now: i64,
    known: Option<Signed>,
) -> anyhow::Result<Next> {
    let mut req = req;
    if req.licence_types.is_none() {
        let types = ctx
            .directory
            .licence_types(client, &req.scopes, req.claims.as_ref())
            .await?;
        req.licence_types = Some(types);
    }
    let signed = match known {
        Some(signed) => Some(signed),
        None => signed(ctx, browser.session, &client.id, now).await?,
    };
    let session_row = signed.as_ref().map(|s| &s.session);
    let fresh_login = match (pending.and_then(|p| p.login_sid.as_deref()), session_row) {
        (Some(login_sid), Some(s)) => s.sid == login_sid,
        _ => false,
    };
    let wants_org = req.scopes.contains("org");
    let options = match session_row {
        Some(s) if wants_org || req.id_token_hint.is_some() || req.requested_sub().is_some() => {
            ctx.directory.acting_options(&s.person_id, client, now).await?
        }
        _ => Vec::new(),
    };
    // Whom the app names (id_token_hint, a `claims` sub value): the person, or an organisation the
    // person currently represents for this app (the subject an acting grant gave the app).
    let hint = match &req.id_token_hint {
        None => None,
        Some(raw) => match hint_claims(ctx, raw) {
            Some(claims) => Some(claims),
            None => {
                let refusal =
                    Refusal::invalid_request("id_token_hint is not a valid ID token from this provider");
                return Ok(Next::Refused {
                    target: req.target,
                    refusal,
                });
            }
        },
    };
    let (hint_matches, named_acting) = match session_row {
        Some(s) if hint.is_some() || req.requested_sub().is_some() => named_subject(
            ctx,
            client,
            s,
            &options,
            hint.as_ref(),
            req.requested_sub(),
            wants_org,
        ),
        _ => (None, None),
    };
    // Silently, a request for an organisation that names someone else gets the answer every other
    // organisation request without consent gets: nothing tells the app whom the visitor represents.
    if wants_org && req.has_prompt("none") && hint_matches == Some(false) {
        return fail(
            ctx,
            pending,
            req,
            Refusal::consent_required("consent is needed"),
            now,
        )
        .await;
    }
    let consented = match &signed {
        // yunid's own console is first party: nothing to consent to.
        Some(_) if crate::services::console::is_console(client) => Some(req.scopes.clone()),
        Some(s) => s.consented.clone(),
        None => None,
    };
    let situation = |acting_org, defer_consent| Situation {
        session: session_row,
        fresh_login,
        hint_matches,
        consented: consented.as_ref(),
        acting_org,
        defer_consent,
        now,
    };
    // Login and step-up first; consent once whom the person acts for is known.
    let session = match authorize::decide(&req, client, &situation(None, wants_org)) {
        Decision::Fail(e) => return fail(ctx, pending, req, e, now).await,
        Decision::Login => return to_page(ctx, Page::Login, pending, req, browser, now),
        Decision::Consent | Decision::Issue => match session_row {
            Some(s) => s,
            None => return Ok(Next::Stop(Stop::SignInAgain)),
        },
    };
    // Whom the person acts as: chosen by the person (never the app) before consent, since consent is
    // given per organisation.
    if req.acting_of(&session.person_id).is_none() {
        req.acting = None;
        req.acting_by = None;
    }
    if wants_org && req.acting.is_none() {
        let silent = req.has_prompt("none");
        let acting = match named_acting {
            // The app holds this subject already (a grant as that organisation, or as the person).
            Some(acting) => Some(acting),
            None if silent => match req.hinted_org(&options) {
                // Without a page, only an organisation consented to before; the same answer for every
                // other (none represented, another company, a company never consented) — no hint about
                // which companies exist.
                Some(rep) => {
                    let org = options
                        .iter()
                        .find(|(r, _)| r.id == rep)
                        .map(|(_, o)| o.id.as_str());
                    match authorize::decide(&req, client, &situation(org, false)) {
                        Decision::Issue => Some(rep),
                        _ => {
                            let e = Refusal::consent_required("consent is needed");
                            return fail(ctx, pending, req, e, now).await;
                        }
                    }
                }
                None if req.login_hint.as_deref().is_some_and(|h| h.starts_with("org:")) => {
                    let e = Refusal::consent_required("consent is needed");
                    return fail(ctx, pending, req, e, now).await;
                }
                // No organisation named: the person as themself, whatever they represent.
                None => Some(String::new()),
            },
            None if options.is_empty() => Some(String::new()),
            None => None,
        };
        match acting {
            Some(a) => {
                req.acting = Some(a);
                req.acting_by = Some(session.person_id.clone());
            }
            None => return to_page(ctx, Page::ActAs, pending, req, browser, now),
        }
    }
    let acting_org = match req.acting.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(rep) => match options.iter().find(|(r, _)| r.id == rep) {
            Some((_, org)) => Some(org.id.as_str()),
            // The representation ended meanwhile: ask again (and consent again, for what is chosen).
            None => {
                req.acting = None;
                req.acting_by = None;
                req.consented_by = None;
                return to_page(ctx, Page::ActAs, pending, req, browser, now);
            }
        },
    };
    match authorize::decide(&req, client, &situation(acting_org, false)) {
        Decision::Fail(e) => fail(ctx, pending, req, e, now).await,
        Decision::Login => to_page(ctx, Page::Login, pending, req, browser, now),
        Decision::Consent => to_page(ctx, Page::Consent, pending, req, browser, now),
        Decision::Issue => {
            if let Some(p) = pending
                && !answer(ctx, p, now).await?
            {
                return Ok(Next::Stop(Stop::RequestAnswered));
            }
            let code = issue_code(ctx, client, &req, session, now).await?;
            Ok(Next::Code {
                target: req.target,
                code,
            })
        }
    }
}

/// Marks a pending request answered; false when it was already.
pub async fn answer(ctx: &Ctx<'_>, p: &Pending, now: i64) -> anyhow::Result<bool> {
    Ok(ctx
        .db
        .answer_auth_request(&p.id_hash(), &p.req.client_id, &p.browser, now, p.expires_at)
        .await?)
}

/// Ends a pending request with an error sent to the app.
async fn fail(
    ctx: &Ctx<'_>,
    pending: Option<&Pending>,
    req: AuthRequest,
    refusal: Refusal,
    now: i64,
) -> anyhow::Result<Next> {
    // Answered already: the app heard its answer once; no second one.
    if let Some(p) = pending
        && !answer(ctx, p, now).await?
    {
        return Ok(Next::Stop(Stop::RequestAnswered));
    }
    Ok(Next::Refused {
        target: req.target,
        refusal,
    })
}

/// Sends the browser to one of our pages with the request sealed for it: the pending request carried
/// on with its new state, or a new one bound to this browser (its binding secret made now when it has
/// none).
pub fn to_page(
    ctx: &Ctx<'_>,
    page: Page,
    pending: Option<&Pending>,
    req: AuthRequest,
    browser: Browser<'_>,
    now: i64,
) -> anyhow::Result<Next> {
    let (pending, binding) = match pending {
        Some(p) => (Pending { req, ..p.clone() }, None),
        None => {
            let (secret, binding) = match browser.binding {
                Some(b) => (b.to_owned(), None),
                None => {
                    let b = ctx.rng.token();
                    (b.clone(), Some(b))
                }
            };
            let p = Pending::new(ctx.rng, req, &secret, now, ctx.settings.auth_request_ttl);
            (p, binding)
        }
    };
    let sealed = pending.seal(ctx.secrets, now)?;
    // What the steps add (licence types, answers) counts too: a request that would no longer open is
    // refused now rather than shown as expired at the next step.
    if sealed.len() > super::pending::MAX_SEALED {
        return Ok(Next::Refused {
            target: pending.req.target,
            refusal: Refusal::invalid_request("the authorization request is too large"),
        });
    }
    Ok(Next::Page {
        page,
        req: sealed,
        binding,
    })
}

type Options = [(Representation, Organisation)];

/// Checks whom the app named against the signed-in person: `(Some(true), acting)` when the names are
/// the person (`acting` = `""`) or, through an `id_token_hint` that this very app received from a grant
/// the person made acting for an organisation they still represent (`aud` is the app, `act.sub` the
/// person), that organisation (`acting` = its representation); `(Some(false), None)` otherwise. A
/// `claims` sub value counts only for the person: an app cannot pick an organisation by naming it.
fn named_subject(
    ctx: &Ctx<'_>,
    client: &Client,
    session: &SessionRow,
    options: &Options,
    hint: Option<&Value>,
    requested_sub: Option<&str>,
    wants_org: bool,
) -> (Option<bool>, Option<String>) {
    let own = claims::subject(ctx.secrets, client, &session.person_id);
    let mut acting: Option<String> = None;
    if let Some(h) = hint {
        let sub = h.get("sub").and_then(Value::as_str).unwrap_or("");
        let for_this_app = match h.get("aud") {
            Some(Value::String(a)) => *a == client.id,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(client.id.as_str())),
            _ => false,
        };
        let actor = h.pointer("/act/sub").and_then(Value::as_str);
        acting = if sub == own {
            Some(String::new())
        } else if wants_org && for_this_app && actor == Some(own.as_str()) {
            options
                .iter()
                .find(|(_, org)| claims::subject(ctx.secrets, client, &org.id) == sub)
                .map(|(rep, _)| rep.id.clone())
        } else {
            None
        };
        if acting.is_none() {
            return (Some(false), None);
        }
    }
    if let Some(sub) = requested_sub {
        // The person's own subject only, and consistent with the hint.
        if sub != own || acting.as_deref().is_some_and(|a| !a.is_empty()) {
            return (Some(false), None);
        }
        acting = Some(String::new());
    }
    (Some(true), acting)
}

/// The claims of an ID token we issued (its expiry does not matter for a hint).
fn hint_claims(ctx: &Ctx<'_>, hint: &str) -> Option<Value> {
    let (header, claims) = ctx.keys.verify_hint(hint).ok()?;
    if header.get("typ").and_then(Value::as_str) == Some("at+jwt") {
        return None;
    }
    if claims.get("iss").and_then(Value::as_str) != Some(ctx.settings.issuer.as_str()) {
        return None;
    }
    claims.get("sub").and_then(Value::as_str)?;
    Some(claims)
}

/// Creates the grant family and a single-use code bound to client, redirect URI and PKCE challenge.
/// The session's apps (for back-channel logout) are its families: nothing else to write.
pub async fn issue_code(
    ctx: &Ctx<'_>,
    client: &Client,
    req: &AuthRequest,
    session: &SessionRow,
    now: i64,
) -> anyhow::Result<String> {
    let family = Family {
        id: crate::ids::new_id(now, ctx.rng).simple().to_string(),
        client_id: client.id.clone(),
        person_id: Some(session.person_id.clone()),
        session_sid: Some(session.sid.clone()),
        scope: req.scopes.clone(),
        claims: req.claims.as_ref().map(Value::to_string),
        acr: req.reported_acr(session.acr),
        amr: session.amr.clone(),
        auth_time: session.auth_time,
        nonce: req.nonce.clone(),
        created_at: now,
        expires_at: now + ctx.settings.refresh_absolute_ttl,
        revoked_at: None,
        // Acting for an organisation only where the app asked for `org` (and so may learn of it).
        acting_rep_id: req
            .acting
            .clone()
            .filter(|a| !a.is_empty() && req.scopes.contains("org")),
        licence_types: req.licence_types.clone().unwrap_or_default().join(" "),
    };
    let code = ctx.rng.token();
    let code_hash = crypto::token_hash(&code);
    let new_code = NewCode {
        code_hash: &code_hash,
        redirect_uri: &req.target.redirect_uri,
        code_challenge: &req.code_challenge,
        expires_at: now + ctx.settings.code_ttl,
    };
    ctx.db.insert_code_grant(&family, &new_code).await?;
    Ok(code)
}
