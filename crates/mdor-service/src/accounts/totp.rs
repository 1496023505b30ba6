//! TOTP second factor (RFC 6238 with HMAC-SHA-1, 6 digits, 30-second steps, one step of skew
//! either way) and the sealing of TOTP secrets at rest.
//!
//! A code is matched to the time step it belongs to, so that the store can refuse a code of
//! the last accepted step or an earlier one: each code is accepted once only.
//! Secrets are sealed with ChaCha20-Poly1305 under the accounts key, a 256-bit key read from
//! a file named in the configuration and never stored in the database; the username is bound
//! as associated data, so a sealed secret copied to another account does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use totp_rs::{Algorithm, TOTP};

use crate::error::ServiceError;

pub const TOTP_DIGITS: usize = 6;
pub const TOTP_STEP_SECONDS: u64 = 30;
/// Steps accepted either side of the current one, for clock drift and typing time.
pub const TOTP_SKEW_STEPS: u64 = 1;
/// 160 bits, the secret length RFC 4226 recommends.
pub const TOTP_SECRET_BYTES: usize = 20;

const NONCE_BYTES: usize = 12;

/// The key that seals TOTP secrets. Its bytes never reach a log: `Debug` prints nothing.
#[derive(Clone)]
pub struct AccountKey(Key);

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountKey(..)")
    }
}

impl AccountKey {
    /// A key file holds 64 hexadecimal digits (32 bytes), optionally followed by a newline.
    pub fn parse(text: &str) -> Result<AccountKey, ServiceError> {
        let bytes = hex::decode(text.trim())
            .map_err(|_| ServiceError::Input("accounts key must be 64 hex digits".into()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ServiceError::Input("accounts key must be 64 hex digits".into()))?;
        Ok(AccountKey(bytes.into()))
    }

    /// A new random key, as the text of a key file.
    pub fn generate_text() -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        format!("{}\n", hex::encode(bytes))
    }

    pub fn seal(&self, username: &str, secret: &[u8]) -> Result<Vec<u8>, ServiceError> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = ChaCha20Poly1305::new(&self.0)
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &associated_data(username),
                },
            )
            .map_err(|_| ServiceError::Input("cannot seal the totp secret".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The secret, or `None` when the sealed bytes were altered, sealed for another username
    /// or under another key.
    pub fn open(&self, username: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        ChaCha20Poly1305::new(&self.0)
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &associated_data(username),
                },
            )
            .ok()
    }
}

/// The time step of a Unix time.
pub fn time_step(unix_seconds: u64) -> u64 {
    unix_seconds / TOTP_STEP_SECONDS
}

/// The code for `secret` at time step `step`, with `digits` digits.
pub fn code_at_step(secret: &[u8], digits: usize, step: u64) -> Option<String> {
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        digits,
        0,
        TOTP_STEP_SECONDS,
        secret.to_vec(),
    );
    (6..=8)
        .contains(&digits)
        .then(|| totp.generate(step * TOTP_STEP_SECONDS))
}

/// The step, within one step of `now_step` and later than `last_used_step`, whose code is
/// `code`; `None` when there is none. Every candidate is compared in constant time.
pub fn matching_step(
    secret: &[u8],
    code: &str,
    now_step: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    let mut found = None;
    for step in now_step.saturating_sub(TOTP_SKEW_STEPS)..=now_step + TOTP_SKEW_STEPS {
        let Some(expected) = code_at_step(secret, TOTP_DIGITS, step) else {
            continue;
        };
        let fresh = last_used_step.is_none_or(|last| step > last);
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) && fresh && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A new random TOTP secret.
pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; TOTP_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The `otpauth://` URI authenticator apps read (as text or as a QR code).
pub fn otpauth_uri(issuer: &str, username: &str, secret_base32: &str) -> String {
    format!(
        "otpauth://totp/{issuer}:{username}?secret={secret_base32}&issuer={issuer}\
         &algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECONDS}"
    )
}

fn associated_data(username: &str) -> Vec<u8> {
    format!("mdor-totp-secret-v1:{username}").into_bytes()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap in a test is a failure")]

    use super::*;

    /// RFC 6238 appendix B: the SHA-1 seed and the expected 8-digit codes.
    #[test]
    fn codes_match_the_rfc_6238_sha1_test_vectors() {
        let seed = b"12345678901234567890";
        let vectors = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, expected) in vectors {
            assert_eq!(
                code_at_step(seed, 8, time_step(time)).unwrap(),
                expected,
                "at {time}"
            );
            // Six digits are the last six of the same truncation.
            assert_eq!(
                code_at_step(seed, 6, time_step(time)).unwrap(),
                &expected[2..]
            );
        }
    }

    #[test]
    fn a_code_is_matched_one_step_either_side_and_not_two() {
        let seed = b"12345678901234567890";
        let now = time_step(1_111_111_109);
        for offset in [-1i64, 0, 1] {
            let step = (now as i64 + offset) as u64;
            let code = code_at_step(seed, 6, step).unwrap();
            assert_eq!(matching_step(seed, &code, now, None), Some(step));
        }
        for offset in [-2i64, 2] {
            let code = code_at_step(seed, 6, (now as i64 + offset) as u64).unwrap();
            assert_eq!(matching_step(seed, &code, now, None), None);
        }
        let code = code_at_step(seed, 6, now).unwrap();
        assert_eq!(matching_step(seed, &code, now, Some(now)), None);
        assert_eq!(matching_step(seed, &code, now, Some(now - 1)), Some(now));
        assert_eq!(matching_step(seed, "12345", now, None), None);
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_username_and_key() {
        let key = AccountKey::parse(&AccountKey::generate_text()).unwrap();
        let other = AccountKey::parse(&AccountKey::generate_text()).unwrap();
        let sealed = key.seal("j.smith", b"secret bytes").unwrap();
        assert_eq!(key.open("j.smith", &sealed).unwrap(), b"secret bytes");
        assert!(key.open("j.smyth", &sealed).is_none());
        assert!(other.open("j.smith", &sealed).is_none());
        let mut altered = sealed.clone();
        altered[20] ^= 1;
        assert!(key.open("j.smith", &altered).is_none());
        assert!(key.open("j.smith", &sealed[..5]).is_none());
        assert!(AccountKey::parse("abcd").is_err());
        assert_eq!(format!("{key:?}"), "AccountKey(..)");
    }
}
