//! A person's first visit: `/` says what yunid is and where to go — signing in, the account page, and the
//! console for an administrator — all in the page language.

use crate::common::browser::Browser;
use crate::common::{ALICE_ID, ALICE_PHONE, Backend, Env, PASSWORD};
use crate::on_both_backends;

async fn home(browser: &Browser) -> String {
    let page = browser.get("/").await;
    let (_, status, body) = page.html();
    assert_eq!(status, 200, "{body}");
    body.to_owned()
}

async fn a_first_visit_explains_yunid_in_chinese_and_in_english(backend: Backend) {
    let env = Env::start(backend).await;
    let browser = Browser::new(&env.base);

    let zh = home(&browser).await;
    assert!(zh.contains("<html lang=\"zh-CN\""), "{zh}");
    assert!(zh.contains("统一身份认证") && zh.contains("一次登录"), "{zh}");
    assert!(zh.contains("href=\"/login\">登录，进入我的账号</a>"), "{zh}");
    assert!(
        !zh.contains("href=\"/admin\""),
        "nobody signed in: no console link: {zh}"
    );
    assert!(!zh.contains("single sign-on"), "{zh}");

    browser.get("/lang/en").await;
    let en = home(&browser).await;
    assert!(en.contains("<html lang=\"en\""), "{en}");
    assert!(en.contains("single sign-on for government services"), "{en}");
    assert!(en.contains("href=\"/login\">Sign in to your account</a>"), "{en}");
    assert!(!en.contains("一次登录"), "{en}");
}

async fn the_home_page_links_to_the_account_and_for_an_admin_to_the_console(backend: Backend) {
    let env = Env::start(backend).await;
    let alice = env.person(ALICE_ID, ALICE_PHONE, PASSWORD).await;
    let browser = Browser::new(&env.base);
    let login = browser.get("/login").await;
    browser.login(&login, ALICE_ID, PASSWORD).await;

    let page = home(&browser).await;
    assert!(page.contains("href=\"/account\">我的账号</a>"), "{page}");
    assert!(page.contains("您已登录： 张三"), "{page}");
    assert!(!page.contains("href=\"/admin\""), "not an admin: {page}");

    env.app
        .db
        .grant_admin_role(&alice, "super_admin", "", "test", env.app.now())
        .await
        .unwrap();
    let page = home(&browser).await;
    assert!(page.contains("href=\"/admin\">管理控制台</a>"), "{page}");

    browser.get("/lang/en").await;
    let page = home(&browser).await;
    assert!(page.contains("href=\"/account\">My account</a>"), "{page}");
    assert!(
        page.contains("href=\"/admin\">Administration console</a>"),
        "{page}"
    );
}

on_both_backends!(
    a_first_visit_explains_yunid_in_chinese_and_in_english,
    the_home_page_links_to_the_account_and_for_an_admin_to_the_console,
);
