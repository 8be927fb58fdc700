//! PRC resident identity number (公民身份号码), as specified by
//! GB 11643-1999 "Citizen identification number".
//!
//! An 18-character number is laid out as:
//!
//! | positions | meaning                                              |
//! |-----------|------------------------------------------------------|
//! | 1–6       | address (administrative division) code, GB/T 2260    |
//! | 7–14      | date of birth, `YYYYMMDD`                            |
//! | 15–17     | sequence code; the 17th digit is odd for men, even for women |
//! | 18        | check character, ISO 7064:1983 MOD 11-2 (`0`–`9` or `X`) |
//!
//! Identity numbers are personal data: [`ResidentId`] deliberately has no
//! `Display`, and its `Debug` shows only the [masked](ResidentId::masked)
//! form, so a full number cannot reach a log by accident. Use
//! [`ResidentId::expose`] where the full number is genuinely required.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of characters in a current (second-generation) identity number.
const LENGTH: usize = 18;

/// Number of digits in a first-generation number (GB 11643-1989), no longer accepted.
const LEGACY_LENGTH: usize = 15;

/// Weights of positions 1–17, GB 11643-1999 §8.2 (`2^(18-i) mod 11`).
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// Check character indexed by the weighted sum mod 11, GB 11643-1999 §8.2.
const CHECK_CHARACTERS: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

/// Earliest birth year accepted.
const MIN_YEAR: i32 = 1900;

/// Number of leading characters left visible by [`ResidentId::masked`].
const MASK_KEEP_START: usize = 3;

/// Number of trailing characters left visible by [`ResidentId::masked`].
const MASK_KEEP_END: usize = 2;

/// Why a string is not a valid resident identity number.
///
/// Messages never contain the number itself, so errors are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResidentIdError {
    /// The number does not have 18 characters.
    #[error("a resident identity number must have 18 characters, found {found}")]
    Length {
        /// Number of characters found (after trimming surrounding whitespace).
        found: usize,
    },
    /// A non-digit among the first 17 characters, or a last character that
    /// is neither a digit nor `X`.
    #[error("a resident identity number must be 17 digits followed by a digit or the letter X")]
    Characters,
    /// The check character does not match the first 17 digits.
    #[error(
        "the check character of the resident identity number is {found} but should be {expected}; please check the number for typing mistakes"
    )]
    CheckDigit {
        /// Check character computed from the first 17 digits.
        expected: char,
        /// Check character present in the input (upper-cased).
        found: char,
    },
    /// The birth date is not a real calendar date, is before 1900, or is in the future.
    #[error("the birth date in the resident identity number is not a valid date")]
    BirthDate,
    /// A 15-digit first-generation number (GB 11643-1989).
    #[error(
        "15-digit resident identity numbers are no longer accepted; please enter your 18-digit resident identity number"
    )]
    Legacy15,
}

impl ResidentIdError {
    /// Stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Length { .. } => "length",
            Self::Characters => "characters",
            Self::CheckDigit { .. } => "check_digit",
            Self::BirthDate => "birth_date",
            Self::Legacy15 => "legacy_15",
        }
    }

    /// User-facing message in Simplified Chinese.
    pub fn message_zh(&self) -> &'static str {
        match self {
            Self::Length { .. } => "身份证号码应为18位",
            Self::Characters => "身份证号码格式不正确：前17位应为数字，最后一位应为数字或字母X",
            Self::CheckDigit { .. } => "身份证号码校验位不正确",
            Self::BirthDate => "身份证号码中的出生日期无效",
            Self::Legacy15 => "不再支持15位身份证号码，请输入18位身份证号码",
        }
    }
}

/// Gender encoded by the parity of the 17th digit (GB 11643-1999 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gender {
    /// Odd sequence code.
    Male,
    /// Even sequence code.
    Female,
}

impl Gender {
    /// Value of the OpenID Connect `gender` claim (OIDC Core §5.1).
    pub fn as_oidc_str(self) -> &'static str {
        match self {
            Self::Male => "male",
            Self::Female => "female",
        }
    }
}

/// A validated 18-character PRC resident identity number (GB 11643-1999).
///
/// Always normalised: no surrounding whitespace, check character `X` upper-case.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResidentId(String);

impl ResidentId {
    /// Parses a resident identity number, checking its format, check
    /// character and that its birth date is a real date in or after 1900.
    ///
    /// Surrounding whitespace is ignored and a lower-case `x` is accepted.
    /// This does not reject future birth dates, since the domain does not
    /// read the clock; use [`ResidentId::parse_at`] for that.
    pub fn parse(s: &str) -> Result<Self, ResidentIdError> {
        Self::parse_inner(s, None)
    }

    /// Like [`ResidentId::parse`], and also rejects a birth date after
    /// `today`, given as `(year, month, day)`.
    pub fn parse_at(s: &str, today: (i32, u32, u32)) -> Result<Self, ResidentIdError> {
        Self::parse_inner(s, Some(today))
    }

    fn parse_inner(s: &str, today: Option<(i32, u32, u32)>) -> Result<Self, ResidentIdError> {
        let trimmed = s.trim();
        let length = trimmed.chars().count();
        if length == LEGACY_LENGTH && trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ResidentIdError::Legacy15);
        }
        if length != LENGTH {
            return Err(ResidentIdError::Length { found: length });
        }
        // All 18 characters are ASCII from here on, so byte indexing is safe.
        let (digits, found) = split_digits_and_check(trimmed)?;
        let expected = check_character(&digits);
        if found != expected {
            return Err(ResidentIdError::CheckDigit { expected, found });
        }
        let birth = birth_date_of(&digits);
        if !is_acceptable_birth_date(birth, today) {
            return Err(ResidentIdError::BirthDate);
        }
        let mut normalised: String = digits.iter().map(|&d| char::from(b'0' + d)).collect();
        normalised.push(found);
        Ok(Self(normalised))
    }

    /// The full, normalised number.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full number, for the few places that genuinely need it.
    ///
    /// Same as [`ResidentId::as_str`]; the name makes disclosure visible in review.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Birth date as `(year, month, day)`.
    pub fn birth_date(&self) -> (i32, u32, u32) {
        let year = self.number_at(6..10);
        let month = self.number_at(10..12);
        let day = self.number_at(12..14);
        (i32::try_from(year).unwrap_or(0), month, day)
    }

    /// Birth date in ISO 8601 form, e.g. `1949-12-31` (the OIDC `birthdate` claim).
    pub fn birthdate_iso(&self) -> String {
        let (year, month, day) = self.birth_date();
        format!("{year:04}-{month:02}-{day:02}")
    }

    /// Gender from the parity of the 17th digit: odd is male, even is female.
    pub fn gender(&self) -> Gender {
        if self.number_at(16..17) % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// The six-digit address code (positions 1–6, GB/T 2260).
    pub fn area_code(&self) -> &str {
        self.0.get(..6).unwrap_or_default()
    }

    /// The number with all but the first 3 and last 2 characters replaced by
    /// `*`, e.g. `110*************2X`. Safe to show or log.
    pub fn masked(&self) -> String {
        let count = self.0.chars().count();
        self.0
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i < MASK_KEEP_START || i + MASK_KEEP_END >= count {
                    c
                } else {
                    '*'
                }
            })
            .collect()
    }

    /// Decimal value of the ASCII digits in `range` (0 if out of range).
    fn number_at(&self, range: std::ops::Range<usize>) -> u32 {
        self.0.as_bytes().get(range).map_or(0, |bytes| {
            decimal_value(bytes.iter().map(|b| b.wrapping_sub(b'0')))
        })
    }
}

/// Splits an 18-character string into its 17 digit values and the
/// upper-cased check character.
fn split_digits_and_check(s: &str) -> Result<([u8; 17], char), ResidentIdError> {
    let mut digits = [0u8; 17];
    let mut chars = s.chars();
    for slot in &mut digits {
        *slot = match chars.next() {
            Some(c @ '0'..='9') => c as u8 - b'0',
            _ => return Err(ResidentIdError::Characters),
        };
    }
    let check = match chars.next() {
        Some(c @ '0'..='9') => c,
        Some('X' | 'x') => 'X',
        _ => return Err(ResidentIdError::Characters),
    };
    Ok((digits, check))
}

/// Check character for the first 17 digits (GB 11643-1999 §8.2, ISO 7064 MOD 11-2).
fn check_character(digits: &[u8; 17]) -> char {
    let sum: u32 = digits.iter().zip(WEIGHTS).map(|(&d, w)| u32::from(d) * w).sum();
    // `sum % 11` is below 11, so the lookup always succeeds.
    CHECK_CHARACTERS.get((sum % 11) as usize).copied().unwrap_or('?')
}

/// Birth date `(year, month, day)` from positions 7–14.
fn birth_date_of(digits: &[u8; 17]) -> (i32, u32, u32) {
    let value = |range: std::ops::Range<usize>| {
        digits
            .get(range)
            .map_or(0, |ds| decimal_value(ds.iter().copied()))
    };
    let year = i32::try_from(value(6..10)).unwrap_or(0);
    (year, value(10..12), value(12..14))
}

/// Decimal value of a short sequence of digit values.
fn decimal_value(digits: impl Iterator<Item = u8>) -> u32 {
    digits.fold(0, |acc, d| acc * 10 + u32::from(d))
}

/// Whether `birth` is a real date, not before 1900 and not after `today`.
fn is_acceptable_birth_date(birth: (i32, u32, u32), today: Option<(i32, u32, u32)>) -> bool {
    let (year, month, day) = birth;
    year >= MIN_YEAR && is_real_date(year, month, day) && today.is_none_or(|t| birth <= t)
}

/// Whether `year` is a leap year in the Gregorian calendar.
fn is_leap_year(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Days in `month` of `year`, or 0 for an invalid month.
fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Whether `(year, month, day)` is a date of the Gregorian calendar.
fn is_real_date(year: i32, month: u32, day: u32) -> bool {
    day >= 1 && day <= days_in_month(year, month)
}

impl fmt::Debug for ResidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResidentId").field(&self.masked()).finish()
    }
}

impl Serialize for ResidentId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ResidentId {
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

    const VALID: &str = "11010519491231002X";

    /// Appends the computed check character to a 17-digit prefix.
    fn with_check(prefix: &str) -> String {
        let mut digits = [0u8; 17];
        for (slot, b) in digits.iter_mut().zip(prefix.bytes()) {
            *slot = b - b'0';
        }
        format!("{prefix}{}", check_character(&digits))
    }

    /// A number with the given birth date `YYYYMMDD` and a correct check character.
    fn with_birth(date: &str) -> String {
        with_check(&format!("110105{date}002"))
    }

    #[test]
    fn design_example_is_valid() {
        let id = ResidentId::parse(VALID).unwrap();
        assert_eq!(id.as_str(), VALID);
        assert_eq!(id.expose(), VALID);
        assert_eq!(id.birth_date(), (1949, 12, 31));
        assert_eq!(id.birthdate_iso(), "1949-12-31");
        assert_eq!(id.gender(), Gender::Female);
        assert_eq!(id.gender().as_oidc_str(), "female");
        assert_eq!(id.area_code(), "110105");
    }

    #[test]
    fn lower_case_x_and_whitespace_are_normalised() {
        let id = ResidentId::parse("  11010519491231002x\t\n").unwrap();
        assert_eq!(id.as_str(), VALID);
    }

    #[test]
    fn male_from_odd_sequence() {
        let id = ResidentId::parse(&with_check("11010519491231001")).unwrap();
        assert_eq!(id.gender(), Gender::Male);
        assert_eq!(id.gender().as_oidc_str(), "male");
    }

    #[test]
    fn masked_and_debug_hide_the_number() {
        let id = ResidentId::parse(VALID).unwrap();
        assert_eq!(id.masked(), "110*************2X");
        let debug = format!("{id:?}");
        assert_eq!(debug, "ResidentId(\"110*************2X\")");
        assert!(!debug.contains("19491231"));
    }

    #[test]
    fn bad_length() {
        assert_eq!(
            ResidentId::parse("1101051949123100"),
            Err(ResidentIdError::Length { found: 16 })
        );
        assert_eq!(
            ResidentId::parse("11010519491231002X1"),
            Err(ResidentIdError::Length { found: 19 })
        );
        assert_eq!(ResidentId::parse(""), Err(ResidentIdError::Length { found: 0 }));
        // Multi-byte characters are counted as characters, not bytes.
        assert_eq!(
            ResidentId::parse("身份证"),
            Err(ResidentIdError::Length { found: 3 })
        );
    }

    #[test]
    fn legacy_15_digit_numbers() {
        let err = ResidentId::parse("110105491231002").unwrap_err();
        assert_eq!(err, ResidentIdError::Legacy15);
        assert_eq!(err.code(), "legacy_15");
        assert!(err.to_string().contains("18-digit"));
        // Fifteen characters that are not all digits are just the wrong length.
        assert_eq!(
            ResidentId::parse("11010549123100X"),
            Err(ResidentIdError::Length { found: 15 })
        );
    }

    #[test]
    fn bad_characters() {
        assert_eq!(
            ResidentId::parse("1101051949123100XX"),
            Err(ResidentIdError::Characters)
        );
        assert_eq!(
            ResidentId::parse("11010519491231002Y"),
            Err(ResidentIdError::Characters)
        );
        assert_eq!(
            ResidentId::parse("11010519491231002\u{ff38}"),
            Err(ResidentIdError::Characters)
        );
        assert_eq!(
            ResidentId::parse("1101051949123100２X"),
            Err(ResidentIdError::Characters)
        );
        assert_eq!(
            ResidentId::parse("11010519491231 02X"),
            Err(ResidentIdError::Characters)
        );
    }

    #[test]
    fn bad_check_character() {
        assert_eq!(
            ResidentId::parse("110105194912310021"),
            Err(ResidentIdError::CheckDigit {
                expected: 'X',
                found: '1'
            })
        );
        let err = ResidentId::parse("110105194912310029").unwrap_err();
        assert_eq!(err.code(), "check_digit");
        assert_eq!(err.message_zh(), "身份证号码校验位不正确");
    }

    #[test]
    fn impossible_dates() {
        for date in [
            "19490230", "19000229", "20230229", "19491301", "19490001", "19490100", "19490431",
        ] {
            assert_eq!(
                ResidentId::parse(&with_birth(date)),
                Err(ResidentIdError::BirthDate),
                "{date}"
            );
        }
    }

    #[test]
    fn leap_days() {
        for date in ["20000229", "20240229", "19960229"] {
            let id = ResidentId::parse(&with_birth(date)).unwrap();
            assert_eq!(id.birth_date().1, 2);
            assert_eq!(id.birth_date().2, 29);
        }
    }

    #[test]
    fn years_before_1900_are_rejected() {
        assert_eq!(
            ResidentId::parse(&with_birth("18991231")),
            Err(ResidentIdError::BirthDate)
        );
        assert!(ResidentId::parse(&with_birth("19000101")).is_ok());
    }

    #[test]
    fn parse_at_rejects_future_birth_dates() {
        let today = (2024, 6, 15);
        assert!(ResidentId::parse_at(&with_birth("20240615"), today).is_ok());
        assert!(ResidentId::parse_at(VALID, today).is_ok());
        for date in ["20240616", "20240701", "20250101"] {
            assert_eq!(
                ResidentId::parse_at(&with_birth(date), today),
                Err(ResidentIdError::BirthDate),
                "{date}"
            );
            // Without a reference date only the calendar is checked.
            assert!(ResidentId::parse(&with_birth(date)).is_ok());
        }
        assert_eq!(
            ResidentId::parse_at(&with_birth("18991231"), today),
            Err(ResidentIdError::BirthDate)
        );
    }

    #[test]
    fn error_codes_and_messages() {
        let all = [
            ResidentIdError::Length { found: 3 },
            ResidentIdError::Characters,
            ResidentIdError::CheckDigit {
                expected: 'X',
                found: '1',
            },
            ResidentIdError::BirthDate,
            ResidentIdError::Legacy15,
        ];
        let codes: Vec<_> = all.iter().map(ResidentIdError::code).collect();
        assert_eq!(
            codes,
            ["length", "characters", "check_digit", "birth_date", "legacy_15"]
        );
        for err in &all {
            assert!(!err.to_string().is_empty());
            assert!(!err.message_zh().is_empty());
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let de: StrDeserializer<'_, ValueError> = "11010519491231002x".into_deserializer();
        let id = ResidentId::deserialize(de).unwrap();
        assert_eq!(id.as_str(), VALID);
        let bad: StrDeserializer<'_, ValueError> = "110105194912310021".into_deserializer();
        let err = ResidentId::deserialize(bad).unwrap_err();
        assert!(err.to_string().contains("check character"));
        assert!(!err.to_string().contains("110105"));
    }

    /// Province-level prefixes of GB/T 2260 address codes.
    const PROVINCES: &[&str] = &[
        "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41", "42",
        "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71", "81", "82",
    ];

    /// Valid numbers with a random area, a real birth date and a random sequence.
    fn valid_id() -> impl Strategy<Value = String> {
        (
            prop::sample::select(PROVINCES),
            0u32..10_000,
            MIN_YEAR..=2024,
            1u32..=12,
            1u32..=31,
            0u32..1000,
        )
            .prop_map(|(province, area, year, month, day, sequence)| {
                let day = day.min(days_in_month(year, month));
                with_check(&format!(
                    "{province}{area:04}{year:04}{month:02}{day:02}{sequence:03}"
                ))
            })
    }

    /// Replaces the character at `index` (ASCII input) with `replacement`.
    fn replace_at(s: &str, index: usize, replacement: char) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| if i == index { replacement } else { c })
            .collect()
    }

    proptest! {
        #[test]
        fn generated_numbers_parse(id in valid_id()) {
            let parsed = ResidentId::parse(&id).unwrap();
            prop_assert_eq!(parsed.as_str(), id.as_str());
            prop_assert!(ResidentId::parse_at(&id, (2025, 1, 1)).is_ok());
            let iso = parsed.birthdate_iso();
            prop_assert_eq!(iso.replace('-', ""), &id[6..14]);
            prop_assert_eq!(parsed.area_code(), &id[..6]);
            prop_assert_eq!(parsed.masked().chars().count(), 18);
            let debug = format!("{parsed:?}");
            prop_assert!(!debug.contains(&id[3..16]));
            let odd = (id.as_bytes()[16] - b'0') % 2 == 1;
            prop_assert_eq!(parsed.gender() == Gender::Male, odd);
        }

        #[test]
        fn any_single_substitution_is_rejected(
            id in valid_id(),
            index in 0usize..18,
            shift in 1u8..11,
        ) {
            let original = id.as_bytes()[index];
            let replacement = if index < 17 {
                // A shift of 1..=9 always gives a different digit.
                let digit_shift = 1 + (shift - 1) % 9;
                char::from(b'0' + (original - b'0' + digit_shift) % 10)
            } else {
                // A shift of 1..=10 always gives a different check character.
                let position = CHECK_CHARACTERS
                    .iter()
                    .position(|&c| c as u8 == original)
                    .unwrap();
                CHECK_CHARACTERS[(position + usize::from(shift)) % 11]
            };
            prop_assert_ne!(replacement as u8, original);
            let mutated = replace_at(&id, index, replacement);
            prop_assert!(ResidentId::parse(&mutated).is_err(), "{} accepted", mutated);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            exercise(&s);
        }

        #[test]
        fn near_miss_strings_never_panic(s in "[0-9xX \u{00e9}\u{4e00}\u{1f600}\u{ff10}-\u{ff19}]{14,20}") {
            exercise(&s);
        }
    }

    /// Parses `s` every way and calls every accessor on success.
    fn exercise(s: &str) {
        for result in [
            ResidentId::parse(s),
            ResidentId::parse_at(s, (2024, 2, 29)),
            ResidentId::parse_at(s, (-1, 99, 99)),
        ] {
            match result {
                Ok(id) => {
                    let _ = (id.birth_date(), id.birthdate_iso(), id.gender());
                    let _ = (id.area_code(), id.masked(), format!("{id:?}"));
                }
                Err(err) => {
                    let _ = (err.code(), err.message_zh(), err.to_string());
                }
            }
        }
    }
}
