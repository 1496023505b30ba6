//! What a person types when signing in, parsed once at the edge: usernames, TOTP codes and
//! backup codes; and the generation and hashing of backup codes and initial passwords.
//!
//! Backup codes are 24 base32 characters, 120 random bits (RFC 4648 alphabet, shown in groups
//! of four). They are stored as SHA-256 rather than argon2id: a slow hash protects guessable
//! secrets, and 120 random bits cannot be guessed offline whatever the hash, while a
//! deterministic hash lets the store find and consume the code in one conditional update.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ServiceError;

/// Backup codes issued to every account.
pub const BACKUP_CODE_COUNT: usize = 10;
/// 24 characters of 5 bits each: 120 bits, above the 112 required.
pub const BACKUP_CODE_CHARS: usize = 24;
// Each base32 character carries 5 bits; the issue asks for at least 112 per code.
const _: () = assert!(BACKUP_CODE_CHARS * 5 >= 112);

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A username: 3 to 64 of lowercase ASCII letters, digits, `.`, `-` and `_`, starting with a
/// letter or digit. Letters are lowercased, so `J.Smith` and `j.smith` are one account.
#[derive(Clone, PartialEq, Eq)]
pub struct Username(String);

/// Usernames identify people; they are kept out of logs.
impl std::fmt::Debug for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Username(..)")
    }
}

impl Username {
    pub fn parse(input: &str) -> Result<Username, ServiceError> {
        let lowered = input.trim().to_ascii_lowercase();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        let starts_well = lowered
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if (3..=64).contains(&lowered.len()) && starts_well && lowered.chars().all(allowed) {
            Ok(Username(lowered))
        } else {
            Err(ServiceError::invalid(
                "username",
                "invalid_username",
                "username must be 3 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The second factor given at sign-in.
#[derive(Clone, PartialEq, Eq)]
pub enum SecondFactor {
    /// Six digits from an authenticator app.
    Totp(String),
    /// A backup code, normalised to 24 uppercase base32 characters.
    BackupCode(String),
}

/// One-time codes are secrets; they are kept out of logs.
impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecondFactor::Totp(_) => f.write_str("Totp(..)"),
            SecondFactor::BackupCode(_) => f.write_str("BackupCode(..)"),
        }
    }
}

impl SecondFactor {
    /// Six digits are a TOTP code; 24 base32 characters (in any case, with spaces or hyphens
    /// anywhere) a backup code; anything else is `None`.
    pub fn parse(input: &str) -> Option<SecondFactor> {
        let compact: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if compact.len() == 6 && compact.chars().all(|c| c.is_ascii_digit()) {
            return Some(SecondFactor::Totp(compact));
        }
        let upper = compact.to_ascii_uppercase();
        if upper.len() == BACKUP_CODE_CHARS && upper.bytes().all(|b| BASE32_ALPHABET.contains(&b)) {
            return Some(SecondFactor::BackupCode(upper));
        }
        None
    }
}

/// SHA-256 of a normalised backup code, hex: what the store keeps and looks up.
pub fn hash_backup_code(normalised: &str) -> String {
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

/// New backup codes, each shown in groups of four (`ABCD-EFGH-…`).
pub fn generate_backup_codes() -> Vec<String> {
    (0..BACKUP_CODE_COUNT)
        .map(|_| {
            let mut bytes = [0u8; BACKUP_CODE_CHARS * 5 / 8];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            let code = base32(&bytes);
            code.as_bytes()
                .chunks(4)
                .map(|group| String::from_utf8_lossy(group).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// An initial password: 24 base32 characters (120 bits), meeting the password policy.
pub fn generate_initial_password() -> String {
    let mut bytes = [0u8; 15];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base32(&bytes).to_ascii_lowercase()
}

/// RFC 4648 base32 without padding, as authenticator apps expect secrets.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32_ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32_ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap in a test is a failure")]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected);
        }
    }

    #[test]
    fn backup_codes_are_ten_distinct_codes_of_120_bits_that_parse_back() {
        let codes = generate_backup_codes();
        assert_eq!(codes.len(), 10);
        let mut seen = std::collections::HashSet::new();
        for code in &codes {
            assert_eq!(code.len(), 24 + 5, "{code}");
            let Some(SecondFactor::BackupCode(normalised)) = SecondFactor::parse(code) else {
                panic!("backup code does not parse");
            };
            assert_eq!(normalised, code.replace('-', ""));
            assert!(seen.insert(normalised));
        }
    }

    #[test]
    fn second_factors_and_usernames_parse_only_in_their_forms() {
        assert_eq!(
            SecondFactor::parse(" 123 456 "),
            Some(SecondFactor::Totp("123456".into()))
        );
        assert_eq!(SecondFactor::parse("12345"), None);
        assert_eq!(SecondFactor::parse("1234567"), None);
        assert_eq!(
            SecondFactor::parse("abcd-efgh-ijkl-mnop-qrst-uvwx"),
            Some(SecondFactor::BackupCode("ABCDEFGHIJKLMNOPQRSTUVWX".into()))
        );
        // 0, 1, 8 and 9 are not base32.
        assert_eq!(SecondFactor::parse("abcd-efgh-ijkl-mnop-qrst-uvw1"), None);
        assert_eq!(Username::parse(" J.Smith ").unwrap().as_str(), "j.smith");
        for bad in ["ab", ".smith", "j smith", "jö", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
        assert!(
            crate::accounts::password::check_password_policy(&generate_initial_password()).is_ok()
        );
    }

    proptest! {
        #[test]
        fn base32_has_the_rfc_length_and_only_alphabet_characters(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let encoded = base32(&bytes);
            prop_assert_eq!(encoded.len(), (bytes.len() * 8).div_ceil(5));
            prop_assert!(encoded.bytes().all(|b| BASE32_ALPHABET.contains(&b)));
        }

        #[test]
        fn parsing_never_panics_and_accepts_only_normal_forms(input in "\\PC{0,40}") {
            if let Ok(username) = Username::parse(&input) {
                prop_assert_eq!(Username::parse(username.as_str()).unwrap(), username.clone());
                prop_assert!(username.as_str().len() >= 3 && username.as_str().len() <= 64);
            }
            match SecondFactor::parse(&input) {
                Some(SecondFactor::Totp(code)) => prop_assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit())),
                Some(SecondFactor::BackupCode(code)) => {
                    prop_assert_eq!(code.len(), 24);
                    prop_assert_eq!(SecondFactor::parse(&code), Some(SecondFactor::BackupCode(code.clone())));
                }
                None => {}
            }
        }

        #[test]
        fn any_backup_code_parses_with_any_grouping_and_case(bytes in proptest::array::uniform15(any::<u8>()), lower in any::<bool>()) {
            let code = base32(&bytes);
            let shown = if lower { code.to_ascii_lowercase() } else { code.clone() };
            let spaced: String = shown.chars().enumerate().flat_map(|(i, c)| if i % 3 == 0 { vec![' ', c] } else { vec![c] }).collect();
            prop_assert_eq!(SecondFactor::parse(&spaced), Some(SecondFactor::BackupCode(code)));
        }
    }
}
