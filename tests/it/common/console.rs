//! Signing in to the admin console the way an admin does: `/admin` sends the browser to yunid's
//! `/authorize` (the console is an OIDC client of yunid asking for two factors), the admin types the
//! password, then the SMS code of the step-up, and yunid sends the browser back to `/admin/callback`.

use yunid::Config;

use super::browser::{Page, field};
use super::sms::SmsInbox;
use super::{Backend, Browser, Env};

/// Config for an SMS webhook gateway delivering to `inbox` (codes are read from it).
pub fn sms_to(inbox: &SmsInbox) -> impl Fn(&mut Config) + use<> {
    let url = inbox.url.clone();
    move |c: &mut Config| {
        c.sms_gateway = "webhook".into();
        c.sms_webhook_url = Some(url.clone());
        c.sms_webhook_secret = Some("console-test-webhook-secret".into());
        c.sms_resend_cooldown = 0;
    }
}

/// A provider whose SMS codes arrive in the returned inbox.
pub async fn provider(backend: Backend) -> (Env, SmsInbox) {
    let inbox = SmsInbox::start(0).await;
    let env = Env::start_with(backend, sms_to(&inbox)).await;
    (env, inbox)
}

fn body(page: &Page) -> &str {
    page.html().2
}

/// True on yunid's step-up page (the second factor is asked for).
pub fn is_step_up(page: &Page) -> bool {
    matches!(page, Page::Html { body, .. } if body.contains("action=\"/login/sms/send\"") && !body.contains("name=\"phone\""))
}

/// Answers the step-up page on `page` with the SMS code sent to the person's own phone.
pub async fn step_up(browser: &Browser, inbox: &SmsInbox, page: &Page) -> Page {
    assert!(is_step_up(page), "not the step-up page: {page:?}");
    let csrf = field(body(page), "csrf").expect("csrf");
    let req = field(body(page), "req").expect("the pending request");
    let before = inbox.delivered().len();
    let sent = browser
        .post("/login/sms/send", &[("csrf", &csrf), ("req", &req)])
        .await;
    assert_eq!(inbox.delivered().len(), before + 1, "a code was sent: {sent:?}");
    let attempt = field(body(&sent), "attempt").expect("the code form");
    let csrf = field(body(&sent), "csrf").expect("csrf");
    browser
        .post(
            "/login/sms/verify",
            &[
                ("csrf", &csrf),
                ("req", &req),
                ("attempt", &attempt),
                ("code", &inbox.last_code()),
            ],
        )
        .await
}

/// From wherever `/authorize` led (login page or step-up page), signs in with the password and the
/// SMS code; returns the page the browser ends on (the console, after its callback).
pub async fn complete(
    browser: &Browser,
    inbox: &SmsInbox,
    page: Page,
    id_number: &str,
    password: &str,
) -> Page {
    let mut page = page;
    if page.is_login() {
        page = browser.login(&page, id_number, password).await;
    }
    if is_step_up(&page) {
        page = step_up(browser, inbox, &page).await;
    }
    page
}

/// Opens the console and signs in through yunid with password + SMS code.
pub async fn sign_in(browser: &Browser, inbox: &SmsInbox, id_number: &str, password: &str) -> Page {
    let first = browser.get("/admin").await;
    complete(browser, inbox, first, id_number, password).await
}

/// Where a console URL sends a browser without following: `Some(location)` for a redirect.
pub async fn redirect_of(browser: &Browser, path: &str) -> Option<String> {
    let res = browser
        .http
        .get(format!("{}{path}", browser.origin))
        .send()
        .await
        .unwrap();
    res.status()
        .is_redirection()
        .then(|| res.headers()["location"].to_str().unwrap().to_owned())
}
