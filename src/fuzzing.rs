//! Fuzzing harnesses: each runs one parser of outside input on arbitrary bytes and checks what must hold
//! whatever the input; a panic is a finding. The cargo-fuzz targets in `fuzz/` call these, and the
//! integration test `fuzz_corpus` replays every committed corpus file (`fuzz/corpus/<target>/`) through
//! them, so CI exercises them on the stable toolchain.

use std::sync::OnceLock;

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::identity::licence_id::LicenceId;
use crate::identity::{CreditCode, Phone, ResidentId};
use crate::keys::{Alg, KeySet};
use crate::services::licence::LicenceInput;
use crate::services::oidc::authorize::{self, AuthRequest, Rejection};
use crate::services::oidc::client_auth;
use crate::services::params::{MAX_VALUE, Params};
use crate::store::clients::Client;

/// A harness: arbitrary bytes in, a panic when an invariant breaks.
pub type Harness = fn(&[u8]);

/// Every harness by target name (the corpus folders and the cargo-fuzz binaries have the same names).
pub const TARGETS: &[(&str, Harness)] = &[
    ("resident_id", resident_id),
    ("credit_code", credit_code),
    ("phone", phone),
    ("licence_id", licence_id),
    ("licence_import_line", licence_import_line),
    ("authorization_request", authorization_request),
    ("token_request", token_request),
    ("client_assertion", client_assertion),
    ("jwt_verify", jwt_verify),
    ("webauthn_json", webauthn_json),
    ("sms_webhook_config", sms_webhook_config),
];

/// A resident ID number that parses is 18 characters, parses again to itself, and masks its birth date.
pub fn resident_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = ResidentId::parse(text) else {
        return;
    };
    assert_eq!(id.as_str().len(), 18, "{text:?}");
    let again = ResidentId::parse(id.as_str()).expect("a normalised number parses again");
    assert_eq!(again.as_str(), id.as_str());
    let (year, month, day) = id.birth_date();
    assert!(
        year >= 1900 && (1..=12).contains(&month) && (1..=31).contains(&day),
        "{text:?}"
    );
    assert_eq!(id.birthdate_iso().len(), 10);
    let masked = id.masked();
    assert_eq!(masked.chars().count(), 18);
    assert!(
        !masked.contains(&id.as_str()[6..14]),
        "the birth date shows in {masked}"
    );
    assert_eq!(id.area_code().len(), 6);
    let _ = id.gender();
}

/// A credit code that parses is 18 upper-case characters and parses again to itself.
pub fn credit_code(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let allow_all = |_: &str| true;
    let lenient = CreditCode::parse_allowing(text, &allow_all);
    let Ok(code) = CreditCode::parse(text) else {
        return;
    };
    assert!(lenient.is_ok(), "the allow list only ever widens: {text:?}");
    assert_eq!(code.as_str().chars().count(), 18);
    assert!(!code.as_str().chars().any(|c| c.is_ascii_lowercase()));
    assert_eq!(
        CreditCode::parse(code.as_str()).map(|c| c.as_str().to_owned()),
        Ok(code.as_str().to_owned())
    );
    assert_eq!(code.area_code().len(), 6);
}

/// A phone number that parses is `+86` and 11 digits, parses again to itself, and masks 4 digits.
pub fn phone(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(phone) = Phone::parse(text) else {
        return;
    };
    assert!(phone.as_str().starts_with("+861"), "{text:?}");
    assert_eq!(phone.national().len(), 11);
    assert!(phone.national().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(
        Phone::parse(phone.as_str()).map(|p| p.as_str().to_owned()),
        Ok(phone.as_str().to_owned())
    );
    assert_eq!(
        Phone::parse(phone.national()).map(|p| p.as_str().to_owned()),
        Ok(phone.as_str().to_owned())
    );
    assert_eq!(phone.masked().matches('*').count(), 4);
}

/// An e-licence identifier that parses is upper-case, keeps its GB/T 36904 parts, and parses again to
/// itself.
pub fn licence_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(id) = LicenceId::parse(text) else {
        return;
    };
    assert!(id.as_str().starts_with("1.2.156.3005.2."), "{text:?}");
    assert!(!id.as_str().chars().any(|c| c.is_ascii_lowercase()));
    assert_eq!(id.type_code().len(), 21);
    assert_eq!(id.issuer_code().len(), 18);
    assert_eq!(
        LicenceId::parse(id.as_str()).as_ref().map(LicenceId::as_str),
        Ok(id.as_str())
    );
}

/// One line of a licence import (JSON Lines): it reads into a `LicenceInput` or is refused, and what
/// reads writes back to the same input.
pub fn licence_import_line(data: &[u8]) {
    for line in data.split(|&b| b == b'\n') {
        let Ok(input) = serde_json::from_slice::<LicenceInput>(line) else {
            continue;
        };
        let again = serde_json::to_string(&input).expect("serialises");
        let back: LicenceInput = serde_json::from_str(&again).expect("reads back");
        assert_eq!(
            serde_json::to_value(&back).ok(),
            serde_json::to_value(&input).ok()
        );
        licence_id(input.id.as_bytes());
    }
}

/// The client the authorization-request harness validates against.
pub fn fixed_client() -> &'static Client {
    static CLIENT: OnceLock<Client> = OnceLock::new();
    CLIENT.get_or_init(|| Client {
        name: "fuzz".into(),
        redirect_uris: vec![
            "https://app.example.gov.cn/cb".into(),
            "http://127.0.0.1:9/cb".into(),
        ],
        post_logout_redirect_uris: vec!["https://app.example.gov.cn/bye".into()],
        scopes: authorize::SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        id_token_alg: Alg::RS256,
        sector: "app.example.gov.cn".into(),
        ..Client::example("fuzz-client")
    })
}

/// An authorization request (a query string or form body): only a registered redirect URI is ever
/// trusted, errors go only there, and what validates is a well-formed code + PKCE request that survives
/// being stored as a pending request.
pub fn authorization_request(data: &[u8]) {
    let params = Params::from_pairs(form_urlencoded::parse(data).into_owned());
    let client = fixed_client();
    let target = match authorize::trusted_target(&params, Some(client)) {
        Ok(target) => target,
        Err(Rejection::Page(_)) => return,
        Err(Rejection::Redirect(..)) => panic!("an untrusted redirect URI got a redirect"),
    };
    assert!(client.redirect_uris.contains(&target.redirect_uri));
    match authorize::validate(&params, client, target) {
        Ok(req) => {
            assert!(authorize::is_pkce_value(&req.code_challenge) && req.code_challenge.len() == 43);
            assert!(!req.scopes.is_empty());
            for scope in req.scopes.iter() {
                assert!(authorize::SCOPES.contains(&scope) && client.allows_scope(scope));
            }
            assert!(req.claims.as_ref().is_none_or(Value::is_object));
            assert!(req.max_age.is_none_or(|m| m >= 0));
            assert!(!req.has_prompt("none") || req.prompt.len() == 1);
            let stored = serde_json::to_string(&req).expect("a request serialises");
            let back: AuthRequest = serde_json::from_str(&stored).expect("and reads back");
            assert_eq!(back.code_challenge, req.code_challenge);
            assert_eq!(back.target.redirect_uri, req.target.redirect_uri);
            // Never below the client's minimum; above 2 only for an essential `acr` nobody can reach,
            // which then ends as a failed authentication (OIDC Core §5.5.1.1).
            let acr = req.required_acr(client);
            assert!(acr >= client.min_acr.max(1), "acr {acr}");
        }
        Err(Rejection::Redirect(target, error)) => {
            assert!(client.redirect_uris.contains(&target.redirect_uri));
            assert!(!error.code.as_str().is_empty());
        }
        Err(Rejection::Page(_)) => panic!("validation shows a page after the redirect URI was trusted"),
    }
}

/// A token request: the first line is the `Authorization` header, the rest the form body. Parameters are
/// single, bounded and non-empty or refused as `invalid_request`; Basic credentials round-trip.
pub fn token_request(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    if let Ok(header) = std::str::from_utf8(header)
        && let Some((id, secret)) = client_auth::parse_basic(header)
    {
        use base64::Engine;
        let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let again = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret)))
        );
        assert_eq!(client_auth::parse_basic(&again), Some((id, secret)));
    }
    let params = Params::from_pairs(form_urlencoded::parse(body).into_owned());
    for name in [
        "grant_type",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "scope",
        "client_id",
        "client_secret",
        "client_assertion_type",
        "client_assertion",
    ] {
        match params.get(name) {
            Ok(Some(value)) => assert!(!value.is_empty() && value.len() <= MAX_VALUE),
            Ok(None) => {}
            Err(e) => assert_eq!(e.code, "invalid_request"),
        }
    }
    if let Ok(Some(assertion)) = params.get("client_assertion") {
        client_assertion(assertion.as_bytes());
    }
}

/// A client assertion as read before its signature is checked: only an accepted asymmetric algorithm,
/// never a key of its own.
pub fn client_assertion(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((header, claims)) = client_auth::read_assertion(text) {
        assert!(matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::EdDSA
        ));
        assert!(header.jwk.is_none() && header.jku.is_none() && header.x5u.is_none());
        let _ = (claims.iss, claims.sub, claims.exp, claims.iat, claims.jti);
    }
}

/// yunid's own signing keys, made once per process in memory.
fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| KeySet::generate(0).expect("fuzzing keys"))
}

/// A JWT as an ID token hint or bearer token: nothing made outside verifies against our keys (they exist
/// only in this process), and a JSON object we sign verifies back to itself with every algorithm.
pub fn jwt_verify(data: &[u8]) {
    let keys = keys();
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(
            keys.verify(text).is_err(),
            "a token made outside verified: {text:?}"
        );
    }
    if let Ok(claims @ Value::Object(_)) = serde_json::from_slice::<Value>(data) {
        for alg in [Alg::RS256, Alg::ES256, Alg::EdDSA] {
            let token = keys.sign(alg, "JWT", &claims).expect("signing");
            let (header, back) = keys.verify(&token).expect("our own token verifies");
            assert_eq!(header["alg"], json!(alg.as_str()));
            assert_eq!(back, claims);
            // One changed byte in the payload and it no longer verifies.
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            let flipped = if parts[1].starts_with('A') { "B" } else { "A" };
            parts[1].replace_range(..1, flipped);
            assert!(keys.verify(&parts.join(".")).is_err());
        }
    }
}

/// A browser's WebAuthn answer (login or registration), as JSON: it parses or is refused, and what
/// parses serialises again.
pub fn webauthn_json(data: &[u8]) {
    if let Ok(credential) = serde_json::from_slice::<webauthn_rs_proto::PublicKeyCredential>(data) {
        let again = serde_json::to_string(&credential).expect("serialises");
        let back: webauthn_rs_proto::PublicKeyCredential = serde_json::from_str(&again).expect("reads back");
        assert_eq!(back.id, credential.id);
    }
    if let Ok(credential) = serde_json::from_slice::<webauthn_rs_proto::RegisterPublicKeyCredential>(data) {
        let again = serde_json::to_string(&credential).expect("serialises");
        let back: webauthn_rs_proto::RegisterPublicKeyCredential =
            serde_json::from_str(&again).expect("reads back");
        assert_eq!(back.id, credential.id);
    }
}

/// The SMS webhook settings (first line the URL, the rest the secret): accepted only with an http(s)
/// URL and a secret of at least 16 bytes; a signature covers timestamp and body.
pub fn sms_webhook_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (url, secret) = text.split_once('\n').unwrap_or((text, ""));
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    if crate::services::sms::WebhookGateway::new(url.to_owned(), secret).is_ok() {
        assert!(secret.len() >= 16);
        let parsed = url::Url::parse(url).expect("an accepted URL parses");
        assert!(matches!(parsed.scheme(), "http" | "https"), "{url}");
        assert!(parsed.fragment().is_none());
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
        let a = crate::services::sms::WebhookGateway::signature(&key, 1, b"{}");
        let b = crate::services::sms::WebhookGateway::signature(&key, 2, b"{}");
        assert_ne!(a, b, "the timestamp is signed");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_harness_takes_empty_and_odd_input() {
        for (name, run) in super::TARGETS {
            for input in [&b""[..], b"\xff\xfe", b"{}", b"a=b&a=c", b"\n"] {
                run(input);
                let _ = name;
            }
        }
    }
}
