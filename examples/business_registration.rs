//! 企业开办 (Business Registration): a demo department app that signs people in with yunid, as
//! themselves or on behalf of an enterprise.
//!
//! ```sh
//! CLIENT_ID=… CLIENT_SECRET=… cargo run --example business_registration   # http://localhost:3002
//! ```
//!
//! It asks for `openid profile org`: with `org`, userinfo says which enterprise (legal person) the
//! person acts for. Everything OpenID Connect is in `demo_rp/mod.rs`, shared with `social_security`;
//! see `examples/README.md` for the single sign-on / single logout demo.

#[path = "demo_rp/mod.rs"]
mod demo_rp;

use demo_rp::{AppSpec, User};

/// The app's own content: what can be done depends on whether the person acts for an enterprise.
fn services(user: &User) -> String {
    if user.org.is_some() {
        "<h2>企业事项 (Enterprise services)</h2>\
         <ul><li>变更登记 (Change registration)</li>\
         <li>印章刻制 (Company seal)</li>\
         <li>税务登记 (Tax registration)</li></ul>"
            .to_owned()
    } else {
        "<h2>开办新企业 (Start a business)</h2>\
         <p>您以个人身份登录，可申请设立登记 (Signed in as a natural person: you can apply to \
         register a new enterprise).</p>"
            .to_owned()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    demo_rp::run(AppSpec {
        name: "企业开办",
        english: "Business Registration",
        default_port: 3002,
        scopes: &["profile", "org"],
        // `org` is not among yunid's default scopes: allow it (and refresh tokens) explicitly.
        register_scopes: Some("openid profile org offline_access"),
        cookie_prefix: "business_registration",
        services,
    })
    .await
}
