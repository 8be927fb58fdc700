//! Validated identifiers used by yunid's identity proofing.
//!
//! * [`ResidentId`] — PRC resident identity number (GB 11643-1999).
//! * [`CreditCode`] — unified social credit code for organisations (GB 32100-2015).
//! * [`Phone`] — mainland China mobile number, stored in E.164 form.
//! * [`LicenceId`] — e-licence identifier (GB/T 36904-2018).
//!
//! Every type can only be built through its `parse` function, so a value of
//! one of these types is always well formed. Parsing never panics, whatever
//! the input.

pub mod credit_code;
pub mod licence_id;
pub mod phone;
pub mod resident_id;

pub use credit_code::{CreditCode, CreditCodeError};
pub use licence_id::{LicenceId, LicenceIdError};
pub use phone::{Phone, PhoneError};
pub use resident_id::{Gender, ResidentId, ResidentIdError};
