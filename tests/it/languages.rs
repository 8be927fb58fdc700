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

/// The sentence of an error page (`<p class="error">`), opened in `accept_language`.
async fn error_sentence(env: &Env, path: &str, accept_language: &str) -> String {
    let res = http()
        .get(env.url(path))
        .header("accept-language", accept_language)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{path}: {}", res.status());
    let html = res.text().await.unwrap();
    let start = html.find("role=\"alert\">").unwrap() + "role=\"alert\">".len();
    html[start..].split("</p>").next().unwrap().to_owned()
}

async fn error_pages_speak_the_page_language(backend: Backend) {
    let env = Env::start(backend).await;
    let app = env.server.client("https://rp.example/cb").await;
    let encode = |pairs: &[(&str, &str)]| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    let cases = [
        (
            format!(
                "/authorize?{}",
                encode(&[
                    ("client_id", &app.id),
                    ("redirect_uri", "https://evil.example/cb")
                ])
            ),
            "redirect_uri is not registered for this application",
        ),
        (
            format!(
                "/authorize?{}",
                encode(&[("client_id", "nobody"), ("redirect_uri", "https://rp.example/cb")])
            ),
            "Unknown or missing client_id",
        ),
        (
            format!(
                "/logout?{}",
                encode(&[
                    ("client_id", &app.id),
                    ("post_logout_redirect_uri", "https://evil.example/")
                ])
            ),
            "post_logout_redirect_uri is not registered for this application",
        ),
        (
            "/authorize/resume?req=gone".to_owned(),
            "This sign-in request has expired",
        ),
        ("/act-as?req=gone".to_owned(), "This sign-in request has expired"),
        ("/consent?req=gone".to_owned(), "This sign-in request has expired"),
        ("/register".to_owned(), "Self-registration is not offered here"),
    ];
    for (path, english) in &cases {
        let zh = error_sentence(&env, path, "zh-CN,zh;q=0.9").await;
        // A Chinese sentence: parameter names may stay, but no sentence of plain ASCII.
        assert!(!zh.is_ascii(), "{path}: {zh}");
        assert!(zh.contains('。'), "{path}: {zh}");
        let en = error_sentence(&env, path, "en-US,en;q=0.9").await;
        assert!(en.contains(english), "{path}: {en}");
        assert!(en.is_ascii(), "{path}: {en}");
    }
}

on_both_backends!(
    accept_language_is_read_by_its_q_values,
    the_language_cookie_is_secure_behind_an_https_issuer,
    error_pages_speak_the_page_language,
);
