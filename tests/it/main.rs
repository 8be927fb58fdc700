//! yunid's integration tests: every suite runs against a real server on SQLite and on PostgreSQL.

mod common;

mod admin;
mod admin_api;
mod admin_authz;
mod attacks;
mod authorize_errors;
mod binding;
mod browser;
mod cluster;
mod code_binding;
mod conformance;
mod console_browser;
mod core_flow;
mod credentials;
mod fuzz_corpus;
mod identity;
mod interop;
mod jwks_uri;
mod keys;
mod languages;
mod licences;
mod login_methods;
mod logout;
mod logout_delivery;
mod ops;
mod passkeys;
mod readme;
mod registration;
mod release_edges;
mod signup;
mod sms_outbox;
mod ssrf;
mod throttling;
mod token_errors;
mod tokens;
