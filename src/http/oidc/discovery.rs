//! OpenID Connect Discovery 1.0 §3 and the JWKS.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use crate::app::App;
use crate::services::oidc::authorize::{PROMPTS, SCOPES};
use crate::services::oidc::claims;

pub async fn configuration(State(app): State<App>) -> impl IntoResponse {
    let c = &app.config;
    let mut doc = json!({
        "issuer": c.iss(),
        "authorization_endpoint": c.endpoint("/authorize"),
        "token_endpoint": c.endpoint("/token"),
        "userinfo_endpoint": c.endpoint("/userinfo"),
        "jwks_uri": c.endpoint("/jwks"),
        "pushed_authorization_request_endpoint": c.endpoint("/par"),
        "introspection_endpoint": c.endpoint("/introspect"),
        "revocation_endpoint": c.endpoint("/revoke"),
        "end_session_endpoint": c.endpoint("/logout"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["pairwise", "public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        // RFC 8414 §2: required wherever private_key_jwt is offered.
        "introspection_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid",
            "name", "birthdate", "gender", "phone_number", "phone_number_verified", "id_number",
            "real_name_level", "act", "org", "verified_claims"],
        // OpenID Connect for Identity Assurance 1.0 §8.
        "verified_claims_supported": true,
        "trust_frameworks_supported": [claims::TRUST_FRAMEWORK],
        "evidence_supported": ["document", "electronic_record"],
        "documents_supported": ["idcard"],
        "claims_in_verified_claims_supported": ["name", "birthdate", "gender", "licence_id", "licence_type_name",
            "licence_number", "licence_status", "holder_name", "valid_from", "area_code"],
        "claims_parameter_supported": true,
        "claim_types_supported": ["normal"],
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_pushed_authorization_requests": false,
        "authorization_response_iss_parameter_supported": true,
        "acr_values_supported": ["1", "2"],
        "prompt_values_supported": PROMPTS,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
        "ui_locales_supported": ["zh-CN", "en"],
    });
    // RFC 8628 §4: the device authorization grant.
    doc["device_authorization_endpoint"] = c.endpoint("/device_authorization").into();
    if let Some(grants) = doc["grant_types_supported"].as_array_mut() {
        grants.push(crate::services::device::GRANT_TYPE.into());
    }
    if c.dynamic_registration {
        doc["registration_endpoint"] = c.endpoint("/connect/register").into();
    }
    (
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        axum::Json(doc),
    )
}

pub async fn jwks(State(app): State<App>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::CACHE_CONTROL, "public, max-age=60"),
        ],
        app.keys().jwks_json().to_vec(),
    )
}
