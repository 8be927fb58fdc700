//! E-licence identifier, GB/T 36904-2018:
//! `1.2.156.3005.2.<type code>.<issuer code>.<serial>.<version>.<check>` where the type code is the
//! defining authority's credit code plus 3 digits, the issuer code is the issuing authority's credit
//! code, the version has 3 digits, and the check character is ISO 7064 MOD 37,36 over
//! type + issuer + serial + version.

use std::fmt;

use super::CreditCode;

const PREFIX: &str = "1.2.156.3005.2.";
const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LicenceId {
    value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenceIdError {
    #[error("an e-licence identifier starts with 1.2.156.3005.2.")]
    Prefix,
    #[error(
        "an e-licence identifier has type code, issuer code, serial, version and check, separated by dots"
    )]
    Shape,
    #[error("the type code must be the defining authority's credit code followed by 3 digits")]
    TypeCode,
    #[error("the issuer code must be the issuing authority's unified social credit code")]
    IssuerCode,
    #[error("the serial must be 1 to 32 letters or digits")]
    Serial,
    #[error("the version must be 3 digits")]
    Version,
    #[error("the check character is {found} but should be {expected}")]
    Check { expected: char, found: char },
}

impl LicenceIdError {
    pub fn code(&self) -> &'static str {
        match self {
            LicenceIdError::Prefix => "prefix",
            LicenceIdError::Shape => "shape",
            LicenceIdError::TypeCode => "type_code",
            LicenceIdError::IssuerCode => "issuer_code",
            LicenceIdError::Serial => "serial",
            LicenceIdError::Version => "version",
            LicenceIdError::Check { .. } => "check_character",
        }
    }
}

/// ISO 7064 MOD 37,36 (hybrid system over 0-9A-Z).
pub fn mod37_36(body: &str) -> Option<char> {
    let mut p: u32 = 36;
    for b in body.bytes() {
        let v = ALPHABET.iter().position(|a| *a == b)? as u32;
        let mut s = (p + v) % 36;
        if s == 0 {
            s = 36;
        }
        p = (s * 2) % 37;
    }
    Some(ALPHABET[((37 - p) % 36) as usize] as char)
}

fn alnum_upper(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

impl LicenceId {
    pub fn parse(raw: &str) -> Result<LicenceId, LicenceIdError> {
        let raw = raw.trim().to_ascii_uppercase();
        let rest = raw.strip_prefix(PREFIX).ok_or(LicenceIdError::Prefix)?;
        // Every part is ASCII; checked first, so the byte offsets below are character boundaries.
        if !rest.is_ascii() {
            return Err(LicenceIdError::Shape);
        }
        let parts: Vec<&str> = rest.split('.').collect();
        let [type_code, issuer, serial, version, check] = parts.as_slice() else {
            return Err(LicenceIdError::Shape);
        };
        if type_code.len() != 21 || !type_code[18..].bytes().all(|b| b.is_ascii_digit()) {
            return Err(LicenceIdError::TypeCode);
        }
        // The authority codes are credit codes by form; early codes may fail their own check, so only
        // length and alphabet are required here.
        let credit_like = |s: &str| CreditCode::parse_allowing(s, &|_| true).is_ok();
        if !credit_like(&type_code[..18]) {
            return Err(LicenceIdError::TypeCode);
        }
        if !credit_like(issuer) {
            return Err(LicenceIdError::IssuerCode);
        }
        if serial.is_empty() || serial.len() > 32 || !alnum_upper(serial) {
            return Err(LicenceIdError::Serial);
        }
        if version.len() != 3 || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LicenceIdError::Version);
        }
        let expected =
            mod37_36(&format!("{type_code}{issuer}{serial}{version}")).ok_or(LicenceIdError::Shape)?;
        let found = match check.as_bytes() {
            [c] => *c as char,
            _ => return Err(LicenceIdError::Shape),
        };
        if found != expected {
            return Err(LicenceIdError::Check { expected, found });
        }
        Ok(LicenceId { value: raw })
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    fn part(&self, i: usize) -> &str {
        self.value[PREFIX.len()..].split('.').nth(i).unwrap_or("")
    }

    /// The licence type code (defining authority's credit code + 3 digits).
    pub fn type_code(&self) -> &str {
        self.part(0)
    }

    /// The issuing authority's credit code.
    pub fn issuer_code(&self) -> &str {
        self.part(1)
    }
}

impl fmt::Display for LicenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl fmt::Debug for LicenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LicenceId({})", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "1.2.156.3005.2.11100000000013338W032.11220000013544541J.2430599.001.F";

    #[test]
    fn the_standard_example_is_valid() {
        let id = LicenceId::parse(EXAMPLE).unwrap();
        assert_eq!(id.type_code(), "11100000000013338W032");
        assert_eq!(id.issuer_code(), "11220000013544541J");
        assert_eq!(LicenceId::parse(&EXAMPLE.to_lowercase()).unwrap(), id);
    }

    #[test]
    fn each_part_is_checked() {
        let bad = |s: &str| LicenceId::parse(s).unwrap_err().code();
        assert_eq!(bad("1.2.156.3005.3.x"), "prefix");
        assert_eq!(bad(&EXAMPLE.replace(".F", ".G")), "check_character");
        assert_eq!(bad(&EXAMPLE.replace("W032", "W03")), "type_code");
        assert_eq!(bad(&EXAMPLE.replace(".001.", ".01.")), "version");
        assert_eq!(bad(&EXAMPLE.replace(".2430599.", "..")), "serial");
        assert_eq!(bad(&EXAMPLE.replace(".F", "")), "shape");
        assert_eq!(bad(&EXAMPLE.replace("41J", "4IJ")), "issuer_code");
    }

    proptest! {
        #[test]
        fn any_single_change_to_the_serial_is_caught(pos in 0usize..7, digit in 0u8..10) {
            let serial = "2430599";
            let mut changed = serial.as_bytes().to_vec();
            prop_assume!(changed[pos] != b'0' + digit);
            changed[pos] = b'0' + digit;
            let changed = String::from_utf8(changed).unwrap();
            prop_assert!(LicenceId::parse(&EXAMPLE.replace(serial, &changed)).is_err());
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,120}") {
            let _ = LicenceId::parse(&s);
        }
    }
}
