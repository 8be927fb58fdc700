//! SMS go through an outbox: the answer to "send me a code" never waits for the SMS provider (so a
//! registered number answers like an unknown one), the message waits sealed and is deleted once
//! delivered, and nodes sharing a database never claim the same message. Sending limits hold under a
//! burst of requests.

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use yunid::Config;
use yunid::store::login::SendLimits;

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

/// The limits of the phone of the last code sent: its hash, as the send record holds it.
async fn last_phone_hash(env: &Env) -> String {
    sqlx::query_scalar("SELECT phone_hash FROM sms_sends ORDER BY at DESC LIMIT 1")
        .fetch_one(&env.app.db.pool)
        .await
        .unwrap()
}

fn limits(env: &Env) -> SendLimits {
    SendLimits {
        per_phone_hour: env.app.config.sms_per_phone_hour,
        per_address_hour: env.app.config.sms_per_address_hour,
        cooldown: env.app.config.sms_resend_cooldown,
    }
}

/// A rolling upgrade runs this release beside the previous one, which counts a send in its own
/// transaction (`Db::try_record_sms_send`, the lock rows then the send record). Each counts the other's
/// sends: a code sent here holds back the previous release's send within the cooldown, and the other way
/// round; and a burst split between the two sends one code.
async fn sends_are_counted_alike_by_this_release_and_the_previous_one(backend: Backend) {
    let inbox = SmsInbox::start(0).await;
    let env = Env::start_with(backend, webhook(&inbox)).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = Browser::new(&env.base);
    let page = browser.get("/login?method=sms").await;
    let db = &env.app.db;

    // Sent here: the previous release's send for the same phone is refused within the cooldown.
    assert_eq!(send(&browser, &page, ALICE_PHONE).await.html().1, StatusCode::OK);
    let phone = last_phone_hash(&env).await;
    let now = env.app.now();
    assert!(
        !db.try_record_sms_send(&phone, "old-node", limits(&env), now)
            .await
            .unwrap()
    );

    // Sent by the previous release after the cooldown: refused here within it.
    env.app.clock.advance(61);
    let now = env.app.now();
    assert!(
        db.try_record_sms_send(&phone, "old-node", limits(&env), now)
            .await
            .unwrap()
    );
    let refused = send(&browser, &page, ALICE_PHONE).await;
    assert_eq!(refused.html().1, StatusCode::TOO_MANY_REQUESTS);

    // After the next cooldown, five presses here and five sends of the previous release at once:
    // one of the ten is counted.
    env.app.clock.advance(61);
    let now = env.app.now();
    let csrf = field(page.html().2, "csrf").unwrap();
    let old: Vec<_> = (0..5)
        .map(|_| {
            let (db, phone, limits) = (db.clone(), phone.clone(), limits(&env));
            tokio::spawn(async move {
                db.try_record_sms_send(&phone, "old-node", limits, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let here = burst_of_sends(&browser, &csrf, ALICE_PHONE, 5).await;
    let mut passed = here.iter().filter(|s| **s == StatusCode::OK).count();
    for task in old {
        passed += usize::from(task.await.unwrap());
    }
    assert_eq!(passed, 1, "one send of ten: {here:?}");
    let counted: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sms_sends WHERE phone_hash = $1")
        .bind(&phone)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(counted, 3, "the three sends that passed, each counted once");
}

/// Records every row inserted into the outbox, and whether it holds a message, before any worker can
/// delete it (a test-only trigger on this test's own database).
async fn record_outbox_inserts(env: &Env) {
    let pool = &env.app.db.pool;
    let statements: &[&str] = if env.db.is_sqlite() {
        &[
            "CREATE TABLE outbox_seen (id TEXT, has_message INTEGER)",
            "CREATE TRIGGER outbox_seen AFTER INSERT ON sms_outbox BEGIN \
             INSERT INTO outbox_seen VALUES (NEW.id, CASE WHEN NEW.sealed IS NULL THEN 0 ELSE 1 END); END",
        ]
    } else {
        &[
            "CREATE TABLE outbox_seen (id TEXT, has_message BIGINT)",
            "CREATE FUNCTION outbox_seen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             INSERT INTO outbox_seen VALUES (NEW.id, CASE WHEN NEW.sealed IS NULL THEN 0 ELSE 1 END); \
             RETURN NULL; END $$",
            "CREATE TRIGGER outbox_seen AFTER INSERT ON sms_outbox FOR EACH ROW EXECUTE FUNCTION outbox_seen()",
        ]
    };
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(pool)
            .await
            .unwrap();
    }
}

/// What the send statement writes is what the previous release wrote: the send record, the code (with
/// its person for a registered number, none for an unknown one) and an outbox row, with a message only
/// for the registered number; for a refused send no send record, code or outbox row.
async fn a_send_writes_the_rows_the_previous_release_reads(backend: Backend) {
    // The provider holds every message, so Alice's outbox row stays until the test has read it.
    let inbox = SmsInbox::start_held().await;
    let env = Env::start_with(backend, webhook(&inbox)).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    record_outbox_inserts(&env).await;
    let browser = Browser::new(&env.base);
    let page = browser.get("/login?method=sms").await;
    let pool = &env.app.db.pool;

    assert_eq!(send(&browser, &page, ALICE_PHONE).await.html().1, StatusCode::OK);
    assert_eq!(
        send(&browser, &page, "13900139000").await.html().1,
        StatusCode::OK
    );
    assert_eq!(
        send(&browser, &page, ALICE_PHONE).await.html().1,
        StatusCode::TOO_MANY_REQUESTS
    );
    let sends: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sms_sends")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(sends, 2);
    let codes: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT person_id, purpose FROM sms_codes ORDER BY person_id IS NULL")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        codes,
        [
            (Some(alice.clone()), "login".to_owned()),
            (None, "login".to_owned())
        ]
    );
    // Two outbox rows were written: one with nothing to send (the unknown number's), one with a message.
    let seen: Vec<(String, i64)> =
        sqlx::query_as("SELECT id, has_message FROM outbox_seen ORDER BY has_message")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        seen.iter().map(|(_, m)| *m).collect::<Vec<_>>(),
        [0, 1],
        "{seen:?}"
    );
    // The unknown number's row had nothing to send: this node's worker deleted it at once, while the
    // provider holds Alice's message, whose row waits, claimed by this node.
    let outbox: Vec<(String, Option<String>, i64)> =
        sqlx::query_as("SELECT id, sealed, attempts FROM sms_outbox")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    assert_eq!(outbox[0].0, seen[1].0, "the row with the message is Alice's");
    assert!(
        outbox[0]
            .1
            .as_deref()
            .is_some_and(|s| !s.contains(ALICE_PHONE) && s.len() > 40)
    );
    assert_eq!(outbox[0].2, 1, "claimed by this node");
    inbox.release();
}

/// Alice's first code, sent; the clock past its cooldown.
struct Sent {
    inbox: SmsInbox,
    env: Env,
    alice: String,
    browser: Browser,
    page: Page,
    /// Alice's phone as the send records hold it.
    phone: String,
    now: i64,
}

async fn one_code_sent_and_the_cooldown_over(backend: Backend) -> Sent {
    let inbox = SmsInbox::start(0).await;
    let env = Env::start_with(backend, webhook(&inbox)).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = Browser::new(&env.base);
    let page = browser.get("/login?method=sms").await;
    assert_eq!(send(&browser, &page, ALICE_PHONE).await.html().1, StatusCode::OK);
    let phone = last_phone_hash(&env).await;
    env.app.clock.advance(61);
    let now = env.app.now();
    Sent {
        inbox,
        env,
        alice,
        browser,
        page,
        phone,
        now,
    }
}

/// A transaction holding the lock rows `keys` (in that order), as the previous release's send takes them.
async fn lock_rows_held(env: &Env, keys: &[String], now: i64) -> sqlx::Transaction<'static, sqlx::Any> {
    let mut held = env.app.db.pool.begin().await.unwrap();
    for key in keys {
        sqlx::query(
            "INSERT INTO login_throttle (key, attempts, last_at) VALUES ($1, 0, $2) \
             ON CONFLICT (key) DO UPDATE SET last_at = excluded.last_at",
        )
        .bind(key)
        .bind(now)
        .execute(&mut *held)
        .await
        .unwrap();
    }
    held
}

/// Presses "send code" for Alice while `held` (an open transaction holding lock rows) is not committed:
/// the send must still be waiting after 700 ms; then commits `held` and gives the send's status.
async fn press_while_held(
    browser: &Browser,
    page: &Page,
    held: sqlx::Transaction<'static, sqlx::Any>,
) -> Vec<StatusCode> {
    let csrf = field(page.html().2, "csrf").unwrap();
    let here = tokio::spawn(burst_of_sends_owned(
        browser.http.clone(),
        browser.origin.clone(),
        csrf,
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!here.is_finished(), "this release's send waits for the lock rows");
    held.commit().await.unwrap();
    here.await.unwrap()
}

/// A send of the previous release in progress (its transaction has taken the lock rows and recorded
/// its send, not yet committed) holds this release's send for the same phone until it commits; the
/// send then sees it and is refused by the cooldown. Without the trigger's lock rows and second look,
/// PostgreSQL's send would not wait and would pass on its earlier snapshot.
async fn a_send_waits_for_a_send_of_the_previous_release_in_progress(backend: Backend) {
    let Sent {
        inbox,
        env,
        browser,
        page,
        phone,
        now,
        ..
    } = one_code_sent_and_the_cooldown_over(backend).await;
    let keys = [
        format!("sms-lock:phone:{phone}"),
        "sms-lock:addr:old-node".to_owned(),
    ];
    let mut old = lock_rows_held(&env, &keys, now).await;
    sqlx::query("INSERT INTO sms_sends (phone_hash, address, at) VALUES ($1, $2, $3)")
        .bind(&phone)
        .bind("old-node")
        .bind(now)
        .execute(&mut *old)
        .await
        .unwrap();

    let statuses = press_while_held(&browser, &page, old).await;
    assert_eq!(
        statuses,
        [StatusCode::TOO_MANY_REQUESTS],
        "the committed send counts"
    );
    assert_eq!(inbox.delivered().len(), 1, "no second SMS");
}

/// A phone changed while a send for it waits for the lock rows (here: by a transaction that holds them
/// and changes Alice's number) is seen by that send: the number has no person any more, so the code
/// signs nobody in and no SMS goes to the former owner's number (review L1 of the one-statement send).
async fn a_send_that_waited_sees_a_phone_changed_meanwhile(backend: Backend) {
    let Sent {
        inbox,
        env,
        alice,
        browser,
        page,
        phone,
        now,
    } = one_code_sent_and_the_cooldown_over(backend).await;
    let mut change = lock_rows_held(&env, &[format!("sms-lock:phone:{phone}")], now).await;
    sqlx::query("UPDATE persons SET phone = $1 WHERE id = $2")
        .bind("+8613700137000")
        .bind(&alice)
        .execute(&mut *change)
        .await
        .unwrap();
    assert_eq!(
        press_while_held(&browser, &page, change).await,
        [StatusCode::OK],
        "the same page as for any number"
    );
    assert_eq!(inbox.delivered().len(), 1, "no SMS to the number Alice gave up");
    let people: Vec<Option<String>> =
        sqlx::query_scalar("SELECT person_id FROM sms_codes ORDER BY created_at, person_id IS NULL")
            .fetch_all(&env.app.db.pool)
            .await
            .unwrap();
    assert_eq!(people, [Some(alice), None], "the second code is nobody's");
}

/// One press of "send code" for Alice, on a task of its own.
async fn burst_of_sends_owned(http: reqwest::Client, origin: String, csrf: String) -> Vec<StatusCode> {
    let form = [("csrf", csrf), ("phone", ALICE_PHONE.to_owned())];
    let res = http
        .post(format!("{origin}/login/sms/send"))
        .form(&form)
        .send()
        .await
        .unwrap();
    vec![res.status()]
}

on_both_backends!(
    a_send_that_waited_sees_a_phone_changed_meanwhile,
    a_send_waits_for_a_send_of_the_previous_release_in_progress,
    sends_are_counted_alike_by_this_release_and_the_previous_one,
    a_send_writes_the_rows_the_previous_release_reads,
    a_burst_of_code_requests_sends_one_code,
    sms_answers_never_wait_for_the_provider,
    two_nodes_never_claim_the_same_message,
);
