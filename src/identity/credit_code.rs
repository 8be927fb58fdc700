//! Unified social credit code (统一社会信用代码) of legal persons and other
//! organisations, as specified by GB 32100-2015.
//!
//! An 18-character code over the 31-symbol alphabet
//! `0123456789ABCDEFGHJKLMNPQRTUWXY` (no `I`, `O`, `S`, `V`, `Z`):
//!
//! | positions | meaning                                            |
//! |-----------|----------------------------------------------------|
//! | 1         | registration authority code                        |
//! | 2         | organisation category code                         |
//! | 3–8       | registration authority's area code, GB/T 2260 (digits) |
//! | 9–17      | organisation code, GB 11714                        |
//! | 18        | check character                                    |
//!
//! The check character is computed per GB 32100-2015 §5: with `v_i` the
//! index of symbol `i` in the alphabet and weights `w_i = 3^(i-1) mod 31`,
//! the check is the symbol at index `(31 - (Σ v_i·w_i mod 31)) mod 31`.
//!
//! Credit codes are public information, so [`CreditCode`] implements `Display`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of characters in a credit code.
const LENGTH: usize = 18;

/// The 31 symbols of GB 32100-2015 Table 1, in value order.
const ALPHABET: [char; 31] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'L',
    'M', 'N', 'P', 'Q', 'R', 'T', 'U', 'W', 'X', 'Y',
];

/// Weights `3^(i-1) mod 31` of positions 1–17, GB 32100-2015 §5.
const WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];

/// Zero-based character range of the area code (positions 3–8).
const AREA: std::ops::Range<usize> = 2..8;

/// Why a string is not a valid unified social credit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    /// The code does not have 18 characters.
    #[error("a unified social credit code must have 18 characters")]
    Length,
    /// A character outside the code's alphabet, or a non-digit in the area code.
    #[error("invalid character {found:?} at position {position} of the unified social credit code")]
    Characters {
        /// One-based position of the offending character.
        position: usize,
        /// The offending character (upper-cased if it was an ASCII letter).
        found: char,
    },
    /// The check character does not match the first 17 characters.
    #[error(
        "the check character of the unified social credit code is {found} but should be {expected}; please check the code for typing mistakes"
    )]
    CheckCharacter {
        /// Check character computed from the first 17 characters.
        expected: char,
        /// Check character present in the input.
        found: char,
    },
}

impl CreditCodeError {
    /// Stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Length => "length",
            Self::Characters { .. } => "characters",
            Self::CheckCharacter { .. } => "check_character",
        }
    }

    /// User-facing message in Simplified Chinese.
    pub fn message_zh(&self) -> &'static str {
        match self {
            Self::Length => "统一社会信用代码应为18位",
            Self::Characters { .. } => "统一社会信用代码包含无效字符",
            Self::CheckCharacter { .. } => "统一社会信用代码校验位不正确",
        }
    }
}

/// A validated 18-character unified social credit code (GB 32100-2015).
///
/// Always normalised: upper-case, no surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CreditCode(String);

impl CreditCode {
    /// Parses a credit code, checking length, alphabet, that the area code
    /// is numeric, and the check character. Input is trimmed and ASCII
    /// letters are upper-cased.
    pub fn parse(s: &str) -> Result<Self, CreditCodeError> {
        Self::parse_inner(s, None)
    }

    /// Like [`CreditCode::parse`], but also accepts a code whose only defect
    /// is its check character when `allow_list` returns `true` for the
    /// normalised code (some lawful codes issued during the early pilot do
    /// not satisfy the check).
    pub fn parse_allowing(s: &str, allow_list: &dyn Fn(&str) -> bool) -> Result<Self, CreditCodeError> {
        Self::parse_inner(s, Some(allow_list))
    }

    fn parse_inner(s: &str, allow_list: Option<&dyn Fn(&str) -> bool>) -> Result<Self, CreditCodeError> {
        let normalised: String = s.trim().chars().map(|c| c.to_ascii_uppercase()).collect();
        if normalised.chars().count() != LENGTH {
            return Err(CreditCodeError::Length);
        }
        let values = symbol_values(&normalised)?;
        let (body, check) = values.split_at(LENGTH - 1);
        let expected = check_character(body);
        let found = check.first().map_or('?', |&v| symbol(v));
        if found != expected && !allow_list.is_some_and(|allowed| allowed(&normalised)) {
            return Err(CreditCodeError::CheckCharacter { expected, found });
        }
        Ok(Self(normalised))
    }

    /// The normalised code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The six-digit area code of the registration authority (positions 3–8).
    pub fn area_code(&self) -> &str {
        self.0.get(AREA).unwrap_or_default()
    }
}

/// Alphabet values of the 18 characters of `s`, which must have 18 characters.
fn symbol_values(s: &str) -> Result<[u32; LENGTH], CreditCodeError> {
    let mut values = [0u32; LENGTH];
    for (index, (slot, c)) in values.iter_mut().zip(s.chars()).enumerate() {
        let invalid = CreditCodeError::Characters {
            position: index + 1,
            found: c,
        };
        let value = symbol_value(c).ok_or(invalid.clone())?;
        if AREA.contains(&index) && value >= 10 {
            return Err(invalid);
        }
        *slot = value;
    }
    Ok(values)
}

/// Index of `c` in the alphabet.
fn symbol_value(c: char) -> Option<u32> {
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|i| u32::try_from(i).ok())
}

/// Symbol for a value below 31.
fn symbol(value: u32) -> char {
    ALPHABET.get(value as usize).copied().unwrap_or('?')
}

/// Check character for the values of positions 1–17 (GB 32100-2015 §5).
fn check_character(body: &[u32]) -> char {
    let sum: u32 = body.iter().zip(WEIGHTS).map(|(&v, w)| v * w).sum();
    symbol((31 - sum % 31) % 31)
}

impl fmt::Display for CreditCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for CreditCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CreditCode {
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

    const VALID: &str = "91350100M000100Y43";

    /// Appends the computed check character to a 17-character body.
    fn with_check(body: &str) -> String {
        let values: Vec<u32> = body.chars().map(|c| symbol_value(c).unwrap()).collect();
        format!("{body}{}", check_character(&values))
    }

    #[test]
    fn weights_are_powers_of_three() {
        let mut w = 1u32;
        for expected in WEIGHTS {
            assert_eq!(w, expected);
            w = w * 3 % 31;
        }
    }

    #[test]
    fn design_example_is_valid() {
        let code = CreditCode::parse(VALID).unwrap();
        assert_eq!(code.as_str(), VALID);
        assert_eq!(code.area_code(), "350100");
        assert_eq!(code.to_string(), VALID);
    }

    #[test]
    fn input_is_trimmed_and_upper_cased() {
        let code = CreditCode::parse("  91350100m000100y43 \n").unwrap();
        assert_eq!(code.as_str(), VALID);
    }

    #[test]
    fn bad_length() {
        assert_eq!(
            CreditCode::parse("91350100M000100Y4"),
            Err(CreditCodeError::Length)
        );
        assert_eq!(
            CreditCode::parse("91350100M000100Y433"),
            Err(CreditCodeError::Length)
        );
        assert_eq!(CreditCode::parse(""), Err(CreditCodeError::Length));
        // A ligature that upper-cases to two letters must not change the length.
        assert_eq!(
            CreditCode::parse("91350100M000100Y\u{fb00}"),
            Err(CreditCodeError::Length)
        );
    }

    #[test]
    fn bad_characters() {
        assert_eq!(
            CreditCode::parse("91350100M000100I43"),
            Err(CreditCodeError::Characters {
                position: 16,
                found: 'I'
            })
        );
        assert_eq!(
            CreditCode::parse("O1350100M000100Y43"),
            Err(CreditCodeError::Characters {
                position: 1,
                found: 'O'
            })
        );
        for letter in ['Z', 'S', 'V'] {
            let input = format!("91350100M000100Y4{letter}");
            assert_eq!(
                CreditCode::parse(&input),
                Err(CreditCodeError::Characters {
                    position: 18,
                    found: letter
                })
            );
        }
        assert_eq!(
            CreditCode::parse("9135A100M000100Y43"),
            Err(CreditCodeError::Characters {
                position: 5,
                found: 'A'
            })
        );
        assert_eq!(
            CreditCode::parse("91350100M000100Y4é"),
            Err(CreditCodeError::Characters {
                position: 18,
                found: 'é'
            })
        );
    }

    #[test]
    fn bad_check_character() {
        let err = CreditCode::parse("91350100M000100Y44").unwrap_err();
        assert_eq!(
            err,
            CreditCodeError::CheckCharacter {
                expected: '3',
                found: '4'
            }
        );
        assert_eq!(err.code(), "check_character");
        assert_eq!(err.message_zh(), "统一社会信用代码校验位不正确");
    }

    #[test]
    fn allow_list_admits_only_check_failures() {
        let pilot = "91350100M000100Y44";
        let allow = |code: &str| code == pilot;
        let code = CreditCode::parse_allowing(" 91350100m000100y44 ", &allow).unwrap();
        assert_eq!(code.as_str(), pilot);
        assert!(CreditCode::parse_allowing(VALID, &allow).is_ok());
        assert_eq!(
            CreditCode::parse_allowing("91350100M000100Y45", &allow),
            Err(CreditCodeError::CheckCharacter {
                expected: '3',
                found: '5'
            })
        );
        let allow_all = |_: &str| true;
        assert_eq!(
            CreditCode::parse_allowing("91350100M000100I44", &allow_all),
            Err(CreditCodeError::Characters {
                position: 16,
                found: 'I'
            })
        );
        assert_eq!(
            CreditCode::parse_allowing("91350100M000100Y4", &allow_all),
            Err(CreditCodeError::Length)
        );
    }

    #[test]
    fn error_codes_and_messages() {
        let all = [
            CreditCodeError::Length,
            CreditCodeError::Characters {
                position: 1,
                found: 'I',
            },
            CreditCodeError::CheckCharacter {
                expected: '3',
                found: '4',
            },
        ];
        let codes: Vec<_> = all.iter().map(CreditCodeError::code).collect();
        assert_eq!(codes, ["length", "characters", "check_character"]);
        for err in &all {
            assert!(!err.to_string().is_empty());
            assert!(!err.message_zh().is_empty());
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let de: StrDeserializer<'_, ValueError> = "91350100m000100y43".into_deserializer();
        assert_eq!(CreditCode::deserialize(de).unwrap().as_str(), VALID);
        let bad: StrDeserializer<'_, ValueError> = "91350100M000100Y44".into_deserializer();
        assert!(CreditCode::deserialize(bad).is_err());
    }

    /// Valid codes: random symbols except for a numeric area code.
    fn valid_code() -> impl Strategy<Value = String> {
        let symbol = || prop::sample::select(ALPHABET.to_vec());
        (
            prop::collection::vec(symbol(), 2),
            prop::collection::vec(prop::sample::select(ALPHABET[..10].to_vec()), 6),
            prop::collection::vec(symbol(), 9),
        )
            .prop_map(|(head, area, organisation)| {
                let body: String = head.into_iter().chain(area).chain(organisation).collect();
                with_check(&body)
            })
    }

    proptest! {
        #[test]
        fn generated_codes_parse(code in valid_code()) {
            let parsed = CreditCode::parse(&code).unwrap();
            prop_assert_eq!(parsed.as_str(), code.as_str());
            prop_assert_eq!(parsed.area_code(), &code[2..8]);
            let lower = code.to_ascii_lowercase();
            prop_assert_eq!(CreditCode::parse(&lower).unwrap(), parsed);
        }

        #[test]
        fn any_single_substitution_is_rejected(
            code in valid_code(),
            index in 0usize..LENGTH,
            shift in 1u32..31,
        ) {
            let original = code.chars().nth(index).unwrap();
            let value = symbol_value(original).unwrap();
            let replacement = symbol((value + shift) % 31);
            prop_assert_ne!(replacement, original);
            let mutated: String = code
                .chars()
                .enumerate()
                .map(|(i, c)| if i == index { replacement } else { c })
                .collect();
            prop_assert!(CreditCode::parse(&mutated).is_err(), "{} accepted", mutated);
        }

        #[test]
        fn arbitrary_strings_never_panic(s in any::<String>()) {
            exercise(&s);
        }

        #[test]
        fn near_miss_strings_never_panic(s in "[0-9A-Za-z \u{00df}\u{fb00}\u{4e00}\u{1f600}]{16,20}") {
            exercise(&s);
        }
    }

    /// Parses `s` every way and calls every accessor on success.
    fn exercise(s: &str) {
        for result in [CreditCode::parse(s), CreditCode::parse_allowing(s, &|_| true)] {
            match result {
                Ok(code) => {
                    let _ = (code.as_str(), code.area_code(), code.to_string());
                }
                Err(err) => {
                    let _ = (err.code(), err.message_zh(), err.to_string());
                }
            }
        }
    }
}
