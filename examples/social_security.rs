//! 社保服务 (Social Security): a demo department app that signs people in with yunid.
//!
//! ```sh
//! CLIENT_ID=… CLIENT_SECRET=… cargo run --example social_security   # http://localhost:3001
//! ```
//!
//! It asks for `openid profile phone`. Everything OpenID Connect is in `demo_rp/mod.rs`, shared with
//! `business_registration`; see `examples/README.md` for the single sign-on / single logout demo.

#[path = "demo_rp/mod.rs"]
mod demo_rp;

use demo_rp::{AppSpec, User, escape};

/// The app's own content for a signed-in citizen.
fn services(user: &User) -> String {
    let sms = match &user.phone {
        Some(phone) => format!(
            "<p>办理结果将短信通知 {} (Results are sent by SMS to this number).</p>",
            escape(phone)
        ),
        None => String::new(),
    };
    format!(
        "<h2>我的社保 (My social security)</h2>\
         <ul><li>参保信息查询 (Insurance record)</li>\
         <li>养老金领取资格认证 (Pension eligibility check)</li>\
         <li>社保卡挂失 (Report a lost card)</li></ul>{sms}"
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo_rp::run(AppSpec {
        name: "社保服务",
        english: "Social Security",
        default_port: 3001,
        scopes: &["profile", "phone"],
        // yunid's default scopes (openid profile phone offline_access) are enough.
        register_scopes: None,
        cookie_prefix: "social_security",
        services,
    })
    .await
}
