//! Who gets whose data at the edges of the protocol: the person (not the app) chooses the organisation,
//! consent is given per organisation, acting needs the `org` scope, `id_token_hint` and a `claims` sub
//! value name the grant's subject (an organisation too), an essential `acr` is met or refused and the
//! answer is one of the values asked, PAR accepts its own endpoint as assertion audience, userinfo
//! answers by RFC 6750, and discovery lists the assertion algorithms wherever private_key_jwt is offered.

use reqwest::StatusCode;
use serde_json::{Value, json};
use yunid::services::identity::{self, NewRepresentation};
use yunid::services::registry::NewClient;
use yunid::store::clients::AuthMethod;
use yunid::store::orgs::{Matters, Role};

use crate::common::browser::{Page, field};
use crate::common::jwks_server::{self, AppKey};
use crate::common::wire::jwt_parts;
use crate::common::{
    ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, pkce, resident_id,
};
use crate::on_both_backends;

const FIRST: &str = "91350100M000100Y43";
const SECOND_NAME: &str = "厦门第二贸易有限公司";

/// A company Alice manages; returns (org id, representation id).
async fn company(env: &Env, alice: &str, code: &str, name: &str) -> (String, String) {
    let org = identity::add_org(
        &env.app.db,
        code,
        name,
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    let rep = identity::grant(
        &env.app.db,
        NewRepresentation {
            person_id: alice.to_owned(),
            org_id: org.id.clone(),
            role: Role::Manager,
            matters: Matters::all(),
            valid_from: env.app.now() - 10,
            valid_until: None,
        },
        "test",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    (org.id, rep.id)
}

/// A second valid credit code (GB 32100 check character computed).
fn second_code() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    let body = "91350200M000200Y4";
    let sum: usize = body
        .bytes()
        .enumerate()
        .map(|(i, b)| {
            let v = ALPHABET.iter().position(|a| *a == b).unwrap();
            let w = (0..i).fold(1usize, |w, _| w * 3 % 31);
            v * w
        })
        .sum();
    let check = ALPHABET[(31 - sum % 31) % 31] as char;
    format!("{body}{check}")
}

async fn org_app(env: &Env) -> TestClient {
    env.client_with(NewClient {
        name: "企业开办".into(),
        redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
        scopes: ["openid", "profile", "org"].map(String::from).to_vec(),
        ..NewClient::default()
    })
    .await
}

/// An authorization URL for `client` with extra parameters; returns (url, verifier).
fn authorize(env: &Env, client: &TestClient, scope: &str, extra: &[(&str, &str)]) -> (String, String) {
    let (verifier, challenge) = pkce();
    let mut url = url::Url::parse(&env.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "st")
        .append_pair("nonce", "n")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    (url.to_string(), verifier)
}

/// Redeems the code on `page`; returns the token response.
async fn redeem(env: &Env, client: &TestClient, page: &Page, verifier: &str) -> Value {
    let params = page.params();
    let code = params
        .get("code")
        .unwrap_or_else(|| panic!("no code: {params:?}"));
    let res = http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The `error` the app got back on `page`, if any.
fn error_code(page: &Page) -> Option<String> {
    page.params().get("error").cloned()
}

fn id_claims(tokens: &Value) -> Value {
    jwt_parts(tokens["id_token"].as_str().unwrap()).1
}

fn is_act_as(page: &Page) -> bool {
    matches!(page, Page::Html { body, .. } if body.contains("action=\"/act-as\""))
}

/// Chooses `rep` ("" for myself) on the act-as page.
async fn choose(browser: &Browser, page: &Page, rep: &str) -> Page {
    let body = page.html().2;
    let csrf = field(body, "csrf").unwrap();
    let req = field(body, "req").unwrap();
    browser
        .post("/act-as", &[("csrf", &csrf), ("req", &req), ("acting", rep)])
        .await
}

/// The app names a company in `login_hint`: the act-as page still appears (the company preselected),
/// the person chooses, and consent is asked for that company by name. Silently (`prompt=none`) the app
/// gets the same `consent_required` for a company never consented, for one the person does not
/// represent, and for one that does not exist; only a company consented to before is answered.
async fn the_person_chooses_the_company_and_consents_for_each(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let (_, first_rep) = company(&env, &alice, FIRST, "福州示例科技有限公司").await;
    let second = second_code();
    let (_, second_rep) = company(&env, &alice, &second, SECOND_NAME).await;
    let client = org_app(&env).await;
    let browser = Browser::new(&env.base);

    let hint = format!("org:{FIRST}");
    let (url, verifier) = authorize(&env, &client, "openid org", &[("login_hint", &hint)]);
    let login = browser.get(&url).await;
    let page = browser.login(&login, ALICE_ID, PASSWORD).await;
    assert!(is_act_as(&page), "the hint does not choose for her: {page:?}");
    let body = page.html().2;
    assert!(
        body.contains(&format!(r#"value="{first_rep}" checked"#)),
        "the hinted company is preselected: {body}"
    );
    let consent = choose(&browser, &page, &first_rep).await;
    assert!(consent.is_consent(), "{consent:?}");
    assert!(
        consent.html().2.contains("福州示例科技有限公司"),
        "consent names the company"
    );
    let back = browser.consent(&consent, true).await;
    let tokens = redeem(&env, &client, &back, &verifier).await;
    let first_sub = id_claims(&tokens)["sub"].as_str().unwrap().to_owned();
    assert_eq!(id_claims(&tokens)["org"]["credit_code"], FIRST);

    // Silently, for each company: consented → a code; never consented, not represented, not existing →
    // the same consent_required.
    let silent = |code: String| {
        let (env, client, browser) = (&env, &client, &browser);
        async move {
            let hint = format!("org:{code}");
            let (url, verifier) = authorize(
                env,
                client,
                "openid org",
                &[("login_hint", &hint), ("prompt", "none")],
            );
            (browser.get(&url).await, verifier)
        }
    };
    let (page, verifier) = silent(FIRST.to_owned()).await;
    let tokens = redeem(&env, &client, &page, &verifier).await;
    assert_eq!(id_claims(&tokens)["sub"], first_sub.as_str());
    for code in [
        second.clone(),
        "91110000600037341L".to_owned(),
        "9135010000000000XX".to_owned(),
    ] {
        let (page, _) = silent(code.clone()).await;
        assert_eq!(
            error_code(&page).as_deref(),
            Some("consent_required"),
            "{code}: {page:?}"
        );
    }

    // Interactively, the second company needs its own consent.
    let (url, _) = authorize(&env, &client, "openid org", &[]);
    let page = browser.get(&url).await;
    assert!(is_act_as(&page), "{page:?}");
    let consent = choose(&browser, &page, &second_rep).await;
    assert!(
        consent.is_consent(),
        "a consent for the first company is not one for the second: {consent:?}"
    );
    assert!(consent.html().2.contains(SECOND_NAME));
}

/// An app that did not ask for `org` cannot be given an organisation's subject: the act-as form for its
/// request is refused, and the code it gets is the person's.
async fn acting_needs_the_org_scope(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let (_, rep) = company(&env, &alice, FIRST, "福州示例科技有限公司").await;
    let client = org_app(&env).await;
    let browser = Browser::new(&env.base);
    let (url, verifier) = authorize(&env, &client, "openid profile", &[]);
    let login = browser.get(&url).await;
    let consent = browser.login(&login, ALICE_ID, PASSWORD).await;
    assert!(consent.is_consent(), "{consent:?}");
    let refused = choose(&browser, &consent, &rep).await;
    let (_, status, _) = refused.html();
    assert_eq!(status, StatusCode::FORBIDDEN);
    let back = browser.consent(&consent, true).await;
    let claims = id_claims(&redeem(&env, &client, &back, &verifier).await);
    assert!(
        claims.get("org").is_none() && claims.get("act").is_none(),
        "{claims}"
    );
}

/// Silent renewal of a grant made for a company: the app's `id_token_hint` names the company's subject,
/// and the answer is a code for that company again. A login for the request as someone other than the
/// hint names gets `login_required`, never a code.
async fn an_id_token_hint_names_the_grant_subject(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.person(&resident_id(8), "13900139008", PASSWORD).await;
    let (_, rep) = company(&env, &alice, FIRST, "福州示例科技有限公司").await;
    let client = org_app(&env).await;
    let browser = Browser::new(&env.base);
    let (url, verifier) = authorize(&env, &client, "openid org", &[]);
    let login = browser.get(&url).await;
    let page = browser.login(&login, ALICE_ID, PASSWORD).await;
    let consent = choose(&browser, &page, &rep).await;
    let back = browser.consent(&consent, true).await;
    let tokens = redeem(&env, &client, &back, &verifier).await;
    let id_token = tokens["id_token"].as_str().unwrap().to_owned();
    let org_sub = id_claims(&tokens)["sub"].clone();

    let (url, verifier) = authorize(
        &env,
        &client,
        "openid org",
        &[("prompt", "none"), ("id_token_hint", &id_token)],
    );
    let page = browser.get(&url).await;
    let renewed = redeem(&env, &client, &page, &verifier).await;
    assert_eq!(id_claims(&renewed)["sub"], org_sub);
    assert_eq!(id_claims(&renewed)["org"]["credit_code"], FIRST);

    // Another browser: Bob signs in for a request that names Alice's company.
    let other = Browser::new(&env.base);
    let (url, _) = authorize(&env, &client, "openid org", &[("id_token_hint", &id_token)]);
    let login = other.get(&url).await;
    let answer = other.login(&login, &resident_id(8), PASSWORD).await;
    assert_eq!(
        error_code(&answer).as_deref(),
        Some("login_required"),
        "{answer:?}"
    );
}

/// The `claims` parameter: a `sub` value naming someone else gets no code for the signed-in person; an
/// essential `acr` nobody can satisfy is refused; with essential values the `acr` returned is one of
/// them.
async fn the_claims_parameter_is_honoured_or_refused(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client("http://127.0.0.1:9/cb").await;
    let browser = Browser::new(&env.base);
    let (url, verifier) = authorize(&env, &client, "openid", &[]);
    let first = browser.sign_in(&url, ALICE_ID, PASSWORD).await;
    let alice_sub = id_claims(&redeem(&env, &client, &first, &verifier).await)["sub"].clone();

    let other = json!({ "id_token": { "sub": { "value": "someone-else" } } }).to_string();
    let (url, _) = authorize(&env, &client, "openid", &[("claims", &other), ("prompt", "none")]);
    let page = browser.get(&url).await;
    assert_eq!(error_code(&page).as_deref(), Some("login_required"));
    let own = json!({ "id_token": { "sub": { "value": alice_sub } } }).to_string();
    let (url, verifier) = authorize(&env, &client, "openid", &[("claims", &own), ("prompt", "none")]);
    let page = browser.get(&url).await;
    assert_eq!(
        id_claims(&redeem(&env, &client, &page, &verifier).await)["sub"],
        alice_sub
    );

    let impossible =
        json!({ "id_token": { "acr": { "essential": true, "values": ["urn:example:loa:4"] } } }).to_string();
    let (url, _) = authorize(&env, &client, "openid", &[("claims", &impossible)]);
    let page = browser.get(&url).await;
    assert_eq!(error_code(&page).as_deref(), Some("access_denied"));

    // A passkey-less two-factor session is not needed: a one-factor session asked for "1" reports "1".
    let one = json!({ "id_token": { "acr": { "essential": true, "values": ["1", "urn:x"] } } }).to_string();
    let (url, verifier) = authorize(&env, &client, "openid", &[("claims", &one)]);
    let page = browser.get(&url).await;
    assert_eq!(
        id_claims(&redeem(&env, &client, &page, &verifier).await)["acr"],
        "1"
    );
}

/// RFC 9126 §2: a private_key_jwt assertion whose audience is the PAR endpoint is accepted there.
async fn par_accepts_its_own_endpoint_as_assertion_audience(backend: Backend) {
    let env = Env::start(backend).await;
    let key = AppKey::new("par-key");
    let client = env
        .client_with(NewClient {
            name: "PAR 应用".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            auth_method: AuthMethod::PrivateKeyJwt,
            jwks: Some(jwks_server::set(&[&key]).to_string()),
            ..NewClient::default()
        })
        .await;
    let (_, challenge) = pkce();
    let assertion = key.assertion(&client.id, &env.url("/par"), env.app.now());
    let res = http()
        .post(env.url("/par"))
        .form(&[
            ("client_id", client.id.as_str()),
            (
                "client_assertion_type",
                yunid::services::oidc::client_auth::ASSERTION_TYPE,
            ),
            ("client_assertion", &assertion),
            ("response_type", "code"),
            ("redirect_uri", &client.redirect_uri),
            ("scope", "openid"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["request_uri"]
            .as_str()
            .unwrap()
            .starts_with("urn:ietf:params:oauth:request_uri:")
    );
}

/// RFC 6750 §3.1: no token → 401 with a bare challenge (no `error`); a valid token without `openid` →
/// 403 `insufficient_scope`.
async fn userinfo_answers_by_rfc_6750(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client("http://127.0.0.1:9/cb").await;
    let res = http().get(env.url("/userinfo")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");

    let browser = Browser::new(&env.base);
    let (url, verifier) = authorize(&env, &client, "profile", &[]);
    let back = browser.sign_in(&url, ALICE_ID, PASSWORD).await;
    let tokens = redeem(&env, &client, &back, &verifier).await;
    let res = http()
        .get(env.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
}

/// RFC 8414 §2: wherever private_key_jwt is offered, the signing algorithms are listed.
async fn discovery_lists_assertion_algorithms_for_every_endpoint(backend: Backend) {
    let env = Env::start(backend).await;
    let doc: Value = http()
        .get(env.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for endpoint in ["token", "introspection", "revocation"] {
        let methods = &doc[format!("{endpoint}_endpoint_auth_methods_supported")];
        assert!(methods.as_array().unwrap().iter().any(|m| m == "private_key_jwt"));
        let algs = &doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")];
        assert!(
            algs.as_array().is_some_and(|a| a.iter().any(|x| x == "ES256")),
            "{endpoint}: {algs}"
        );
    }
}

/// Consent for a company covers exactly what was consented for it: Alice allowed the app `profile` as
/// herself and only `openid org` for the company; a silent request for the company with `profile` is
/// `consent_required`. A `claims` sub value naming the company does not choose it either, and a person
/// who represents nobody gets the same answer for a silent company hint as anyone else.
async fn a_company_gets_only_what_was_consented_for_it(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let (_, rep) = company(&env, &alice, FIRST, "福州示例科技有限公司").await;
    env.person(&resident_id(9), "13900139009", PASSWORD).await;
    let client = org_app(&env).await;
    let browser = Browser::new(&env.base);

    // As herself, with profile.
    let (url, _) = authorize(&env, &client, "openid org profile", &[]);
    let login = browser.get(&url).await;
    let page = browser.login(&login, ALICE_ID, PASSWORD).await;
    let consent = choose(&browser, &page, "").await;
    let back = browser.consent(&consent, true).await;
    assert!(back.params().contains_key("code"), "{back:?}");
    // For the company, without profile.
    let (url, verifier) = authorize(&env, &client, "openid org", &[]);
    let page = browser.get(&url).await;
    let consent = choose(&browser, &page, &rep).await;
    let back = browser.consent(&consent, true).await;
    let org_sub = id_claims(&redeem(&env, &client, &back, &verifier).await)["sub"]
        .as_str()
        .unwrap()
        .to_owned();

    let hint = format!("org:{FIRST}");
    let (url, _) = authorize(
        &env,
        &client,
        "openid org profile",
        &[("login_hint", &hint), ("prompt", "none")],
    );
    let page = browser.get(&url).await;
    assert_eq!(error_code(&page).as_deref(), Some("consent_required"), "{page:?}");

    let named = json!({ "id_token": { "sub": { "value": org_sub } } }).to_string();
    let (url, _) = authorize(
        &env,
        &client,
        "openid org",
        &[("claims", &named), ("prompt", "none")],
    );
    let page = browser.get(&url).await;
    assert_eq!(error_code(&page).as_deref(), Some("consent_required"), "{page:?}");

    // Someone who represents nobody, consented as himself: the same answer for a company hint.
    let other = Browser::new(&env.base);
    let (url, _) = authorize(&env, &client, "openid org", &[]);
    let back = other.sign_in(&url, &resident_id(9), PASSWORD).await;
    assert!(back.params().contains_key("code"), "{back:?}");
    let (url, _) = authorize(
        &env,
        &client,
        "openid org",
        &[("login_hint", &hint), ("prompt", "none")],
    );
    let page = other.get(&url).await;
    assert_eq!(error_code(&page).as_deref(), Some("consent_required"), "{page:?}");
}

/// PATCHes app `id` as `token`; returns the status.
pub(crate) async fn patch_app(env: &Env, token: &str, id: &str, body: Value) -> u16 {
    let url = env.url(&format!("/admin/api/clients/{id}"));
    let got = http().get(&url).bearer_auth(token).send().await.unwrap();
    let etag = got.headers()["etag"].to_str().unwrap().to_owned();
    http()
        .patch(&url)
        .bearer_auth(token)
        .header("if-match", etag)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A department admin manages its own app but cannot widen whose data it receives: no `identity`,
/// `org` or `licences` scope, no public subjects, no redirect URI on another host, and no new app with
/// those scopes; a super admin can.
async fn only_a_super_admin_widens_what_an_app_receives(backend: Backend) {
    let env = Env::start(backend).await;
    let dept = crate::admin::admin_token(&env, "yunid:dept:tax").await;
    let superadmin = crate::admin::admin_token(&env, "yunid:admin").await;
    let app = crate::admin::department_app(&env, "tax").await;
    assert_eq!(
        patch_app(&env, &dept, &app.id, json!({ "name": "税务新名" })).await,
        200
    );
    for body in [
        json!({ "scopes": ["openid", "profile", "identity"] }),
        json!({ "scopes": ["openid", "org"] }),
        json!({ "subject_type": "public" }),
        json!({ "redirect_uris": ["https://health.example.gov.cn/cb"] }),
    ] {
        assert_eq!(patch_app(&env, &dept, &app.id, body.clone()).await, 403, "{body}");
    }
    assert_eq!(
        patch_app(
            &env,
            &superadmin,
            &app.id,
            json!({ "scopes": ["openid", "profile", "identity"] })
        )
        .await,
        200
    );
    let create = json!({ "name": "新应用", "department": "tax", "redirect_uris": ["https://tax.example.gov.cn/cb"],
        "scopes": ["openid", "identity"] });
    let res = http()
        .post(env.url("/admin/api/clients"))
        .bearer_auth(&dept)
        .json(&create)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

/// A grant acting for a company, refreshed with only `openid`: the subject stays the company's, but who
/// acted and the company's details are not in the new ID token (they follow the effective scope).
async fn a_refresh_without_org_carries_no_organisation_details(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let (_, rep) = company(&env, &alice, FIRST, "福州示例科技有限公司").await;
    let client = org_app(&env).await;
    let browser = Browser::new(&env.base);
    let (url, verifier) = authorize(&env, &client, "openid org", &[]);
    let login = browser.get(&url).await;
    let page = browser.login(&login, ALICE_ID, PASSWORD).await;
    let consent = choose(&browser, &page, &rep).await;
    let back = browser.consent(&consent, true).await;
    let tokens = redeem(&env, &client, &back, &verifier).await;
    let first = id_claims(&tokens);
    assert_eq!(first["org"]["credit_code"], FIRST);
    let res = http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("a refresh token"),
            ),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let narrowed = id_claims(&res.json().await.unwrap());
    assert_eq!(narrowed["sub"], first["sub"], "still the company's subject");
    assert!(
        narrowed.get("org").is_none() && narrowed.get("act").is_none(),
        "{narrowed}"
    );
}

on_both_backends!(
    a_refresh_without_org_carries_no_organisation_details,
    only_a_super_admin_widens_what_an_app_receives,
    a_company_gets_only_what_was_consented_for_it,
    the_person_chooses_the_company_and_consents_for_each,
    acting_needs_the_org_scope,
    an_id_token_hint_names_the_grant_subject,
    the_claims_parameter_is_honoured_or_refused,
    par_accepts_its_own_endpoint_as_assertion_audience,
    userinfo_answers_by_rfc_6750,
    discovery_lists_assertion_algorithms_for_every_endpoint,
);
