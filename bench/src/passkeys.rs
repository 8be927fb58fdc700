//! The passkey pages as a browser with a software authenticator goes through them: registering a
//! passkey from the account page after a password sign-in and the SMS step-up that adding a credential
//! needs, and a passwordless login at the app.
//! Request and answer shapes are those of static/passkey.js.

use serde_json::json;

use crate::flows::{self, Jar, Landed, Req, Res};
use crate::server::Bench;
use crate::softkey::SoftKey;

/// The CSRF token the account page gives its script (`data-csrf="…"`).
fn data_csrf(body: &str) -> Option<String> {
    let needle = "data-csrf=\"";
    let start = body.find(needle)? + needle.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

/// A person signs in with the password (a fresh browser at the app), steps up with an SMS code to
/// `phone_e164` (a passkey is added only after a recent second factor), opens the account page and adds
/// a passkey: start (creation options) → authenticator → finish. Returns the authenticator.
pub async fn enrol(
    bench: &Bench,
    http: &reqwest::Client,
    username: &str,
    phone_e164: &str,
    addr: &str,
    consents: &mut u64,
) -> Res<SoftKey> {
    let (_, mut jar) = flows::password_flow(bench, http, username, addr, consents).await?;
    let mut req = Req {
        http,
        jar: Some(&mut jar),
        addr: Some(addr),
    };
    let step_up = req
        .get(&format!("{}/login?step_up=account", bench.base))
        .await?
        .expect(200, "step-up page")?;
    let csrf = flows::field(&step_up.body, "csrf").ok_or("step-up page without csrf")?;
    let sent = req
        .post(&format!("{}/login/sms/send", bench.base), &[("csrf", &csrf)])
        .await?
        .expect(200, "step-up code sent")?;
    let attempt = flows::field(&sent.body, "attempt").ok_or("no attempt after sending")?;
    let code = bench
        .inbox
        .next(phone_e164)
        .await
        .ok_or("no step-up SMS reached the webhook")?;
    let verified = req
        .post(
            &format!("{}/login/sms/verify", bench.base),
            &[("csrf", &csrf), ("attempt", &attempt), ("code", &code)],
        )
        .await?;
    if verified.location.as_deref() != Some("/account") {
        return Err(format!("step-up verify answered {}", verified.status));
    }
    let page = req
        .get(&format!("{}/account", bench.base))
        .await?
        .expect(200, "account page")?;
    let csrf = data_csrf(&page.body).ok_or("account page without data-csrf (passkeys off?)")?;
    let name = json!("bench");
    let start = req
        .post_json(
            &format!("{}/account/passkeys/start", bench.base),
            &csrf,
            &json!({ "name": name }),
        )
        .await?
        .expect(200, "passkey registration start")?
        .json()?;
    let mut key = SoftKey::new(&bench.base).map_err(|e| e.to_string())?;
    let credential = key.register(&start["options"]["publicKey"])?;
    req.post_json(
        &format!("{}/account/passkeys/finish", bench.base),
        &csrf,
        &json!({ "ceremony": start["ceremony"], "name": name, "credential": credential }),
    )
    .await?
    .expect(200, "passkey registration finish")?;
    Ok(key)
}

/// A fresh browser signs in with its passkey at the app: authorize → login page → passkey start
/// (challenge) → authenticator → finish (form POST) → (consent the first time) → code → token. The
/// login page carries the passkey form on every tab (conditional UI), so no tab switch is needed.
pub async fn login_flow(
    bench: &Bench,
    http: &reqwest::Client,
    key: &SoftKey,
    addr: &str,
    consents: &mut u64,
) -> Res<(String, Option<String>)> {
    let mut jar = Jar::default();
    let (url, verifier) = flows::authorize_url(bench);
    let code = {
        let mut req = Req {
            http,
            jar: Some(&mut jar),
            addr: Some(addr),
        };
        let first = req.get(&url).await?;
        let Landed::Page { body, status, .. } = flows::navigate(bench, &mut req, first, url).await? else {
            return Err("code without login (fresh browser)".into());
        };
        if !body.contains("id=\"passkey-form\"") {
            return Err(flows::page_error(
                "wanted the login page with the passkey form",
                status,
                &body,
            ));
        }
        let csrf = flows::field(&body, "csrf").ok_or("login page without csrf")?;
        let r = flows::field(&body, "req").ok_or("login page without req")?;
        let start = req
            .post_json(&format!("{}/login/passkey/start", bench.base), &csrf, &json!({}))
            .await?
            .expect(200, "passkey start")?
            .json()?;
        let ceremony = start["ceremony"]
            .as_str()
            .ok_or("passkey start without ceremony")?;
        let credential = key.assert(&start["options"]["publicKey"])?.to_string();
        let finish = format!("{}/login/passkey/finish", bench.base);
        let res = req
            .post(
                &finish,
                &[
                    ("csrf", &csrf),
                    ("req", &r),
                    ("ceremony", ceremony),
                    ("credential", &credential),
                ],
            )
            .await?;
        if res.status != 303 && res.status != 302 {
            return Err(flows::page_error("passkey finish", res.status, &res.body));
        }
        let landed = flows::navigate(bench, &mut req, res, finish).await?;
        flows::through_consent(bench, &mut req, landed, consents).await?
    };
    flows::exchange(bench, http, &code, &verifier).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn data_csrf_is_read_from_the_attribute() {
        let body = r#"<button type="button" id="passkey-add" data-csrf="abc-_1">"#;
        assert_eq!(super::data_csrf(body).as_deref(), Some("abc-_1"));
        assert_eq!(super::data_csrf("<p>none</p>"), None);
    }
}
