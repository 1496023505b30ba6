//! Passwords: the policy a new password must meet, and argon2id hashing with the parameters
//! in force, which a sign-in uses to decide whether a stored hash needs rehashing.
//!
//! Parameters are OWASP's minimum for argon2id (m = 19 MiB, t = 2, p = 1); a stored hash made
//! with less memory, fewer passes or less parallelism, or with another algorithm or version,
//! is replaced at the next successful sign-in, when the password is at hand.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use crate::error::ServiceError;

/// Memory cost in KiB, passes and lanes of every new hash.
pub const ARGON2_M_COST_KIB: u32 = 19_456;
pub const ARGON2_T_COST: u32 = 2;
pub const ARGON2_P_COST: u32 = 1;

/// Shorter passwords are refused (NCSC and NIST SP 800-63B favour length over composition
/// rules, which this policy does not have).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Longer ones are refused too, so that hashing cost cannot be driven up by huge inputs.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Django's list of 20,000 common passwords (lowercased and deduplicated by Django from Royce
/// Williams' list), taken unchanged from `django/contrib/auth/common-passwords.txt.gz` in the
/// Django 5.1.4 wheel on PyPI (BSD-3-Clause); SHA-256 of the text:
/// f4fef4ce827f0d0313e2dc1558f6d58fb791656e0185b051cb453add640974ea.
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// Checks a new password: 12 to 256 characters, and not on the common password list
/// (compared ignoring case, as Django does).
pub fn check_password_policy(password: &str) -> Result<(), ServiceError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(ServiceError::invalid(
            "password",
            "password_too_short",
            format!("password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(ServiceError::invalid(
            "password",
            "password_too_long",
            format!("password must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    if is_common_password(password) {
        return Err(ServiceError::invalid(
            "password",
            "password_too_common",
            "password is on the list of common passwords",
        ));
    }
    Ok(())
}

pub fn is_common_password(password: &str) -> bool {
    let lowered = password.trim().to_lowercase();
    COMMON_PASSWORDS.lines().any(|common| common == lowered)
}

/// An argon2id hash with the current parameters and a 128-bit random salt, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, ServiceError> {
    hash_with(password, &current_params())
}

/// Whether `password` matches `stored` (a PHC string of any argon2 variant and parameters).
/// A stored hash that does not parse never matches.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Whether `stored` was made with weaker settings than a new hash would be.
pub fn needs_rehash(stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return true;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() || parsed.version != Some(0x13) {
        return true;
    }
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    params.m_cost() < ARGON2_M_COST_KIB
        || params.t_cost() < ARGON2_T_COST
        || params.p_cost() < ARGON2_P_COST
}

/// Verifies against a fixed hash with the current parameters, so that a sign-in for an
/// unknown or locked account takes about as long as one with a wrong password.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("mdor dummy password for timing").ok());
    if let Some(dummy) = dummy {
        let _ = verify_password(password, dummy);
    }
}

pub(crate) fn hash_with(password: &str, params: &Params) -> Result<String, ServiceError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt)
        .map_err(|error| ServiceError::Input(format!("cannot encode salt: {error}")))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| ServiceError::Input(format!("cannot hash password: {error}")))
}

fn current_params() -> Params {
    // The constants are valid argon2 parameters (checked by a test), so this cannot fail;
    // the fallback is the crate's default, which equals them.
    Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap in a test is a failure")]

    use super::*;

    #[test]
    fn current_parameters_are_at_least_owasps_minimum() {
        let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None).unwrap();
        assert!(params.m_cost() >= 19_456 && params.t_cost() >= 2 && params.p_cost() >= 1);
        let hash = hash_password("correct horse battery staple").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!needs_rehash(&hash));
        assert!(verify_password("correct horse battery staple", &hash));
        assert!(!verify_password("correct horse battery stapler", &hash));
    }

    #[test]
    fn weaker_hashes_and_other_variants_need_rehashing() {
        let weak = hash_with(
            "a long enough password",
            &Params::new(8, 1, 1, None).unwrap(),
        )
        .unwrap();
        assert!(needs_rehash(&weak));
        assert!(verify_password("a long enough password", &weak));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, current_params())
            .hash_password(b"pw", &SaltString::encode_b64(&[1; 16]).unwrap())
            .unwrap()
            .to_string();
        assert!(needs_rehash(&argon2i));
        assert!(needs_rehash("not a phc string"));
        assert!(!verify_password("pw", "not a phc string"));
    }

    #[test]
    fn short_long_and_common_passwords_are_refused() {
        let code = |password: &str| match check_password_policy(password) {
            Ok(()) => "ok".to_string(),
            Err(ServiceError::Invalid(errors)) => errors[0].code.to_string(),
            Err(other) => panic!("{other:?}"),
        };
        assert_eq!(code("eleven char"), "password_too_short");
        assert_eq!(code(&"x".repeat(257)), "password_too_long");
        // On the list, twelve characters or more, in any case.
        assert_eq!(code("qwerty123456"), "password_too_common");
        assert_eq!(code("QWERTY123456"), "password_too_common");
        assert_eq!(code("1q2w3e4r5t6y"), "password_too_common");
        assert_eq!(code("glacier-mitten-orbit-47"), "ok");
        // Twelve characters counted as characters, not bytes.
        assert_eq!(code("ééééééééééé"), "password_too_short");
        assert_eq!(COMMON_PASSWORDS.lines().count(), 20_000);
    }
}
