//! yunid: a unified identity provider (OpenID Connect) for natural and legal persons.
//!
//! `main.rs` is the CLI; this library builds the application so tests can start it on port 0.

pub mod amr;
pub mod app;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
/// Harnesses for the fuzz targets in `fuzz/` and the corpus replay test.
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod identity;
pub mod ids;
pub mod keys;
pub mod metrics;
pub mod oauth;
pub mod scope;
pub mod services;
pub mod store;

pub use app::App;
pub use config::Config;
