//! The domain: plain Rust, time passed in, no HTTP types.

pub mod admin;
pub mod admin_access;
pub mod audit;
pub mod authn;
pub mod connected_apps;
pub mod console;
pub mod device;
pub mod federation;
pub mod identity;
pub mod licence;
pub mod licence_upstream;
pub mod login;
pub mod logout;
pub mod notify;
pub mod oidc;
pub mod outbound;
pub mod params;
pub mod passkey;
pub mod password;
pub mod proofing;
pub mod registration;
pub mod registry;
pub mod scan;
pub mod signup;
pub mod sms;
pub mod sms_outbox;
