//! Validated identifiers used by yunid's identity proofing.
//!
//! * [`ResidentId`] — PRC resident identity number (GB 11643-1999).
//! * [`CreditCode`] — unified social credit code for organisations (GB 32100-2015).
//! * [`Phone`] — mainland China mobile number, stored in E.164 form.
//!
//! Every type can only be built through its `parse` function, so a value of
//! one of these types is always well formed. Parsing never panics, whatever
//! the input.

pub mod credit_code;
pub mod phone;
pub mod resident_id;

pub use credit_code::{CreditCode, CreditCodeError};
pub use phone::{Phone, PhoneError};
pub use resident_id::{Gender, ResidentId, ResidentIdError};
