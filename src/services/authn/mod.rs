//! The browser sign-in path as a state machine: the authorization request → login (password, SMS
//! code, passkey) → step-up → consent → act-as → code. One function per step ([`steps`]), each taking
//! its inputs, `now` and the narrow pieces it needs ([`Ctx`]), and answering with a [`Next`]: a page of
//! ours, a redirect to the app with a code or an error, or an error page. The pending request travels
//! sealed with the browser ([`pending`]); the decision what comes next is [`flow::advance`].

pub mod flow;
pub mod pending;
pub mod steps;

pub use flow::Browser;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::crypto::{Random, Secrets};
use crate::keys::KeySet;
use crate::services::login;
use crate::services::oidc::authorize::{Refusal, Target, Untrusted};
use crate::store::Db;
use crate::store::clients::Client;
use crate::store::orgs::{Organisation, Representation};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The configuration the flow reads.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer (`iss`), to recognise our own ID tokens as hints.
    pub issuer: String,
    /// How long a pending request lives.
    pub auth_request_ttl: i64,
    pub code_ttl: i64,
    pub refresh_absolute_ttl: i64,
    pub session_idle_ttl: i64,
}

/// Answers the flow needs from other services (who a person may act for; the licence types a request
/// names), reached through this port so the flow never holds the whole application.
pub trait Directory: Send + Sync {
    /// The representations `person_id` may act under at this app now (`services::identity`).
    fn acting_options<'a>(
        &'a self,
        person_id: &'a str,
        client: &'a Client,
        now: i64,
    ) -> BoxFuture<'a, anyhow::Result<Vec<(Representation, Organisation)>>>;

    /// The licence type codes a request asks for and the app may receive (`services::licence`).
    fn licence_types<'a>(
        &'a self,
        client: &'a Client,
        scopes: &'a crate::scope::ScopeSet,
        claims: Option<&'a serde_json::Value>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<String>>>;
}

/// What the flow needs; built by `App::authn`.
pub struct Ctx<'a> {
    pub db: &'a Db,
    pub secrets: &'a Secrets,
    pub keys: Arc<KeySet>,
    pub settings: Settings,
    pub rng: &'a dyn Random,
    pub directory: &'a dyn Directory,
    /// Signing in (the login steps).
    pub login: login::Ctx<'a>,
}

/// A page of ours a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Login,
    ActAs,
    Consent,
}

impl Page {
    pub fn path(self) -> &'static str {
        match self {
            Page::Login => "/login",
            Page::ActAs => "/act-as",
            Page::Consent => "/consent",
        }
    }
}

/// Why a step stops at an error page of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The request expired, or its `req` is not one yunid issued.
    RequestExpired,
    /// The request was answered already.
    RequestAnswered,
    UnknownClient,
    /// A session was expected and is gone (answered with 400).
    SignInAgain,
    /// Nobody is signed in to answer this page any more (answered with 403).
    SignedOut,
    ClientIdRequired,
    RequestUriUnknown,
    /// The redirect URI cannot be trusted.
    Untrusted(Untrusted),
    /// Acting for an organisation was chosen for a request without `org`.
    NoOrgAsked,
    /// The chosen representation is not one the person may act under.
    CannotActFor,
}

/// Where a step sends the browser.
#[derive(Debug)]
pub enum Next {
    /// To one of our pages with the (re-sealed) request; `binding` is a new browser-binding secret to
    /// set when the browser had none.
    Page {
        page: Page,
        req: String,
        binding: Option<String>,
    },
    /// To `/authorize/resume` with this request, which goes on from there (or starts over, from
    /// another browser).
    Resume(String),
    /// Back to the app with a code.
    Code { target: Target, code: String },
    /// Back to the app with an error.
    Refused { target: Target, refusal: Refusal },
    /// An error page of ours.
    Stop(Stop),
}
