//! A sign-in through an upstream, from yunid's redirect to the linked person, and what follows from it
//! (the session, link offers, unlinking, the upstream's back-channel logout).

use serde_json::{Map, Value, json};

use super::discovery::{Metadata, limited_body};
use super::settings::{mapping, secret_aad};
use super::verify::{self, Expect, TokenError};
use super::{Ctx, FLOW_TTL, FederationError, Mapping, OFFER_TTL};
use crate::amr::{Amr, Method};
use crate::crypto::{self, Random};
use crate::identity::{Phone, ResidentId};
use crate::keys::Alg;
use crate::services::outbound::error_text;
use crate::store::persons::{PersonRow, PersonStatus};
use crate::store::sessions::{Renewed, SessionRow};
use crate::store::upstreams::{FlowRow, LinkRow, UpstreamRow};

/// A person signed in through an upstream.
#[derive(Debug, Clone)]
pub struct Federated {
    pub upstream_id: String,
    pub subject: String,
    pub person_id: String,
    /// yunid's `acr` for this sign-in (the upstream's, mapped).
    pub acr: i64,
    pub upstream_sid: Option<String>,
    /// The pending authorization request the sign-in was made for.
    pub req: Option<String>,
    /// A person created for this sign-in (from a verified ID number nobody held).
    pub created: bool,
    /// The link was made by this sign-in (a verified ID number).
    pub linked: bool,
    /// When the person authenticated: the upstream's `auth_time` (never later than the callback), or 0
    /// when the upstream did not say: such a session never satisfies an app's `max_age`.
    pub auth_time: i64,
}

/// What a callback leads to.
#[derive(Debug)]
pub enum Outcome {
    SignedIn(Federated),
    /// No person could be found: the next yunid sign-in in this browser links the account (`offer` is
    /// the secret the browser keeps for it).
    Link {
        offer: String,
        upstream_id: String,
        upstream_name: String,
        req: Option<String>,
    },
    /// The verified number is held by a yunid account whose number nobody verified (self-registered,
    /// real-name level 1): neither linked nor signed in. The holder is told (`holder`, its phone when
    /// verified), the person is sent to a counter or to that account.
    Conflict {
        upstream_id: String,
        holder: String,
        holder_phone: Option<String>,
        req: Option<String>,
    },
}

/// Whom a verified number leads to.
enum ByNumber {
    /// This person (created by this sign-in: `true`).
    Person(String, bool),
    /// Nobody silently: a yunid sign-in is asked for (a link offer).
    Offer,
    /// A level-1 holder: a conflict, `(person id, verified phone)`.
    Unverified(String, Option<String>),
}

/// The callback's query (Core §3.1.2.5/§3.1.2.6, RFC 9207 `iss`).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Callback {
    pub state: Option<String>,
    pub code: Option<String>,
    pub error: Option<String>,
    pub iss: Option<String>,
}

async fn enabled_upstream(ctx: &Ctx<'_>, id: &str) -> Result<UpstreamRow, FederationError> {
    let row = ctx.db.upstream(id).await?.ok_or(FederationError::Unknown)?;
    if !row.enabled {
        return Err(FederationError::Disabled);
    }
    Ok(row)
}

/// The upstreams the login page offers: `(id, display name, logo)`. A logo stored over http (before
/// registrations required https; review F10) is not shown, unless http is allowed (development).
pub async fn offered(ctx: &Ctx<'_>) -> Result<Vec<(String, String, Option<String>)>, FederationError> {
    let shown = |logo: &String| {
        url::Url::parse(logo).is_ok_and(|u| u.scheme() == "https" || (ctx.allow_http && u.scheme() == "http"))
    };
    Ok(ctx
        .db
        .listed_upstreams()
        .await?
        .iter()
        .filter(|u| u.enabled)
        .map(|u| {
            (
                u.id.clone(),
                u.display_name.clone(),
                u.logo_url.clone().filter(shown),
            )
        })
        .collect())
}

/// How recent the upstream's authentication must be: what the app asked of yunid, passed on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Freshness {
    /// `prompt=login` (or yunid must authenticate the person again): the upstream is asked the same, and
    /// its `auth_time` must be after the sign-in started.
    pub login: bool,
    /// The app's `max_age`: passed on, and the upstream's `auth_time` must be at most that old.
    pub max_age: Option<i64>,
}

impl Freshness {
    /// The earliest `auth_time` accepted for a sign-in started at `now`; none: any.
    fn min_auth_time(self, now: i64) -> Option<i64> {
        let by_prompt = self.login.then_some(now);
        let by_age = self.max_age.map(|m| now - m.max(0));
        by_prompt.max(by_age)
    }
}

/// Starts a sign-in at upstream `id` for the browser whose binding secret hashes to `browser_hash`
/// (and, when given, its pending request `req`): returns the upstream's authorization URL. With `fresh`
/// the upstream is asked to authenticate the person again (`prompt=login`) or recently (`max_age`), and
/// the callback checks its `auth_time`.
pub async fn start(
    ctx: &Ctx<'_>,
    id: &str,
    browser_hash: &str,
    req: Option<&str>,
    fresh: Freshness,
    now: i64,
    rng: &dyn Random,
) -> Result<String, FederationError> {
    let upstream = enabled_upstream(ctx, id).await?;
    let metadata = ctx
        .discovered
        .get(ctx.http, id, &upstream.discovery_url, ctx.allow_http, now)
        .await?;
    let (state, nonce, verifier) = (rng.token(), rng.token(), rng.token());
    let state_hash = crypto::token_hash(&state);
    ctx.db
        .insert_upstream_flow(&FlowRow {
            verifier_enc: ctx.secrets.encrypt(&verifier, state_hash.as_bytes())?,
            state_hash,
            upstream_id: id.to_owned(),
            browser_hash: browser_hash.to_owned(),
            req: req.map(str::to_owned),
            nonce_hash: crypto::token_hash(&nonce),
            expires_at: now + FLOW_TTL,
            min_auth_time: fresh.min_auth_time(now),
        })
        .await?;
    let mut url = url::Url::parse(&metadata.authorization_endpoint)
        .map_err(|_| FederationError::Unavailable("authorization endpoint is not a URL".into()))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &upstream.client_id)
            .append_pair("redirect_uri", &ctx.redirect_uri(id))
            .append_pair("scope", &upstream.scopes.to_string())
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair(
                "code_challenge",
                &crypto::b64url(&crypto::sha256(verifier.as_bytes())),
            )
            .append_pair("code_challenge_method", "S256");
        // The mapped claims are asked for in the ID token: only a signed token is believed.
        if let Some(claims) = claims_request(&mapping(&upstream)) {
            q.append_pair("claims", &claims);
        }
        if fresh.login {
            q.append_pair("prompt", "login");
        }
        if let Some(max_age) = fresh.max_age {
            q.append_pair("max_age", &max_age.max(0).to_string());
        }
    }
    Ok(url.to_string())
}

/// The `claims` request parameter (Core §5.5) asking for the mapped claims in the ID token.
fn claims_request(m: &Mapping) -> Option<String> {
    let names: Vec<&String> = [&m.id_number, &m.name, &m.phone, &m.level]
        .into_iter()
        .flatten()
        .collect();
    if names.is_empty() {
        return None;
    }
    let mut id_token = Map::new();
    for n in names {
        id_token.insert(n.clone(), Value::Null);
    }
    if m.phone.is_some() {
        id_token.insert("phone_number_verified".into(), Value::Null);
    }
    Some(json!({ "id_token": id_token }).to_string())
}

/// Error codes an upstream may send back (Core §3.1.2.6, RFC 6749 §4.1.2.1); anything else is `error`.
fn refused_code(code: &str) -> &'static str {
    const KNOWN: [&str; 12] = [
        "access_denied",
        "login_required",
        "interaction_required",
        "consent_required",
        "account_selection_required",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
        "invalid_request_uri",
    ];
    KNOWN.into_iter().find(|k| *k == code).unwrap_or("error")
}

/// Finishes a sign-in at upstream `upstream_id`'s callback: the `state` must name a sign-in started in
/// this browser at that same upstream, not used and not expired (taken once, whatever follows); then
/// the code is redeemed with the PKCE verifier and the ID token verified; then the person is found,
/// linked or created.
pub async fn callback(
    ctx: &Ctx<'_>,
    upstream_id: &str,
    params: &Callback,
    browser_hash: &str,
    now: i64,
    rng: &dyn Random,
) -> Result<Outcome, FederationError> {
    let state = params.state.as_deref().ok_or(FederationError::State)?;
    let state_hash = crypto::token_hash(state);
    // An answer arriving at another upstream's callback than the one the sign-in went to is a mix-up:
    // it does not match (and leaves the sign-in to its own callback).
    let flow = ctx
        .db
        .take_upstream_flow(&state_hash, upstream_id, browser_hash, now)
        .await?
        .ok_or(FederationError::State)?;
    let upstream = enabled_upstream(ctx, &flow.upstream_id).await?;
    let metadata = ctx
        .discovered
        .get(
            ctx.http,
            &upstream.id,
            &upstream.discovery_url,
            ctx.allow_http,
            now,
        )
        .await?;
    // RFC 9207: an answer naming another issuer is a mix-up; an upstream that says it names itself
    // must do so (§2.4), errors included.
    match params.iss.as_deref() {
        Some(iss) if iss != metadata.issuer => return Err(FederationError::Token(TokenError::Issuer)),
        None if metadata.authorization_response_iss_parameter_supported => {
            return Err(FederationError::Token(TokenError::IssMissing));
        }
        _ => {}
    }
    if let Some(code) = &params.error {
        return Err(FederationError::Refused(refused_code(code)));
    }
    let code = params
        .code
        .as_deref()
        .ok_or(FederationError::Refused("invalid_request"))?;
    let verifier = ctx.secrets.decrypt(&flow.verifier_enc, state_hash.as_bytes())?;
    let id_token = redeem(ctx, &upstream, &metadata, code, &verifier, now, rng).await?;
    let cache_key = format!("upstream:{}", upstream.id);
    let expect = Expect {
        cache_key: &cache_key,
        issuer: &metadata.issuer,
        jwks_uri: &metadata.jwks_uri,
        client_id: &upstream.client_id,
        now,
    };
    let claims = verify::id_token(ctx.http, ctx.jwks, &id_token, &expect, &flow.nonce_hash).await?;
    let subject = verify::subject(&claims)?.to_owned();
    // Core §3.1.2.1/§3.1.3.7 item 13: asked to authenticate again or recently, the upstream answers
    // with `auth_time`, and it must be that recent.
    let auth_time = claims.get("auth_time").and_then(Value::as_i64);
    if let Some(min) = flow.min_auth_time {
        match auth_time {
            Some(t) if t + verify::LEEWAY >= min && t <= now + verify::LEEWAY => {}
            _ => return Err(FederationError::Token(TokenError::AuthTime)),
        }
    }
    // The app's `max_age` counts to now, not to when the sign-in at the upstream started.
    if let Some(max_age) = pending_max_age(ctx, flow.req.as_deref(), now) {
        match auth_time {
            Some(t) if t + verify::LEEWAY >= now - max_age.max(0) => {}
            _ => return Err(FederationError::Token(TokenError::AuthTime)),
        }
    }
    // A claimed time in the future is now at most; none at all: "long ago" (0).
    let auth_time = match auth_time {
        Some(t) if t <= now + verify::LEEWAY => t.min(now),
        Some(_) => return Err(FederationError::Token(TokenError::AuthTime)),
        None => 0,
    };
    let issuer = issuer_of(&upstream);
    let m = mapping(&upstream);
    let acr = claims
        .get("acr")
        .and_then(Value::as_str)
        .and_then(|a| m.acr.get(a).copied())
        .unwrap_or(1);
    let upstream_sid = claims.get("sid").and_then(Value::as_str).map(str::to_owned);
    let mut fed = Federated {
        upstream_id: upstream.id.clone(),
        subject: subject.clone(),
        person_id: String::new(),
        acr,
        upstream_sid,
        req: flow.req.clone(),
        created: false,
        linked: false,
        auth_time,
    };
    if let Some(person_id) = ctx.db.upstream_link(&issuer, &subject).await? {
        fed.person_id = person_id;
    } else if let ByNumber::Person(person_id, created) =
        match by_verified_number(ctx, &upstream, &m, &claims, acr, now, rng).await? {
            ByNumber::Unverified(holder, holder_phone) => {
                return Ok(Outcome::Conflict {
                    upstream_id: upstream.id,
                    holder,
                    holder_phone,
                    req: flow.req,
                });
            }
            other => other,
        }
    {
        let link = LinkRow {
            issuer: issuer.clone(),
            subject: subject.clone(),
            person_id: person_id.clone(),
            upstream_id: upstream.id.clone(),
            created_at: now,
        };
        ctx.db.insert_upstream_link(&link).await?;
        // A concurrent callback may have linked the subject first: the stored link decides.
        fed.person_id = ctx
            .db
            .upstream_link(&issuer, &subject)
            .await?
            .unwrap_or(person_id);
        (fed.created, fed.linked) = (created, true);
    } else {
        let offer = rng.token();
        ctx.db
            .insert_link_offer(
                &crypto::token_hash(&offer),
                browser_hash,
                &upstream.id,
                &subject,
                now + OFFER_TTL,
            )
            .await?;
        return Ok(Outcome::Link {
            offer,
            upstream_id: upstream.id,
            upstream_name: upstream.display_name,
            req: flow.req,
        });
    }
    let active = ctx
        .db
        .person(&fed.person_id)
        .await?
        .is_some_and(|p| p.status.is_active());
    if !active {
        return Err(FederationError::PersonUnavailable);
    }
    Ok(Outcome::SignedIn(fed))
}

/// The token request (RFC 6749 §4.1.3 with PKCE, RFC 7636 §4.5); returns the ID token.
async fn redeem(
    ctx: &Ctx<'_>,
    upstream: &UpstreamRow,
    metadata: &Metadata,
    code: &str,
    verifier: &str,
    now: i64,
    rng: &dyn Random,
) -> Result<String, FederationError> {
    let redirect_uri = ctx.redirect_uri(&upstream.id);
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.into()),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier.into()),
    ];
    let mut request = ctx
        .http
        .post(&metadata.token_endpoint)
        .map_err(|e| FederationError::Unavailable(format!("token endpoint: {e}")))?
        .header("accept", "application/json");
    let secret = || -> Result<String, FederationError> {
        let sealed = upstream
            .client_secret_enc
            .as_deref()
            .ok_or(FederationError::Setting("client_secret", "missing".into()))?;
        Ok(ctx.secrets.decrypt(sealed, &secret_aad(&upstream.id))?)
    };
    match upstream.auth_method.as_str() {
        "client_secret_post" => {
            form.push(("client_id", upstream.client_id.clone()));
            form.push(("client_secret", secret()?));
        }
        "private_key_jwt" => {
            // RFC 7523 §3: issued by and about yunid's client id, for the token endpoint, once.
            let assertion = ctx.keys.sign(
                Alg::RS256,
                "JWT",
                &json!({
                    "iss": upstream.client_id,
                    "sub": upstream.client_id,
                    "aud": metadata.token_endpoint,
                    "jti": rng.token(),
                    "iat": now,
                    "exp": now + 60,
                }),
            )?;
            form.push(("client_id", upstream.client_id.clone()));
            form.push((
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion", assertion));
        }
        _ => {
            // RFC 6749 §2.3.1: both parts form-encoded before the Basic encoding.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(&upstream.client_id), Some(enc(&secret()?)));
        }
    }
    let res = request
        .form(&form)
        .send()
        .await
        .map_err(|e| FederationError::Unavailable(format!("token endpoint: {}", error_text(e))))?;
    let status = res.status();
    let body = limited_body(res, 64 * 1024)
        .await
        .map_err(|e| FederationError::Unavailable(format!("token endpoint: {e}")))?;
    if !status.is_success() {
        let error = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(refused_code))
            .unwrap_or("error");
        return Err(FederationError::Unavailable(format!(
            "token endpoint answered {} ({error})",
            status.as_u16()
        )));
    }
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|_| FederationError::Unavailable("token endpoint: not JSON".into()))?;
    parsed
        .get("id_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(FederationError::Token(TokenError::Malformed))
}

/// The person a verified resident ID number names, when the upstream asserts it at the level its
/// mapping requires; created (at the mapped level) when nobody holds it and the mapping allows.
async fn by_verified_number(
    ctx: &Ctx<'_>,
    upstream: &UpstreamRow,
    m: &Mapping,
    claims: &Map<String, Value>,
    acr: i64,
    now: i64,
    rng: &dyn Random,
) -> Result<ByNumber, FederationError> {
    let issuer = &issuer_of(upstream);
    let (Some(min), Some(id_claim), Some(level_claim)) = (m.link_min_level, &m.id_number, &m.level) else {
        return Ok(ByNumber::Offer);
    };
    let level = match claims.get(level_claim) {
        Some(Value::String(s)) => m.levels.get(s).copied(),
        Some(Value::Number(n)) => m.levels.get(&n.to_string()).copied(),
        _ => None,
    };
    let Some(level) = level.filter(|l| *l >= min) else {
        return Ok(ByNumber::Offer);
    };
    let Some(Ok(number)) = claims
        .get(id_claim)
        .and_then(Value::as_str)
        .map(ResidentId::parse)
    else {
        return Ok(ByNumber::Offer);
    };
    let hash = ctx.secrets.id_hash(number.as_str());
    if let Some(p) = ctx.db.person_by_id_hash(&hash).await? {
        return holder(ctx, p, issuer, level, acr).await;
    }
    if !m.create_persons {
        return Ok(ByNumber::Offer);
    }
    let name_claim = m.name.as_deref().unwrap_or("name");
    let Some(name) = claims
        .get(name_claim)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 100)
    else {
        return Ok(ByNumber::Offer);
    };
    let phone_claim = m.phone.as_deref().unwrap_or("phone_number");
    let phone = claims
        .get(phone_claim)
        .and_then(Value::as_str)
        .filter(|_| claims.get("phone_number_verified") == Some(&Value::Bool(true)))
        .and_then(|p| Phone::parse(p).ok());
    let phone = match phone {
        Some(p) if ctx.db.person_by_phone(p.as_str()).await?.is_none() => Some(p.as_str().to_owned()),
        _ => None,
    };
    let id = crate::ids::new_id(now, rng).to_string();
    let row = PersonRow {
        id_number_hash: hash.clone(),
        id_number_enc: ctx.secrets.encrypt(number.as_str(), id.as_bytes())?,
        id: id.clone(),
        name: name.to_owned(),
        phone_verified: phone.is_some(),
        phone,
        password_hash: None,
        real_name_level: 1,
        status: PersonStatus::Active,
        real_name_verified_at: None,
        real_name_method: None,
        real_name_verified_by: None,
        version: 1,
        password_expires_at: None,
        password_must_change: false,
    };
    match ctx.db.insert_person(&row, now).await {
        Ok(()) => {}
        // Created meanwhile (another callback, a registration): that person it is.
        Err(e) if crate::store::is_unique_violation(&e) => {
            return match ctx.db.person_by_id_hash(&hash).await? {
                Some(p) => holder(ctx, p, issuer, level, acr).await,
                None => Ok(ByNumber::Offer),
            };
        }
        Err(e) => return Err(e.into()),
    }
    if level >= 2 {
        ctx.db
            .set_real_name(&id, level, "upstream", &format!("upstream:{}", upstream.id), now)
            .await?;
        // The evidence behind the level (`proofing::evidence`): which issuer asserted it, and when.
        ctx.db.put_evidence(&id, "upstream", issuer, now).await?;
    }
    Ok(ByNumber::Person(id, true))
}

/// What an upstream's verified number (at `level`, the sign-in at `acr`) does with the yunid person who
/// holds it. A holder whose number yunid never verified (level 1: self-declared) is a conflict, never a
/// match: anyone may register any number. Not on the upstream's say-so either (the person is asked to
/// sign in to yunid once to link): an administrator, a person who unlinked this issuer, or an account
/// stronger than this sign-in — a real-name level above the asserted one, or a passkey while the
/// upstream asserted one factor.
async fn holder(
    ctx: &Ctx<'_>,
    p: PersonRow,
    issuer: &str,
    level: i64,
    acr: i64,
) -> Result<ByNumber, FederationError> {
    if p.real_name_level < 2 {
        let phone = p.phone.filter(|_| p.phone_verified);
        return Ok(ByNumber::Unverified(p.id, phone));
    }
    if !ctx.db.admin_roles_of(&p.id).await?.is_empty() {
        return Ok(ByNumber::Offer);
    }
    let stronger = p.real_name_level > level || (acr < 2 && ctx.db.passkey_count(&p.id).await? > 0);
    if stronger || ctx.db.upstream_opted_out(issuer, &p.id).await? {
        return Ok(ByNumber::Offer);
    }
    Ok(ByNumber::Person(p.id, false))
}

/// Opens the yunid session of a federated sign-in (`amr` `fed`, the mapped `acr`). A live session of
/// the same person in this browser is renewed in place (same `sid`, new cookie value, only this
/// sign-in's factors); any other person's session must have been ended by the caller. Records which
/// upstream session it came from, for the upstream's back-channel logout.
pub async fn open_session(
    ctx: &Ctx<'_>,
    current: Option<(&str, &SessionRow)>,
    fed: &Federated,
    now: i64,
    rng: &dyn Random,
) -> Result<(String, SessionRow), FederationError> {
    let cookie = rng.token();
    let id_hash = crypto::token_hash(&cookie);
    let renewed = match current.filter(|(_, s)| s.person_id == fed.person_id) {
        Some((old, session)) => ctx
            .db
            .upgrade_session(
                &crypto::token_hash(old),
                &id_hash,
                Renewed {
                    amr: &Amr::of(&[Method::Fed]),
                    acr: fed.acr,
                    auth_time: fed.auth_time,
                },
                now,
                None,
            )
            .await?
            .map(|_| SessionRow {
                id_hash: id_hash.clone(),
                amr: Amr::of(&[Method::Fed]),
                acr: fed.acr,
                auth_time: fed.auth_time,
                last_seen: now,
                ..session.clone()
            }),
        None => None,
    };
    let row = match renewed {
        Some(row) => row,
        None => {
            let row = SessionRow {
                id_hash,
                sid: rng.uuid_v4().simple().to_string(),
                person_id: fed.person_id.clone(),
                auth_time: fed.auth_time,
                amr: Amr::of(&[Method::Fed]),
                acr: fed.acr,
                created_at: now,
                last_seen: now,
                expires_at: now + ctx.session_ttl,
            };
            ctx.db.insert_session(&row).await?;
            row
        }
    };
    ctx.db
        .insert_upstream_session(
            &row.sid,
            &fed.upstream_id,
            &fed.subject,
            fed.upstream_sid.as_deref(),
            now,
            row.expires_at,
        )
        .await?;
    Ok((cookie, row))
}

/// How long after a sign-in its confirmation page may still link an offered upstream account.
pub const CONFIRM_WINDOW: i64 = 300;

/// A session opened by a credential entered in this browser (password, SMS code, passkey), not by a
/// scan on a phone or another upstream: only such a sign-in may confirm a link offer.
fn entered_here(session: &SessionRow) -> bool {
    session.amr.all_entered_here()
}

/// The upstream `(id, display name)` that the link offer this browser holds would link to the signed-in
/// person, if it may be confirmed: the session was opened moments ago by a credential entered in this
/// browser, and the offer (unused, unexpired, made for this browser) was issued before that sign-in.
pub async fn offer_to_confirm(
    ctx: &Ctx<'_>,
    offer: &str,
    browser_hash: &str,
    session: &SessionRow,
    now: i64,
) -> Result<Option<(String, String)>, FederationError> {
    if !entered_here(session) || session.auth_time + CONFIRM_WINDOW < now {
        return Ok(None);
    }
    let Some((upstream_id, expires_at)) = ctx
        .db
        .link_offer(&crypto::token_hash(offer), browser_hash, now)
        .await?
    else {
        return Ok(None);
    };
    if expires_at - OFFER_TTL > session.auth_time {
        return Ok(None);
    }
    Ok(ctx
        .db
        .upstream(&upstream_id)
        .await?
        .filter(|u| u.enabled)
        .map(|u| (upstream_id, u.display_name)))
}

/// The answer on the confirmation page: the offer is used up either way; accepted (and still
/// confirmable, see [`offer_to_confirm`]) it links the upstream account to the signed-in person.
/// Returns the upstream's id when a link was made.
pub async fn confirm_offer(
    ctx: &Ctx<'_>,
    offer: &str,
    browser_hash: &str,
    session: &SessionRow,
    accept: bool,
    now: i64,
) -> Result<Option<String>, FederationError> {
    let confirmable = offer_to_confirm(ctx, offer, browser_hash, session, now)
        .await?
        .is_some();
    let Some((upstream_id, subject)) = ctx
        .db
        .take_link_offer(&crypto::token_hash(offer), browser_hash, now)
        .await?
    else {
        return Ok(None);
    };
    if !(accept && confirmable) {
        return Ok(None);
    }
    let Some(upstream) = ctx.db.upstream(&upstream_id).await? else {
        return Ok(None);
    };
    let issuer = issuer_of(&upstream);
    let linked = ctx
        .db
        .insert_upstream_link(&LinkRow {
            issuer: issuer.clone(),
            subject,
            person_id: session.person_id.clone(),
            upstream_id: upstream_id.clone(),
            created_at: now,
        })
        .await?;
    if linked {
        // Linked by the person's own choice: an earlier unlinking no longer stands.
        ctx.db
            .delete_upstream_opt_out(&issuer, &session.person_id)
            .await?;
    }
    Ok(linked.then_some(upstream_id))
}

/// The issuer an upstream's links are kept under: its discovery URL without
/// `/.well-known/openid-configuration` (discovery checks the metadata's `issuer` says the same, bar a
/// trailing `/`).
pub fn issuer_of(upstream: &UpstreamRow) -> String {
    upstream
        .discovery_url
        .strip_suffix("/.well-known/openid-configuration")
        .unwrap_or(&upstream.discovery_url)
        .to_owned()
}

/// A person's links: `(upstream id, display name, linked at)`. The upstream is the one that made the
/// link while it still has that issuer, else any registered under that issuer.
pub async fn links_of(ctx: &Ctx<'_>, person_id: &str) -> Result<Vec<(String, String, i64)>, FederationError> {
    let upstreams = ctx.db.upstreams().await?;
    Ok(ctx
        .db
        .upstream_links_of(person_id)
        .await?
        .into_iter()
        .map(|l| {
            let current = upstreams
                .iter()
                .find(|u| u.id == l.upstream_id && issuer_of(u) == l.issuer)
                .or_else(|| upstreams.iter().find(|u| issuer_of(u) == l.issuer));
            match current {
                Some(u) => (u.id.clone(), u.display_name.clone(), l.created_at),
                None => (l.upstream_id.clone(), l.issuer.clone(), l.created_at),
            }
        })
        .collect())
}

/// Removes the person's link to upstream `upstream_id` (its issuer's accounts): from now on that
/// issuer's numbers do not link the person by themselves (an opt-out), only a link the person confirms
/// after a yunid sign-in does. Returns the yunid sessions those upstream accounts started, which the
/// caller ends; `None` when there was no link.
pub async fn unlink(
    ctx: &Ctx<'_>,
    person_id: &str,
    upstream_id: &str,
    now: i64,
) -> Result<Option<Vec<String>>, FederationError> {
    let upstreams = ctx.db.upstreams().await?;
    let issuer = upstreams.iter().find(|u| u.id == upstream_id).map(issuer_of);
    let links: Vec<_> = ctx
        .db
        .upstream_links_of(person_id)
        .await?
        .into_iter()
        // The registration's issuer's links; and the links this registration made under an issuer no
        // longer registered (the account page shows them under this id, see `links_of`).
        .filter(|l| {
            issuer.as_deref() == Some(l.issuer.as_str())
                || (l.upstream_id == upstream_id && !upstreams.iter().any(|u| issuer_of(u) == l.issuer))
        })
        .collect();
    let mut removed = false;
    let mut sids = Vec::new();
    for l in &links {
        if !ctx
            .db
            .unlink_upstream(person_id, &l.issuer, &l.subject, now)
            .await?
        {
            continue;
        }
        removed = true;
        for u in upstreams.iter().filter(|u| issuer_of(u) == l.issuer) {
            sids.extend(
                ctx.db
                    .upstream_session_sids(&u.id, Some(&l.subject), None, now + verify::LEEWAY)
                    .await?,
            );
        }
    }
    Ok(removed.then_some(sids))
}

/// An upstream's back-channel logout (Back-Channel Logout 1.0 §2.5): the logout token is verified like
/// an ID token (signature, issuer, audience, times) plus its own rules, used once (`jti`); returns the
/// yunid sessions it ends (those started from the named upstream session or subject before the token
/// was issued).
pub async fn backchannel_logout(
    ctx: &Ctx<'_>,
    upstream_id: &str,
    token: &str,
    now: i64,
) -> Result<Vec<String>, FederationError> {
    let upstream = ctx
        .db
        .upstream(upstream_id)
        .await?
        .ok_or(FederationError::Unknown)?;
    let metadata = ctx
        .discovered
        .get(
            ctx.http,
            &upstream.id,
            &upstream.discovery_url,
            ctx.allow_http,
            now,
        )
        .await?;
    let cache_key = format!("upstream:{}", upstream.id);
    let expect = Expect {
        cache_key: &cache_key,
        issuer: &metadata.issuer,
        jwks_uri: &metadata.jwks_uri,
        client_id: &upstream.client_id,
        now,
    };
    let claims = verify::logout_token(ctx.http, ctx.jwks, token, &expect).await?;
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or_default();
    let iat = claims.get("iat").and_then(Value::as_i64).unwrap_or(now);
    if !ctx
        .db
        .remember_logout_jti(&upstream.id, jti, now + verify::MAX_AGE + verify::LEEWAY)
        .await?
    {
        return Err(FederationError::Token(TokenError::Replayed));
    }
    let sub = claims.get("sub").and_then(Value::as_str);
    let sid = claims.get("sid").and_then(Value::as_str);
    Ok(ctx
        .db
        .upstream_session_sids(&upstream.id, sub, sid, iat + verify::LEEWAY)
        .await?)
}

/// The `max_age` of the pending authorization request a sign-in was made for, if any (the request is
/// carried sealed by the browser; the flow row keeps its `req`).
fn pending_max_age(ctx: &Ctx<'_>, req: Option<&str>, now: i64) -> Option<i64> {
    req.and_then(|req| crate::services::authn::pending::max_age(ctx.secrets, req, now))
}
