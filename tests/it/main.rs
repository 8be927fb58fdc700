//! yunid's integration tests: every suite runs against a real server on SQLite and on PostgreSQL.

mod common;

mod admin;
mod admin_api;
mod attacks;
mod authorize_errors;
mod browser;
mod cluster;
mod conformance;
mod console_browser;
mod core_flow;
mod fuzz_corpus;
mod identity;
mod interop;
mod jwks_uri;
mod keys;
mod languages;
mod licences;
mod login_methods;
mod logout;
mod ops;
mod passkeys;
mod readme;
mod registration;
mod token_errors;
mod tokens;
