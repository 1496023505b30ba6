//! Encryption of identifiers at rest: per-field AEAD under envelope keys, and the keyed blind
//! index that lets the store find a patient by NHS number without storing it.
//!
//! - A **key-encryption key** (KEK, 32 bytes) lives outside the database, in a file or an
//!   environment variable the operator names; the store is handed it at connect time.
//! - **Data keys** (32 bytes each, random) live in `data_key`, wrapped by the KEK with
//!   XChaCha20-Poly1305; the wrapping binds the key's id and purpose, so a wrapped key cannot be
//!   moved to another slot. One purpose `field` key is current at a time; older ones stay until
//!   `mdor keys rotate` has re-encrypted every value sealed under them.
//! - A **field value** is sealed with XChaCha20-Poly1305 under the current field key and a
//!   random 192-bit nonce, with associated data binding the table, the column, the row and the
//!   key id: a value copied to another column or another patient's row fails to open. It is
//!   stored as text, `k<key id>.<base64(nonce ‖ ciphertext ‖ tag)>`, so the columns keep their
//!   types and a value says which key opens it.
//! - The **blind index** of an NHS number is HMAC-SHA256 under a `blind_index` data key,
//!   truncated to 128 bits: equal numbers give equal indexes (the unique key and the lookup),
//!   and without the key an index reveals nothing, not even to someone who can enumerate the
//!   roughly 10⁹ valid numbers.
//!
//! A patient row is identified in associated data by its blind index rather than its id, so
//! that a new patient's fields are sealed before the transaction that allocates the id.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::StoreResult;
use crate::error::StoreError;

const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;

/// The key-encryption key. Its bytes never reach a log: `Debug` prints its id only.
#[derive(Clone)]
pub struct KeyEncryptionKey {
    key: Key,
    id: String,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyEncryptionKey({})", self.id)
    }
}

impl KeyEncryptionKey {
    /// A key file or variable holds 64 hexadecimal digits (32 bytes), optionally followed by
    /// a newline.
    pub fn parse(text: &str) -> StoreResult<KeyEncryptionKey> {
        let bad = || StoreError::Keys("the key-encryption key must be 64 hex digits".into());
        let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(KeyEncryptionKey::from_bytes(bytes))
    }

    fn from_bytes(bytes: [u8; 32]) -> KeyEncryptionKey {
        // The id names the key in `data_key` and in errors without revealing it.
        let digest = Sha256::new()
            .chain_update(b"mdor-kek-id-v1\0")
            .chain_update(bytes)
            .finalize();
        KeyEncryptionKey {
            key: bytes.into(),
            id: hex::encode(&digest[..8]),
        }
    }

    /// A new random key, as the text of a key file.
    pub fn generate_text() -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        format!("{}\n", hex::encode(bytes))
    }

    /// A new random key (tests and throw-away demo databases).
    pub fn random() -> KeyEncryptionKey {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        KeyEncryptionKey::from_bytes(bytes)
    }

    /// A short public fingerprint of the key (not secret), stored beside what it wraps.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wraps a data key: base64 of nonce ‖ ciphertext ‖ tag, bound to its slot.
    pub(crate) fn wrap(
        &self,
        key_id: i64,
        purpose: &str,
        data_key: &[u8; 32],
    ) -> StoreResult<String> {
        let aad = wrap_aad(key_id, purpose);
        seal_bytes(&XChaCha20Poly1305::new(&self.key), &aad, data_key)
            .ok_or_else(|| StoreError::Keys(format!("data key {key_id} could not be wrapped")))
    }

    pub(crate) fn unwrap(
        &self,
        key_id: i64,
        purpose: &str,
        wrapped: &str,
    ) -> StoreResult<[u8; 32]> {
        let aad = wrap_aad(key_id, purpose);
        let bytes =
            open_bytes(&XChaCha20Poly1305::new(&self.key), &aad, wrapped).ok_or_else(|| {
                StoreError::Keys(format!(
                    "data key {key_id} does not open under key-encryption key {}",
                    self.id
                ))
            })?;
        bytes
            .try_into()
            .map_err(|_| StoreError::Keys(format!("data key {key_id} is not 32 bytes")))
    }
}

fn wrap_aad(key_id: i64, purpose: &str) -> Vec<u8> {
    format!("mdor-data-key-v1\0{key_id}\0{purpose}").into_bytes()
}

/// A new random data key.
pub(crate) fn new_data_key() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Which stored column a sealed value belongs to; part of its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    NhsNumber,
    FamilyName,
    GivenName,
    DateOfBirth,
    Postcode,
    /// A create's stored answer, replayed for its `Idempotency-Key` (it names the patient).
    IdempotencyResponse,
    /// A procedure's raw input as submitted (row: the procedure id). Its earlier versions in
    /// `procedure_version.record` are copies sealed for the same procedure.
    SourceRecord,
    /// A procedure's core record as it stood before a correction (row: the procedure id).
    CoreRecord,
    /// A rejected record's raw input, kept for the quarantine (row: `job id/line`).
    RejectedRecord,
}

impl Field {
    fn table_column(self) -> (&'static str, &'static str) {
        match self {
            Field::NhsNumber => ("patient", "nhs_number"),
            Field::FamilyName => ("patient", "family_name"),
            Field::GivenName => ("patient", "given_name"),
            Field::DateOfBirth => ("patient", "date_of_birth"),
            Field::Postcode => ("patient", "postcode"),
            Field::IdempotencyResponse => ("idempotency_key", "response_body"),
            Field::SourceRecord => ("procedure_source", "record"),
            Field::CoreRecord => ("procedure_version", "core_record"),
            Field::RejectedRecord => ("submission_record", "record"),
        }
    }
}

/// A patient's identifiers in plain text, as strings (the date of birth as `YYYY-MM-DD`).
pub struct PlainPatient {
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: String,
    pub postcode: Option<String>,
}

impl PlainPatient {
    pub fn of(patient: &mdor_domain::record::Patient) -> PlainPatient {
        PlainPatient {
            nhs_number: patient.nhs_number.as_str().to_string(),
            family_name: patient.family_name.as_str().to_string(),
            given_name: patient.given_name.as_str().to_string(),
            date_of_birth: patient.date_of_birth.format("%Y-%m-%d").to_string(),
            postcode: patient.postcode.as_ref().map(|p| p.as_str().to_string()),
        }
    }
}

/// A patient's identifier columns as written: the blind index and the sealed values.
#[derive(Debug, Clone)]
pub struct SealedPatient {
    pub index: String,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: String,
    pub postcode: Option<String>,
}

/// The unwrapped data keys of one database: what seals, opens and indexes its identifiers.
pub struct FieldCipher {
    current: i64,
    field_keys: HashMap<i64, XChaCha20Poly1305>,
    blind_key: [u8; 32],
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FieldCipher(current key {})", self.current)
    }
}

impl FieldCipher {
    /// `field_keys` are (id, key) of every unretired field key; the highest id is current.
    pub(crate) fn new(field_keys: Vec<(i64, [u8; 32])>, blind_key: [u8; 32]) -> StoreResult<Self> {
        let current = field_keys
            .iter()
            .map(|(id, _)| *id)
            .max()
            .ok_or_else(|| StoreError::Keys("no field data key".into()))?;
        Ok(FieldCipher {
            current,
            field_keys: field_keys
                .into_iter()
                .map(|(id, key)| (id, XChaCha20Poly1305::new(&key.into())))
                .collect(),
            blind_key,
        })
    }

    /// The id of the key new values are sealed under.
    pub fn current_key(&self) -> i64 {
        self.current
    }

    /// The blind index of a (normalised) NHS number: 32 hex digits.
    pub fn blind_index(&self, nhs_number: &str) -> String {
        // HMAC pads a key shorter than the hash's block to the block with zeros (RFC 2104),
        // so keying with the padded block is the same function, and infallible.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&self.blind_key);
        let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
        mac.update(b"mdor-nhs-number-v1\0");
        mac.update(nhs_number.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// Seals `plaintext` for `field` of the row named `row`, under the current key.
    pub fn seal(&self, field: Field, row: &str, plaintext: &str) -> StoreResult<String> {
        let key_id = self.current;
        let (table, column) = field.table_column();
        let cipher = self.field_keys.get(&key_id).ok_or_else(|| {
            StoreError::Keys(format!("the current field key {key_id} is not loaded"))
        })?;
        let body = seal_bytes(cipher, &field_aad(field, row, key_id), plaintext.as_bytes())
            .ok_or_else(|| StoreError::Keys(format!("{table}.{column} could not be sealed")))?;
        Ok(format!("k{key_id}.{body}"))
    }

    /// Opens a value sealed by `seal` for the same field and row, under any unretired key.
    pub fn open(&self, field: Field, row: &str, sealed: &str) -> StoreResult<String> {
        let (table, column) = field.table_column();
        let corrupt = || StoreError::Corrupt(format!("{table}.{column} does not open"));
        let (key_id, body) = sealed_key_id(sealed).ok_or_else(corrupt)?;
        let cipher = self.field_keys.get(&key_id).ok_or_else(|| {
            StoreError::Keys(format!(
                "{table}.{column} is sealed under unknown key {key_id}"
            ))
        })?;
        let bytes = open_bytes(cipher, &field_aad(field, row, key_id), body).ok_or_else(corrupt)?;
        String::from_utf8(bytes).map_err(|_| corrupt())
    }

    pub fn open_optional(
        &self,
        field: Field,
        row: &str,
        sealed: Option<&str>,
    ) -> StoreResult<Option<String>> {
        sealed.map(|s| self.open(field, row, s)).transpose()
    }

    /// Seals a patient's identifiers, named in associated data by their blind index.
    pub fn seal_patient(
        &self,
        patient: &mdor_domain::record::Patient,
    ) -> StoreResult<SealedPatient> {
        self.seal_plain(&PlainPatient::of(patient))
    }

    pub fn seal_plain(&self, p: &PlainPatient) -> StoreResult<SealedPatient> {
        let index = self.blind_index(&p.nhs_number);
        Ok(SealedPatient {
            nhs_number: self.seal(Field::NhsNumber, &index, &p.nhs_number)?,
            family_name: self.seal(Field::FamilyName, &index, &p.family_name)?,
            given_name: self.seal(Field::GivenName, &index, &p.given_name)?,
            date_of_birth: self.seal(Field::DateOfBirth, &index, &p.date_of_birth)?,
            postcode: p
                .postcode
                .as_ref()
                .map(|c| self.seal(Field::Postcode, &index, c))
                .transpose()?,
            index,
        })
    }

    /// Seals a create's stored answer for its token and `Idempotency-Key`.
    pub fn seal_response(&self, token_id: i64, key: &str, body: &str) -> StoreResult<String> {
        self.seal(
            Field::IdempotencyResponse,
            &format!("{token_id}/{key}"),
            body,
        )
    }

    pub fn open_response(&self, token_id: i64, key: &str, sealed: &str) -> StoreResult<String> {
        self.open(
            Field::IdempotencyResponse,
            &format!("{token_id}/{key}"),
            sealed,
        )
    }

    /// Opens a raw record or core record, or returns it as it is when it was stored before
    /// encryption (a JSON text, which never looks like a sealed value) and not yet sealed.
    pub fn open_record(&self, field: Field, row: &str, stored: &str) -> StoreResult<String> {
        match sealed_key_id(stored) {
            Some(_) => self.open(field, row, stored),
            None => Ok(stored.to_string()),
        }
    }

    /// The stored text sealed under the current key, or `None` when it already is.
    pub fn resealed_record(
        &self,
        field: Field,
        row: &str,
        stored: &str,
    ) -> StoreResult<Option<String>> {
        if self.is_current(stored) {
            return Ok(None);
        }
        let plain = self.open_record(field, row, stored)?;
        Ok(Some(self.seal(field, row, &plain)?))
    }

    /// Whether `sealed` is already under the current key (key rotation skips it).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed_key_id(sealed).is_some_and(|(id, _)| id == self.current)
    }
}

/// A patient's pseudonym in a research project: HMAC-SHA256 of the patient's blind index
/// under the project's own data key, 128 bits in hex. The blind index is itself a keyed hash
/// of the NHS number, so without both keys the pseudonym reveals nothing, and two projects'
/// pseudonyms of one patient cannot be linked.
pub fn research_pseudonym(project_key: &[u8; 32], blind_index: &str) -> String {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(project_key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(b"mdor-research-v1\0");
    mac.update(blind_index.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// The key id and body of a sealed value, or `None` when it is not one.
pub(crate) fn sealed_key_id(sealed: &str) -> Option<(i64, &str)> {
    let rest = sealed.strip_prefix('k')?;
    let (id, body) = rest.split_once('.')?;
    Some((id.parse().ok()?, body))
}

fn field_aad(field: Field, row: &str, key_id: i64) -> Vec<u8> {
    let (table, column) = field.table_column();
    format!("mdor-field-v1\0{table}\0{column}\0{row}\0{key_id}").into_bytes()
}

/// `None` only for a message longer than the cipher's limit (256 GiB).
fn seal_bytes(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Option<String> {
    let mut nonce = [0u8; NONCE_BYTES];
    // `thread_rng` is a CSPRNG reseeded from the operating system; a bulk load seals
    // millions of values, and a system call per nonce would dominate.
    rand::thread_rng().fill_bytes(&mut nonce);
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .ok()?;
    let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Some(STANDARD_NO_PAD.encode(out))
}

fn open_bytes(cipher: &XChaCha20Poly1305, aad: &[u8], body: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD_NO_PAD.decode(body).ok()?;
    if bytes.len() < NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> FieldCipher {
        FieldCipher::new(vec![(1, new_data_key())], new_data_key()).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_own_field_and_row() {
        let c = cipher();
        let sealed = c.seal(Field::FamilyName, "row-a", "Smith").unwrap();
        assert!(sealed.starts_with("k1."));
        assert!(!sealed.contains("Smith"));
        assert_eq!(
            c.open(Field::FamilyName, "row-a", &sealed).unwrap(),
            "Smith"
        );
        assert!(c.open(Field::GivenName, "row-a", &sealed).is_err());
        assert!(c.open(Field::FamilyName, "row-b", &sealed).is_err());
    }

    #[test]
    fn sealing_twice_gives_different_values() {
        let c = cipher();
        let a = c.seal(Field::Postcode, "r", "LS1 4AP").unwrap();
        let b = c.seal(Field::Postcode, "r", "LS1 4AP").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_tampered_or_relabelled_value_does_not_open() {
        let c = cipher();
        let sealed = c.seal(Field::NhsNumber, "r", "9990000018").unwrap();
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(
            c.open(Field::NhsNumber, "r", &String::from_utf8(bytes).unwrap())
                .is_err()
        );
        // The key id is in the associated data: claiming another key fails too.
        let relabelled = sealed.replacen("k1.", "k2.", 1);
        let two =
            FieldCipher::new(vec![(1, new_data_key()), (2, new_data_key())], [0; 32]).unwrap();
        assert!(two.open(Field::NhsNumber, "r", &relabelled).is_err());
        assert!(c.open(Field::NhsNumber, "r", "9990000018").is_err());
    }

    #[test]
    fn the_blind_index_is_stable_per_key_and_differs_between_keys() {
        let c = cipher();
        let d = cipher();
        assert_eq!(c.blind_index("9990000018"), c.blind_index("9990000018"));
        assert_ne!(c.blind_index("9990000018"), c.blind_index("9990000026"));
        assert_ne!(c.blind_index("9990000018"), d.blind_index("9990000018"));
        assert_eq!(c.blind_index("9990000018").len(), 32);
    }

    #[test]
    fn a_data_key_unwraps_only_under_its_kek_and_slot() {
        let kek = KeyEncryptionKey::random();
        let key = new_data_key();
        let wrapped = kek.wrap(3, "field", &key).unwrap();
        assert_eq!(kek.unwrap(3, "field", &wrapped).unwrap(), key);
        assert!(kek.unwrap(4, "field", &wrapped).is_err());
        assert!(kek.unwrap(3, "blind_index", &wrapped).is_err());
        assert!(
            KeyEncryptionKey::random()
                .unwrap(3, "field", &wrapped)
                .is_err()
        );
    }

    #[test]
    fn a_kek_file_is_64_hex_digits() {
        let text = KeyEncryptionKey::generate_text();
        let kek = KeyEncryptionKey::parse(&text).unwrap();
        assert_eq!(kek.id().len(), 16);
        assert!(!format!("{kek:?}").contains(text.trim()));
        assert!(KeyEncryptionKey::parse("abc").is_err());
        assert!(KeyEncryptionKey::parse(&"z".repeat(64)).is_err());
    }
}
