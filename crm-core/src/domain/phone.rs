//! E.164 phone numbers, with Brazil's mobile "9th digit" folded into one form.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// A phone number in E.164 form (`+` and 8–15 digits, no leading zero).
///
/// Brazilian mobile numbers are canonicalised to the 13-digit form with the 9th
/// digit: `+55 11 8765-4321` (the old 8-digit form still used in many WhatsApp ids)
/// and `+55 11 98765-4321` are the same [`Phone`], so they resolve to one contact.
///
/// ```
/// use crm_core::Phone;
/// let a: Phone = "+55 (11) 98765-4321".parse()?;
/// let b = Phone::parse("551187654321")?; // a WhatsApp id without the 9th digit
/// assert_eq!(a, b);
/// assert_eq!(a.as_str(), "+5511987654321");
/// assert_eq!(a.whatsapp_legacy_form().as_deref(), Some("551187654321"));
/// # Ok::<(), crm_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Phone(String);

const MIN_DIGITS: usize = 8;
const MAX_DIGITS: usize = 15;

impl Phone {
    /// Parses an international number: `+` then digits, or bare digits that
    /// already include the country code (as in WhatsApp ids). Spaces, dots,
    /// dashes and parentheses are ignored; a leading `00` is read as `+`.
    ///
    /// Returns [`Error::Validation`] on `phone` for anything else.
    pub fn parse(input: &str) -> Result<Self> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(invalid("is empty"));
        }
        let mut digits = String::with_capacity(16);
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(invalid("may contain only digits, spaces, dashes, dots, parentheses and a leading +")),
            }
            if digits.len() > MAX_DIGITS + 2 {
                return Err(invalid("has more than 15 digits"));
            }
        }
        if !trimmed.starts_with('+')
            && let Some(rest) = digits.strip_prefix("00")
        {
            digits = rest.to_owned();
        }
        Self::from_digits(digits)
    }

    /// Parses a number that may be written nationally (`(11) 98765-4321`),
    /// adding `country_code` (digits only, e.g. `"55"`) when the input has no `+`
    /// and does not already start with it. A national trunk `0` is dropped.
    pub fn parse_with_default_country(input: &str, country_code: &str) -> Result<Self> {
        if !(1..=3).contains(&country_code.len()) || !country_code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::validation("country_code", "must be 1 to 3 digits"));
        }
        let trimmed = input.trim();
        if trimmed.starts_with('+') || trimmed.starts_with("00") {
            return Self::parse(trimmed);
        }
        if !trimmed.chars().all(|c| c.is_ascii_digit() || " -.()".contains(c)) {
            return Err(invalid("may contain only digits, spaces, dashes, dots, parentheses and a leading +"));
        }
        let national: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        // A national number is shorter than an international one of the same country.
        if national.len() >= 12 && national.starts_with(country_code) {
            return Self::from_digits(national);
        }
        let national = national.strip_prefix('0').unwrap_or(&national);
        Self::from_digits(format!("{country_code}{national}"))
    }

    fn from_digits(mut digits: String) -> Result<Self> {
        if digits.len() < MIN_DIGITS {
            return Err(invalid("has fewer than 8 digits"));
        }
        if digits.len() > MAX_DIGITS {
            return Err(invalid("has more than 15 digits"));
        }
        if digits.starts_with('0') {
            return Err(invalid("country code cannot start with 0"));
        }
        if let Some(national) = digits.strip_prefix("55") {
            let b = national.as_bytes();
            match b.len() {
                // DDD + 8-digit subscriber: a mobile (6-9) lacks the 9th digit.
                10 if valid_ddd(b) && (b'6'..=b'9').contains(&b[2]) => {
                    digits.insert(4, '9');
                }
                10 if valid_ddd(b) => {}
                11 if valid_ddd(b) && b[2] == b'9' => {}
                10 | 11 => return Err(invalid("is not a valid Brazilian number")),
                _ => return Err(invalid("Brazilian numbers have 10 or 11 digits after +55")),
            }
        }
        digits.insert(0, '+');
        Ok(Phone(digits))
    }

    /// The E.164 form, e.g. `+5511987654321`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without `+`, as WhatsApp ids are written.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// For a Brazilian mobile number, the 12-digit form without the 9th digit
    /// (how WhatsApp identifies many accounts registered before 2016); `None`
    /// otherwise.
    pub fn whatsapp_legacy_form(&self) -> Option<String> {
        let d = self.digits();
        let b = d.as_bytes();
        if d.len() == 13 && d.starts_with("55") && b[4] == b'9' && (b'6'..=b'9').contains(&b[5]) {
            let mut s = String::with_capacity(12);
            s.push_str(&d[..4]);
            s.push_str(&d[5..]);
            Some(s)
        } else {
            None
        }
    }
}

fn valid_ddd(b: &[u8]) -> bool {
    (b'1'..=b'9').contains(&b[0]) && (b'1'..=b'9').contains(&b[1])
}

fn invalid(reason: &str) -> Error {
    Error::validation("phone", reason.to_owned())
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.0)
    }
}

impl FromStr for Phone {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl AsRef<str> for Phone {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Phone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Phone::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brazilian_mobile_with_and_without_ninth_digit_are_equal() {
        let with = Phone::parse("+55 11 98765-4321").unwrap();
        let without = Phone::parse("+55 11 8765-4321").unwrap();
        assert_eq!(with, without);
        assert_eq!(with.as_str(), "+5511987654321");
        assert_eq!(with.whatsapp_legacy_form().unwrap(), "551187654321");
    }

    #[test]
    fn brazilian_landline_keeps_eight_digits() {
        let p = Phone::parse("+55 11 3456-7890").unwrap();
        assert_eq!(p.as_str(), "+551134567890");
        assert_eq!(p.whatsapp_legacy_form(), None);
    }

    #[test]
    fn rejects_bad_numbers() {
        for bad in [
            "",
            "abc",
            "+12",
            "+0123456789",
            "+1234567890123456",
            "+55 01 98765-4321",
            "+55 11 88765-43210",
            "+55 11 123",
            "1@2",
            "+55+11",
        ] {
            let e = Phone::parse(bad).unwrap_err();
            assert!(matches!(e, Error::Validation { ref field, .. } if field == "phone"), "{bad}: {e}");
        }
    }

    #[test]
    fn other_countries_pass_through() {
        assert_eq!(Phone::parse("+1 (415) 555-0100").unwrap().as_str(), "+14155550100");
        assert_eq!(Phone::parse("0044 20 7946 0958").unwrap().as_str(), "+442079460958");
        assert_eq!(Phone::parse("4915112345678").unwrap().as_str(), "+4915112345678");
    }

    #[test]
    fn national_numbers_take_the_default_country() {
        let p = Phone::parse_with_default_country("(11) 98765-4321", "55").unwrap();
        assert_eq!(p.as_str(), "+5511987654321");
        let p = Phone::parse_with_default_country("011 8765-4321", "55").unwrap();
        assert_eq!(p.as_str(), "+5511987654321");
        let p = Phone::parse_with_default_country("5511987654321", "55").unwrap();
        assert_eq!(p.as_str(), "+5511987654321");
        let p = Phone::parse_with_default_country("+1 415 555 0100", "55").unwrap();
        assert_eq!(p.as_str(), "+14155550100");
        assert!(Phone::parse_with_default_country("123", "x").is_err());
    }

    #[test]
    fn serde_validates() {
        let p: Phone = serde_json::from_str("\"+5511987654321\"").unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), "\"+5511987654321\"");
        assert!(serde_json::from_str::<Phone>("\"x\"").is_err());
    }
}
