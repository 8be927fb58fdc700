//! A sign-in through an upstream, from yunid's redirect to the linked person, and what follows from it
//! (the session, link offers, unlinking, the upstream's back-channel logout).

use serde_json::{Map, Value, json};

use super::discovery::{Metadata, limited_body};
use super::settings::{mapping, secret_aad};
use super::verify::{self, Expect, TokenError};
use super::{Ctx, FLOW_TTL, FederationError, Mapping, OFFER_TTL};
use crate::crypto::{self, Random};
use crate::identity::{Phone, ResidentId};
use crate::keys::Alg;
use crate::services::outbound::error_text;
use crate::store::persons::PersonRow;
use crate::store::sessions::SessionRow;
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

/// The upstreams the login page offers: `(id, display name, logo)`.
pub async fn offered(ctx: &Ctx<'_>) -> Result<Vec<(String, String, Option<String>)>, FederationError> {
    Ok(ctx
        .db
        .upstreams()
        .await?
        .into_iter()
        .filter(|u| u.enabled)
        .map(|u| (u.id, u.display_name, u.logo_url))
        .collect())
}

/// Starts a sign-in at upstream `id` for the browser whose binding secret hashes to `browser_hash`
/// (and, when given, its pending request `req`): returns the upstream's authorization URL. With
/// `force_login` the upstream is asked to authenticate the person again (`prompt=login`).
pub async fn start(
    ctx: &Ctx<'_>,
    id: &str,
    browser_hash: &str,
    req: Option<&str>,
    force_login: bool,
    now: i64,
    rng: &dyn Random,
) -> Result<String, FederationError> {
    let upstream = enabled_upstream(ctx, id).await?;
    let metadata = ctx
        .discovered
        .get(ctx.http, id, &upstream.discovery_url, now)
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
        })
        .await?;
    let mut url = url::Url::parse(&metadata.authorization_endpoint)
        .map_err(|_| FederationError::Unavailable("authorization endpoint is not a URL".into()))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &upstream.client_id)
            .append_pair("redirect_uri", &ctx.redirect_uri())
            .append_pair("scope", &upstream.scopes)
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
        if force_login {
            q.append_pair("prompt", "login");
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

/// Finishes a sign-in at the callback: the `state` must name a sign-in started in this browser, not
/// used and not expired (taken once, whatever follows); then the code is redeemed with the PKCE
/// verifier and the ID token verified; then the person is found, linked or created.
pub async fn callback(
    ctx: &Ctx<'_>,
    params: &Callback,
    browser_hash: &str,
    now: i64,
    rng: &dyn Random,
) -> Result<Outcome, FederationError> {
    let state = params.state.as_deref().ok_or(FederationError::State)?;
    let state_hash = crypto::token_hash(state);
    let flow = ctx
        .db
        .take_upstream_flow(&state_hash, browser_hash, now)
        .await?
        .ok_or(FederationError::State)?;
    let upstream = enabled_upstream(ctx, &flow.upstream_id).await?;
    if let Some(code) = &params.error {
        return Err(FederationError::Refused(refused_code(code)));
    }
    let metadata = ctx
        .discovered
        .get(ctx.http, &upstream.id, &upstream.discovery_url, now)
        .await?;
    // RFC 9207: an answer naming another issuer is a mix-up.
    if params.iss.as_deref().is_some_and(|iss| iss != metadata.issuer) {
        return Err(FederationError::Token(TokenError::Issuer));
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
    };
    if let Some(person_id) = ctx.db.upstream_link(&upstream.id, &subject).await? {
        fed.person_id = person_id;
    } else if let Some((person_id, created)) = by_verified_number(ctx, &upstream, &m, &claims, now).await? {
        let link = LinkRow {
            upstream_id: upstream.id.clone(),
            subject: subject.clone(),
            person_id: person_id.clone(),
            created_at: now,
        };
        ctx.db.insert_upstream_link(&link).await?;
        // A concurrent callback may have linked the subject first: the stored link decides.
        fed.person_id = ctx
            .db
            .upstream_link(&upstream.id, &subject)
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
        .is_some_and(|p| p.status == "active");
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
    let redirect_uri = ctx.redirect_uri();
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
    now: i64,
) -> Result<Option<(String, bool)>, FederationError> {
    let (Some(min), Some(id_claim), Some(level_claim)) = (m.link_min_level, &m.id_number, &m.level) else {
        return Ok(None);
    };
    let level = match claims.get(level_claim) {
        Some(Value::String(s)) => m.levels.get(s).copied(),
        Some(Value::Number(n)) => m.levels.get(&n.to_string()).copied(),
        _ => None,
    };
    let Some(level) = level.filter(|l| *l >= min) else {
        return Ok(None);
    };
    let Some(Ok(number)) = claims
        .get(id_claim)
        .and_then(Value::as_str)
        .map(ResidentId::parse)
    else {
        return Ok(None);
    };
    let hash = ctx.secrets.id_hash(number.as_str());
    if let Some(p) = ctx.db.person_by_id_hash(&hash).await? {
        return Ok(Some((p.id, false)));
    }
    if !m.create_persons {
        return Ok(None);
    }
    let name_claim = m.name.as_deref().unwrap_or("name");
    let Some(name) = claims
        .get(name_claim)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.chars().count() <= 100)
    else {
        return Ok(None);
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
    let id = uuid::Uuid::now_v7().to_string();
    let row = PersonRow {
        id_number_hash: hash.clone(),
        id_number_enc: ctx.secrets.encrypt(number.as_str(), id.as_bytes())?,
        id: id.clone(),
        name: name.to_owned(),
        phone_verified: phone.is_some(),
        phone,
        password_hash: None,
        real_name_level: 1,
        status: "active".into(),
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
            return Ok(ctx.db.person_by_id_hash(&hash).await?.map(|p| (p.id, false)));
        }
        Err(e) => return Err(e.into()),
    }
    if level >= 2 {
        ctx.db
            .set_real_name(&id, level, "upstream", &format!("upstream:{}", upstream.id), now)
            .await?;
    }
    Ok(Some((id, true)))
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
            .upgrade_session(&crypto::token_hash(old), &id_hash, "fed", fed.acr, now)
            .await?
            .then(|| SessionRow {
                id_hash: id_hash.clone(),
                amr: "fed".into(),
                acr: fed.acr,
                auth_time: now,
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
                sid: uuid::Uuid::new_v4().simple().to_string(),
                person_id: fed.person_id.clone(),
                auth_time: now,
                amr: "fed".into(),
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
    !session.amr.is_empty()
        && session
            .amr
            .split(' ')
            .all(|m| matches!(m, "pwd" | "sms" | "hwk" | "swk" | "user"))
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
    let linked = ctx
        .db
        .insert_upstream_link(&LinkRow {
            upstream_id: upstream_id.clone(),
            subject,
            person_id: session.person_id.clone(),
            created_at: now,
        })
        .await?;
    Ok(linked.then_some(upstream_id))
}

/// A person's links: `(upstream id, display name, linked at)`.
pub async fn links_of(ctx: &Ctx<'_>, person_id: &str) -> Result<Vec<(String, String, i64)>, FederationError> {
    let upstreams = ctx.db.upstreams().await?;
    Ok(ctx
        .db
        .upstream_links_of(person_id)
        .await?
        .into_iter()
        .map(|l| {
            let name = upstreams
                .iter()
                .find(|u| u.id == l.upstream_id)
                .map_or_else(|| l.upstream_id.clone(), |u| u.display_name.clone());
            (l.upstream_id, name, l.created_at)
        })
        .collect())
}

/// Removes the person's link to an upstream; false when there was none.
pub async fn unlink(ctx: &Ctx<'_>, person_id: &str, upstream_id: &str) -> Result<bool, FederationError> {
    Ok(ctx.db.delete_upstream_link(person_id, upstream_id).await?)
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
        .get(ctx.http, &upstream.id, &upstream.discovery_url, now)
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
