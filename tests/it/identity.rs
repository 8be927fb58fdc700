//! One identity per person and per organisation: checksums at the edge, encrypted ID numbers, unique
//! identities, pairwise subjects, acting for an organisation, and the consent-gated `identity` scope.

use std::collections::HashMap;

use openidconnect::{OAuth2TokenResponse, TokenResponse};
use serde_json::Value;
use yunid::services::identity::{self, IdentityError, NewRepresentation};
use yunid::services::registry::{NewClient, NewPerson, PersonError};
use yunid::store::orgs::{Matters, Role};

use crate::common::browser::{Page, field};
use crate::common::rp::{Rp, http_client};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, resident_id};
use crate::on_both_backends;

pub(crate) const COMPANY: &str = "91350100M000100Y43";

/// The claims of a JWT (its signature is checked elsewhere: by the RP library, or not needed).
fn payload(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&yunid::crypto::b64url_decode(part).unwrap()).unwrap()
}

pub(crate) async fn org_client(env: &Env, host: &str, matters: &[&str]) -> TestClient {
    env.client_with(NewClient {
        name: "企业开办".into(),
        redirect_uris: vec![format!("http://{host}:9/cb")],
        scopes: ["openid", "profile", "org", "offline_access"]
            .map(String::from)
            .to_vec(),
        matters: matters.iter().map(|m| (*m).to_owned()).collect(),
        ..NewClient::default()
    })
    .await
}

async fn company_with(env: &Env, person_id: &str, role: Role, matters: Matters) -> (String, String) {
    let org = identity::add_org(
        &env.app.db,
        COMPANY,
        "福州示例科技有限公司",
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    let rep = identity::grant(
        &env.app.db,
        NewRepresentation {
            person_id: person_id.to_owned(),
            org_id: org.id.clone(),
            role,
            matters,
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

/// Signs in through the RP, choosing whom to act for when the act-as page appears.
pub(crate) async fn sign_in_acting(
    env: &Env,
    rp: &Rp,
    browser: &Browser,
    scopes: &[&str],
    act_for: Option<&str>,
) -> (openidconnect::core::CoreTokenResponse, Option<String>) {
    let attempt = rp.start(scopes);
    let mut page = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    let mut offered = None;
    if let Page::Html { body, .. } = &page {
        assert!(body.contains("action=\"/act-as\""), "unexpected page: {body}");
        offered = Some(body.clone());
        let choice = match act_for {
            None => String::new(),
            Some(code) => {
                let re = regex_lite::Regex::new(&format!(r#"value="([^"]*)">\s*<label[^>]*>[^<]*{code}"#))
                    .unwrap();
                re.captures(body)
                    .map(|c| c[1].to_owned())
                    .expect("the organisation is offered")
            }
        };
        let csrf = field(body, "csrf").unwrap();
        let req = field(body, "req").unwrap();
        page = browser
            .post("/act-as", &[("csrf", &csrf), ("req", &req), ("acting", &choice)])
            .await;
        // Consent comes after the choice: it is given for the organisation chosen.
        if page.is_consent() {
            page = browser.consent(&page, true).await;
        }
    }
    let params = page.params();
    assert_eq!(params["iss"], env.base);
    let tokens = rp.exchange(&params["code"], attempt.verifier).await.unwrap();
    let id_token = tokens.id_token().unwrap();
    id_token
        .claims(&rp.client.id_token_verifier(), &attempt.nonce)
        .expect("valid ID token");
    (tokens, offered)
}

pub(crate) async fn userinfo(env: &Env, access_token: &str) -> (u16, Value) {
    let res = http()
        .get(env.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn registration_says_which_check_failed(backend: Backend) {
    let inbox = crate::common::sms::SmsInbox::start(0).await;
    let url = inbox.url.clone();
    let env = Env::start_with(backend, move |c| {
        c.self_registration = true;
        c.sms_gateway = "webhook".into();
        c.sms_webhook_url = Some(url.clone());
        c.sms_webhook_secret = Some("sms-webhook-secret-for-tests".into());
    })
    .await;
    let browser = Browser::new(&env.base);
    let page = browser.get("/register").await;
    let csrf = field(page.html().2, "csrf").unwrap();

    // Step 1: a number that is not a mobile number is a typing mistake, and is said so.
    let page = browser
        .post("/register/code", &[("csrf", &csrf), ("phone", "12345")])
        .await;
    let (_, status, body) = page.html();
    assert_eq!(status.as_u16(), 422);
    assert!(body.contains("手机"), "{body}");
    let page = browser
        .post("/register/code", &[("csrf", &csrf), ("phone", "13900139000")])
        .await;
    let attempt = field(page.html().2, "attempt").expect("the code form");
    let code = inbox.last_code();

    // Step 2: each typing mistake is named, and none uses up the code.
    let register_with = |id: &'static str, password: &'static str| {
        let (browser, csrf, attempt, code) = (&browser, &csrf, &attempt, &code);
        async move {
            let form = [
                ("csrf", csrf.as_str()),
                ("attempt", attempt.as_str()),
                ("phone", "13900139000"),
                ("code", code.as_str()),
                ("id_number", id),
                ("name", "李四"),
                ("password", password),
            ];
            let page = browser.post("/register", &form).await;
            let (_, status, body) = page.html();
            (status.as_u16(), body.to_owned())
        }
    };
    let register = |id: &'static str| register_with(id, "a long passphrase");
    let (status, body) = register("110105194912310021").await;
    assert_eq!(status, 422);
    assert!(body.contains("校验位"), "{body}");
    let feb30 = with_check("11010519490230002");
    let feb30: &'static str = Box::leak(feb30.into_boxed_str());
    let (status, body) = register(feb30).await;
    assert_eq!(status, 422);
    assert!(body.contains("出生日期") || body.contains("birth"), "{body}");
    let (status, body) = register("11010519491231").await;
    assert_eq!(status, 422);
    assert!(body.contains("18"), "{body}");

    let (status, body) = register_with("11010519491231002X", "woaini1314").await;
    assert_eq!(status, 422);
    assert!(body.contains("常见"), "a breached password is refused: {body}");

    // Lower-case x is the same number; nothing was written by the refusals above.
    let (status, body) = register("11010519491231002x").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        yunid::services::login::find_person(&env.app, ALICE_ID)
            .await
            .unwrap()
            .is_some()
    );
}

async fn credit_codes_are_checked_and_pilot_codes_can_be_allowed(backend: Backend) {
    let env = Env::start(backend).await;
    identity::add_org(
        &env.app.db,
        COMPANY,
        "福州示例",
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .unwrap();
    let dup = identity::add_org(
        &env.app.db,
        &COMPANY.to_lowercase(),
        "again",
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await;
    assert!(matches!(dup, Err(IdentityError::Conflict)), "{dup:?}");
    let bad = "91350100M000100Y44";
    let refused = identity::add_org(
        &env.app.db,
        bad,
        "pilot",
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await;
    match refused {
        Err(IdentityError::CreditCode(e)) => assert_eq!(e.code(), "check_character"),
        other => panic!("expected a check-character error, got {other:?}"),
    }
    env.app
        .db
        .allow_credit_code(bad, "admin", env.app.now())
        .await
        .unwrap();
    identity::add_org(
        &env.app.db,
        bad,
        "pilot",
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await
    .expect("allow-listed pilot code");
    let garbage = identity::add_org(
        &env.app.db,
        "91350100M000100IO3",
        "x",
        "enterprise",
        env.app.now(),
        env.app.random.as_ref(),
    )
    .await;
    assert!(matches!(garbage, Err(IdentityError::CreditCode(_))));
}

async fn id_numbers_are_encrypted_at_rest(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    // Exercise the paths that touch the number: a good and a bad login by ID number.
    let client = env.client("http://127.0.0.1:9/cb").await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);
    let attempt = rp.start(&["profile"]);
    let login = browser.get(attempt.url.as_str()).await;
    browser.login(&login, ALICE_ID, "wrong password!").await;
    let page = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    assert!(page.params().contains_key("code"));

    let dump = match env.db.sqlite_path() {
        Some(path) => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal"] {
                let file = format!("{}{suffix}", path.display());
                bytes.extend(std::fs::read(&file).unwrap_or_default());
            }
            bytes
        }
        None => {
            let pool = &env.app.db.pool;
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT CONCAT_WS('|', id, id_number_hash, id_number_enc, name, phone) FROM persons",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let mut all = rows.join("\n");
            let failures: Vec<String> = sqlx::query_scalar("SELECT key FROM login_failures")
                .fetch_all(pool)
                .await
                .unwrap();
            all.push_str(&failures.join("\n"));
            all.into_bytes()
        }
    };
    assert!(!dump.is_empty());
    let text = String::from_utf8_lossy(&dump);
    assert!(
        text.contains("+8613800138000"),
        "the dump should contain the (unencrypted) phone: sanity"
    );
    assert!(!text.contains(ALICE_ID), "the plain ID number is in the database");
    assert!(
        !text.contains(&ALICE_ID[..17]),
        "the ID number body is in the database"
    );

    let logs = crate::common::captured_logs();
    assert!(
        logs.contains("INSERT INTO persons") || logs.contains("persons"),
        "logs are captured: sanity"
    );
    assert!(!logs.contains(&ALICE_ID[..17]), "the ID number reached the log");
}

async fn one_person_per_id_number_even_when_registered_concurrently(backend: Backend) {
    let env = Env::start(backend).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let app = env.app.clone();
        tasks.push(tokio::spawn(async move {
            app.registry()
                .add_person(
                    NewPerson {
                        id_number: ALICE_ID.into(),
                        name: "张三".into(),
                        phone: Some(format!("1380013{:04}", 8000 + i)),
                        phone_verified: true,
                        password: None,
                    },
                    app.now(),
                )
                .await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(PersonError::Conflict) => conflicts += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 9));
}

async fn subjects_are_pairwise_per_sector(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let in_sector_a = |path: &str| NewClient {
        name: "测试应用".into(),
        redirect_uris: vec![format!("http://127.0.0.1:9/{path}")],
        sector: Some("a.example".into()),
        ..NewClient::default()
    };
    let sector_a1 = env.client_with(in_sector_a("one")).await;
    let sector_a2 = env.client_with(in_sector_a("two")).await;
    let sector_b = env.client("http://localhost:9/cb").await;
    let public = env
        .client_with(NewClient {
            name: "门户".into(),
            redirect_uris: vec!["http://localhost:9/portal".into()],
            public_subject: true,
            ..NewClient::default()
        })
        .await;
    let browser = Browser::new(&env.base);
    let mut subs = HashMap::new();
    for (label, client) in [
        ("a1", &sector_a1),
        ("a2", &sector_a2),
        ("b", &sector_b),
        ("pub", &public),
        ("a1again", &sector_a1),
    ] {
        let rp = Rp::discover(&env.base, client).await;
        let attempt = rp.start(&[]);
        let page = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
        let tokens = rp
            .exchange(&page.params()["code"], attempt.verifier)
            .await
            .unwrap();
        let claims = tokens
            .id_token()
            .unwrap()
            .claims(&rp.client.id_token_verifier(), &attempt.nonce)
            .unwrap();
        subs.insert(label, claims.subject().as_str().to_owned());
    }
    assert_eq!(subs["a1"], subs["a2"], "same sector, same subject");
    assert_eq!(subs["a1"], subs["a1again"], "stable");
    assert_ne!(subs["a1"], subs["b"], "different sectors, different subjects");
    let person = yunid::services::login::find_person(&env.app, ALICE_ID)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        subs["pub"], person.id,
        "a public-subject client sees the person id"
    );
    assert_ne!(subs["a1"], person.id);
}

async fn legal_representative_acts_for_the_company_end_to_end(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    company_with(&env, &alice, Role::LegalRepresentative, Matters::all()).await;
    let client = org_client(&env, "127.0.0.1", &[]).await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);

    // As herself first: the plain subject, no org.
    let (own, offered) = sign_in_acting(&env, &rp, &browser, &["org", "profile"], None).await;
    assert!(offered.unwrap().contains("福州示例科技有限公司"));
    let own_claims = payload(own.id_token().unwrap().to_string().as_str());
    assert!(own_claims.get("org").is_none());
    let own_sub = own_claims["sub"].as_str().unwrap().to_owned();

    // Then for the company.
    let (acting, _) = sign_in_acting(&env, &rp, &browser, &["org", "profile"], Some(COMPANY)).await;
    let claims = payload(acting.id_token().unwrap().to_string().as_str());
    assert_ne!(claims["sub"], own_sub, "the organisation is the subject");
    assert_eq!(claims["act"]["sub"], own_sub, "act names the person");
    assert_eq!(claims["org"]["credit_code"], COMPANY);
    assert_eq!(claims["org"]["role"], "legal_representative");
    assert_eq!(claims["org"]["matters"], "all");
    let at = payload(acting.access_token().secret());
    assert_eq!(at["sub"], claims["sub"]);
    assert_eq!(at["act"]["sub"], own_sub);

    let (status, info) = userinfo(&env, acting.access_token().secret()).await;
    assert_eq!(status, 200);
    assert_eq!(info["sub"], claims["sub"]);
    assert_eq!(info["org"]["name"], "福州示例科技有限公司");
    assert_eq!(info["act"]["sub"], own_sub);
    assert_eq!(info["act"]["name"], "张三");
}

async fn an_app_can_preselect_the_company_in_login_hint(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    company_with(&env, &alice, Role::Manager, Matters::all()).await;
    let client = org_client(&env, "127.0.0.1", &[]).await;
    let browser = Browser::new(&env.base);
    let (challenge_verifier, challenge) = crate::common::pkce();
    let mut url = url::Url::parse(&env.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client.id)
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("scope", "openid org")
        .append_pair("login_hint", &format!("org:{COMPANY}"))
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let page = browser.sign_in(url.as_str(), ALICE_ID, PASSWORD).await;
    // The hint preselects the company on the act-as page; Alice still chooses (issue: the app must not
    // choose for her), then consents for it.
    let body = page.html().2;
    let chosen = regex_lite::Regex::new(r#"name="acting" value="([^"]+)" checked"#)
        .unwrap()
        .captures(body)
        .map(|c| c[1].to_owned())
        .expect("the hinted company is preselected");
    let csrf = field(body, "csrf").unwrap();
    let req = field(body, "req").unwrap();
    let page = browser
        .post("/act-as", &[("csrf", &csrf), ("req", &req), ("acting", &chosen)])
        .await;
    let page = browser.consent(&page, true).await;
    let code = page.params()["code"].clone();
    let res = http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", &challenge_verifier),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let claims = payload(body["id_token"].as_str().unwrap());
    assert_eq!(claims["org"]["credit_code"], COMPANY);
    assert_eq!(claims["org"]["role"], "manager");
}

async fn agent_acts_for_company_only_within_matters(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    company_with(&env, &alice, Role::Agent, Matters::Only(vec!["TAX-001".into()])).await;
    let browser = Browser::new(&env.base);

    // The tax app handles TAX-001: the company is offered.
    let tax = org_client(&env, "127.0.0.1", &["TAX-001"]).await;
    let rp = Rp::discover(&env.base, &tax).await;
    let (tokens, offered) = sign_in_acting(&env, &rp, &browser, &["org"], Some(COMPANY)).await;
    assert!(offered.is_some());
    assert_eq!(
        payload(tokens.id_token().unwrap().to_string().as_str())["org"]["matters"][0],
        "TAX-001"
    );

    // The licensing app handles another matter: no choice is offered and she is herself there.
    let licensing = org_client(&env, "localhost", &["LIC-009"]).await;
    let rp = Rp::discover(&env.base, &licensing).await;
    let (tokens, offered) = sign_in_acting(&env, &rp, &browser, &["org"], None).await;
    assert!(
        offered.is_none(),
        "the act-as page must not offer a company outside the agent's matters"
    );
    assert!(
        payload(tokens.id_token().unwrap().to_string().as_str())
            .get("org")
            .is_none()
    );

    // Forging the choice does not help.
    let attempt = rp.start(&["org"]);
    let page = browser.get(attempt.url.as_str()).await;
    assert!(
        page.params().contains_key("code"),
        "SSO: straight back to the app"
    );
}

async fn only_representatives_and_managers_appoint_agents(backend: Backend) {
    let env = Env::start(backend).await;
    let boss = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let clerk = env.person(&resident_id(11), "13900139011", PASSWORD).await;
    let other = env.person(&resident_id(13), "13900139013", PASSWORD).await;
    let now = env.app.now();
    let (org_id, _) = company_with(
        &env,
        &boss,
        Role::Manager,
        Matters::Only(vec!["A".into(), "B".into()]),
    )
    .await;
    let agent = |person: &str, matters: Matters, until: Option<i64>| NewRepresentation {
        person_id: person.to_owned(),
        org_id: org_id.clone(),
        role: Role::Agent,
        matters,
        valid_from: now - 5,
        valid_until: until,
    };
    identity::appoint_agent(
        &env.app.db,
        &boss,
        agent(&clerk, Matters::Only(vec!["A".into()]), Some(now + 3600)),
        now,
        env.app.random.as_ref(),
    )
    .await
    .expect("a manager appoints an agent within her matters");
    let beyond = identity::appoint_agent(
        &env.app.db,
        &boss,
        agent(&other, Matters::all(), None),
        now,
        env.app.random.as_ref(),
    )
    .await;
    assert!(matches!(beyond, Err(IdentityError::Forbidden(_))), "{beyond:?}");
    let by_agent = identity::appoint_agent(
        &env.app.db,
        &clerk,
        agent(&other, Matters::Only(vec!["A".into()]), Some(now + 60)),
        now,
        env.app.random.as_ref(),
    )
    .await;
    assert!(
        matches!(by_agent, Err(IdentityError::Forbidden(_))),
        "an agent may not appoint: {by_agent:?}"
    );
    let outsider = identity::appoint_agent(
        &env.app.db,
        &other,
        agent(&clerk, Matters::Only(vec!["A".into()]), None),
        now,
        env.app.random.as_ref(),
    )
    .await;
    assert!(matches!(outsider, Err(IdentityError::Forbidden(_))));
    let backwards = identity::appoint_agent(
        &env.app.db,
        &boss,
        NewRepresentation {
            valid_until: Some(now - 10),
            ..agent(&other, Matters::Only(vec!["B".into()]), None)
        },
        now,
        env.app.random.as_ref(),
    )
    .await;
    assert!(
        matches!(backwards, Err(IdentityError::Invalid(_))),
        "{backwards:?}"
    );
}

async fn revoking_a_representation_cuts_refresh_at_once(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let (_, rep) = company_with(&env, &alice, Role::Agent, Matters::all()).await;
    let client = org_client(&env, "127.0.0.1", &[]).await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);
    let (tokens, _) = sign_in_acting(&env, &rp, &browser, &["org", "offline_access"], Some(COMPANY)).await;
    let refresh = tokens.refresh_token().unwrap().clone();
    let refreshed = rp
        .client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http_client)
        .await
        .unwrap();

    assert!(env.app.db.revoke_rep(&rep, env.app.now()).await.unwrap());
    let err = rp
        .client
        .exchange_refresh_token(refreshed.refresh_token().unwrap())
        .unwrap()
        .request_async(&http_client)
        .await
        .expect_err("refresh after revocation");
    assert!(format!("{err:?}").contains("invalid_grant"), "{err:?}");
    let (status, _) = userinfo(&env, refreshed.access_token().secret()).await;
    assert_eq!(status, 401);
}

async fn identity_scope_needs_the_admin_and_the_person(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    env.app
        .db
        .set_real_name(&alice, 2, "online", "mps", env.app.now())
        .await
        .unwrap();
    let browser = Browser::new(&env.base);
    let claims_param = r#"{"userinfo":{"verified_claims":{"verification":{"trust_framework":null},"claims":{"name":null,"birthdate":null}}}}"#;
    let authorize = |client: &TestClient, challenge: &str| {
        let mut url = url::Url::parse(&env.url("/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client.id)
            .append_pair("redirect_uri", &client.redirect_uri)
            .append_pair("scope", "openid identity")
            .append_pair("claims", claims_param)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        url.to_string()
    };

    // An app the admin did not allow `identity` gets no such scope (and so no ID number).
    let plain = env.client("http://127.0.0.1:9/plain").await;
    let (verifier, challenge) = crate::common::pkce();
    let page = browser
        .sign_in(&authorize(&plain, &challenge), ALICE_ID, PASSWORD)
        .await;
    let res = http()
        .post(env.url("/token"))
        .basic_auth(&plain.id, Some(&plain.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &page.params()["code"]),
            ("redirect_uri", &plain.redirect_uri),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["scope"], "openid",
        "identity is not granted to an app the admin did not allow"
    );
    let (status, info) = userinfo(&env, body["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert!(
        info.get("id_number").is_none() && info.get("verified_claims").is_none(),
        "{info}"
    );

    // An allowed app: the person is asked, and declining sends nothing.
    let allowed = env
        .client_with(NewClient {
            name: "公积金".into(),
            redirect_uris: vec!["http://127.0.0.1:9/allowed".into()],
            scopes: ["openid", "identity"].map(String::from).to_vec(),
            ..NewClient::default()
        })
        .await;
    let (_, challenge) = crate::common::pkce();
    let consent = browser.get(&authorize(&allowed, &challenge)).await;
    assert!(consent.is_consent());
    assert!(consent.html().2.contains("身份证号码"));
    let declined = browser.consent(&consent, false).await;
    assert_eq!(declined.params()["error"], "access_denied");

    let rp = Rp::discover(&env.base, &allowed).await;
    let attempt = rp.start(&["identity"]);
    let url = format!("{}&claims={}", attempt.url, urlencode(claims_param));
    let consent = browser.get(&url).await;
    let back = browser.consent(&consent, true).await;
    let tokens = rp
        .exchange(&back.params()["code"], attempt.verifier)
        .await
        .unwrap();
    let (status, info) = userinfo(&env, tokens.access_token().secret()).await;
    assert_eq!(status, 200);
    assert_eq!(info["id_number"], ALICE_ID);
    assert_eq!(info["real_name_level"], 2);
    let vc = &info["verified_claims"];
    assert_eq!(vc["verification"]["trust_framework"], "cn_gov");
    assert_eq!(vc["verification"]["evidence"][0]["type"], "document");
    assert_eq!(
        vc["verification"]["evidence"][0]["document_details"]["type"],
        "idcard"
    );
    assert_eq!(vc["claims"]["birthdate"], "1949-12-31");

    let metadata: Value = http()
        .get(env.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["verified_claims_supported"], true);
    assert!(
        metadata["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "identity")
    );
    assert!(
        metadata["trust_frameworks_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "cn_gov")
    );
}

/// Appends the GB 11643 check character to 17 digits.
fn with_check(body: &str) -> String {
    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(weights)
        .map(|(c, w)| c.to_digit(10).unwrap() * w)
        .sum();
    format!("{body}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

on_both_backends!(
    registration_says_which_check_failed,
    credit_codes_are_checked_and_pilot_codes_can_be_allowed,
    id_numbers_are_encrypted_at_rest,
    one_person_per_id_number_even_when_registered_concurrently,
    subjects_are_pairwise_per_sector,
    legal_representative_acts_for_the_company_end_to_end,
    an_app_can_preselect_the_company_in_login_hint,
    agent_acts_for_company_only_within_matters,
    only_representatives_and_managers_appoint_agents,
    revoking_a_representation_cuts_refresh_at_once,
    identity_scope_needs_the_admin_and_the_person,
);
