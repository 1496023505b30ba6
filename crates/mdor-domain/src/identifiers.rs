//! Identifiers of patients, organisations, clinicians, procedures and registries.
//!
//! Each newtype has one parser that normalises what people type (spaces, hyphens, case) and
//! rejects anything else with an `IdentifierError` naming the field and the problem.

use serde::{Deserialize, Serialize};

/// A rejected identifier: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {problem}")]
pub struct IdentifierError {
    pub field: &'static str,
    pub problem: String,
}

impl IdentifierError {
    fn new(field: &'static str, problem: impl Into<String>) -> Self {
        IdentifierError {
            field,
            problem: problem.into(),
        }
    }
}

/// Implements `Display`, `as_str` and string serde for a newtype over `String` whose
/// parser is `parse(&str) -> Result<Self, IdentifierError>`.
macro_rules! string_identifier {
    ($ty:ident) => {
        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                $ty::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
        impl std::str::FromStr for $ty {
            type Err = IdentifierError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $ty::parse(s)
            }
        }
    };
}

/// A patient's NHS number: ten digits whose last is a modulus-11 check digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NhsNumber(String);
string_identifier!(NhsNumber);

/// Redacted so that an NHS number can never reach a log line through `{:?}`.
impl std::fmt::Debug for NhsNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NhsNumber(<redacted>)")
    }
}

impl NhsNumber {
    /// Accepts `9434765919`, `943 476 5919` and `943-476-5919`.
    pub fn parse(input: &str) -> Result<NhsNumber, IdentifierError> {
        const FIELD: &str = "nhs_number";
        let mut digits = String::with_capacity(10);
        for c in input.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' => {}
                _ => {
                    return Err(IdentifierError::new(
                        FIELD,
                        format!("contains '{c}'; only digits are allowed"),
                    ));
                }
            }
        }
        if digits.len() != 10 {
            return Err(IdentifierError::new(
                FIELD,
                format!("has {} digits; expected 10", digits.len()),
            ));
        }
        let bytes = digits.as_bytes();
        if bytes.iter().all(|&b| b == bytes[0]) {
            return Err(IdentifierError::new(FIELD, "is one repeated digit"));
        }
        match nhs_check_digit(&bytes[..9]) {
            None => Err(IdentifierError::new(
                FIELD,
                "is invalid: its check digit would be 10",
            )),
            Some(check) if check != bytes[9] - b'0' => {
                Err(IdentifierError::new(FIELD, "has invalid check digit"))
            }
            Some(_) => Ok(NhsNumber(digits)),
        }
    }

    /// Completes nine leading digits with their check digit, or `None` when no valid
    /// number starts with them (check digit 10, or one repeated digit).
    pub fn from_first_nine(first_nine: u32) -> Option<NhsNumber> {
        if first_nine > 999_999_999 {
            return None;
        }
        let stem = format!("{first_nine:09}");
        let check = nhs_check_digit(stem.as_bytes())?;
        NhsNumber::parse(&format!("{stem}{check}")).ok()
    }

    /// True for numbers in the 999 range, which the NHS never issues and which all synthetic
    /// and test data must use.
    pub fn is_test_range(&self) -> bool {
        self.0.starts_with("999")
    }
}

/// The modulus-11 check digit of nine digits, `None` when it would be 10.
fn nhs_check_digit(nine: &[u8]) -> Option<u8> {
    let sum: u32 = nine
        .iter()
        .zip((2..=10u32).rev())
        .map(|(&d, w)| u32::from(d - b'0') * w)
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        check => Some(check as u8),
    }
}

/// An Organisation Data Service code: a provider trust (`RXX`), site (`RXX01`) or practice.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OdsCode(String);
string_identifier!(OdsCode);

impl OdsCode {
    pub fn parse(input: &str) -> Result<OdsCode, IdentifierError> {
        const FIELD: &str = "ods_code";
        let code = input.trim().to_ascii_uppercase();
        if !(3..=10).contains(&code.len()) {
            return Err(IdentifierError::new(
                FIELD,
                format!("has {} characters; expected 3 to 10", code.len()),
            ));
        }
        if let Some(c) = code.chars().find(|c| !c.is_ascii_alphanumeric()) {
            return Err(IdentifierError::new(
                FIELD,
                format!("contains '{c}'; only letters and digits are allowed"),
            ));
        }
        Ok(OdsCode(code))
    }
}

/// A General Medical Council reference number: seven digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GmcNumber(String);
string_identifier!(GmcNumber);

impl GmcNumber {
    pub fn parse(input: &str) -> Result<GmcNumber, IdentifierError> {
        const FIELD: &str = "gmc_number";
        let trimmed = input.trim();
        if trimmed.len() != 7 || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentifierError::new(FIELD, "must be exactly 7 digits"));
        }
        if trimmed == "0000000" {
            return Err(IdentifierError::new(FIELD, "must not be all zeros"));
        }
        Ok(GmcNumber(trimmed.to_string()))
    }
}

/// An OPCS-4 procedure code with the classification version it was coded in, e.g. `W37.1`
/// under OPCS-4.10. The code is stored as letter, two digits, point, digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Opcs4Code {
    code: String,
    version: String,
}

impl Opcs4Code {
    /// The version assumed when a submission does not state one.
    pub const DEFAULT_VERSION: &'static str = "4.10";

    /// Accepts `W37.1`, `W371` and `w37.1`; three-character category codes such as `W37` are
    /// accepted too. `version` is `4.N` with N from 1 to 11.
    pub fn parse(code: &str, version: &str) -> Result<Opcs4Code, IdentifierError> {
        let raw: String = code
            .trim()
            .to_ascii_uppercase()
            .chars()
            .filter(|&c| c != '.')
            .collect();
        let bytes = raw.as_bytes();
        let shape_ok = (raw.len() == 3 || raw.len() == 4)
            && bytes[0].is_ascii_uppercase()
            && bytes[1..].iter().all(u8::is_ascii_digit);
        if !shape_ok {
            return Err(IdentifierError::new(
                "opcs4_code",
                "must be a letter and two digits, optionally a point and one more digit (e.g. W37.1)",
            ));
        }
        // OPCS-4 has no chapters I or O.
        if bytes[0] == b'I' || bytes[0] == b'O' {
            return Err(IdentifierError::new(
                "opcs4_code",
                format!("chapter '{}' does not exist", bytes[0] as char),
            ));
        }
        let version = version.trim();
        let minor_ok = version
            .strip_prefix("4.")
            .and_then(|minor| minor.parse::<u8>().ok())
            .is_some_and(|minor| (1..=11).contains(&minor));
        if !minor_ok {
            return Err(IdentifierError::new("opcs4_version", "must be 4.1 to 4.11"));
        }
        let code = if raw.len() == 4 {
            format!("{}.{}", &raw[..3], &raw[3..])
        } else {
            raw
        };
        Ok(Opcs4Code {
            code,
            version: version.to_string(),
        })
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn version(&self) -> &str {
        &self.version
    }
}

/// A SNOMED CT concept identifier: 6 to 18 digits, a partition identifier of `00` (short
/// format) or `10` (long format, with a namespace), and a Verhoeff check digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnomedCtId(u64);

impl SnomedCtId {
    pub fn parse(input: &str) -> Result<SnomedCtId, IdentifierError> {
        const FIELD: &str = "snomed_ct_id";
        let digits = input.trim();
        if !(6..=18).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentifierError::new(FIELD, "must be 6 to 18 digits"));
        }
        if digits.starts_with('0') {
            return Err(IdentifierError::new(FIELD, "must not start with 0"));
        }
        let n = digits.len();
        let partition = &digits[n - 3..n - 1];
        if partition != "00" && partition != "10" {
            return Err(IdentifierError::new(
                FIELD,
                format!("has partition identifier {partition}; a concept needs 00 or 10"),
            ));
        }
        if !verhoeff_valid(digits.as_bytes()) {
            return Err(IdentifierError::new(FIELD, "has invalid check digit"));
        }
        // Up to 18 decimal digits always fit in a u64, so this parse cannot fail.
        digits
            .parse()
            .map(SnomedCtId)
            .map_err(|_| IdentifierError::new(FIELD, "is out of range"))
    }

    pub fn value(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for SnomedCtId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for SnomedCtId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for SnomedCtId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        SnomedCtId::parse(&raw).map_err(serde::de::Error::custom)
    }
}

const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];
const VERHOEFF_INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// True when ASCII digits, the last being the check digit, pass the Verhoeff check.
fn verhoeff_valid(digits: &[u8]) -> bool {
    let mut c = 0u8;
    for (i, &d) in digits.iter().rev().enumerate() {
        c = VERHOEFF_D[c as usize][VERHOEFF_P[i % 8][(d - b'0') as usize] as usize];
    }
    c == 0
}

/// The Verhoeff check digit to append to ASCII digits.
pub fn verhoeff_check_digit(digits: &[u8]) -> u8 {
    let mut c = 0u8;
    for (i, &d) in digits.iter().rev().enumerate() {
        c = VERHOEFF_D[c as usize][VERHOEFF_P[(i + 1) % 8][(d - b'0') as usize] as usize];
    }
    VERHOEFF_INV[c as usize]
}

/// Which side of the body a procedure was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Laterality {
    Left,
    Right,
    Bilateral,
    NotApplicable,
}

impl Laterality {
    /// Accepts the words, the NHS data dictionary letters (`L`, `R`, `B`, `N`) and `8` for
    /// not applicable.
    pub fn parse(input: &str) -> Result<Laterality, IdentifierError> {
        match input.trim().to_ascii_lowercase().as_str() {
            "left" | "l" => Ok(Laterality::Left),
            "right" | "r" => Ok(Laterality::Right),
            "bilateral" | "b" => Ok(Laterality::Bilateral),
            "not_applicable" | "n" | "8" | "na" | "n/a" => Ok(Laterality::NotApplicable),
            other => Err(IdentifierError::new(
                "laterality",
                format!("'{other}' is not one of left, right, bilateral, not_applicable"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Laterality::Left => "left",
            Laterality::Right => "right",
            Laterality::Bilateral => "bilateral",
            Laterality::NotApplicable => "not_applicable",
        }
    }
}

/// A patient's phenotypic sex as in the NHS data dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Male,
    Female,
    Indeterminate,
    NotKnown,
}

impl Sex {
    /// Accepts words, `M`/`F`, and the data dictionary codes 1, 2, 9 and 0 or X.
    pub fn parse(input: &str) -> Result<Sex, IdentifierError> {
        match input.trim().to_ascii_lowercase().as_str() {
            "male" | "m" | "1" => Ok(Sex::Male),
            "female" | "f" | "2" => Ok(Sex::Female),
            "indeterminate" | "9" => Ok(Sex::Indeterminate),
            "not_known" | "unknown" | "0" | "x" => Ok(Sex::NotKnown),
            other => Err(IdentifierError::new(
                "sex",
                format!("'{other}' is not one of male, female, indeterminate, not_known"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Male => "male",
            Sex::Female => "female",
            Sex::Indeterminate => "indeterminate",
            Sex::NotKnown => "not_known",
        }
    }
}

/// A UK postcode, normalised to upper case with one space before the inward code.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Postcode(String);
string_identifier!(Postcode);

/// Redacted: a postcode narrows a patient down and must not reach logs.
impl std::fmt::Debug for Postcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Postcode(<redacted>)")
    }
}

impl Postcode {
    pub fn parse(input: &str) -> Result<Postcode, IdentifierError> {
        const FIELD: &str = "postcode";
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if !(5..=7).contains(&compact.len()) || !compact.is_ascii() {
            return Err(IdentifierError::new(
                FIELD,
                "must have 5 to 7 letters and digits",
            ));
        }
        let (outward, inward) = compact.split_at(compact.len() - 3);
        let inward_ok = {
            let b = inward.as_bytes();
            b[0].is_ascii_digit() && b[1].is_ascii_uppercase() && b[2].is_ascii_uppercase()
        };
        let outward_ok = {
            let b = outward.as_bytes();
            b[0].is_ascii_uppercase()
                && b.iter().all(u8::is_ascii_alphanumeric)
                && b.iter().any(u8::is_ascii_digit)
        };
        if !inward_ok || !outward_ok {
            return Err(IdentifierError::new(FIELD, "is not a valid UK postcode"));
        }
        Ok(Postcode(format!("{outward} {inward}")))
    }

    /// The outward code (`LS1` of `LS1 4AP`), coarse enough for aggregate use.
    pub fn outward(&self) -> &str {
        self.0.split(' ').next().unwrap_or(&self.0)
    }
}

/// A machine name: lower-case letters, digits and underscores, starting with a letter,
/// 2 to 40 characters. Used for registry codes, device types and dataset names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slug(String);
string_identifier!(Slug);

impl Slug {
    pub fn parse(input: &str) -> Result<Slug, IdentifierError> {
        Self::parse_field(input, "name")
    }

    pub fn parse_field(input: &str, field: &'static str) -> Result<Slug, IdentifierError> {
        let s = input.trim();
        let ok = (2..=40).contains(&s.len())
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(IdentifierError::new(
                field,
                "must be 2 to 40 lower-case letters, digits or underscores, starting with a letter",
            ));
        }
        Ok(Slug(s.to_string()))
    }
}

/// The clinical registry a device or procedure belongs to, e.g. `njr` or `bcir`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegistryCode(String);
string_identifier!(RegistryCode);

impl RegistryCode {
    pub fn parse(input: &str) -> Result<RegistryCode, IdentifierError> {
        Slug::parse_field(input, "registry").map(|slug| RegistryCode(slug.0))
    }
}

/// Why a procedure was done, as its dataset codes it (`osteoarthritis`, `reconstructive`,
/// `sui`): a code from the dataset's `indication` code list, kept so that survivorship can
/// compare devices used for the same reasons.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Indication(String);
string_identifier!(Indication);

impl Indication {
    pub fn parse(input: &str) -> Result<Indication, IdentifierError> {
        Slug::parse_field(input, "indication").map(|slug| Indication(slug.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nhs_number_with_valid_check_digit_is_accepted_in_every_layout() {
        for input in ["9434765919", "943 476 5919", "943-476-5919", " 9434765919 "] {
            assert_eq!(
                NhsNumber::parse(input).map(|n| n.to_string()),
                Ok("9434765919".into())
            );
        }
    }

    #[test]
    fn nhs_number_errors_name_the_problem() {
        let problem = |s: &str| NhsNumber::parse(s).map_err(|e| e.to_string()).unwrap_err();
        assert_eq!(problem("9434765918"), "nhs_number has invalid check digit");
        assert_eq!(problem("943476591"), "nhs_number has 9 digits; expected 10");
        assert_eq!(
            problem("94347659A9"),
            "nhs_number contains 'A'; only digits are allowed"
        );
        assert_eq!(problem("1111111111"), "nhs_number is one repeated digit");
        assert_eq!(problem("0000000000"), "nhs_number is one repeated digit");
        // 999 000 003 x: weights give a remainder of 1, so the check digit would be 10.
        let stem_with_check_ten = (0..1000u32)
            .map(|i| 999_000_000 + i)
            .find(|&stem| nhs_check_digit(format!("{stem:09}").as_bytes()).is_none())
            .unwrap();
        assert_eq!(
            problem(&format!("{stem_with_check_ten:09}0")),
            "nhs_number is invalid: its check digit would be 10"
        );
    }

    #[test]
    fn nhs_number_debug_output_is_redacted() {
        let n = NhsNumber::parse("9434765919").unwrap();
        assert!(!format!("{n:?}").contains("943"));
    }

    #[test]
    fn hand_worked_nhs_check_digit() {
        // 943476591: 9*10+4*9+3*8+4*7+7*6+6*5+5*4+9*3+1*2 = 299; 299 mod 11 = 2; 11-2 = 9.
        assert_eq!(nhs_check_digit(b"943476591"), Some(9));
        assert!(NhsNumber::from_first_nine(999_000_001).is_none_or(|n| n.is_test_range()));
    }

    #[test]
    fn snomed_ids_are_checked_by_verhoeff_and_partition() {
        // 80146002 (appendectomy) and 22298006 (myocardial infarction) are real concepts.
        assert!(SnomedCtId::parse("80146002").is_ok());
        assert!(SnomedCtId::parse("22298006").is_ok());
        assert_eq!(
            SnomedCtId::parse("80146003").unwrap_err().problem,
            "has invalid check digit"
        );
        // 900000000000441003 is a real long-format concept id from the core metadata.
        assert!(SnomedCtId::parse("900000000000441003").is_ok());
        // A description id has partition 01 and must be rejected as a concept id.
        let stem = b"1234501";
        let mut id = stem.to_vec();
        id.push(b'0' + verhoeff_check_digit(stem));
        let id = String::from_utf8(id).unwrap();
        assert!(
            SnomedCtId::parse(&id)
                .unwrap_err()
                .problem
                .contains("partition identifier 01")
        );
    }

    #[test]
    fn opcs4_codes_are_normalised_with_their_version() {
        let code = Opcs4Code::parse("w371", "4.10").unwrap();
        assert_eq!((code.code(), code.version()), ("W37.1", "4.10"));
        assert_eq!(Opcs4Code::parse("W37", "4.9").unwrap().code(), "W37");
        assert_eq!(
            Opcs4Code::parse("W3", "4.10").unwrap_err().field,
            "opcs4_code"
        );
        assert_eq!(
            Opcs4Code::parse("W37.1", "5.0").unwrap_err().field,
            "opcs4_version"
        );
    }

    #[test]
    fn postcodes_are_normalised() {
        assert_eq!(Postcode::parse("ls14ap").unwrap().as_str(), "LS1 4AP");
        assert_eq!(Postcode::parse("SW1A 1AA").unwrap().outward(), "SW1A");
        assert!(Postcode::parse("12345").is_err());
        assert!(Postcode::parse("LS1 A4P").is_err());
    }

    #[test]
    fn short_identifiers_reject_bad_shapes() {
        assert_eq!(OdsCode::parse("rxx01").unwrap().as_str(), "RXX01");
        assert!(OdsCode::parse("R-X").is_err());
        assert!(GmcNumber::parse("123456").is_err());
        assert!(GmcNumber::parse("1234567").is_ok());
        assert_eq!(Laterality::parse("L"), Ok(Laterality::Left));
        assert!(Laterality::parse("up").is_err());
        assert_eq!(Sex::parse("2"), Ok(Sex::Female));
        assert!(RegistryCode::parse("NJR").is_err());
        assert!(RegistryCode::parse("njr").is_ok());
    }

    proptest! {
        #[test]
        fn nhs_parser_never_panics(s in "\\PC{0,20}") {
            let _ = NhsNumber::parse(&s);
        }

        #[test]
        fn every_generated_nhs_number_round_trips(stem in 0u32..=999_999_999) {
            if let Some(n) = NhsNumber::from_first_nine(stem) {
                prop_assert_eq!(NhsNumber::parse(n.as_str()), Ok(n.clone()));
                let spaced = format!("{} {} {}", &n.as_str()[..3], &n.as_str()[3..6], &n.as_str()[6..]);
                prop_assert_eq!(NhsNumber::parse(&spaced), Ok(n));
            }
        }

        #[test]
        fn changing_one_nhs_digit_is_always_detected(stem in 0u32..=999_999_999, pos in 0usize..10, delta in 1u8..10) {
            if let Some(n) = NhsNumber::from_first_nine(stem) {
                let mut bytes = n.as_str().as_bytes().to_vec();
                bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
                let mutated = String::from_utf8(bytes).unwrap();
                prop_assert!(NhsNumber::parse(&mutated).is_err());
            }
        }

        #[test]
        fn verhoeff_detects_every_single_digit_error(stem in 100_000u64..999_999_999_999, pos_seed in 0usize..100, delta in 1u8..10) {
            let mut digits = stem.to_string().into_bytes();
            digits.push(b'0' + verhoeff_check_digit(&digits));
            prop_assert!(verhoeff_valid(&digits));
            let pos = pos_seed % digits.len();
            digits[pos] = b'0' + (digits[pos] - b'0' + delta) % 10;
            prop_assert!(!verhoeff_valid(&digits));
        }

        #[test]
        fn other_parsers_never_panic(s in "\\PC{0,24}") {
            let _ = OdsCode::parse(&s);
            let _ = GmcNumber::parse(&s);
            let _ = Opcs4Code::parse(&s, "4.10");
            let _ = SnomedCtId::parse(&s);
            let _ = Postcode::parse(&s);
            let _ = Laterality::parse(&s);
            let _ = Sex::parse(&s);
            let _ = Slug::parse(&s);
        }
    }
}
