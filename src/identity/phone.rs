//! Mainland China mobile telephone numbers, stored in ITU-T E.164 form.
//!
//! Under the national numbering plan (YD/T 2740 and MIIT numbering rules) a
//! mobile number is 11 digits beginning `13`–`19`; in E.164 it is written
//! with country code 86, e.g. `+8613800138000`.
//!
//! Accepted inputs include `13800138000`, `138 0013 8000`, `138-0013-8000`,
//! `+8613800138000`, `008613800138000` and `86 138 0013 8000`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// E.164 prefix of mainland China (`+` and country code 86).
const E164_PREFIX: &str = "+86";

/// Country code as dialled after `+`.
const COUNTRY_CODE: &str = "86";

/// International call prefix used from mainland China, followed by the country code.
const INTERNATIONAL_PREFIX: &str = "0086";

/// Digits in a national mobile number.
const NATIONAL_LENGTH: usize = 11;

/// Digits visible at the start of a [masked](Phone::masked) number.
const MASK_KEEP_START: usize = 3;

/// Digits visible at the end of a [masked](Phone::masked) number.
const MASK_KEEP_END: usize = 4;

/// Why a string is not a valid mainland China mobile number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The national number does not have 11 digits.
    #[error("a mainland China mobile number must have 11 digits")]
    Length,
    /// A character other than digits, spaces, hyphens and a leading `+`.
    #[error("a phone number may contain only digits, spaces, hyphens and a leading +")]
    Characters,
    /// Not a mainland China mobile number (foreign country code or a
    /// national number not starting with 13–19).
    #[error(
        "not a mainland China mobile number: expected 11 digits starting with 13 to 19, optionally preceded by +86"
    )]
    Prefix,
}

impl PhoneError {
    /// Stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::Characters => "characters",
            Self::Prefix => "prefix",
        }
    }

    /// User-facing message in Simplified Chinese.
    pub fn message_zh(&self) -> &'static str {
        match self {
            Self::Length => "手机号码应为11位数字",
            Self::Characters => "手机号码包含无效字符",
            Self::Prefix => "请输入有效的中国大陆手机号码",
        }
    }
}

/// A validated mainland China mobile number, stored as `+86` and 11 digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a mainland China mobile number in any of the accepted forms.
    ///
    /// Whitespace and hyphens are ignored; an optional `+86`, `0086` or `86`
    /// country prefix is removed; the remaining 11 digits must start with
    /// `1` followed by `3`–`9`.
    pub fn parse(s: &str) -> Result<Self, PhoneError> {
        let compact: String = s.chars().filter(|&c| !c.is_whitespace() && c != '-').collect();
        let (plus, digits) = match compact.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, compact.as_str()),
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PhoneError::Characters);
        }
        // Only ASCII digits remain, so byte lengths are digit counts.
        let national = strip_country_code(plus, digits)?;
        if national.len() != NATIONAL_LENGTH {
            return Err(PhoneError::Length);
        }
        if !is_mobile_prefix(national) {
            return Err(PhoneError::Prefix);
        }
        Ok(Self(format!("{E164_PREFIX}{national}")))
    }

    /// The number in E.164 form, e.g. `+8613800138000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 11-digit national number, e.g. `13800138000`.
    pub fn national(&self) -> &str {
        self.0.get(E164_PREFIX.len()..).unwrap_or_default()
    }

    /// The national number with the middle four digits hidden, e.g. `138****8000`.
    pub fn masked(&self) -> String {
        let national = self.national();
        let start = national.get(..MASK_KEEP_START).unwrap_or_default();
        let end = national
            .get(national.len().saturating_sub(MASK_KEEP_END)..)
            .unwrap_or_default();
        let hidden = national.len().saturating_sub(MASK_KEEP_START + MASK_KEEP_END);
        format!("{start}{}{end}", "*".repeat(hidden))
    }
}

/// Removes a `+86`, `0086` or `86` country prefix from an all-digit string.
fn strip_country_code(plus: bool, digits: &str) -> Result<&str, PhoneError> {
    if plus {
        return digits.strip_prefix(COUNTRY_CODE).ok_or(PhoneError::Prefix);
    }
    if let Some(rest) = digits.strip_prefix(INTERNATIONAL_PREFIX) {
        return Ok(rest);
    }
    if digits.starts_with("00") {
        // International prefix followed by another country code.
        return Err(PhoneError::Prefix);
    }
    match digits.strip_prefix(COUNTRY_CODE) {
        Some(rest) if digits.len() == COUNTRY_CODE.len() + NATIONAL_LENGTH => Ok(rest),
        _ => Ok(digits),
    }
}

/// Whether an 11-digit national number starts with `1` and then `3`–`9`.
fn is_mobile_prefix(national: &str) -> bool {
    matches!(national.as_bytes(), [b'1', b'3'..=b'9', ..])
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Phone").field(&self.masked()).finish()
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as ValueError, StrDeserializer};

    const E164: &str = "+8613800138000";

    #[test]
    fn accepted_formats() {
        for input in [
            "13800138000",
            "138 0013 8000",
            "138-0013-8000",
            "+8613800138000",
            "008613800138000",
            "86 138 0013 8000",
            "8613800138000",
            "+86 138-0013-8000",
            "  138 0013 8000\t",
        ] {
            let phone = Phone::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(phone.as_str(), E164, "{input}");
        }
    }

    #[test]
    fn accessors() {
        let phone = Phone::parse("138 0013 8000").unwrap();
        assert_eq!(phone.national(), "13800138000");
        assert_eq!(phone.masked(), "138****8000");
        assert_eq!(phone.to_string(), E164);
        assert_eq!(format!("{phone:?}"), "Phone(\"138****8000\")");
    }

    #[test]
    fn bad_length() {
        for input in [
            "",
            "1380013800",
            "138001380001",
            "+86138001380",
            "0086138001380001",
        ] {
            assert_eq!(Phone::parse(input), Err(PhoneError::Length), "{input:?}");
        }
    }

    #[test]
    fn bad_characters() {
        for input in [
            "138.0013.8000",
            "138001380OO",
            "１３８００１３８０００",
            "138+00138000",
            "++8613800138000",
            "(138)00138000",
        ] {
            assert_eq!(Phone::parse(input), Err(PhoneError::Characters), "{input:?}");
        }
    }

    #[test]
    fn bad_prefix() {
        for input in [
            "12800138000",
            "10800138000",
            "23800138000",
            "+14155550100",
            "+8523800138000",
            "0014155550100",
            "+",
        ] {
            assert_eq!(Phone::parse(input), Err(PhoneError::Prefix), "{input:?}");
        }
    }

    #[test]
    fn error_codes_and_messages() {
        let all = [PhoneError::Length, PhoneError::Characters, PhoneError::Prefix];
        let codes: Vec<_> = all.iter().map(PhoneError::code).collect();
        assert_eq!(codes, ["length", "characters", "prefix"]);
        for err in &all {
            assert!(!err.to_string().is_empty());
            assert!(!err.message_zh().is_empty());
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let de: StrDeserializer<'_, ValueError> = "138-0013-8000".into_deserializer();
        assert_eq!(Phone::deserialize(de).unwrap().as_str(), E164);
        let bad: StrDeserializer<'_, ValueError> = "12800138000".into_deserializer();
        assert!(Phone::deserialize(bad).is_err());
    }

    /// Valid 11-digit national numbers.
    fn national() -> impl Strategy<Value = String> {
        "1[3-9][0-9]{9}"
    }

    /// Formats `n` as `ddd<sep>dddd<sep>dddd`.
    fn grouped(n: &str, separator: &str) -> String {
        format!("{}{separator}{}{separator}{}", &n[..3], &n[3..7], &n[7..])
    }

    proptest! {
        #[test]
        fn every_accepted_format_round_trips(n in national()) {
            let expected = format!("+86{n}");
            let forms = [
                n.clone(),
                grouped(&n, " "),
                grouped(&n, "-"),
                format!("+86{n}"),
                format!("+86 {}", grouped(&n, " ")),
                format!("0086{n}"),
                format!("0086 {}", grouped(&n, "-")),
                format!("86{n}"),
                format!("86 {}", grouped(&n, " ")),
                format!(" {n}\n"),
            ];
            for form in &forms {
                let phone = Phone::parse(form).unwrap();
                prop_assert_eq!(phone.as_str(), expected.as_str());
                prop_assert_eq!(phone.national(), n.as_str());
                prop_assert_eq!(&Phone::parse(phone.as_str()).unwrap(), &phone);
                prop_assert_eq!(&Phone::parse(phone.national()).unwrap(), &phone);
                prop_assert_eq!(phone.masked(), format!("{}****{}", &n[..3], &n[7..]));
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            exercise(&s);
        }

        #[test]
        fn near_miss_strings_never_panic(s in "[+0-9 \\-\u{00e9}\u{4e00}\u{ff11}]{0,20}") {
            exercise(&s);
        }
    }

    /// Parses `s` and calls every accessor on success.
    fn exercise(s: &str) {
        match Phone::parse(s) {
            Ok(phone) => {
                let _ = (phone.national(), phone.masked(), format!("{phone:?}"));
                assert_eq!(phone.national().len(), NATIONAL_LENGTH);
            }
            Err(err) => {
                let _ = (err.code(), err.message_zh(), err.to_string());
            }
        }
    }
}
