//! One function per step of the sign-in path. Each opens the request the browser carried (no read),
//! checks it belongs to this browser (else the step starts it over there), does its work, and says
//! where the browser goes next.

use std::sync::Arc;

use super::flow::{self, Browser};
use super::pending::{self, Lookup, Pending};
use super::{Ctx, Next, Page, Stop};
use crate::crypto;
use crate::scope::ScopeSet;
use crate::services::login::{self, LoginError, Method, Renewal, SignIn, SignedIn};
use crate::services::oidc::authorize::{self, AuthRequest, Rejection, Untrusted};
use crate::services::params::Params;
use crate::store::clients::Client;
use crate::store::persons::PersonRow;
use crate::store::sessions::{ForRequest, SessionRow};

/// The prefix of a `request_uri` from the pushed authorization request endpoint (RFC 9126 §2.2).
pub const PAR_URN: &str = "urn:ietf:params:oauth:request_uri:";

/// `GET/POST /authorize`: validates the request (or takes the pushed one) and goes on with it.
pub async fn authorize(
    ctx: &Ctx<'_>,
    params: &Params,
    browser: Browser<'_>,
    now: i64,
) -> anyhow::Result<Next> {
    // RFC 9126 §4: a pushed request replaces every other parameter but client_id. Any other
    // request_uri is validated below and refused with request_uri_not_supported.
    if let Ok(Some(uri)) = params.get("request_uri")
        && uri.starts_with(PAR_URN)
    {
        let Ok(Some(client_id)) = params.get("client_id") else {
            return Ok(Next::Stop(Stop::ClientIdRequired));
        };
        let Some(json) = ctx.db.take_par(&crypto::token_hash(uri), client_id, now).await? else {
            return Ok(Next::Stop(Stop::RequestUriUnknown));
        };
        let req: AuthRequest = serde_json::from_str(&json)?;
        let Some(client) = ctx.db.client(&req.client_id).await? else {
            return Ok(Next::Stop(Stop::UnknownClient));
        };
        return flow::advance(ctx, &client, req, None, browser, now, None).await;
    }
    let client = match params.get("client_id") {
        Ok(Some(id)) => ctx.db.client(id).await?,
        _ => None,
    };
    let req = authorize::trusted_target(params, client.as_deref()).and_then(|target| match &client {
        Some(c) => authorize::validate(params, c, target),
        None => Err(Rejection::Page(Untrusted::UnknownClient)),
    });
    match (req, client) {
        (Ok(req), Some(client)) => flow::advance(ctx, &client, req, None, browser, now, None).await,
        (Err(Rejection::Redirect(target, refusal)), _) => Ok(Next::Refused { target, refusal }),
        (Err(Rejection::Page(m)), _) => Ok(Next::Stop(Stop::Untrusted(m))),
        (Ok(_), None) => Ok(Next::Stop(Stop::UnknownClient)),
    }
}

/// `POST /par`: a validated request, stored for its client under a fresh single-use `request_uri`.
pub async fn push(
    ctx: &Ctx<'_>,
    client: &Client,
    req: &AuthRequest,
    ttl: i64,
    now: i64,
) -> anyhow::Result<String> {
    let uri = format!("{PAR_URN}{}", ctx.rng.token());
    let json = serde_json::to_string(req)?;
    ctx.db
        .insert_par(&crypto::token_hash(&uri), &client.id, &json, now + ttl)
        .await?;
    Ok(uri)
}

/// Whether a step reads its request's answered marker before it acts (review M1: nothing is done for
/// a request answered already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Read first (one indexed read): steps that would act before any write of theirs could check it
    /// (a password, which may replace a temporary one; an upstream or scan sign-in; a consent or
    /// acting-for answer).
    Read,
    /// Not read here: pages that only display, and steps whose own write checks it (an SMS code's use
    /// and the session insert, `login::sign_in`; the code's marker insert, `flow::answer`).
    Unread,
}

/// Opens `sealed` for this browser, as `pending::load`; with [`Marker::Read`], a request answered
/// already (its marker row exists) is refused.
async fn open(
    ctx: &Ctx<'_>,
    sealed: &str,
    browser: Browser<'_>,
    marker: Marker,
    now: i64,
) -> anyhow::Result<Lookup> {
    let lookup = pending::load(ctx.secrets, sealed, browser.binding, now);
    if marker == Marker::Read
        && let Lookup::Bound(p) = &lookup
        && ctx.db.auth_request_answered(&p.id_hash()).await?
    {
        return Ok(Lookup::Answered);
    }
    Ok(lookup)
}

/// `GET /authorize/resume`: after login, consent or the act-as choice, picks up the request where it
/// stopped. A request started in another browser starts over here instead: whatever was answered
/// there (login, consent, acting-for choice) does not count, and the person signed in here sees the
/// consent page before any code is issued. The answered marker is not read: writing it is what issues
/// a code (`flow::answer`), and a request answered already writes nothing and gets `RequestAnswered`.
pub async fn resume(ctx: &Ctx<'_>, sealed: &str, browser: Browser<'_>, now: i64) -> anyhow::Result<Next> {
    let (pending, req) = match open(ctx, sealed, browser, Marker::Unread, now).await? {
        Lookup::Missing => return Ok(Next::Stop(Stop::RequestExpired)),
        Lookup::Answered => return Ok(Next::Stop(Stop::RequestAnswered)),
        Lookup::Foreign(req) => {
            tracing::info!(client_id = %req.client_id, "a pending request was opened in another browser; starting over");
            (None, req.restart())
        }
        Lookup::Bound(p) => {
            let req = p.req.clone();
            (Some(p), req)
        }
    };
    let Some(client) = ctx.db.client(&req.client_id).await? else {
        return Ok(Next::Stop(Stop::UnknownClient));
    };
    flow::advance(ctx, &client, req, pending.as_deref(), browser, now, None).await
}

/// A page step's request, bound to this browser, and the signed-in person answering it.
pub struct Answering {
    pub pending: Pending,
    pub client: Option<Arc<Client>>,
    pub session: SessionRow,
    pub person: PersonRow,
    /// What the person consented to for this app before.
    pub consented: Option<ScopeSet>,
}

/// Opens the request of a page step (consent, act-as) for this browser and the signed-in person.
/// `Err` is where the browser goes instead: expired, answered (with [`Marker::Read`]), another
/// browser's (it starts over there), or nobody signed in (`signed_out`).
async fn answering(
    ctx: &Ctx<'_>,
    sealed: &str,
    browser: Browser<'_>,
    marker: Marker,
    now: i64,
    signed_out: Next,
) -> anyhow::Result<Result<Answering, Next>> {
    let pending = match open(ctx, sealed, browser, marker, now).await? {
        Lookup::Missing => return Ok(Err(Next::Stop(Stop::RequestExpired))),
        Lookup::Answered => return Ok(Err(Next::Stop(Stop::RequestAnswered))),
        Lookup::Foreign(_) => return Ok(Err(Next::Resume(sealed.to_owned()))),
        Lookup::Bound(p) => *p,
    };
    // The session, its person and their consent to this app, in one read.
    let signed = match browser.session {
        Some(cookie) => {
            let hash = crypto::token_hash(cookie);
            let idle_since = now - ctx.settings.session_idle_ttl;
            let found = ctx
                .db
                .live_session_for_client(&hash, &pending.req.client_id, now, idle_since)
                .await?;
            if found.as_ref().is_some_and(|(s, _, _)| now - s.last_seen > 30) {
                ctx.db.touch_session(&hash, now).await?;
            }
            found
        }
        None => None,
    };
    let Some((session, person, consented)) = signed.filter(|(_, p, _)| p.status.is_active()) else {
        return Ok(Err(signed_out));
    };
    let client = ctx.db.client(&pending.req.client_id).await?;
    Ok(Ok(Answering {
        pending,
        client,
        session,
        person,
        consented,
    }))
}

/// [`answering`] for a step whose browser, signed out, is told so (`Stop::SignedOut`).
async fn answering_signed_in(
    ctx: &Ctx<'_>,
    sealed: &str,
    browser: Browser<'_>,
    marker: Marker,
    now: i64,
) -> anyhow::Result<Result<Answering, Next>> {
    answering(ctx, sealed, browser, marker, now, Next::Stop(Stop::SignedOut)).await
}

/// What the consent page shows.
pub struct ConsentView {
    pub req: AuthRequest,
    pub client: Option<Arc<Client>>,
    pub person: PersonRow,
    /// The session the page is shown to (its answer must come from it).
    pub sid: String,
    /// The names of the licence types asked for (the person consents per type).
    pub licence_names: Vec<String>,
    pub self_registered: bool,
    /// The organisation chosen to act for: (name, credit code).
    pub acting_for: Option<(String, String)>,
}

/// `GET /consent`: what the app will receive, for the person signed in. Signed out: to the login page.
pub async fn consent_page(
    ctx: &Ctx<'_>,
    sealed: &str,
    browser: Browser<'_>,
    now: i64,
) -> anyhow::Result<Result<ConsentView, Next>> {
    let to_login = Next::Page {
        page: Page::Login,
        req: sealed.to_owned(),
        binding: None,
    };
    let a = match answering(ctx, sealed, browser, Marker::Unread, now, to_login).await? {
        Ok(a) => a,
        Err(next) => return Ok(Err(next)),
    };
    let req = a.pending.req;
    let mut licence_names = Vec::new();
    let mut self_registered = false;
    let mut acting_for = None;
    if let Some(c) = &a.client {
        // The names of the licence types asked for (read only when some are).
        if req.licence_types.iter().flatten().next().is_some() {
            for ty in ctx.db.allowed_licence_types(&c.id).await? {
                if req.licence_types.iter().flatten().any(|code| *code == ty.code) {
                    licence_names.push(ty.name);
                }
            }
        }
        self_registered = ctx.db.client_registration(&c.id).await?.is_some();
        if let Some(rep) = req.acting_of(&a.person.id).filter(|r| !r.is_empty()) {
            acting_for = ctx
                .directory
                .acting_options(&a.person.id, c, now)
                .await?
                .into_iter()
                .find(|(r, _)| r.id == rep)
                .map(|(_, org)| (org.name, org.credit_code));
        }
    }
    Ok(Ok(ConsentView {
        req,
        client: a.client,
        person: a.person,
        sid: a.session.sid,
        licence_names,
        self_registered,
        acting_for,
    }))
}

/// `POST /consent`: the person's answer. Declined: the app hears `access_denied`. Allowed: the consent
/// is recorded (for the organisation acted for, by name) and the request goes on, answered by this
/// person only. `same_owner` says whether the form came from the page shown to this session.
pub async fn answer_consent(
    ctx: &Ctx<'_>,
    sealed: &str,
    browser: Browser<'_>,
    same_owner: impl FnOnce(&str) -> bool,
    allow: bool,
    now: i64,
) -> anyhow::Result<Next> {
    let a = match answering_signed_in(ctx, sealed, browser, Marker::Read, now).await? {
        Ok(a) => a,
        Err(next) => return Ok(next),
    };
    // Someone else signed in on this browser since the page was shown: they see it for themselves.
    if !same_owner(&a.session.sid) {
        return Ok(reshow(Page::Consent, sealed));
    }
    let Answering {
        mut pending,
        client,
        session,
        consented,
        ..
    } = a;
    if !allow {
        if !flow::answer(ctx, &pending, now).await? {
            return Ok(Next::Stop(Stop::RequestAnswered));
        }
        let refusal = authorize::Refusal::access_denied("the person declined");
        return Ok(Next::Refused {
            target: pending.req.target,
            refusal,
        });
    }
    let client_id = pending.req.client_id.clone();
    let mut scopes = consented.unwrap_or_default();
    // The organisation the person acts for is consented for by name (`org:<id>`).
    let acting_org = match (
        pending
            .req
            .acting_of(&session.person_id)
            .filter(|a| !a.is_empty()),
        &client,
    ) {
        (Some(rep), Some(c)) => ctx
            .directory
            .acting_options(&session.person_id, c, now)
            .await?
            .into_iter()
            .find(|(r, _)| r.id == rep)
            .map(|(_, org)| org.id),
        _ => None,
    };
    scopes.extend(pending.req.consent_tokens(acting_org.as_deref()).iter());
    // Answered meanwhile in another tab (after the marker was read above): nothing saved.
    if !ctx
        .db
        .save_consent(&session.person_id, &client_id, &scopes, &pending.id_hash(), now)
        .await?
    {
        return Ok(Next::Stop(Stop::RequestAnswered));
    }
    audit(
        ctx,
        crate::store::audit::NewEvent {
            actor: &format!("person:{}", session.person_id),
            action: "consent",
            subject: &session.person_id,
            client_id: &client_id,
            outcome: "granted",
            detail: serde_json::json!({ "scopes": scopes }).to_string(),
            ..Default::default()
        },
        now,
    )
    .await;
    // Back to the request, which now goes on (acting-for choice, then the code).
    pending.req.consented_by = Some(session.person_id.clone());
    Ok(Next::Resume(pending.seal(ctx.secrets, now)?))
}

/// What the act-as page shows.
pub struct ActAsView {
    pub req: AuthRequest,
    pub client: Arc<Client>,
    pub person: PersonRow,
    pub sid: String,
    pub options: Vec<(
        crate::store::orgs::Representation,
        crate::store::orgs::Organisation,
    )>,
    /// The representation the app's `login_hint=org:<code>` names (a preselection only).
    pub hinted: Option<String>,
}

/// `GET /act-as`: the organisations the signed-in person may act for at this app.
pub async fn act_as_page(
    ctx: &Ctx<'_>,
    sealed: &str,
    browser: Browser<'_>,
    now: i64,
) -> anyhow::Result<Result<ActAsView, Next>> {
    let a = match answering_signed_in(ctx, sealed, browser, Marker::Unread, now).await? {
        Ok(a) => a,
        Err(next) => return Ok(Err(next)),
    };
    let Some(client) = a.client else {
        return Ok(Err(Next::Stop(Stop::UnknownClient)));
    };
    let options = ctx
        .directory
        .acting_options(&a.session.person_id, &client, now)
        .await?;
    let req = a.pending.req;
    let hinted = req.hinted_org(&options);
    Ok(Ok(ActAsView {
        req,
        client,
        person: a.person,
        sid: a.session.sid,
        options,
        hinted,
    }))
}

/// `POST /act-as`: the person's choice (`""` for themself, else a representation id). A consent
/// answered earlier was for another choice: it is asked again for this one.
pub async fn answer_acting(
    ctx: &Ctx<'_>,
    sealed: &str,
    browser: Browser<'_>,
    same_owner: impl FnOnce(&str) -> bool,
    acting: &str,
    now: i64,
) -> anyhow::Result<Next> {
    let a = match answering_signed_in(ctx, sealed, browser, Marker::Read, now).await? {
        Ok(a) => a,
        Err(next) => return Ok(next),
    };
    if !same_owner(&a.session.sid) {
        return Ok(reshow(Page::ActAs, sealed));
    }
    let Some(client) = a.client else {
        return Ok(Next::Stop(Stop::UnknownClient));
    };
    let mut pending = a.pending;
    // Acting for an organisation is for requests that asked for `org` (the app may learn of it).
    if !pending.req.scopes.contains("org") {
        return Ok(Next::Stop(Stop::NoOrgAsked));
    }
    if !acting.is_empty() {
        let allowed = ctx
            .directory
            .acting_options(&a.session.person_id, &client, now)
            .await?
            .iter()
            .any(|(rep, _)| rep.id == acting);
        if !allowed {
            return Ok(Next::Stop(Stop::CannotActFor));
        }
    }
    pending.req.acting = Some(acting.to_owned());
    pending.req.acting_by = Some(a.session.person_id.clone());
    pending.req.consented_by = None;
    Ok(Next::Resume(pending.seal(ctx.secrets, now)?))
}

/// The same page of a request shown again (after an answer posted for another session's page).
fn reshow(page: Page, sealed: &str) -> Next {
    Next::Page {
        page,
        req: sealed.to_owned(),
        binding: None,
    }
}

/// What the login page knows about the request it serves.
pub struct Login {
    /// The request's `req`, as the browser presented it.
    pub req: Option<String>,
    /// The request and its app, when it belongs to this browser and the app exists.
    pub request: Option<(AuthRequest, Arc<Client>)>,
    /// The request, when it belongs to this browser.
    pub pending: Option<Pending>,
    /// `req` names a request started in another browser: it starts over here (`Next::Resume`) before
    /// anything is done for it.
    pub foreign: bool,
    /// `req` names a request of this browser answered already (known only when the page was opened
    /// with [`Marker::Read`]): nothing is done for it.
    pub answered: bool,
    pub session: Option<(SessionRow, PersonRow)>,
    /// A session exists but is weaker than the app requires.
    pub step_up: bool,
    /// The app forces a re-authentication (`prompt=login`, `max_age`): a login here counts only its
    /// own factors, never the earlier session's.
    pub reauth: bool,
}

impl Login {
    /// Where a step of another browser's request goes instead (it starts over there), or of a request
    /// answered already (nowhere: it is said so).
    pub fn restart(&self) -> Option<Next> {
        if self.answered {
            return Some(Next::Stop(Stop::RequestAnswered));
        }
        match (&self.req, self.foreign) {
            (Some(req), true) => Some(Next::Resume(req.clone())),
            _ => None,
        }
    }

    /// The hash of the id of the request this browser's sign-in is for (its answered marker's key).
    pub fn request_hash(&self) -> Option<String> {
        self.pending.as_ref().map(Pending::id_hash)
    }

    /// The request this browser's sign-in is for, as the session write takes it: `id_hash` (from
    /// [`Login::request_hash`]) and its app.
    fn for_request<'a>(&'a self, id_hash: Option<&'a str>) -> Option<ForRequest<'a>> {
        let p = self.pending.as_ref()?;
        Some(ForRequest {
            id_hash: id_hash?,
            client_id: &p.req.client_id,
        })
    }

    fn renewal(&self) -> Renewal {
        if self.reauth {
            Renewal::Replace
        } else {
            Renewal::StepUp
        }
    }
}

/// The login page's view of its request and of the browser's session; `marker`: whether the request's
/// answered marker is read (the page and the SMS send only display; the sign-in's session insert
/// checks it for the SMS code and the passkey).
pub async fn login_page(
    ctx: &Ctx<'_>,
    sealed: Option<&str>,
    browser: Browser<'_>,
    marker: Marker,
    now: i64,
) -> anyhow::Result<Login> {
    let (mut request, mut pending, mut foreign, mut answered) = (None, None, false, false);
    if let Some(sealed) = sealed {
        match open(ctx, sealed, browser, marker, now).await? {
            Lookup::Missing => {}
            Lookup::Answered => answered = true,
            Lookup::Foreign(_) => foreign = true,
            Lookup::Bound(p) => {
                if let Some(client) = ctx.db.client(&p.req.client_id).await? {
                    request = Some((p.req.clone(), client));
                }
                pending = Some(*p);
            }
        }
    }
    let session = match browser.session {
        Some(cookie) => login::current_session(ctx.db, ctx.settings.session_idle_ttl, cookie, now)
            .await?
            .filter(|(_, p)| p.status.is_active()),
        None => None,
    };
    let reauth = match (&session, &pending) {
        (Some((s, _)), Some(p)) => p.req.forces_reauthentication(s, p.login_sid.as_deref(), now),
        _ => false,
    };
    let step_up = !reauth
        && match (&session, &request) {
            (Some((s, _)), Some((r, c))) => s.acr < r.required_acr(c),
            _ => false,
        };
    Ok(Login {
        req: sealed.map(str::to_owned),
        request,
        pending,
        foreign,
        answered,
        session,
        step_up,
        reauth,
    })
}

/// A finished sign-in: the session cookie to set and where the browser goes.
pub struct LoggedIn {
    pub cookie: String,
    /// The person signed in.
    pub person_id: String,
    /// The request's `req` as the browser presented it at the login page (before the login was sealed in).
    pub req: Option<String>,
    pub now: i64,
    /// `None`: to the account page (a login without a request).
    pub next: Option<Next>,
    /// The request's next step, when this request may take it at once ([`go_on`]) instead of sending
    /// the browser to `/authorize/resume`.
    pub go_on: Option<GoOn>,
}

/// A request's next step after a sign-in for it, with what that step would read: the request (bound
/// to this browser, the login sealed in), its app, and the new session with the consent read by the
/// statement that wrote it.
pub struct GoOn {
    pending: Pending,
    client: Arc<Client>,
    signed: flow::Signed,
}

/// Takes the request's next step right after the sign-in for it, in the same HTTP request: what
/// `/authorize/resume` would do with the new session (`flow::advance`: step-up, act-as, consent, or the
/// code with its answered marker), without reading back the session this request just wrote.
pub async fn go_on(ctx: &Ctx<'_>, next: GoOn, binding: Option<&str>, now: i64) -> anyhow::Result<Next> {
    let GoOn {
        pending,
        client,
        signed,
    } = next;
    let browser = Browser {
        binding,
        session: None,
    };
    let req = pending.req.clone();
    flow::advance(ctx, &client, req, Some(&pending), browser, now, Some(signed)).await
}

/// After a session was opened by a sign-in of another service (an upstream provider): records it,
/// remembers the login for the pending request and goes back to it, as after any login here.
pub async fn signed_in(
    ctx: &Ctx<'_>,
    page: &Login,
    signed: SignedIn,
    method: &str,
    address: &str,
    now: i64,
) -> anyhow::Result<LoggedIn> {
    logged_in(ctx, page, signed, method, address, now).await
}

/// After a successful authentication: records it, remembers the login for the pending request (in
/// this browser only: sealed into the request it carries), and goes back to the request.
async fn logged_in(
    ctx: &Ctx<'_>,
    page: &Login,
    signed: SignedIn,
    method: &str,
    address: &str,
    now: i64,
) -> anyhow::Result<LoggedIn> {
    let SignedIn {
        cookie,
        session,
        consented,
    } = signed;
    // The person's sign-in history row goes with the audit event, in the node's group commit (no
    // statement of its own); the sign-in fails if it cannot be written, as when it was written alone.
    let history = crate::store::audit::LoginRow {
        id: crate::ids::new_id(now, ctx.rng).to_string(),
        person_id: session.person_id.clone(),
        at: now,
        method: method.to_owned(),
        address: address.to_owned(),
        outcome: "success".to_owned(),
    };
    ctx.db
        .append_audit_with_login(
            &crate::store::audit::NewEvent {
                actor: &format!("person:{}", session.person_id),
                action: "login",
                subject: &session.person_id,
                address,
                outcome: "success",
                detail: serde_json::json!({ "method": method, "acr": session.acr }).to_string(),
                ..Default::default()
            },
            history,
            now,
        )
        .await?;
    ctx.login.metrics.login(method, "success");
    let Some(req) = &page.req else {
        return Ok(LoggedIn {
            cookie,
            person_id: session.person_id,
            req: None,
            now,
            next: None,
            go_on: None,
        });
    };
    let (sealed, go_on) = match &page.pending {
        Some(p) => {
            let pending = Pending {
                login_sid: Some(session.sid.clone()),
                ..p.clone()
            };
            let sealed = pending.seal(ctx.secrets, now)?;
            // Only with everything the next step reads at hand: the app, and the consent read with the
            // session's write (the person's status was checked by it, or read by this request's page).
            let go_on = match (&page.request, consented) {
                (Some((_, client)), Some(consented)) => Some(GoOn {
                    pending,
                    client: client.clone(),
                    signed: flow::Signed {
                        session: session.clone(),
                        consented,
                    },
                }),
                _ => None,
            };
            (sealed, go_on)
        }
        None => (req.clone(), None),
    };
    Ok(LoggedIn {
        cookie,
        person_id: session.person_id,
        req: Some(req.clone()),
        now,
        next: Some(Next::Resume(sealed)),
        go_on,
    })
}

/// Why a password login did not finish.
#[derive(Debug)]
pub enum PasswordStop {
    Refused(LoginError),
    /// The request was answered already (review M1): nobody is signed in for it.
    Answered,
    /// The password is a temporary one from the counter: a new one is asked for (`weak`: the one
    /// given was refused).
    MustChange {
        weak: bool,
    },
}

/// What the password form posts.
pub struct PasswordForm<'a> {
    pub username: &'a str,
    pub password: &'a str,
    /// Replaces a temporary password from the counter.
    pub new_password: Option<&'a str>,
}

/// `POST /login`: a password (and, replacing a temporary one, the new password).
pub async fn password(
    ctx: &Ctx<'_>,
    page: &Login,
    browser: Browser<'_>,
    form: PasswordForm<'_>,
    address: &str,
    now: i64,
) -> anyhow::Result<Result<LoggedIn, PasswordStop>> {
    let PasswordForm {
        username,
        password,
        new_password,
    } = form;
    let person = match login::password_login(&ctx.login, username, password, address, now).await {
        Ok(p) => p,
        Err(LoginError::Internal(e)) => return Err(e),
        Err(e) => {
            ctx.login.metrics.login("pwd", e.outcome());
            return Ok(Err(PasswordStop::Refused(e)));
        }
    };
    if person.password_must_change {
        let new = new_password.unwrap_or("");
        if new.is_empty() {
            return Ok(Err(PasswordStop::MustChange { weak: false }));
        }
        if crate::services::password::check_new(new).is_err() || new == password {
            return Ok(Err(PasswordStop::MustChange { weak: true }));
        }
        let hash = ctx.login.hasher.hash(new.to_owned(), ctx.rng).await?;
        ctx.db.set_password(&person.id, &hash, None, now).await?;
        audit(
            ctx,
            crate::store::audit::NewEvent {
                actor: &format!("person:{}", person.id),
                action: "password.change",
                subject: &person.id,
                address,
                outcome: "success",
                detail: r#"{"replaced":"temporary"}"#.into(),
                ..Default::default()
            },
            now,
        )
        .await;
    }
    let current = browser.session.zip(page.session.as_ref().map(|(s, _)| s));
    let request = page.request_hash();
    let signed = login::sign_in(
        &ctx.login,
        current,
        &person.id,
        &[Method::Pwd],
        page.renewal(),
        page.for_request(request.as_deref()),
        now,
    )
    .await?;
    let signed = match signed {
        SignIn::Signed(s) => s,
        SignIn::Answered => return Ok(Err(PasswordStop::Answered)),
        SignIn::Unavailable => {
            ctx.login.metrics.login("pwd", "unavailable");
            return Ok(Err(PasswordStop::Refused(LoginError::Unavailable)));
        }
    };
    Ok(Ok(logged_in(ctx, page, signed, "pwd", address, now).await?))
}

/// The person an SMS code or a passkey proved.
pub struct Proven<'a> {
    pub person_id: &'a str,
    pub methods: &'a [Method],
    /// The metric and audit name of the method (`sms`, `passkey`).
    pub method: &'a str,
    /// For a step-up code: the only session it may raise.
    pub step_up_sid: Option<&'a str>,
}

/// Why a proven person was not signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotSignedIn {
    /// The account is not active.
    Unavailable,
    /// The request was answered already (review M1): nothing is done for it.
    Answered,
}

/// After an SMS code or a passkey proved a person: signs them in (raising the browser's session of the
/// same person, or only the session a step-up code was sent for). The statement that writes the
/// session checks that the person is active and that the request is unanswered.
pub async fn proven(
    ctx: &Ctx<'_>,
    page: &Login,
    browser: Browser<'_>,
    proof: Proven<'_>,
    address: &str,
    now: i64,
) -> anyhow::Result<Result<LoggedIn, NotSignedIn>> {
    let current = browser.session.zip(page.session.as_ref().map(|(s, _)| s));
    let current = match proof.step_up_sid {
        Some(sid) => current.filter(|(_, s)| s.sid == sid),
        None => current,
    };
    let request = page.request_hash();
    let signed = login::sign_in(
        &ctx.login,
        current,
        proof.person_id,
        proof.methods,
        page.renewal(),
        page.for_request(request.as_deref()),
        now,
    )
    .await?;
    let signed = match signed {
        SignIn::Signed(s) => s,
        SignIn::Answered => return Ok(Err(NotSignedIn::Answered)),
        SignIn::Unavailable => {
            ctx.login.metrics.login(proof.method, "unavailable");
            return Ok(Err(NotSignedIn::Unavailable));
        }
    };
    Ok(Ok(logged_in(ctx, page, signed, proof.method, address, now).await?))
}

/// After a scan: the phone's sign-in carried over as it is (its methods, level and time). `None`: the
/// account is not active.
pub async fn carried(
    ctx: &Ctx<'_>,
    page: &Login,
    browser: Browser<'_>,
    person_id: &str,
    carried: login::Carried<'_>,
    now: i64,
) -> anyhow::Result<Option<SignedIn>> {
    let current = browser.session.zip(page.session.as_ref().map(|(s, _)| s));
    let signed = login::sign_in_carried(&ctx.login, current, person_id, carried, now).await?;
    if signed.is_none() {
        ctx.login.metrics.login("scan", "unavailable");
    }
    Ok(signed)
}

/// Records an audit event through the node's group commit; a failure is logged (a sign-in does not
/// fail because of it).
async fn audit(ctx: &Ctx<'_>, event: crate::store::audit::NewEvent<'_>, now: i64) {
    if let Err(e) = ctx.db.append_audit(&event, now).await {
        tracing::error!(error = %e, action = event.action, "audit event could not be recorded");
    }
}
