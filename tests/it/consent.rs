//! Consent: what a person lets an app receive, saved only for a request still waiting for its answer.

use crate::common::rp::Rp;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD};
use crate::on_both_backends;

const CALLBACK: &str = "http://127.0.0.1:9/callback";

/// Alice has two tabs on the consent page of one request. In the second she declines: the app hears
/// `access_denied`, the request is answered. In the first she allows, and that step read the answered
/// marker just before the decline wrote it (the race arranged in the database: the decline's marker
/// lands as the allow's step refreshes her session, between its read of the marker and its save). No
/// consent is saved for the answered request: the app's next request asks her again.
async fn a_consent_given_in_a_second_tab_for_an_answered_request_is_not_saved(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let client = env.client(CALLBACK).await;
    let rp = Rp::discover(&env.base, &client).await;
    let browser = Browser::new(&env.base);
    let login = browser.get(rp.start(&["profile"]).url.as_str()).await;
    let page = browser.login(&login, ALICE_ID, PASSWORD).await;
    assert!(page.is_consent(), "{page:?}");

    let declined = browser.consent(&page, false).await;
    assert_eq!(
        declined.params().get("error").map(String::as_str),
        Some("access_denied")
    );
    let pool = &env.app.db.pool;
    for sql in [
        "CREATE TABLE race_held AS SELECT * FROM auth_requests",
        "DELETE FROM auth_requests",
    ] {
        sqlx::raw_sql(sql).execute(pool).await.unwrap();
    }
    crate::common::races::on(
        &env.app.db,
        env.db.is_sqlite(),
        "sessions",
        "UPDATE OF last_seen",
        "NEW.ended_at IS NULL",
        "INSERT INTO auth_requests SELECT * FROM race_held h \
         WHERE NOT EXISTS (SELECT 1 FROM auth_requests a WHERE a.id_hash = h.id_hash)",
    )
    .await;
    // Past the half minute after which a step refreshes the session's idle timer.
    env.app.clock.advance(31);
    let allowed = browser.consent(&page, true).await;
    let (_, _, body) = allowed.html();
    assert!(body.contains("此登录请求已经处理过了"), "{body}");

    let saved: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM consents WHERE client_id = $1")
        .bind(&client.id)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(saved, 0, "no consent saved for the answered request");
    let again = browser.get(rp.start(&["profile"]).url.as_str()).await;
    assert!(again.is_consent(), "asked again: {again:?}");
}

on_both_backends!(a_consent_given_in_a_second_tab_for_an_answered_request_is_not_saved);
