//! SMS go through an outbox: the answer to "send me a code" never waits for the SMS provider (so a
//! registered number answers like an unknown one), the message waits sealed and is deleted once
//! delivered, and nodes sharing a database never claim the same message. Sending limits hold under a
//! burst of requests.

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use yunid::Config;

use crate::common::browser::{Page, field};
use crate::common::sms::SmsInbox;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD};
use crate::on_both_backends;

const SECRET: &str = "sms-webhook-secret-for-tests";

fn webhook(inbox: &SmsInbox) -> impl Fn(&mut Config) + use<> {
    let url = inbox.url.clone();
    move |c: &mut Config| {
        c.sms_gateway = "webhook".into();
        c.sms_webhook_url = Some(url.clone());
        c.sms_webhook_secret = Some(SECRET.into());
    }
}

/// Presses "send code" with `phone` typed in. Waits at most ten seconds: the webhook gateway alone
/// would wait three times five seconds for a provider that does not answer.
async fn send(browser: &Browser, page: &Page, phone: &str) -> Page {
    let csrf = field(page.html().2, "csrf").unwrap();
    let form = [("csrf", csrf.as_str()), ("phone", phone)];
    let post = browser.post("/login/sms/send", &form);
    tokio::time::timeout(Duration::from_secs(10), post)
        .await
        .unwrap_or_else(|_| panic!("the answer for {phone} waited for the SMS provider"))
}

/// The page without what differs from answer to answer (attempt id, CSRF token, script nonce).
fn normalised(page: &Page) -> String {
    let body = page.html().2;
    let attempt = field(body, "attempt").unwrap_or_else(|| panic!("no code form: {body}"));
    let csrf = field(body, "csrf").unwrap();
    let nonce = regex_lite::Regex::new(r#"nonce="[^"]*""#).unwrap();
    nonce
        .replace_all(&body.replace(&attempt, "ATTEMPT").replace(&csrf, "CSRF"), "nonce")
        .into_owned()
}

async fn sms_answers_never_wait_for_the_provider(backend: Backend) {
    // The provider holds every message until the test lets it answer.
    let inbox = SmsInbox::start_held().await;
    let env = Env::start_with(backend, webhook(&inbox)).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = Browser::new(&env.base);
    let page = browser.get("/login?method=sms").await;

    let known = send(&browser, &page, ALICE_PHONE).await;
    let unknown = send(&browser, &page, "13900139000").await;
    assert_eq!(known.html().1, StatusCode::OK, "{}", known.html().2);
    assert_eq!(unknown.html().1, known.html().1);
    assert_eq!(normalised(&unknown), normalised(&known), "the same page");
    assert_eq!(
        inbox.answered(),
        0,
        "both pages arrived while the provider had answered nothing"
    );

    // The message for Alice goes out in the background all the same.
    for _ in 0..1000 {
        if inbox.arrived() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(inbox.arrived(), 1, "one message, for the registered phone only");
    // While the provider holds it, it waits in the outbox sealed: neither the number nor a code in clear.
    let waiting: Vec<Option<String>> = sqlx::query_scalar("SELECT sealed FROM sms_outbox")
        .fetch_all(&env.app.db.pool)
        .await
        .unwrap();
    let sealed: Vec<Vec<u8>> = waiting
        .iter()
        .flatten()
        .map(|s| base64::engine::general_purpose::STANDARD.decode(s).unwrap())
        .collect();
    assert_eq!(sealed.len(), 1, "{waiting:?}");

    inbox.release();
    let code = inbox.last_code();
    let delivered = inbox.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].to(), "+8613800138000");
    let contains = |hay: &[u8], needle: &str| hay.windows(needle.len()).any(|w| w == needle.as_bytes());
    for s in waiting.iter().flatten() {
        assert!(!s.contains(&code) && !s.contains(ALICE_PHONE), "sealed: {s}");
    }
    for bytes in &sealed {
        assert!(!contains(bytes, &code) && !contains(bytes, ALICE_PHONE));
    }
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sms_outbox")
        .fetch_one(&env.app.db.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "deleted once delivered");

    // The code arrived and works.
    let body = known.html().2;
    let csrf = field(body, "csrf").unwrap();
    let attempt = field(body, "attempt").unwrap();
    let signed = browser
        .post(
            "/login/sms/verify",
            &[("csrf", &csrf), ("attempt", &attempt), ("code", &code)],
        )
        .await;
    let (url, status, body) = signed.html();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(url.ends_with("/account"), "signed in: {url}");
}

async fn two_nodes_never_claim_the_same_message(backend: Backend) {
    let env = Env::start(backend).await;
    let other = env.second_node().await;
    // Due in the future, so the nodes' own workers leave them alone; the test claims them by hand.
    let later = env.app.now() + 10_000;
    for i in 0..40 {
        env.app
            .db
            .enqueue_sms(&format!("message-{i:02}"), None, later, later + 300)
            .await
            .unwrap();
    }
    let mut claims = Vec::new();
    for _ in 0..4 {
        let (a, b) = tokio::join!(env.app.db.claim_sms(later, 60), other.app.db.claim_sms(later, 60));
        claims.extend(a.unwrap());
        claims.extend(b.unwrap());
    }
    let mut ids: Vec<String> = claims.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    let claimed = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), claimed, "no message was claimed twice");
    assert_eq!(claimed, 40, "every message was claimed once");
    // A claimed message is held for its lease, then free again for any node.
    assert!(env.app.db.claim_sms(later + 59, 60).await.unwrap().is_empty());
    assert_eq!(other.app.db.claim_sms(later + 60, 60).await.unwrap().len(), 16);
}

/// Presses "send code" for `phone` `n` times at once (each on its own task); the statuses.
async fn burst_of_sends(browser: &Browser, csrf: &str, phone: &str, n: usize) -> Vec<StatusCode> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (http, origin) = (browser.http.clone(), browser.origin.clone());
            let form = [("csrf", csrf.to_owned()), ("phone", phone.to_owned())];
            tokio::spawn(async move {
                let res = http
                    .post(format!("{origin}/login/sms/send"))
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                res.status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

async fn a_burst_of_code_requests_sends_one_code(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = Env::start_with(backend, webhook(&inbox)).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = Browser::new(&env.base);
    let page = browser.get("/login?method=sms").await;
    let csrf = field(page.html().2, "csrf").unwrap();

    // Ten presses at once, for a registered and for an unregistered number: the cooldown lets one
    // through, alike for both, on whatever connection it arrives.
    for phone in [ALICE_PHONE, "13900139000"] {
        let statuses = burst_of_sends(&browser, &csrf, phone, 10).await;
        let sent = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert_eq!((sent, refused), (1, 9), "{phone}: {statuses:?}");
    }
    assert_eq!(inbox.delivered().len(), 1, "one SMS, to the registered phone");
}

on_both_backends!(
    a_burst_of_code_requests_sends_one_code,
    sms_answers_never_wait_for_the_provider,
    two_nodes_never_claim_the_same_message,
);
