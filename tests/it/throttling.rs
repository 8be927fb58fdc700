//! Password throttling under attack: a burst of guesses for one account gets at most the limit of
//! hashes and "wrong password" answers, a full hashing queue answers at once with "try again", and
//! every spelling of a number counts against the same counter whether or not an account has it.

use reqwest::StatusCode;
use yunid::http::i18n::ZH;

use crate::common::browser::field;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Browser, Env, PASSWORD, resident_id};
use crate::on_both_backends;
use crate::ops::{sample, scrape};

const HASHES: &str = "yunid_password_hashes_total";

/// A browser on the login page, and the page's CSRF token.
async fn login_page(env: &Env) -> (Browser, String) {
    let browser = Browser::new(&env.base);
    let page = browser.get("/login").await;
    let csrf = field(page.html().2, "csrf").unwrap();
    (browser, csrf)
}

type Answer = (StatusCode, Option<String>, Option<String>);

/// Sends every guess at once (each on its own task, as from many connections); the answers in order,
/// each with how many hashes had finished on the node when it arrived.
async fn burst(env: &Env, browser: &Browser, csrf: &str, guesses: usize) -> Vec<(Answer, f64)> {
    let before = sample(&scrape(&env.base).await, HASHES);
    let tasks: Vec<_> = (0..guesses)
        .map(|i| {
            let browser = Browser {
                http: browser.http.clone(),
                origin: browser.origin.clone(),
            };
            let csrf = csrf.to_owned();
            tokio::spawn(async move {
                let answer = attempt(&browser, &csrf, ALICE_ID, &format!("guess number {i}")).await;
                let done = sample(&scrape(&browser.origin).await, HASHES) - before;
                (answer, done)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

/// One password attempt: the status, the page's alert text, and the Retry-After header.
async fn attempt(
    browser: &Browser,
    csrf: &str,
    username: &str,
    password: &str,
) -> (StatusCode, Option<String>, Option<String>) {
    let res = browser
        .http
        .post(format!("{}/login", browser.origin))
        .form(&[("csrf", csrf), ("username", username), ("password", password)])
        .send()
        .await
        .unwrap();
    let status = res.status();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.text().await.unwrap();
    let re = regex_lite::Regex::new(r#"<p class="error" role="alert">([^<]*)</p>"#).unwrap();
    let alert = re.captures(&body).map(|c| c[1].to_owned());
    (status, alert, retry)
}

async fn a_burst_of_guesses_gets_at_most_the_limit_of_hashes(backend: Backend) {
    // Production-strength hashing: a hash takes long enough that every guess of the burst arrives
    // while the first ones are still being checked (what an attacker with many connections does).
    let env = Env::start_with(backend, |c| {
        c.argon2_memory_kib = 19 * 1024;
        c.argon2_iterations = 2;
        // Room for the whole burst in the hashing queue: what is measured here is the throttle, not the
        // queue's 503 (`a_full_hashing_queue_answers_at_once_without_a_hash`), which a loaded machine would reach.
        c.password_hash_queue = 64;
    })
    .await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let limit = env.app.config.login_max_failures;
    assert_eq!(limit, 10);
    let (browser, csrf) = login_page(&env).await;
    let before = scrape(&env.base).await;

    let guesses = 40;
    let answers: Vec<Answer> = burst(&env, &browser, &csrf, guesses)
        .await
        .into_iter()
        .map(|(a, _)| a)
        .collect();

    let after = scrape(&env.base).await;
    let hashes = sample(&after, HASHES) - sample(&before, HASHES);
    let wrong = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        wrong as i64 <= limit && wrong > 0,
        "at most {limit} guesses were checked, got {wrong}: {answers:?}"
    );
    // On a loaded machine a guess may also wait too long for a database connection: it is answered
    // "try again shortly" (503 with Retry-After) without a hash. Never more than a few of the burst.
    let shed = answers
        .iter()
        .filter(|(s, _, r)| *s == StatusCode::SERVICE_UNAVAILABLE && r.as_deref() == Some("5"))
        .count();
    assert!(shed < guesses / 2, "most guesses were answered: {answers:?}");
    assert!(throttled > 0, "the burst was throttled: {answers:?}");
    assert_eq!(
        wrong + throttled + shed,
        guesses,
        "the rest were throttled (or shed): {answers:?}"
    );
    assert_eq!(
        hashes, wrong as f64,
        "one argon2 hash per checked guess, none for a throttled one"
    );
    let zh = &ZH;
    for (status, alert, _) in &answers {
        let expected = match *status {
            StatusCode::UNAUTHORIZED => zh.err_credentials,
            StatusCode::SERVICE_UNAVAILABLE => continue,
            _ => zh.err_throttled,
        };
        assert_eq!(alert.as_deref(), Some(expected));
    }

    // Alice herself is held back too now: the limit is what it says.
    let (status, _, _) = attempt(&browser, &csrf, ALICE_ID, PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

async fn a_full_hashing_queue_answers_at_once_without_a_hash(backend: Backend) {
    // No waiting places: only as many checks as the node has hashing threads run at a time. Slow
    // hashes keep those threads busy while the rest of the burst arrives.
    let env = Env::start_with(backend, |c| {
        // Slow by iterations rather than memory: a hashing thread per core each holds its block.
        // Wide enough (seconds per hash) that the whole burst arrives while the first checks still hash,
        // even on a loaded machine.
        c.argon2_memory_kib = 16 * 1024;
        c.argon2_iterations = 160;
        c.password_hash_queue = 0;
        c.login_max_failures = 1_000;
    })
    .await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (browser, csrf) = login_page(&env).await;
    let before = scrape(&env.base).await;

    let guesses = threads + 4;
    let answers = burst(&env, &browser, &csrf, guesses).await;

    let busy: Vec<_> = answers
        .iter()
        .filter(|((s, _, _), _)| *s == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(
        busy.len() >= 4,
        "a full queue refuses the rest of the burst: {answers:?}"
    );
    for ((_, alert, retry), done) in &busy {
        assert_eq!(alert.as_deref(), Some(ZH.err_busy));
        assert!(retry.is_some(), "a Retry-After header");
        assert_eq!(*done, 0.0, "answered at once, before any queued check finished");
    }
    let wrong = answers
        .iter()
        .filter(|((s, _, _), _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(wrong + busy.len(), guesses, "{answers:?}");
    let hashes = sample(&scrape(&env.base).await, HASHES) - sample(&before, HASHES);
    assert_eq!(hashes, wrong as f64, "no hash for a refused check");

    // Refused checks were not counted as failures, and the queue is free again: the password works.
    let page = browser
        .login(&browser.get("/login").await, ALICE_ID, PASSWORD)
        .await;
    assert_ne!(page.html().1, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!page.is_login(), "signed in: {page:?}");
}

/// Ten ways to write one mainland mobile number.
fn spellings(national: &str) -> Vec<String> {
    let (a, b, c) = (&national[..3], &national[3..7], &national[7..]);
    vec![
        national.to_owned(),
        format!("{a} {b} {c}"),
        format!("{a}-{b}-{c}"),
        format!("+86{national}"),
        format!("0086{national}"),
        format!("86 {a} {b} {c}"),
        format!("+86 {a} {b} {c}"),
        format!("+86-{a}-{b}-{c}"),
        format!(" {national} "),
        format!("0086 {a} {b} {c}"),
    ]
}

/// Ten wrong passwords, each with another spelling of `national`, then one more try: the statuses.
async fn ten_spellings_then_one_more(env: &Env, national: &str, last_password: &str) -> Vec<StatusCode> {
    let (browser, csrf) = login_page(env).await;
    let mut statuses = Vec::new();
    for spelling in spellings(national) {
        statuses.push(attempt(&browser, &csrf, &spelling, "not the password").await.0);
    }
    statuses.push(attempt(&browser, &csrf, national, last_password).await.0);
    statuses
}

async fn spellings_of_a_number_lock_alike_whether_or_not_it_is_registered(backend: Backend) {
    let env = Env::start(backend).await;
    env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    assert_eq!(env.app.config.login_max_failures, 10);
    let mut expected = vec![StatusCode::UNAUTHORIZED; 10];
    expected.push(StatusCode::TOO_MANY_REQUESTS);

    // Alice's number, written ten ways: one counter, so her right password is held back after them.
    let known = ten_spellings_then_one_more(&env, ALICE_PHONE, PASSWORD).await;
    assert_eq!(known, expected, "a registered phone");
    // A number nobody registered answers exactly the same: throttling does not tell who exists.
    let unknown = ten_spellings_then_one_more(&env, "13900139001", PASSWORD).await;
    assert_eq!(unknown, expected, "an unregistered phone");

    // The same for ID numbers: a lower-case x is the same number, registered or not.
    let (browser, csrf) = login_page(&env).await;
    let unknown_id = (0..1000).map(resident_id).find(|id| id.ends_with('X')).unwrap();
    let mut statuses = Vec::new();
    for i in 0..11 {
        let spelling = if i % 2 == 0 {
            unknown_id.to_lowercase()
        } else {
            format!(" {unknown_id} ")
        };
        statuses.push(attempt(&browser, &csrf, &spelling, "not the password").await.0);
    }
    assert_eq!(statuses, expected, "an unregistered ID number");
}

/// The stored rule and its reference (`login::blocked`) agree on every step of a long attack: held
/// back from `max` attempts on, for a window after the latest, doubling per further `max`, and
/// forgotten after a day.
async fn the_stored_throttle_follows_the_progressive_rule(backend: Backend) {
    use yunid::services::login::{THROTTLE_MEMORY, blocked};
    use yunid::store::login::Limit;
    let env = Env::start(backend).await;
    let (max, window) = (3, 100);
    let start = env.app.now();
    let mut history: Vec<i64> = Vec::new();
    // Tries every 7 seconds for a while, then again after a day's silence.
    let times: Vec<i64> = (0..400)
        .map(|i| start + i * 7)
        .chain((0..5).map(|i| start + 400 * 7 + THROTTLE_MEMORY + i))
        .collect();
    for now in times {
        let recent: Vec<i64> = history
            .iter()
            .copied()
            .filter(|t| *t >= now - THROTTLE_MEMORY)
            .collect();
        // The counter restarts once the latest attempt is older than a day.
        let count = if history.last().is_some_and(|l| *l < now - THROTTLE_MEMORY) {
            0
        } else {
            history.len() as i64
        };
        let expected = !blocked(count, recent.last().copied(), max, window, now);
        let limit = Limit {
            max,
            window,
            forget_before: now - THROTTLE_MEMORY,
        };
        let got = env.app.db.reserve_attempt("k", limit, now).await.unwrap();
        assert_eq!(got, expected, "at +{}s after {count} attempts", now - start);
        if got {
            if count == 0 {
                history.clear();
            }
            history.push(now);
        }
    }
    assert!(history.len() < 400 / 2, "most of the attack was held back");
}

on_both_backends!(
    the_stored_throttle_follows_the_progressive_rule,
    a_burst_of_guesses_gets_at_most_the_limit_of_hashes,
    a_full_hashing_queue_answers_at_once_without_a_hash,
    spellings_of_a_number_lock_alike_whether_or_not_it_is_registered,
);
