//! One file per grant type at the token endpoint.

pub mod device_code;
