//! The authorization request (OIDC Core §3.1.2): validation and the decision what happens next.
//! No HTTP here: the handler parses, calls these, and renders.

use serde::{Deserialize, Serialize};

use crate::scope::ScopeSet;
use crate::services::params::Params;
use crate::store::clients::Client;
use crate::store::orgs::{Organisation, Representation};
use crate::store::sessions::SessionRow;

/// An error answer to an authorization request (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.6), sent to the
/// app once its redirect URI is trusted. The HTTP layer renders it; `Display` is `code: description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {description}", code.as_str())]
pub struct Refusal {
    pub code: RefusalCode,
    pub description: String,
}

/// The RFC error codes an authorization request can end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    InvalidRequest,
    UnauthorizedClient,
    InvalidScope,
    AccessDenied,
    UnsupportedResponseType,
    LoginRequired,
    ConsentRequired,
    RequestNotSupported,
    RequestUriNotSupported,
}

impl RefusalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::InvalidRequest => "invalid_request",
            RefusalCode::UnauthorizedClient => "unauthorized_client",
            RefusalCode::InvalidScope => "invalid_scope",
            RefusalCode::AccessDenied => "access_denied",
            RefusalCode::UnsupportedResponseType => "unsupported_response_type",
            RefusalCode::LoginRequired => "login_required",
            RefusalCode::ConsentRequired => "consent_required",
            RefusalCode::RequestNotSupported => "request_not_supported",
            RefusalCode::RequestUriNotSupported => "request_uri_not_supported",
        }
    }
}

macro_rules! refusals {
    ($($name:ident => $code:ident),* $(,)?) => {
        impl Refusal {
            $(pub fn $name(description: impl Into<String>) -> Refusal {
                Refusal { code: RefusalCode::$code, description: description.into() }
            })*
        }
    };
}

refusals!(
    invalid_request => InvalidRequest,
    unauthorized_client => UnauthorizedClient,
    invalid_scope => InvalidScope,
    access_denied => AccessDenied,
    unsupported_response_type => UnsupportedResponseType,
    login_required => LoginRequired,
    consent_required => ConsentRequired,
    request_not_supported => RequestNotSupported,
    request_uri_not_supported => RequestUriNotSupported,
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// Where a response (success or error) goes once the redirect URI is trusted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub state: Option<String>,
}

/// A validated authorization request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub target: Target,
    pub scopes: ScopeSet,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    pub id_token_hint: Option<String>,
    pub acr_values: Vec<String>,
    pub claims: Option<serde_json::Value>,
    pub ui_locales: Option<String>,
    /// The person who answered the consent page for this request (in the browser that started it). The
    /// answer counts only while that same person is signed in: a consent is never carried to another.
    #[serde(default)]
    pub consented_by: Option<String>,
    /// Who the person acts as, once chosen: `Some("")` for themself, `Some(representation id)` for an
    /// organisation. Only asked when the `org` scope is requested.
    #[serde(default)]
    pub acting: Option<String>,
    /// The person who made the acting-for choice; like `consented_by`, it binds the choice to them.
    #[serde(default)]
    pub acting_by: Option<String>,
    /// The request was opened in a browser other than the one that started it, and started over there:
    /// whoever is signed in there must see and answer the consent page (never a silent code).
    #[serde(default)]
    pub restarted: bool,
    /// Licence type codes asked for (and allowed to this app), once worked out.
    #[serde(default)]
    pub licence_types: Option<Vec<String>>,
}

impl AuthRequest {
    /// The same request started over in another browser: every answer given so far (consent, the
    /// acting-for choice) belonged to the first browser's person and is dropped.
    pub fn restart(mut self) -> AuthRequest {
        self.consented_by = None;
        self.acting = None;
        self.acting_by = None;
        self.restarted = true;
        self
    }

    /// What a consent to this request covers: its scopes and each licence type (`licence:<code>`); when
    /// acting for an organisation, each of those for that organisation (`org:<id>:<scope>`) and the
    /// organisation itself (`org:<id>`): a consent given as oneself or for one company releases nothing
    /// of another company's.
    pub fn consent_tokens(&self, acting_org: Option<&str>) -> ScopeSet {
        let licences = self
            .licence_types
            .iter()
            .flatten()
            .map(|t| format!("licence:{t}"));
        let own = self.scopes.iter().map(str::to_owned).chain(licences);
        let tokens: Vec<String> = match acting_org {
            None => own.collect(),
            Some(o) => own
                .map(|t| format!("org:{o}:{t}"))
                .chain(std::iter::once(format!("org:{o}")))
                .collect(),
        };
        tokens.iter().map(String::as_str).collect()
    }

    /// The representation `login_hint=org:<credit code>` names among the person's options, if any.
    pub fn hinted_org(&self, options: &[(Representation, Organisation)]) -> Option<String> {
        let code = self
            .login_hint
            .as_deref()?
            .strip_prefix("org:")?
            .trim()
            .to_ascii_uppercase();
        options
            .iter()
            .find(|(_, o)| o.credit_code == code)
            .map(|(rep, _)| rep.id.clone())
    }

    /// The `sub` value the `claims` parameter insists on for the ID token (OIDC Core §5.5.1).
    pub fn requested_sub(&self) -> Option<&str> {
        self.claims
            .as_ref()?
            .get("id_token")?
            .get("sub")?
            .get("value")?
            .as_str()
    }

    /// The essential `acr` values of the `claims` parameter, as levels yunid knows (1, 2); `None` when
    /// no essential `acr` is asked, `Some(empty)` when none of the values asked can be met.
    fn essential_acr(&self) -> Option<Vec<i64>> {
        let acr = self.claims.as_ref()?.get("id_token")?.get("acr")?;
        if acr.get("essential").and_then(serde_json::Value::as_bool) != Some(true) {
            return None;
        }
        let values = acr
            .get("values")
            .and_then(|v| v.as_array().cloned())
            .or_else(|| acr.get("value").map(|v| vec![v.clone()]))?;
        Some(
            values
                .iter()
                .filter_map(|v| v.as_str()?.parse::<i64>().ok())
                .filter(|v| (1..=2).contains(v))
                .collect(),
        )
    }

    /// Whether an essential `acr` asks only for values yunid cannot reach (OIDC Core §5.5.1.1).
    pub fn unsatisfiable_acr(&self) -> bool {
        self.essential_acr().is_some_and(|v| v.is_empty())
    }

    /// The `acr` to report for a session at `session_acr`: with essential values asked, the highest of
    /// them the session reaches (so the answer is one the app asked for, OIDC Core §5.5.1.1); else the
    /// session's own.
    pub fn reported_acr(&self, session_acr: i64) -> i64 {
        match self.essential_acr() {
            Some(values) => values
                .into_iter()
                .filter(|v| *v <= session_acr)
                .max()
                .unwrap_or(session_acr),
            None => session_acr,
        }
    }

    /// Whether `person_id` answered this request's consent page.
    pub fn consent_answered_by(&self, person_id: &str) -> bool {
        self.consented_by.as_deref() == Some(person_id)
    }

    /// The acting-for choice, when `person_id` made it.
    pub fn acting_of(&self, person_id: &str) -> Option<&str> {
        match self.acting_by.as_deref() {
            Some(by) if by == person_id => self.acting.as_deref(),
            _ => None,
        }
    }

    /// A forced re-authentication (OIDC Core §3.1.2.1 `prompt=login`, `max_age`): the session's earlier
    /// factors must not count towards it. `login_sid` is the session of a login made for this request.
    pub fn forces_reauthentication(&self, session: &SessionRow, login_sid: Option<&str>, now: i64) -> bool {
        if login_sid == Some(session.sid.as_str()) {
            return false;
        }
        self.has_prompt("login")
            || self.has_prompt("select_account")
            || self.max_age.is_some_and(|max| now - session.auth_time > max)
    }

    pub fn has_prompt(&self, p: &str) -> bool {
        self.prompt.iter().any(|x| x == p)
    }

    /// The lowest `acr` this request insists on: the client's minimum, or an essential `acr` claim.
    pub fn required_acr(&self, client: &Client) -> i64 {
        let essential = self.essential_acr().and_then(|v| v.into_iter().min());
        // `acr_values` (OIDC Core §3.1.2.1) lists acceptable levels: the lowest of those we know is needed.
        let requested = self
            .acr_values
            .iter()
            .filter_map(|v| v.parse::<i64>().ok())
            .filter(|v| (1..=2).contains(v))
            .min();
        client
            .min_acr
            .max(essential.unwrap_or(1))
            .max(requested.unwrap_or(1))
    }
}

/// Why an authorization request cannot go on.
#[derive(Debug)]
pub enum Rejection {
    /// The redirect URI cannot be trusted: show an error page on our own origin.
    Page(Untrusted),
    /// Redirect the error to the client (with `state` and `iss`).
    Redirect(Target, Refusal),
}

/// Why the redirect URI of a request cannot be trusted; `Display` is the English `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untrusted {
    Repeated,
    UnknownClient,
    Disabled,
    MissingRedirectUri,
    UnregisteredRedirectUri,
}

impl std::fmt::Display for Untrusted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Untrusted::Repeated => "client_id or redirect_uri is repeated",
            Untrusted::UnknownClient => "unknown or missing client_id",
            Untrusted::Disabled => "this application is disabled",
            Untrusted::MissingRedirectUri => "missing redirect_uri",
            Untrusted::UnregisteredRedirectUri => "redirect_uri is not registered for this application",
        })
    }
}

pub const PROMPTS: [&str; 4] = ["none", "login", "consent", "select_account"];
pub const SCOPES: [&str; 8] = [
    "openid",
    "profile",
    "phone",
    "identity",
    "org",
    "licences",
    "offline_access",
    // The province app's own use of scan to sign in (`/scan/api/*`); never a resource server's.
    "scan",
];

/// Whether `given` is the registered redirect URI: the exact string (RFC 9700 §4.1.3), except that for a
/// loopback IP literal over http any port will do (RFC 8252 §7.3: a native app listens on the port it
/// gets); everything else must still be identical, and both in their normal form.
fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let (Ok(r), Ok(mut g)) = (url::Url::parse(registered), url::Url::parse(given)) else {
        return false;
    };
    let loopback_ip = matches!(r.host_str(), Some("127.0.0.1" | "[::1]"));
    if r.scheme() != "http" || !loopback_ip || r.as_str() != registered || g.as_str() != given {
        return false;
    }
    g.set_port(r.port()).is_ok() && g.as_str() == registered
}

/// Finds the client and trusts the redirect URI (exact string match, RFC 9700 §4.1.3; any port on a
/// loopback IP, RFC 8252 §7.3), or says why not.
pub fn trusted_target(params: &Params, client: Option<&Client>) -> Result<Target, Rejection> {
    let page = Rejection::Page;
    if params.is_repeated("client_id") || params.is_repeated("redirect_uri") {
        return Err(page(Untrusted::Repeated));
    }
    let Some(client) = client else {
        return Err(page(Untrusted::UnknownClient));
    };
    if client.disabled {
        return Err(page(Untrusted::Disabled));
    }
    let Ok(Some(redirect_uri)) = params.get("redirect_uri") else {
        return Err(page(Untrusted::MissingRedirectUri));
    };
    if !client
        .redirect_uris
        .iter()
        .any(|r| redirect_matches(r, redirect_uri))
    {
        return Err(page(Untrusted::UnregisteredRedirectUri));
    }
    let mode = match params.raw("response_mode") {
        Some("form_post") => ResponseMode::FormPost,
        _ => ResponseMode::Query,
    };
    Ok(Target {
        redirect_uri: redirect_uri.to_owned(),
        mode,
        state: params.raw("state").filter(|s| !s.is_empty()).map(str::to_owned),
    })
}

/// Validates everything after the redirect URI; errors go back to the client.
pub fn validate(params: &Params, client: &Client, target: Target) -> Result<AuthRequest, Rejection> {
    let fail = |e: Refusal| Rejection::Redirect(target.clone(), e);
    // Parameter errors (repeated, too long) are all `invalid_request`.
    let got = |name: &str| {
        params
            .get(name)
            .map_err(|e| fail(Refusal::invalid_request(e.description)))
    };
    if let Some(name) = params.any_repeated() {
        return Err(fail(Refusal::invalid_request(format!(
            "parameter {name} is repeated"
        ))));
    }
    if got("request")?.is_some() {
        return Err(fail(Refusal::request_not_supported(
            "request objects are not supported",
        )));
    }
    if got("request_uri")?.is_some() {
        return Err(fail(Refusal::request_uri_not_supported(
            "request_uri is only accepted from the pushed authorization request endpoint",
        )));
    }
    match got("response_mode")? {
        None | Some("query") | Some("form_post") => {}
        Some(_) => {
            return Err(fail(Refusal::invalid_request("unsupported response_mode")));
        }
    }
    match got("response_type")? {
        Some("code") => {}
        Some(_) => {
            return Err(fail(Refusal::unsupported_response_type(
                "only the authorization code flow (response_type=code) is supported",
            )));
        }
        None => {
            return Err(fail(Refusal::invalid_request("response_type is missing")));
        }
    }
    if !client.allows_grant("authorization_code") {
        return Err(fail(Refusal::unauthorized_client(
            "this client may not use the authorization code flow",
        )));
    }
    // OIDC Core §3.1.2.1: scope values that are not understood are ignored; so are ones the client lacks.
    let scopes = ScopeSet::parse(got("scope")?.unwrap_or(""))
        .filter(|s| SCOPES.contains(&s) && client.allows_scope(s));
    if scopes.is_empty() {
        return Err(fail(Refusal::invalid_scope(
            "no scope this client may request was asked for",
        )));
    }
    // RFC 9700 §2.1.1: PKCE with S256 is required.
    let challenge = got("code_challenge")?
        .ok_or_else(|| fail(Refusal::invalid_request("code_challenge is required (PKCE)")))?;
    if got("code_challenge_method")? != Some("S256") {
        return Err(fail(Refusal::invalid_request(
            "code_challenge_method must be S256",
        )));
    }
    if !is_pkce_value(challenge) || challenge.len() != 43 {
        return Err(fail(Refusal::invalid_request("code_challenge is malformed")));
    }
    let prompt: Vec<String> = got("prompt")?
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(bad) = prompt.iter().find(|p| !PROMPTS.contains(&p.as_str())) {
        return Err(fail(Refusal::invalid_request(format!(
            "unsupported prompt value {bad}"
        ))));
    }
    if prompt.iter().any(|p| p == "none") && prompt.len() > 1 {
        return Err(fail(Refusal::invalid_request("prompt=none cannot be combined")));
    }
    let max_age = match got("max_age")? {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| fail(Refusal::invalid_request("max_age must be a non-negative integer")))?,
        ),
    };
    let claims = match got("claims")? {
        None => None,
        Some(raw) => {
            let value: serde_json::Value = serde_json::from_str(raw)
                .map_err(|_| fail(Refusal::invalid_request("claims is not valid JSON")))?;
            if !value.is_object() {
                return Err(fail(Refusal::invalid_request("claims must be a JSON object")));
            }
            Some(value)
        }
    };
    let opt = |name: &str| -> Result<Option<String>, Rejection> { Ok(got(name)?.map(str::to_owned)) };
    let request = AuthRequest {
        client_id: client.id.clone(),
        scopes,
        nonce: opt("nonce")?,
        code_challenge: challenge.to_owned(),
        prompt,
        max_age,
        login_hint: opt("login_hint")?,
        id_token_hint: opt("id_token_hint")?,
        acr_values: opt("acr_values")?
            .map(|v| {
                v.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        claims,
        ui_locales: opt("ui_locales")?,
        consented_by: None,
        acting: None,
        acting_by: None,
        restarted: false,
        licence_types: None,
        target,
    };
    // The request travels sealed with the browser, in URLs: a bound on its size keeps those URLs within
    // what browsers and proxies take, and bounds what a browser may present back (review L1).
    if serde_json::to_vec(&request).map_or(true, |json| json.len() > MAX_REQUEST_BYTES) {
        return Err(Rejection::Redirect(
            request.target,
            Refusal::invalid_request("the authorization request is too large"),
        ));
    }
    Ok(request)
}

/// The largest authorization request taken (its JSON form): 6 KiB, room for an RSA-4096 `id_token_hint`
/// and a `claims` request.
pub const MAX_REQUEST_BYTES: usize = 6 * 1024;

/// RFC 7636 §4.1: 43–128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What to do with a valid request given the browser's session.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Login,
    Consent,
    Issue,
    Fail(Refusal),
}

pub struct Situation<'a> {
    pub session: Option<&'a SessionRow>,
    /// The session was created by a login made for this very request.
    pub fresh_login: bool,
    /// `Some(true)` when `id_token_hint` names the session's person, `Some(false)` when someone else.
    pub hint_matches: Option<bool>,
    /// What the person already consented to for this client (scopes and [`AuthRequest::consent_tokens`]).
    pub consented: Option<&'a ScopeSet>,
    /// The organisation (id) the request acts for, once chosen: its consent is recorded apart.
    pub acting_org: Option<&'a str>,
    /// Whom the person acts for is not chosen yet: consent is decided after that choice.
    pub defer_consent: bool,
    pub now: i64,
}

pub fn decide(req: &AuthRequest, client: &Client, s: &Situation<'_>) -> Decision {
    let none = req.has_prompt("none");
    let login = |why: &str| {
        if none {
            Decision::Fail(Refusal::login_required(why))
        } else {
            Decision::Login
        }
    };
    if req.unsatisfiable_acr() {
        // OIDC Core §5.5.1.1: an essential `acr` the OP cannot satisfy is a failed authentication.
        return Decision::Fail(Refusal::access_denied(
            "none of the essential acr values can be satisfied (yunid offers 1 and 2)",
        ));
    }
    let Some(session) = s.session else {
        return login("no session");
    };
    if !s.fresh_login {
        if req.has_prompt("login") || req.has_prompt("select_account") {
            return login("login requested");
        }
        if req.max_age.is_some_and(|max| s.now - session.auth_time > max) {
            return login("authentication too old for max_age");
        }
        if s.hint_matches == Some(false) {
            return login("id_token_hint names another person");
        }
    } else if s.hint_matches == Some(false) {
        // OIDC Core §3.1.2.1 / §5.5.1: a login made for this request as someone other than the one the
        // app named gets no positive answer.
        return Decision::Fail(Refusal::login_required(
            "the person who signed in is not the one the request names",
        ));
    }
    if session.acr < req.required_acr(client) {
        // A login made for this request that is one factor short goes on to step-up (the login page
        // asks for the second factor); only when two factors are in and still not enough, give up.
        if s.fresh_login && session.acr >= 2 {
            return Decision::Fail(Refusal::access_denied(
                "the authentication level this application requires was not reached",
            ));
        }
        return login("a stronger authentication is required");
    }
    if s.defer_consent {
        return Decision::Issue;
    }
    let nothing = ScopeSet::default();
    let covered = req
        .consent_tokens(s.acting_org)
        .is_subset_of(s.consented.unwrap_or(&nothing));
    // A consent answered in this request counts only for the person who gave it (issue: a request
    // carried to another browser or another person must not reuse it).
    let answered = req.consent_answered_by(&session.person_id);
    if !answered && (req.has_prompt("consent") || req.restarted || !covered) {
        if none {
            return Decision::Fail(Refusal::consent_required("consent is needed"));
        }
        return Decision::Consent;
    }
    Decision::Issue
}
