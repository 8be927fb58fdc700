//! Client metadata of a dynamic registration (RFC 7591 §2, OpenID Connect Dynamic Client Registration
//! 1.0 §2), validated into what yunid enforces plus the metadata document returned to the client.
//! Pure: no storage, no clock.

use serde_json::{Map, Value};

use crate::keys::Alg;
use crate::scope::ScopeSet;
use crate::services::outbound::Guard;
use crate::services::registry::{NewClient, check_jwks_uri, check_uri};
use crate::store::clients::AuthMethod;

/// Scopes a client may give itself. Identity, organisation and licence data (`identity`, `org`,
/// `licences`) and the admin scopes (`yunid:*`) need an administrator's decision.
pub const SELF_SERVICE_SCOPES: [&str; 4] = ["openid", "profile", "phone", "offline_access"];

/// Human-readable members that may carry a language tag (`client_name#zh-CN`, RFC 7591 §2.2).
const LOCALISED: [&str; 5] = ["client_name", "client_uri", "logo_uri", "policy_uri", "tos_uri"];

const MAX_LIST: usize = 20;
const MAX_NAME: usize = 100;

/// A registration refused (RFC 7591 §3.2.2): `invalid_redirect_uri` or `invalid_client_metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataError {
    pub code: &'static str,
    pub description: String,
}

impl MetadataError {
    pub fn metadata(field: &str, message: impl std::fmt::Display) -> MetadataError {
        MetadataError {
            code: "invalid_client_metadata",
            description: format!("{field}: {message}"),
        }
    }

    pub fn redirect(field: &str, message: impl std::fmt::Display) -> MetadataError {
        MetadataError {
            code: "invalid_redirect_uri",
            description: format!("{field}: {message}"),
        }
    }
}

/// What a valid registration asks for.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The app's settings; its `sector` (OIDC Core §8.1) is the redirect URIs' host (a loopback host
    /// becomes a sector of the client's own when it is added, `registry::sector_for`), and
    /// `department`, `min_acr` and `matters` are the defaults (the caller sets the department).
    pub client: NewClient,
    /// The registered metadata as returned to the client (defaults filled in, unknown members dropped).
    pub metadata: Map<String, Value>,
}

type Result<T> = std::result::Result<T, MetadataError>;

/// A member, treating JSON `null` as absent (RFC 7592 §2.2: an omitted or null value is no value).
fn member<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

fn string(body: &Map<String, Value>, name: &str) -> Result<Option<String>> {
    match member(body, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(MetadataError::metadata(name, "must be a string")),
    }
}

fn strings(
    body: &Map<String, Value>,
    name: &str,
    error: fn(&str, &str) -> MetadataError,
) -> Result<Option<Vec<String>>> {
    let Some(value) = member(body, name) else {
        return Ok(None);
    };
    let list = value
        .as_array()
        .ok_or_else(|| error(name, "must be an array of strings"))?;
    if list.len() > MAX_LIST {
        return Err(error(name, "too many values"));
    }
    let mut out = Vec::new();
    for v in list {
        let s = v
            .as_str()
            .ok_or_else(|| error(name, "must be an array of strings"))?;
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(Some(out))
}

fn metadata_error(field: &str, message: &str) -> MetadataError {
    MetadataError::metadata(field, message)
}

fn redirect_error(field: &str, message: &str) -> MetadataError {
    MetadataError::redirect(field, message)
}

fn is_loopback(url: &url::Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
}

/// An absolute `https` URL (`http` only on loopback), without fragment: what a browser or the server
/// will be sent to.
fn web_uri(field: &str, uri: &str, error: fn(&str, &str) -> MetadataError) -> Result<url::Url> {
    check_uri(uri, false).map_err(|e| error(field, &e.to_string()))
}

/// A BCP 47 language tag, loosely: letters, digits and hyphens in subtags of 1 to 8.
fn language_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag
            .split('-')
            .all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

/// The URLs yunid itself will call for a self-registered client (its `jwks_uri` and its back-channel
/// logout endpoint) must be `https` and may not name this host or an internal network by address or as
/// `localhost` — server-side request forgery. Only an address literal inside a network the operator
/// allowed (`client_outbound_allow`, e.g. loopback in development) may be used, and then over `http`
/// too. Names are checked again, after DNS resolution, whenever yunid connects (`services::outbound`).
pub fn check_fetch_target(reg: &Registration, guard: &Guard) -> Result<()> {
    let targets = [
        ("jwks_uri", &reg.client.jwks_uri),
        ("backchannel_logout_uri", &reg.client.backchannel_logout_uri),
    ];
    for (field, uri) in targets {
        let Some(uri) = uri else { continue };
        let url = url::Url::parse(uri).map_err(|e| MetadataError::metadata(field, e))?;
        let allowed_literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => guard.allows_internal(ip.into()),
            Some(url::Host::Ipv6(ip)) => guard.allows_internal(ip.into()),
            _ => false,
        };
        if allowed_literal {
            continue;
        }
        if url.scheme() != "https" {
            return Err(MetadataError::metadata(
                field,
                "must be an https URL (yunid calls it from its server)",
            ));
        }
        let internal = match url.host() {
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
            Some(url::Host::Ipv4(ip)) => !guard.permits(ip.into()),
            Some(url::Host::Ipv6(ip)) => !guard.permits(ip.into()),
            None => true,
        };
        if internal {
            return Err(MetadataError::metadata(
                field,
                "must name a public host (no loopback, private, link-local or other internal address)",
            ));
        }
    }
    Ok(())
}

/// Validates a registration (or an update's full replacement) request body.
pub fn validate(body: &Value) -> Result<Registration> {
    let body = body
        .as_object()
        .ok_or_else(|| MetadataError::metadata("body", "must be a JSON object"))?;
    let mut out = Map::new();

    // OIDC Registration §2: web apps (the default) or native apps; yunid takes no custom URI schemes,
    // so a native app redirects to a loopback address.
    let application_type = string(body, "application_type")?.unwrap_or_else(|| "web".into());
    if !matches!(application_type.as_str(), "web" | "native") {
        return Err(MetadataError::metadata(
            "application_type",
            "must be web or native",
        ));
    }

    // RFC 7591 §2: redirection URIs, required for the code flow (the only one there is).
    let redirect_uris = strings(body, "redirect_uris", redirect_error)?
        .filter(|l| !l.is_empty())
        .ok_or_else(|| MetadataError::redirect("redirect_uris", "at least one redirect URI is required"))?;
    let mut hosts = Vec::new();
    for uri in &redirect_uris {
        let url = web_uri("redirect_uris", uri, redirect_error)?;
        if application_type == "native" && !(url.scheme() == "http" && is_loopback(&url)) {
            return Err(MetadataError::redirect(
                "redirect_uris",
                format!("{uri}: a native application redirects to an http loopback address"),
            ));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }

    let response_types =
        strings(body, "response_types", metadata_error)?.unwrap_or_else(|| vec!["code".into()]);
    if response_types.is_empty() || response_types.iter().any(|r| r != "code") {
        return Err(MetadataError::metadata(
            "response_types",
            "only code is supported",
        ));
    }
    // RFC 7591 §2.1: response type `code` goes with the authorization_code grant. Client credentials are
    // not for self-registered apps: they hold no resources here and could only collect tokens for
    // themselves.
    let grant_types =
        strings(body, "grant_types", metadata_error)?.unwrap_or_else(|| vec!["authorization_code".into()]);
    if let Some(g) = grant_types
        .iter()
        .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return Err(MetadataError::metadata(
            "grant_types",
            format!(
                "{g} is not available to dynamically registered clients (authorization_code, refresh_token)"
            ),
        ));
    }
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(MetadataError::metadata(
            "grant_types",
            "must include authorization_code (response type code)",
        ));
    }

    // RFC 7591 §2: default client_secret_basic. Every client authenticates: `none` (public clients)
    // does not exist here.
    let method_name =
        string(body, "token_endpoint_auth_method")?.unwrap_or_else(|| "client_secret_basic".into());
    let auth_method = AuthMethod::parse(&method_name).ok_or_else(|| {
        MetadataError::metadata(
            "token_endpoint_auth_method",
            format!(
                "{method_name} is not supported (client_secret_basic, client_secret_post, private_key_jwt)"
            ),
        )
    })?;
    // RFC 7591 §2: `jwks` and `jwks_uri` must not both be present.
    let jwks_uri = string(body, "jwks_uri")?;
    if jwks_uri.is_some() && member(body, "jwks").is_some() {
        return Err(MetadataError::metadata(
            "jwks_uri",
            "jwks and jwks_uri must not both be present",
        ));
    }
    let (jwks, jwks_uri) = match (auth_method, member(body, "jwks"), jwks_uri) {
        (AuthMethod::PrivateKeyJwt, None, None) => {
            return Err(MetadataError::metadata(
                "jwks",
                "private_key_jwt needs the client's public keys (jwks or jwks_uri)",
            ));
        }
        (AuthMethod::PrivateKeyJwt, Some(v), _) => (Some(public_jwks(v)?), None),
        (AuthMethod::PrivateKeyJwt, None, Some(uri)) => {
            check_jwks_uri(&uri, false).map_err(|e| MetadataError::metadata("jwks_uri", e.to_string()))?;
            (None, Some(uri))
        }
        // Keys for anything else (encryption) are not used by yunid: not registered.
        _ => (None, None),
    };

    let scope = string(body, "scope")?;
    let scopes = match &scope {
        Some(s) => ScopeSet::parse(s),
        None => {
            let mut d = ScopeSet::parse("openid profile phone");
            if grant_types.iter().any(|g| g == "refresh_token") {
                d.extend(["offline_access"]);
            }
            d
        }
    };
    if scopes.is_empty() {
        return Err(MetadataError::metadata("scope", "no scope given"));
    }
    if let Some(s) = scopes.iter().find(|s| !SELF_SERVICE_SCOPES.contains(s)) {
        return Err(MetadataError::metadata(
            "scope",
            format!("{s} cannot be registered dynamically (an administrator grants it)"),
        ));
    }

    let post_logout_redirect_uris =
        strings(body, "post_logout_redirect_uris", metadata_error)?.unwrap_or_default();
    for uri in &post_logout_redirect_uris {
        web_uri("post_logout_redirect_uris", uri, metadata_error)?;
    }
    let backchannel_logout_uri = string(body, "backchannel_logout_uri")?;
    if let Some(uri) = &backchannel_logout_uri {
        web_uri("backchannel_logout_uri", uri, metadata_error)?;
    }
    // Back-Channel Logout §2.2: yunid always puts `sid` in logout tokens, so either value is honoured.
    let session_required = match member(body, "backchannel_logout_session_required") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(MetadataError::metadata(
                "backchannel_logout_session_required",
                "must be true or false",
            ));
        }
    };

    let subject_type = string(body, "subject_type")?.unwrap_or_else(|| "pairwise".into());
    let public_subject = match subject_type.as_str() {
        "pairwise" => false,
        "public" => true,
        _ => {
            return Err(MetadataError::metadata(
                "subject_type",
                "must be pairwise or public",
            ));
        }
    };
    if member(body, "sector_identifier_uri").is_some() {
        return Err(MetadataError::metadata(
            "sector_identifier_uri",
            "is not supported; register redirect URIs on one host",
        ));
    }
    // OIDC Core §8.1: without a sector identifier URI the pairwise sector is the redirect URIs' host.
    // Loopback hosts only (127.0.0.1 and [::1] of one native app): a sector of the client's own.
    let loopback = hosts
        .iter()
        .all(|h| crate::services::registry::is_loopback_host(h));
    if !public_subject && hosts.len() > 1 && !loopback {
        return Err(MetadataError::redirect(
            "redirect_uris",
            "with pairwise subjects every redirect URI must be on the same host",
        ));
    }
    let sector = hosts.first().cloned().unwrap_or_default();

    let alg_name = string(body, "id_token_signed_response_alg")?.unwrap_or_else(|| "RS256".into());
    let id_token_alg = Alg::parse(&alg_name).ok_or_else(|| {
        MetadataError::metadata(
            "id_token_signed_response_alg",
            format!("{alg_name} is not supported (RS256, ES256, EdDSA)"),
        )
    })?;

    let contacts = strings(body, "contacts", metadata_error)?.unwrap_or_default();
    if contacts.iter().any(|c| c.is_empty() || c.chars().count() > 254) {
        return Err(MetadataError::metadata(
            "contacts",
            "each contact is 1 to 254 characters",
        ));
    }

    // Human-readable members, plain and language-tagged.
    for (key, value) in body {
        let (base, tag) = key.split_once('#').unwrap_or((key.as_str(), ""));
        if !LOCALISED.contains(&base) || value.is_null() {
            continue;
        }
        if key.contains('#') && !language_tag(tag) {
            return Err(MetadataError::metadata(key, "is not a valid language tag"));
        }
        let text = value
            .as_str()
            .ok_or_else(|| MetadataError::metadata(key, "must be a string"))?;
        if base == "client_name" {
            let n = text.trim().chars().count();
            if n == 0 || n > MAX_NAME {
                return Err(MetadataError::metadata(
                    key,
                    format!("must be 1 to {MAX_NAME} characters"),
                ));
            }
        } else {
            web_uri(key, text, metadata_error)?;
        }
        out.insert(key.clone(), Value::String(text.to_owned()));
    }
    // The name people see on the consent page: the plain one, else the Chinese one, else any, else the
    // host the app redirects to.
    let name = ["client_name", "client_name#zh-CN", "client_name#zh"]
        .iter()
        .find_map(|k| out.get(*k).and_then(Value::as_str))
        .or_else(|| {
            out.iter()
                .find(|(k, _)| k.starts_with("client_name#"))
                .and_then(|(_, v)| v.as_str())
        })
        .map(|n| n.trim().to_owned())
        .unwrap_or_else(|| sector.clone());

    out.insert("redirect_uris".into(), redirect_uris.clone().into());
    out.insert("response_types".into(), response_types.into());
    out.insert("grant_types".into(), grant_types.clone().into());
    out.insert("application_type".into(), application_type.into());
    out.insert("token_endpoint_auth_method".into(), auth_method.as_str().into());
    out.insert("scope".into(), scopes.to_string().into());
    out.insert("subject_type".into(), subject_type.into());
    out.insert(
        "id_token_signed_response_alg".into(),
        id_token_alg.as_str().into(),
    );
    if let Some(j) = &jwks {
        out.insert("jwks".into(), serde_json::from_str(j).unwrap_or(Value::Null));
    }
    if let Some(uri) = &jwks_uri {
        out.insert("jwks_uri".into(), uri.clone().into());
    }
    if !post_logout_redirect_uris.is_empty() {
        out.insert(
            "post_logout_redirect_uris".into(),
            post_logout_redirect_uris.clone().into(),
        );
    }
    if let Some(uri) = &backchannel_logout_uri {
        out.insert("backchannel_logout_uri".into(), uri.clone().into());
        out.insert(
            "backchannel_logout_session_required".into(),
            session_required.into(),
        );
    }
    if !contacts.is_empty() {
        out.insert("contacts".into(), contacts.into());
    }
    Ok(Registration {
        client: NewClient {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            scopes: scopes.iter().map(str::to_owned).collect(),
            grant_types,
            auth_method,
            jwks,
            jwks_uri,
            id_token_alg,
            public_subject,
            backchannel_logout_uri,
            sector: Some(sector),
            ..NewClient::default()
        },
        metadata: out,
    })
}

/// A JWK Set of public keys only: a private member (`d`, `p`, `q`, `k`, …) means the client leaked its
/// private key, and that key must not be trusted.
fn public_jwks(value: &Value) -> Result<String> {
    let text = value.to_string();
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(value.clone())
        .map_err(|e| MetadataError::metadata("jwks", format!("is not a JWK Set: {e}")))?;
    if set.keys.is_empty() {
        return Err(MetadataError::metadata("jwks", "has no keys"));
    }
    let private = ["d", "p", "q", "dp", "dq", "qi", "k"];
    let leaks = value
        .get("keys")
        .and_then(Value::as_array)
        .is_some_and(|keys| keys.iter().any(|k| private.iter().any(|m| k.get(m).is_some())));
    if leaks {
        return Err(MetadataError::metadata(
            "jwks",
            "must hold public keys only (no private members)",
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(e: MetadataError) -> (String, String) {
        let field = e.description.split(':').next().unwrap_or_default().to_owned();
        (e.code.to_owned(), field)
    }

    #[test]
    fn defaults_are_filled_in_and_unknown_members_dropped() {
        let r = validate(&json!({ "redirect_uris": ["https://app.example.cn/cb"], "x_custom": 1 })).unwrap();
        assert_eq!(r.client.grant_types, ["authorization_code"]);
        assert_eq!(r.client.auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(r.client.name, "app.example.cn");
        assert_eq!(r.client.sector.as_deref(), Some("app.example.cn"));
        assert!(!r.metadata.contains_key("x_custom"));
        assert_eq!(r.metadata["response_types"], json!(["code"]));
    }

    #[test]
    fn each_bad_member_is_named() {
        let base = json!({ "redirect_uris": ["https://app.example.cn/cb"] });
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            field_of(validate(&b).unwrap_err())
        };
        let md = |f: &str| ("invalid_client_metadata".to_owned(), f.to_owned());
        let ru = |f: &str| ("invalid_redirect_uri".to_owned(), f.to_owned());
        assert_eq!(
            with("redirect_uris", json!(["http://app.example.cn/cb"])),
            ru("redirect_uris")
        );
        assert_eq!(
            with("redirect_uris", json!(["https://a.cn/cb#x"])),
            ru("redirect_uris")
        );
        assert_eq!(with("redirect_uris", json!(["/cb"])), ru("redirect_uris"));
        assert_eq!(with("redirect_uris", json!([])), ru("redirect_uris"));
        assert_eq!(with("response_types", json!(["token"])), md("response_types"));
        assert_eq!(
            with("grant_types", json!(["client_credentials"])),
            md("grant_types")
        );
        assert_eq!(
            with("token_endpoint_auth_method", json!("none")),
            md("token_endpoint_auth_method")
        );
        assert_eq!(
            with("token_endpoint_auth_method", json!("private_key_jwt")),
            md("jwks")
        );
        assert_eq!(with("scope", json!("openid identity")), md("scope"));
        assert_eq!(with("scope", json!("openid yunid:admin")), md("scope"));
        assert_eq!(with("subject_type", json!("anonymous")), md("subject_type"));
        assert_eq!(
            with("id_token_signed_response_alg", json!("none")),
            md("id_token_signed_response_alg")
        );
        assert_eq!(with("client_name#zh CN", json!("x")), md("client_name#zh CN"));
        assert_eq!(with("logo_uri", json!("javascript:alert(1)")), md("logo_uri"));
        assert_eq!(
            with("backchannel_logout_uri", json!("http://rp.example.cn/bc")),
            md("backchannel_logout_uri")
        );
    }

    #[test]
    fn private_keys_are_refused_in_jwks() {
        let body = json!({
            "redirect_uris": ["https://app.example.cn/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": { "keys": [{ "kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI" }] },
        });
        let e = validate(&body).unwrap_err();
        assert_eq!(e.code, "invalid_client_metadata");
        assert!(e.description.contains("public keys only"), "{}", e.description);
    }

    #[test]
    fn self_registered_urls_yunid_calls_are_https_and_public() {
        let with = |field: &str, uri: &str| {
            let mut r = validate(&json!({ "redirect_uris": ["https://app.example.cn/cb"] })).unwrap();
            match field {
                "jwks_uri" => r.client.jwks_uri = Some(uri.to_owned()),
                _ => r.client.backchannel_logout_uri = Some(uri.to_owned()),
            }
            r
        };
        let production = Guard::default();
        let development = Guard::new(vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        for field in ["jwks_uri", "backchannel_logout_uri"] {
            for inside in [
                "https://localhost/jwks",
                "https://LOCALHOST./jwks",
                "https://app.localhost/jwks",
                "https://127.0.0.1:8080/jwks",
                "https://10.1.2.3/jwks",
                "https://192.168.0.9/jwks",
                "https://100.64.0.1/jwks",
                "https://169.254.169.254/latest",
                "https://[::1]/jwks",
                "https://[fd00::1]/jwks",
                "https://[::ffff:10.0.0.1]/jwks",
            ] {
                let e = check_fetch_target(&with(field, inside), &production).unwrap_err();
                assert!(e.description.starts_with(field), "{inside}: {}", e.description);
            }
            for plain in [
                "http://app.example.cn/bc",
                "http://127.0.0.1:9/bc",
                "http://localhost:9/bc",
            ] {
                let e = check_fetch_target(&with(field, plain), &production).unwrap_err();
                assert!(e.description.contains("https"), "{plain}: {}", e.description);
            }
            // Development: an address literal in an allowed network, over http too; never a name.
            assert!(check_fetch_target(&with(field, "http://127.0.0.1:9/bc"), &development).is_ok());
            assert!(check_fetch_target(&with(field, "https://[::1]:9/bc"), &development).is_ok());
            assert!(check_fetch_target(&with(field, "http://localhost:9/bc"), &development).is_err());
            assert!(check_fetch_target(&with(field, "http://10.1.2.3/bc"), &development).is_err());
            assert!(check_fetch_target(&with(field, "https://app.example.cn/jwks"), &production).is_ok());
            assert!(check_fetch_target(&with(field, "https://8.8.8.8/jwks"), &production).is_ok());
        }
    }
}
