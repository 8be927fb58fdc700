//! What an app's back end sees when a token request goes wrong: PKCE, code reuse and expiry, client
//! authentication, malformed requests. Codes come from a real browser flow; token requests are built
//! by hand so every parameter is under the test's control. No answer here may be a 5xx.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::Value;
use yunid::services::registry::NewClient;
use yunid::store::clients::AuthMethod;

use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http, pkce};
use crate::on_both_backends;

const APP_CB: &str = "https://app.example.gov.cn/cb";

/// A provider with Alice, one app at [`APP_CB`], and a browser.
async fn setup(backend: Backend) -> (Env, TestClient, Browser) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client(APP_CB).await;
    let browser = Browser::new(&env.base);
    (env, client, browser)
}

/// The S256 challenge of any verifier (even one the server should refuse).
fn challenge_of(verifier: &str) -> String {
    yunid::crypto::b64url(&yunid::crypto::sha256(verifier.as_bytes()))
}

/// Alice signs in to `client` through the browser (logging in and consenting when asked); the code.
async fn code_for(env: &Env, browser: &Browser, client: &TestClient, challenge: &str) -> String {
    let url = url::Url::parse_with_params(
        &env.url("/authorize"),
        [
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid profile offline_access"),
            ("state", "st-token"),
            ("nonce", "n-token"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let back = browser.sign_in(url.as_str(), ALICE_ID, PASSWORD).await;
    let params = back.params();
    assert_eq!(params["state"], "st-token");
    assert_eq!(params["iss"], env.base);
    params["code"].clone()
}

/// A fresh code and the verifier that goes with it.
async fn fresh_code(env: &Env, browser: &Browser, client: &TestClient) -> (String, String) {
    let (verifier, challenge) = pkce();
    (code_for(env, browser, client, &challenge).await, verifier)
}

/// An HTTP answer, already checked not to be a server error.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// A JSON error with this status and `error` code.
    fn assert_error(&self, status: StatusCode, error: &str) {
        assert_eq!((self.status, self.error()), (status, error), "{}", self.text);
        assert!(self.body.get("access_token").is_none(), "{}", self.text);
    }

    /// 401 `invalid_client` with a challenge, as RFC 6749 §5.2 asks when authentication fails.
    fn assert_invalid_client(&self) {
        self.assert_error(StatusCode::UNAUTHORIZED, "invalid_client");
        let challenge = self
            .headers
            .get(header::WWW_AUTHENTICATE)
            .unwrap_or_else(|| panic!("no WWW-Authenticate: {:?}", self.headers))
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Basic "), "{challenge}");
    }

    fn assert_ok(&self) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.text);
        assert!(self.body["access_token"].is_string(), "{}", self.text);
    }

    fn str(&self, name: &str) -> String {
        self.body[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.text))
            .to_owned()
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    assert!(!status.is_server_error(), "{status}: {text}");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

/// A token request authenticated with `client_secret_basic`.
fn token_request(env: &Env, client: &TestClient) -> reqwest::RequestBuilder {
    http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
}

/// The form of a code redemption.
fn code_form<'a>(code: &'a str, redirect_uri: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ]
}

async fn redeem(env: &Env, client: &TestClient, code: &str, verifier: &str) -> Answer {
    send(token_request(env, client).form(&code_form(code, &client.redirect_uri, verifier))).await
}

async fn refresh(env: &Env, client: &TestClient, refresh_token: &str) -> Answer {
    send(
        token_request(env, client).form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]),
    )
    .await
}

async fn userinfo(env: &Env, access_token: &str) -> Answer {
    send(http().get(env.url("/userinfo")).bearer_auth(access_token)).await
}

async fn introspect(env: &Env, client: &TestClient, token: &str) -> Answer {
    let answer = send(
        http()
            .post(env.url("/introspect"))
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[("token", token)]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    answer
}

// ---------------------------------------------------------------------------------------------------
// PKCE

async fn missing_code_verifier_is_invalid_request(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, _) = fresh_code(&env, &browser, &client).await;
    let answer = send(token_request(&env, &client).form(&[
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", APP_CB),
    ]))
    .await;
    answer.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let empty = send(token_request(&env, &client).form(&code_form(&code, APP_CB, ""))).await;
    empty.assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

async fn wrong_code_verifier_is_invalid_grant(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, _) = fresh_code(&env, &browser, &client).await;
    let (someone_elses, _) = pkce();
    redeem(&env, &client, &code, &someone_elses)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // The challenge itself is not a verifier.
    let (verifier, challenge) = pkce();
    let code = code_for(&env, &browser, &client, &challenge).await;
    redeem(&env, &client, &code, &challenge)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    // Control: the right verifier works.
    let code = code_for(&env, &browser, &client, &challenge).await;
    redeem(&env, &client, &code, &verifier).await.assert_ok();
}

async fn malformed_code_verifier_is_refused_even_when_it_hashes_to_the_challenge(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    // RFC 7636 §4.1: 43 to 128 characters of [A-Za-z0-9-._~]. Each of these hashes to its challenge,
    // so only the format check can refuse it.
    let malformed = [
        "a".repeat(42),
        "b".repeat(129),
        format!("{}+/=", "c".repeat(43)),
        format!("{} {}", "d".repeat(30), "e".repeat(30)),
        format!("{}中文", "f".repeat(43)),
    ];
    for verifier in &malformed {
        let code = code_for(&env, &browser, &client, &challenge_of(verifier)).await;
        let answer = redeem(&env, &client, &code, verifier).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{verifier}: {}",
            answer.text
        );
        assert!(
            matches!(answer.error(), "invalid_grant" | "invalid_request"),
            "{verifier}: {}",
            answer.text
        );
    }
    // Control: the shortest and the longest well-formed verifiers work.
    for verifier in ["g".repeat(43), "h-._~".repeat(25) + "xyz"] {
        assert_eq!(verifier.len().clamp(43, 128), verifier.len());
        let code = code_for(&env, &browser, &client, &challenge_of(&verifier)).await;
        redeem(&env, &client, &code, &verifier).await.assert_ok();
    }
}

// ---------------------------------------------------------------------------------------------------
// The code itself

async fn reused_code_is_refused_and_revokes_what_its_first_use_issued(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let first = redeem(&env, &client, &code, &verifier).await;
    first.assert_ok();
    let access_token = first.str("access_token");
    let refresh_token = first.str("refresh_token");
    // Both work before the replay.
    assert_eq!(userinfo(&env, &access_token).await.status, StatusCode::OK);
    assert_eq!(
        introspect(&env, &client, &access_token).await.body["active"],
        true
    );

    redeem(&env, &client, &code, &verifier)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");

    let info = userinfo(&env, &access_token).await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED, "{}", info.text);
    assert!(info.headers.contains_key(header::WWW_AUTHENTICATE));
    assert_eq!(
        introspect(&env, &client, &access_token).await.body,
        serde_json::json!({ "active": false })
    );
    assert_eq!(
        introspect(&env, &client, &refresh_token).await.body,
        serde_json::json!({ "active": false })
    );
    refresh(&env, &client, &refresh_token)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

async fn expired_code_is_invalid_grant(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    // Control: half a minute old is fine.
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    env.app.clock.advance(30);
    redeem(&env, &client, &code, &verifier).await.assert_ok();

    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    env.app.clock.advance(61);
    redeem(&env, &client, &code, &verifier)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

async fn code_redeemed_by_another_client_is_invalid_grant(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    // Another registered app, even with the same redirect URI and the right verifier.
    let other = env.client(APP_CB).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    redeem(&env, &other, &code, &verifier)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

async fn redirect_uri_mismatch_at_the_token_endpoint_is_invalid_grant(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let other_cb = "https://app.example.gov.cn/cb2";
    let client = env
        .client_with(NewClient {
            name: "两个回调的应用".into(),
            redirect_uris: vec![APP_CB.into(), other_cb.into()],
            ..NewClient::default()
        })
        .await;
    let browser = Browser::new(&env.base);
    for wrong in [
        other_cb,
        "https://app.example.gov.cn/cb/",
        "https://app.example.gov.cn/CB",
        "http://app.example.gov.cn/cb",
    ] {
        let (code, verifier) = fresh_code(&env, &browser, &client).await;
        send(token_request(&env, &client).form(&code_form(&code, wrong, &verifier)))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    // Control: the URI of the authorization request works.
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    redeem(&env, &client, &code, &verifier).await.assert_ok();
}

async fn unknown_code_is_invalid_grant(backend: Backend) {
    let (env, client, _) = setup(backend).await;
    let (verifier, _) = pkce();
    for code in [yunid::crypto::random_token(), "x".into()] {
        redeem(&env, &client, &code, &verifier)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
}

/// Fifty identical token requests released at once; the answers, and how many were 200 and how many
/// `invalid_grant`.
async fn fifty_at_once(
    env: &Env,
    client: &TestClient,
    form: Vec<(&str, &str)>,
) -> (Vec<Answer>, (usize, usize)) {
    let form: Vec<(String, String)> = form
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let url = env.url("/token");
    let start = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (url, client, form) = (url.clone(), client.clone(), form.clone());
            let start = start.clone();
            tokio::spawn(async move {
                let req = http()
                    .post(url)
                    .basic_auth(&client.id, Some(&client.secret))
                    .form(&form);
                start.wait().await;
                send(req).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let ok = answers.iter().filter(|a| a.status == StatusCode::OK).count();
    let refused = answers
        .iter()
        .filter(|a| a.status == StatusCode::BAD_REQUEST && a.error() == "invalid_grant")
        .count();
    if (ok, refused) != (1, 49) {
        let mut seen: Vec<String> = answers
            .iter()
            .map(|a| format!("{} {}", a.status, a.body["error_description"]))
            .collect();
        seen.sort();
        seen.dedup();
        eprintln!("answers seen: {seen:?}");
    }
    (answers, (ok, refused))
}

async fn fifty_concurrent_redemptions_of_one_code_succeed_exactly_once(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let (answers, counts) =
        fifty_at_once(&env, &client, code_form(&code, &client.redirect_uri, &verifier)).await;
    assert_eq!(counts, (1, 49));
    // The replays revoke what the one success received (RFC 6749 §4.1.2).
    let winner = answers.iter().find(|a| a.status == StatusCode::OK).unwrap();
    for token in [winner.str("access_token"), winner.str("refresh_token")] {
        assert_eq!(
            introspect(&env, &client, &token).await.body,
            serde_json::json!({ "active": false })
        );
    }
    // Every attempt brought a refresh token to be stored by the statement that uses the code: only the
    // winner's was stored (a refused attempt leaves nothing behind).
    let fid = crate::common::wire::jwt_parts(&winner.str("access_token")).1["fid"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM refresh_tokens WHERE family_id = $1")
            .bind(&fid)
            .fetch_all(&env.app.db.pool)
            .await
            .unwrap();
    assert_eq!(stored, [yunid::crypto::token_hash(&winner.str("refresh_token"))]);
}

/// One refresh token sent fifty times at once: one rotation wins, the others are reuse, and reuse revokes
/// the family, so even the winner's new tokens die (RFC 9700 §4.14.2).
async fn fifty_concurrent_refreshes_of_one_token_succeed_exactly_once(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let first = redeem(&env, &client, &code, &verifier).await;
    assert_eq!(first.status, StatusCode::OK);
    let refresh = first.str("refresh_token");
    let form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let (answers, counts) = fifty_at_once(&env, &client, form).await;
    assert_eq!(counts, (1, 49));
    let winner = answers.iter().find(|a| a.status == StatusCode::OK).unwrap();
    for token in [winner.str("access_token"), winner.str("refresh_token")] {
        assert_eq!(
            introspect(&env, &client, &token).await.body,
            serde_json::json!({ "active": false })
        );
    }
    let again = send(token_request(&env, &client).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", winner.str("refresh_token").as_str()),
    ]))
    .await;
    again.assert_error(StatusCode::BAD_REQUEST, "invalid_grant");
}

// ---------------------------------------------------------------------------------------------------
// Client authentication

async fn wrong_client_secret_is_invalid_client_and_does_not_burn_the_code(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let form = code_form(&code, APP_CB, &verifier);
    let wrong = format!("{}x", client.secret);
    for secret in [wrong.as_str(), "", &client.secret[..client.secret.len() - 1]] {
        send(
            http()
                .post(env.url("/token"))
                .basic_auth(&client.id, Some(secret))
                .form(&form),
        )
        .await
        .assert_invalid_client();
    }
    // Someone without the secret could not use up the app's code.
    redeem(&env, &client, &code, &verifier).await.assert_ok();
}

async fn unknown_client_is_invalid_client(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    send(
        http()
            .post(env.url("/token"))
            .basic_auth("no-such-app", Some(&client.secret))
            .form(&code_form(&code, APP_CB, &verifier)),
    )
    .await
    .assert_invalid_client();
}

async fn missing_client_authentication_is_invalid_client(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let mut form = code_form(&code, APP_CB, &verifier);
    send(http().post(env.url("/token")).form(&form))
        .await
        .assert_invalid_client();
    // A client_id alone is no authentication.
    form.push(("client_id", &client.id));
    send(http().post(env.url("/token")).form(&form))
        .await
        .assert_invalid_client();
    // Nor is a malformed Authorization header.
    send(
        http()
            .post(env.url("/token"))
            .header(header::AUTHORIZATION, "Basic not-base64!")
            .form(&form),
    )
    .await
    .assert_invalid_client();
}

async fn two_authentication_methods_at_once_are_invalid_request(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let mut form = code_form(&code, APP_CB, &verifier);
    form.push(("client_id", &client.id));
    form.push(("client_secret", &client.secret));
    send(token_request(&env, &client).form(&form))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

async fn client_secret_post_for_a_basic_client_is_refused(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let mut form = code_form(&code, APP_CB, &verifier);
    form.push(("client_id", &client.id));
    form.push(("client_secret", &client.secret));
    send(http().post(env.url("/token")).form(&form))
        .await
        .assert_invalid_client();

    // And the other way round: a client_secret_post app may not use Basic.
    let post_app = env
        .client_with(NewClient {
            name: "表单认证应用".into(),
            redirect_uris: vec![APP_CB.into()],
            auth_method: AuthMethod::ClientSecretPost,
            ..NewClient::default()
        })
        .await;
    let (code, verifier) = fresh_code(&env, &browser, &post_app).await;
    send(token_request(&env, &post_app).form(&code_form(&code, APP_CB, &verifier)))
        .await
        .assert_invalid_client();
    // Control: its own method works.
    let mut form = code_form(&code, APP_CB, &verifier);
    form.push(("client_id", &post_app.id));
    form.push(("client_secret", &post_app.secret));
    send(http().post(env.url("/token")).form(&form)).await.assert_ok();
}

// ---------------------------------------------------------------------------------------------------
// Malformed requests

async fn unsupported_grant_types_are_refused(backend: Backend) {
    let (env, client, _) = setup(backend).await;
    for grant_type in [
        "password",
        "implicit",
        "Authorization_Code",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        let answer = send(token_request(&env, &client).form(&[
            ("grant_type", grant_type),
            ("username", ALICE_ID),
            ("password", PASSWORD),
        ]))
        .await;
        answer.assert_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
}

async fn missing_grant_type_is_invalid_request(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let form = code_form(&code, APP_CB, &verifier);
    send(token_request(&env, &client).form(&form[1..]))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    let mut empty = form.clone();
    empty[0].1 = "";
    send(token_request(&env, &client).form(&empty))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
}

async fn repeated_parameter_is_invalid_request_and_leaves_the_code_usable(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let (other_code, _) = fresh_code(&env, &browser, &client).await;
    let form = code_form(&code, APP_CB, &verifier);
    for (name, value) in [
        ("code", code.as_str()),
        ("code", other_code.as_str()),
        ("grant_type", "authorization_code"),
        ("code_verifier", verifier.as_str()),
        ("redirect_uri", APP_CB),
    ] {
        let mut repeated = form.clone();
        repeated.push((name, value));
        send(token_request(&env, &client).form(&repeated))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    redeem(&env, &client, &code, &verifier).await.assert_ok();
}

async fn non_form_content_type_is_invalid_request(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let json = serde_json::json!({
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": APP_CB,
        "code_verifier": verifier,
    });
    send(token_request(&env, &client).json(&json))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // A form body without its content type is not a form either.
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(code_form(&code, APP_CB, &verifier))
        .finish();
    for content_type in [None, Some("text/plain"), Some("multipart/form-data")] {
        let mut req = token_request(&env, &client).body(body.clone());
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        send(req)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // The code was never touched.
    redeem(&env, &client, &code, &verifier).await.assert_ok();
}

async fn oversized_requests_are_client_errors(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    // A body over the 64 KiB limit.
    let padding = "p".repeat(70 * 1024);
    let mut form = code_form(&code, APP_CB, &verifier);
    form.push(("padding", &padding));
    let answer = send(token_request(&env, &client).form(&form)).await;
    assert!(answer.status.is_client_error(), "{}", answer.status);
    // One parameter far longer than any real value.
    let long_code = "c".repeat(20 * 1024);
    send(token_request(&env, &client).form(&code_form(&long_code, APP_CB, &verifier)))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_request");
    // Still serving.
    redeem(&env, &client, &code, &verifier).await.assert_ok();
}

async fn token_responses_are_never_cached(backend: Backend) {
    let (env, client, browser) = setup(backend).await;
    let (code, verifier) = fresh_code(&env, &browser, &client).await;
    let ok = redeem(&env, &client, &code, &verifier).await;
    ok.assert_ok();
    let refreshed = refresh(&env, &client, &ok.str("refresh_token")).await;
    refreshed.assert_ok();
    let bad_grant = redeem(&env, &client, &code, &verifier).await;
    let bad_client = send(
        http()
            .post(env.url("/token"))
            .basic_auth(&client.id, Some("wrong"))
            .form(&code_form(&code, APP_CB, &verifier)),
    )
    .await;
    for answer in [&ok, &refreshed, &bad_grant, &bad_client] {
        let cache = answer
            .headers
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap());
        assert_eq!(cache, Some("no-store"), "{answer:?}");
        let content_type = answer.headers[header::CONTENT_TYPE].to_str().unwrap();
        assert!(content_type.starts_with("application/json"), "{content_type}");
    }
    for answer in [&ok, &refreshed] {
        assert_eq!(
            answer.headers.get(header::PRAGMA).map(|v| v.to_str().unwrap()),
            Some("no-cache")
        );
    }
}

on_both_backends!(
    missing_code_verifier_is_invalid_request,
    wrong_code_verifier_is_invalid_grant,
    malformed_code_verifier_is_refused_even_when_it_hashes_to_the_challenge,
    reused_code_is_refused_and_revokes_what_its_first_use_issued,
    expired_code_is_invalid_grant,
    code_redeemed_by_another_client_is_invalid_grant,
    redirect_uri_mismatch_at_the_token_endpoint_is_invalid_grant,
    unknown_code_is_invalid_grant,
    fifty_concurrent_redemptions_of_one_code_succeed_exactly_once,
    fifty_concurrent_refreshes_of_one_token_succeed_exactly_once,
    wrong_client_secret_is_invalid_client_and_does_not_burn_the_code,
    unknown_client_is_invalid_client,
    missing_client_authentication_is_invalid_client,
    two_authentication_methods_at_once_are_invalid_request,
    client_secret_post_for_a_basic_client_is_refused,
    unsupported_grant_types_are_refused,
    missing_grant_type_is_invalid_request,
    repeated_parameter_is_invalid_request_and_leaves_the_code_usable,
    non_form_content_type_is_invalid_request,
    oversized_requests_are_client_errors,
    token_responses_are_never_cached,
);
