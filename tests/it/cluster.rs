//! Several nodes on one database and one keys folder, behind one issuer URL (what a load balancer
//! makes of them): any node continues what another began, and limits hold across nodes.

use openidconnect::OAuth2TokenResponse;
use openidconnect::core::CoreIdToken;
use reqwest::StatusCode;

use crate::common::wire::{self, alice_and_app, pair, refresh};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, Server, http};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// The same URL on node `to` (same path and query, that node's port).
fn on_node(url: &url::Url, to: &Server) -> url::Url {
    let mut u = url.clone();
    u.set_port(Some(to.addr.port())).unwrap();
    u
}

async fn a_second_node_continues_what_the_first_began(backend: Backend) {
    let env = Env::start(backend).await;
    let b = env.peer_node().await;
    let (client, rp) = alice_and_app(&env, CALLBACK).await;
    let (browser, jar) = Browser::with_jar(&env.base);

    // Authorize and log in on A…
    let attempt = rp.start(&["profile"]);
    let back = browser.sign_in(attempt.url.as_str(), ALICE_ID, PASSWORD).await;
    let code = back.params()["code"].clone();

    // …redeem the code on B…
    let (status, body) = wire::token(
        &b.base,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", attempt.verifier.secret()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id_token: CoreIdToken = body["id_token"].as_str().unwrap().parse().unwrap();
    let claims = id_token
        .claims(&rp.client.id_token_verifier(), &attempt.nonce)
        .expect("B's ID token verifies with the keys A publishes");
    let sub = claims.subject().to_string();

    // …refresh on A, userinfo on B, introspect on A.
    let refreshed = refresh(&rp, body["refresh_token"].as_str().unwrap(), &[])
        .await
        .expect("A refreshes what B issued");
    let (access, refresh_token) = pair(&refreshed);
    let (status, info) = wire::userinfo(&b.base, &access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["sub"], sub.as_str());
    let at_a = wire::introspect(&env.base, &client, &access).await;
    assert_eq!(at_a["active"], true, "{at_a}");
    assert_eq!(at_a["sub"], sub.as_str());
    assert!(wire::is_active(&env.base, &client, &refresh_token).await);
    // A revocation on B is seen by A.
    assert_eq!(
        wire::revoke(&b.base, &client, refreshed.access_token().secret()).await,
        StatusCode::OK
    );
    assert!(!wire::is_active(&env.base, &client, &access).await);

    // The session cookie A set is honoured by B (the browser would send it to the balanced host).
    let session = wire::cookie(&jar, &env.base, "yunid_session").expect("A set a session cookie");
    let silent = rp.start(&["profile"]);
    let at_b = format!("{}&prompt=none", on_node(&silent.url, &b));
    let res = http().get(&at_b).send().await.unwrap();
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        location
            .query_pairs()
            .any(|(k, v)| k == "error" && v == "login_required"),
        "without the cookie B knows no session: {location}"
    );
    let res = http()
        .get(&at_b)
        .header("cookie", format!("yunid_session={session}"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(CALLBACK), "{location}");
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params.get("state"), Some(silent.state.secret()));
    assert_eq!(params.get("iss"), Some(&env.base));
    let code = params
        .get("code")
        .unwrap_or_else(|| panic!("B issued no code: {location}"));
    rp.exchange(code, silent.verifier)
        .await
        .expect("A redeems the code B issued");
}

async fn login_throttling_counts_failures_on_every_node(backend: Backend) {
    let env = Env::start(backend).await;
    let b = env.second_node().await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    assert_eq!(env.app.config.login_max_failures, 10);
    let at_a = Browser::new(&env.base);
    let at_b = Browser::new(&b.base);

    // Five wrong passwords on each node: each one is just "wrong", none is throttled yet.
    for browser in [&at_a, &at_b] {
        for _ in 0..5 {
            let page = browser.get("/login").await;
            let page = browser.login(&page, ALICE_ID, "not the password").await;
            let (_, status, _) = page.html();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
    }

    // Ten in all: the right password is refused on either node.
    for browser in [&at_a, &at_b] {
        let page = browser.get("/login").await;
        let page = browser.login(&page, ALICE_ID, PASSWORD).await;
        let (_, status, body) = page.html();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert!(body.contains("尝试次数过多"), "{body}");
    }
}

on_both_backends!(
    a_second_node_continues_what_the_first_began,
    login_throttling_counts_failures_on_every_node,
);
