//! Which language a page speaks: `Accept-Language` by its q-values, and the language switch's cookie,
//! `Secure` when the issuer is https.

use reqwest::StatusCode;

use crate::common::{Backend, Env, http};
use crate::on_both_backends;

async fn html_lang(env: &Env, accept_language: &str) -> String {
    let res = http()
        .get(env.url("/login"))
        .header("accept-language", accept_language)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    let start = html.find("<html lang=\"").unwrap() + "<html lang=\"".len();
    html[start..].split('"').next().unwrap().to_owned()
}

async fn accept_language_is_read_by_its_q_values(backend: Backend) {
    let env = Env::start(backend).await;
    // Chinese listed first but weighted lower: English.
    assert_eq!(html_lang(&env, "zh-CN;q=0.5, en;q=0.9").await, "en");
    assert_eq!(html_lang(&env, "fr, zh-TW;q=0.5, en").await, "en");
    // English refused outright, or nothing of ours: the default, Chinese.
    assert_eq!(html_lang(&env, "en;q=0, de").await, "zh-CN");
    assert_eq!(html_lang(&env, "en-GB,en;q=0.9,zh;q=0.8").await, "en");
}

async fn set_cookie(env: &Env) -> String {
    let res = http().get(env.url("/lang/en")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    res.headers()["set-cookie"].to_str().unwrap().to_owned()
}

async fn the_language_cookie_is_secure_behind_an_https_issuer(backend: Backend) {
    let plain = Env::start(backend).await;
    let cookie = set_cookie(&plain).await;
    assert!(cookie.starts_with("yunid_lang=en"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");

    let https = Env::start_with(backend, |c| {
        c.issuer = "https://id.example.gov.cn".parse().unwrap();
    })
    .await;
    let cookie = set_cookie(&https).await;
    assert!(cookie.starts_with("yunid_lang=en"), "{cookie}");
    assert!(cookie.contains("Secure") && cookie.contains("Path=/"), "{cookie}");
    assert!(
        cookie.contains("SameSite=Lax") && cookie.contains("Max-Age=31536000"),
        "{cookie}"
    );
}

on_both_backends!(
    accept_language_is_read_by_its_q_values,
    the_language_cookie_is_secure_behind_an_https_issuer,
);
