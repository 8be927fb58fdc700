//! What an app receives on each call follows the scope asked now and the app as it is now, not the
//! grant once given: a refresh narrowed to `openid` carries no ID number and no licence; an app an admin
//! takes `identity` or `org` from stops receiving ID numbers or acting for companies at once; disabling
//! an app revokes its grants; revoking a connected app tells it so by back-channel logout.

use std::time::Duration;

use serde_json::{Value, json};
use yunid::services::registry::NewClient;

use crate::common::browser::field;
use crate::common::receiver::Receiver;
use crate::common::rp::Rp;
use crate::common::wire::{self, jwt_parts};
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, TestClient, http};
use crate::licences::{
    COMPANY, DRIVING, admin, app_with, driving_licence, licences, setup, sign_in, userinfo,
};
use crate::on_both_backends;

/// A refresh as the app sends it, with a narrower `scope` when given; returns (status, body).
async fn refresh(env: &Env, client: &TestClient, tokens: &Value, scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    let res = http()
        .post(env.url("/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn userinfo_status(env: &Env, tokens: &Value) -> u16 {
    http()
        .get(env.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn super_admin(env: &Env) -> String {
    crate::admin::admin_token(env, "yunid:admin").await
}

async fn a_refresh_narrowed_to_openid_carries_no_id_number_and_no_licence(backend: Backend) {
    let env = Env::start(backend).await;
    let token = setup(&env).await;
    let (s, body) = admin(
        &env,
        &token,
        reqwest::Method::POST,
        "/admin/api/licences",
        driving_licence("70"),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let client = app_with(&env, &["openid", "identity", "licences"], &[DRIVING]).await;
    let claims = r#"{"id_token":{"id_number":null,"verified_claims":{"verification":{"evidence":[{"type":"electronic_record"}]},"claims":null}}}"#;
    let (tokens, _) = sign_in(&env, &client, "openid identity licences", Some(claims), None).await;
    let id = jwt_parts(tokens["id_token"].as_str().unwrap()).1;
    assert_eq!(id["id_number"], ALICE_ID, "{id}");
    let released = licences(&id);
    assert_eq!(released.len(), 1, "{id}");
    assert_eq!(
        released[0]["verification"]["evidence"][0]["record"]["personal_number"], ALICE_ID,
        "with identity, the licence names its holder's ID number"
    );

    let (s, narrowed) = refresh(&env, &client, &tokens, Some("openid")).await;
    assert_eq!(s, 200, "{narrowed}");
    assert_eq!(narrowed["scope"], "openid");
    let id = jwt_parts(narrowed["id_token"].as_str().unwrap()).1;
    assert!(
        id.get("id_number").is_none() && licences(&id).is_empty() && !id.to_string().contains(ALICE_ID),
        "a refresh narrowed to openid carries neither: {id}"
    );
    let info = userinfo(&env, &narrowed).await;
    assert!(
        info.get("id_number").is_none() && licences(&info).is_empty(),
        "{info}"
    );
}

async fn an_app_that_loses_identity_or_org_stops_receiving_them_at_once(backend: Backend) {
    let env = Env::start(backend).await;
    setup(&env).await;
    let client = app_with(&env, &["openid", "identity", "org"], &[]).await;
    let (herself, _) = sign_in(&env, &client, "openid identity", None, None).await;
    assert_eq!(userinfo(&env, &herself).await["id_number"], ALICE_ID);
    let (company, _) = sign_in(&env, &client, "openid org", None, Some(COMPANY)).await;
    assert_eq!(userinfo(&env, &company).await["org"]["credit_code"], COMPANY);

    let admin = super_admin(&env).await;
    let status =
        crate::release_edges::patch_app(&env, &admin, &client.id, json!({ "scopes": ["openid"] })).await;
    assert_eq!(status, 200);

    // Her own grant goes on, without the ID number, from the very next call.
    let info = userinfo(&env, &herself).await;
    assert!(info.get("id_number").is_none(), "{info}");
    let (s, refreshed) = refresh(&env, &client, &herself, None).await;
    assert_eq!(s, 200, "{refreshed}");
    assert_eq!(refreshed["scope"], "openid");
    assert!(!userinfo(&env, &refreshed).await.to_string().contains(ALICE_ID));

    // The grant acting for the company stops working.
    assert_eq!(userinfo_status(&env, &company).await, 401);
    let (s, body) = refresh(&env, &client, &company, None).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

async fn disabling_an_app_revokes_its_grants_at_once(backend: Backend) {
    let env = Env::start(backend).await;
    setup(&env).await;
    let client = app_with(&env, &["openid", "profile"], &[]).await;
    let admin = super_admin(&env).await;
    let enable = |on: bool| {
        let (env, admin, id) = (&env, &admin, &client.id);
        async move { crate::release_edges::patch_app(env, admin, id, json!({ "disabled": !on })).await }
    };
    let refused = |(s, body): (u16, Value)| {
        assert_eq!(
            (s, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
    };

    // Through the disable endpoint.
    let (tokens, _) = sign_in(&env, &client, "openid profile", None, None).await;
    let res = http()
        .post(env.url(&format!("/admin/api/clients/{}/disable", client.id)))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        userinfo_status(&env, &tokens).await,
        401,
        "its access token stops at once"
    );
    assert_eq!(enable(true).await, 200);
    refused(refresh(&env, &client, &tokens, None).await);
    assert_eq!(
        userinfo_status(&env, &tokens).await,
        401,
        "enabling brings nothing back"
    );

    // Through PATCH `disabled: true`.
    let (tokens, _) = sign_in(&env, &client, "openid profile", None, None).await;
    assert_eq!(userinfo_status(&env, &tokens).await, 200);
    assert_eq!(enable(false).await, 200);
    assert_eq!(userinfo_status(&env, &tokens).await, 401);
    assert_eq!(enable(true).await, 200);
    refused(refresh(&env, &client, &tokens, None).await);
}

/// Alice revokes an app from her account page (on her laptop) while her phone is signed in to it: the
/// app receives a logout token for the phone's session, naming her subject for that app.
async fn revoking_a_connected_app_logs_it_out_by_back_channel(backend: Backend) {
    let receiver = Receiver::start(0).await;
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env
        .client_with(NewClient {
            name: "社保服务".into(),
            redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
            backchannel_logout_uri: Some(receiver.url("/social/logout")),
            ..NewClient::default()
        })
        .await;
    let rp = Rp::discover(&env.base, &client).await;
    let phone = Browser::new(&env.base);
    let signed = wire::sign_in(&rp, &phone, &["profile"]).await;
    let id = signed.id_claims();

    let laptop = Browser::new(&env.base);
    let login = laptop.get("/login").await;
    let account = laptop.login(&login, ALICE_ID, PASSWORD).await;
    let csrf = field(account.html().2, "csrf").unwrap();
    laptop
        .post(&format!("/account/apps/{}/revoke", client.id), &[("csrf", &csrf)])
        .await;

    let hits = receiver
        .wait_until(Duration::from_secs(10), |hits| {
            hits.iter().any(|h| h.path == "/social/logout" && h.status == 200)
        })
        .await;
    let token = hits[0].form.get("logout_token").expect("a logout_token");
    let claims = jwt_parts(token).1;
    assert_eq!(claims["aud"], client.id.as_str());
    assert_eq!(claims["sid"], id["sid"], "the phone's session: {claims}");
    assert_eq!(claims["sub"], id["sub"]);
    assert!(
        claims["events"]
            .get("http://schemas.openid.net/event/backchannel-logout")
            .is_some()
    );
    assert!(
        hits.iter().all(|h| h.form.get("logout_token") == Some(token)),
        "{hits:?}"
    );
}

on_both_backends!(
    revoking_a_connected_app_logs_it_out_by_back_channel,
    a_refresh_narrowed_to_openid_carries_no_id_number_and_no_licence,
    an_app_that_loses_identity_or_org_stops_receiving_them_at_once,
    disabling_an_app_revokes_its_grants_at_once,
);
