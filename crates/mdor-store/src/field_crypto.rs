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
//! - A **raw record** (the input of a submitted procedure, a core record, a quarantined
//!   record) is packed first (deflated against a fixed dictionary and padded, see
//!   `packed_record`) and stored as `c<key id>.<base64>`; the associated data says `packed`,
//!   so a packed value cannot be opened as a plain one or the other way round.
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
use crate::packed_record::PackedRecord;

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
    /// The reason a person gave for breaking glass (a sealed detail: row is its digest).
    BreakGlassReason,
    /// A reviewer's decision and note on a break-glass access (a sealed detail).
    ReviewDecision,
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
            Field::BreakGlassReason => ("access_review", "reason"),
            Field::ReviewDecision => ("access_review", "decision_note"),
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
        self.seal_as(SealedFormat::Text, field, row, plaintext.as_bytes())
    }

    /// Seals a packed record for `field` of the row named `row`, under the current key.
    pub fn seal_packed(
        &self,
        field: Field,
        row: &str,
        record: &PackedRecord,
    ) -> StoreResult<String> {
        self.seal_as(SealedFormat::Packed, field, row, record.as_bytes())
    }

    /// Packs and seals a record's text (`seal_packed` of `PackedRecord::pack`).
    pub fn seal_record(&self, field: Field, row: &str, text: &str) -> StoreResult<String> {
        self.seal_packed(field, row, &PackedRecord::pack(text))
    }

    fn seal_as(
        &self,
        format: SealedFormat,
        field: Field,
        row: &str,
        bytes: &[u8],
    ) -> StoreResult<String> {
        let key_id = self.current;
        let (table, column) = field.table_column();
        let cipher = self.field_keys.get(&key_id).ok_or_else(|| {
            StoreError::Keys(format!("the current field key {key_id} is not loaded"))
        })?;
        let body = seal_bytes(cipher, &field_aad(format, field, row, key_id), bytes)
            .ok_or_else(|| StoreError::Keys(format!("{table}.{column} could not be sealed")))?;
        Ok(format!("{}{key_id}.{body}", format.prefix()))
    }

    /// Opens a value sealed by `seal` (or a record sealed by `seal_packed`, unpacked) for the
    /// same field and row, under any unretired key.
    pub fn open(&self, field: Field, row: &str, sealed: &str) -> StoreResult<String> {
        let (table, column) = field.table_column();
        let corrupt = || StoreError::Corrupt(format!("{table}.{column} does not open"));
        let (format, key_id, body) = sealed_parts(sealed).ok_or_else(corrupt)?;
        let cipher = self.field_keys.get(&key_id).ok_or_else(|| {
            StoreError::Keys(format!(
                "{table}.{column} is sealed under unknown key {key_id}"
            ))
        })?;
        let bytes =
            open_bytes(cipher, &field_aad(format, field, row, key_id), body).ok_or_else(corrupt)?;
        match format {
            SealedFormat::Text => String::from_utf8(bytes).map_err(|_| corrupt()),
            SealedFormat::Packed => PackedRecord::from_bytes(bytes)
                .unpack()
                .map_err(|e| StoreError::Corrupt(format!("{table}.{column}: {e}"))),
        }
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

    /// A patient's sealed identifiers: `presealed` when it was sealed for this patient (its
    /// blind index) under the current key, otherwise sealed now. A value sealed under a key
    /// a rotation has since replaced, or for another patient by mistake, is never written.
    pub fn presealed_or_seal(
        &self,
        patient: &mdor_domain::record::Patient,
        presealed: Option<&SealedPatient>,
    ) -> StoreResult<SealedPatient> {
        if let Some(sealed) = presealed
            && self.is_sealed_now(sealed)
            && sealed.index == self.blind_index(patient.nhs_number.as_str())
        {
            return Ok(sealed.clone());
        }
        self.seal_patient(patient)
    }

    /// Whether every field of `sealed` is under the current key (so, sealed together by this
    /// cipher's key, never mixed across a rotation).
    fn is_sealed_now(&self, sealed: &SealedPatient) -> bool {
        [
            Some(&sealed.nhs_number),
            Some(&sealed.family_name),
            Some(&sealed.given_name),
            Some(&sealed.date_of_birth),
            sealed.postcode.as_ref(),
        ]
        .into_iter()
        .flatten()
        .all(|value| self.is_current(value))
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
        match sealed_parts(stored) {
            Some(_) => self.open(field, row, stored),
            None => Ok(stored.to_string()),
        }
    }

    /// The stored record packed and sealed under the current key, or `None` when it already
    /// is sealed under it (a record sealed unpacked, before packing, stays as it is until the
    /// key changes).
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
        Ok(Some(self.seal_record(field, row, &plain)?))
    }

    /// Seals a free text a person typed into the review of a break-glass access (`field`
    /// `BreakGlassReason` or `ReviewDecision`) with a commitment to it: the digest goes into
    /// the audit entry's leaf hash (`detail_digest`), so the text cannot be changed, even by
    /// someone holding the keys, without the change showing in `mdor audit verify`; and the
    /// sealed value is bound to that digest, so it cannot be moved to another entry.
    ///
    /// The digest is SHA-256 over a 128-bit random salt and the text, the salt sealed with the
    /// text: a reader of the database, without the keys, cannot test guesses against it.
    pub fn seal_detail(&self, field: Field, text: &str) -> StoreResult<SealedDetail> {
        let mut salt = [0u8; DETAIL_SALT_BYTES];
        rand::thread_rng().fill_bytes(&mut salt);
        let digest = detail_digest(field, &salt, text);
        let plaintext = format!("{}:{text}", hex::encode(salt));
        let sealed = self.seal(field, &hex::encode(digest), &plaintext)?;
        Ok(SealedDetail { sealed, digest })
    }

    /// Opens a detail sealed by `seal_detail` against the digest its audit entry holds: a
    /// value sealed for another digest does not open, and a text that does not hash to the
    /// digest is refused as corrupt.
    pub fn open_detail(&self, field: Field, digest: &[u8], sealed: &str) -> StoreResult<String> {
        let (table, column) = field.table_column();
        let corrupt = || {
            StoreError::Corrupt(format!(
                "{table}.{column} does not match its audit entry's commitment"
            ))
        };
        let plaintext = self.open(field, &hex::encode(digest), sealed)?;
        let (salt, text) = plaintext.split_once(':').ok_or_else(corrupt)?;
        let salt = hex::decode(salt).map_err(|_| corrupt())?;
        if detail_digest(field, &salt, text)[..] != *digest {
            return Err(corrupt());
        }
        Ok(text.to_string())
    }

    /// `sealed` moved under the current key for the same digest, or `None` when it already
    /// is (key rotation).
    pub fn resealed_detail(
        &self,
        field: Field,
        digest: &[u8],
        sealed: &str,
    ) -> StoreResult<Option<String>> {
        if self.is_current(sealed) {
            return Ok(None);
        }
        let row = hex::encode(digest);
        let plaintext = self.open(field, &row, sealed)?;
        Ok(Some(self.seal(field, &row, &plaintext)?))
    }

    /// Whether `sealed` is already under the current key (key rotation skips it).
    pub fn is_current(&self, sealed: &str) -> bool {
        sealed_parts(sealed).is_some_and(|(_, id, _)| id == self.current)
    }
}

/// Bytes of random salt in a sealed detail's commitment.
const DETAIL_SALT_BYTES: usize = 16;

/// A person's free text sealed with its commitment (`FieldCipher::seal_detail`).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedDetail {
    /// The column value: sealed salt and text, bound to `digest`.
    pub sealed: String,
    /// What the audit entry's leaf commits to.
    pub digest: [u8; 32],
}

/// The sealed value is text a person typed: `Debug` shows only the digest.
impl std::fmt::Debug for SealedDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedDetail({})", hex::encode(self.digest))
    }
}

/// SHA-256 of the tag, the field, the salt and the text, each length-prefixed so that no two
/// different inputs share an encoding.
fn detail_digest(field: Field, salt: &[u8], text: &str) -> [u8; 32] {
    let (table, column) = field.table_column();
    let mut hash = Sha256::new();
    for part in [
        b"mdor-audit-detail-v1".as_slice(),
        table.as_bytes(),
        column.as_bytes(),
        salt,
        text.as_bytes(),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
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

/// What a sealed value holds: its prefix letter and part of its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealedFormat {
    /// `k`: UTF-8 text.
    Text,
    /// `c`: a packed record (`packed_record`).
    Packed,
}

impl SealedFormat {
    fn prefix(self) -> char {
        match self {
            SealedFormat::Text => 'k',
            SealedFormat::Packed => 'c',
        }
    }
}

/// The format, key id and body of a sealed value, or `None` when it is not one (a JSON
/// text stored before encryption starts with `{` or `"`, never `k<digits>.` or `c<digits>.`).
pub(crate) fn sealed_parts(sealed: &str) -> Option<(SealedFormat, i64, &str)> {
    let format = match sealed.as_bytes().first()? {
        b'k' => SealedFormat::Text,
        b'c' => SealedFormat::Packed,
        _ => return None,
    };
    let (id, body) = sealed[1..].split_once('.')?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((format, id.parse().ok()?, body))
}

fn field_aad(format: SealedFormat, field: Field, row: &str, key_id: i64) -> Vec<u8> {
    let (table, column) = field.table_column();
    let mut aad = format!("mdor-field-v1\0{table}\0{column}\0{row}\0{key_id}").into_bytes();
    // Text keeps the associated data it had before packed records existed, so values sealed
    // then still open.
    if format == SealedFormat::Packed {
        aad.extend_from_slice(b"\0packed");
    }
    aad
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
    fn a_sealed_detail_opens_only_against_its_own_commitment_and_survives_a_key_change() {
        let one = new_data_key();
        let c = FieldCipher::new(vec![(1, one)], new_data_key()).unwrap();
        let reason = "9990000018 collapsed in ED: pacemaker check";
        let detail = c.seal_detail(Field::BreakGlassReason, reason).unwrap();
        assert!(!detail.sealed.contains("9990000018"));
        assert!(!format!("{detail:?}").contains("9990000018"));
        assert_eq!(
            c.open_detail(Field::BreakGlassReason, &detail.digest, &detail.sealed)
                .unwrap(),
            reason
        );
        // The same text again has another digest (a fresh salt), so a digest reveals
        // nothing a guess could confirm without the keys.
        let again = c.seal_detail(Field::BreakGlassReason, reason).unwrap();
        assert_ne!(again.digest, detail.digest);
        // Another entry's digest, another field, or a value moved from another detail: refused.
        assert!(
            c.open_detail(Field::BreakGlassReason, &again.digest, &detail.sealed)
                .is_err()
        );
        assert!(
            c.open_detail(Field::ReviewDecision, &detail.digest, &detail.sealed)
                .is_err()
        );
        // A key holder who seals another text for the same digest is caught by the
        // commitment: the text no longer hashes to the digest the audit entry holds.
        let forged = c
            .seal(
                Field::BreakGlassReason,
                &hex::encode(detail.digest),
                &format!("{}:routine audit", "00".repeat(DETAIL_SALT_BYTES)),
            )
            .unwrap();
        let refused = c
            .open_detail(Field::BreakGlassReason, &detail.digest, &forged)
            .unwrap_err();
        assert!(refused.to_string().contains("commitment"), "{refused}");

        // Moved to a new key by rotation, it opens against the same digest.
        let rotated =
            FieldCipher::new(vec![(1, one), (2, new_data_key())], new_data_key()).unwrap();
        let moved = rotated
            .resealed_detail(Field::BreakGlassReason, &detail.digest, &detail.sealed)
            .unwrap()
            .unwrap();
        assert!(moved.starts_with("k2."));
        assert_eq!(
            rotated
                .open_detail(Field::BreakGlassReason, &detail.digest, &moved)
                .unwrap(),
            reason
        );
        assert!(
            rotated
                .resealed_detail(Field::BreakGlassReason, &detail.digest, &moved)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn sealing_twice_gives_different_values() {
        let c = cipher();
        let a = c.seal(Field::Postcode, "r", "LS1 4AP").unwrap();
        let b = c.seal(Field::Postcode, "r", "LS1 4AP").unwrap();
        assert_ne!(a, b);
    }

    const RAW: &str = r#"{"patient":{"nhs_number":"9990000018","family_name":"Hunt"},"procedure":{"action":"implant","urgency":"elective"}}"#;

    #[test]
    fn a_record_is_packed_then_sealed_and_opens_for_its_own_field_and_row_only() {
        let c = cipher();
        let sealed = c.seal_record(Field::SourceRecord, "7", RAW).unwrap();
        assert!(sealed.starts_with("c1."), "{sealed:.8}");
        assert!(!sealed.contains("Hunt") && !sealed.contains("9990000018"));
        assert_eq!(c.open(Field::SourceRecord, "7", &sealed).unwrap(), RAW);
        assert_eq!(
            c.open_record(Field::SourceRecord, "7", &sealed).unwrap(),
            RAW
        );
        assert!(c.open(Field::SourceRecord, "8", &sealed).is_err());
        assert!(c.open(Field::RejectedRecord, "7", &sealed).is_err());
        // Shorter than the same record sealed unpacked, and a whole number of 16-byte blocks.
        let unpacked = c.seal(Field::SourceRecord, "7", RAW).unwrap();
        assert!(
            sealed.len() < unpacked.len(),
            "{} vs {}",
            sealed.len(),
            unpacked.len()
        );
    }

    #[test]
    fn a_packed_value_relabelled_as_text_or_the_reverse_does_not_open() {
        let c = cipher();
        let packed = c.seal_record(Field::SourceRecord, "7", RAW).unwrap();
        let as_text = packed.replacen("c1.", "k1.", 1);
        assert!(c.open(Field::SourceRecord, "7", &as_text).is_err());
        let text = c.seal(Field::SourceRecord, "7", RAW).unwrap();
        let as_packed = text.replacen("k1.", "c1.", 1);
        assert!(c.open(Field::SourceRecord, "7", &as_packed).is_err());
    }

    fn patient(nhs: &str) -> mdor_domain::record::Patient {
        use mdor_domain::record::PersonName;
        use mdor_domain::{NhsNumber, Postcode, Sex};
        mdor_domain::record::Patient {
            nhs_number: NhsNumber::parse(nhs).unwrap(),
            family_name: PersonName::parse("Hunt", "family_name").unwrap(),
            given_name: PersonName::parse("Denise", "given_name").unwrap(),
            date_of_birth: chrono::NaiveDate::from_ymd_opt(1937, 12, 15).unwrap(),
            sex: Sex::Female,
            postcode: Some(Postcode::parse("DY4 9XG").unwrap()),
        }
    }

    #[test]
    fn a_presealed_patient_is_used_only_for_its_own_patient_under_the_current_key() {
        let one = new_data_key();
        let blind = new_data_key();
        let old = FieldCipher::new(vec![(1, one)], blind).unwrap();
        let denise = patient("9990000018");
        let other = patient("9990000026");
        let presealed = old.seal_patient(&denise).unwrap();

        // Its own patient, the current key: used as it is (the nonces show it was not redone).
        let used = old.presealed_or_seal(&denise, Some(&presealed)).unwrap();
        assert_eq!(used.nhs_number, presealed.nhs_number);
        assert_eq!(used.postcode, presealed.postcode);

        // Another patient's seal is never written for this one: sealed afresh, for this one.
        let fresh = old.presealed_or_seal(&other, Some(&presealed)).unwrap();
        assert_ne!(fresh.index, presealed.index);
        assert_eq!(fresh.index, old.blind_index("9990000026"));
        assert_eq!(
            old.open(Field::NhsNumber, &fresh.index, &fresh.nhs_number)
                .unwrap(),
            "9990000026"
        );

        // After a rotation the old seal is not current: sealed again under the new key.
        let rotated = FieldCipher::new(vec![(1, one), (2, new_data_key())], blind).unwrap();
        let resealed = rotated
            .presealed_or_seal(&denise, Some(&presealed))
            .unwrap();
        assert!(resealed.nhs_number.starts_with("k2.") && resealed.family_name.starts_with("k2."));
        assert_eq!(
            rotated
                .open(Field::FamilyName, &resealed.index, &resealed.family_name)
                .unwrap(),
            "Hunt"
        );

        // A seal with one field from before the rotation is not current as a whole.
        let mut mixed = rotated.seal_patient(&denise).unwrap();
        mixed.postcode = presealed.postcode.clone();
        let fixed = rotated.presealed_or_seal(&denise, Some(&mixed)).unwrap();
        assert!(
            fixed
                .postcode
                .as_deref()
                .is_some_and(|p| p.starts_with("k2."))
        );

        // Nothing presealed: sealed now.
        let none = old.presealed_or_seal(&denise, None).unwrap();
        assert_ne!(none.nhs_number, presealed.nhs_number);
        assert_eq!(none.index, presealed.index);
    }

    #[test]
    fn a_record_sealed_before_packing_still_opens_and_is_packed_when_the_key_changes() {
        let one = new_data_key();
        let old = FieldCipher::new(vec![(1, one)], [0; 32]).unwrap();
        let text = old.seal(Field::CoreRecord, "7", RAW).unwrap();
        assert_eq!(old.open_record(Field::CoreRecord, "7", &text).unwrap(), RAW);
        // Under its own key it is current: a rotation that did not change keys leaves it.
        assert_eq!(
            old.resealed_record(Field::CoreRecord, "7", &text).unwrap(),
            None
        );
        let rotated = FieldCipher::new(vec![(1, one), (2, new_data_key())], [0; 32]).unwrap();
        let resealed = rotated
            .resealed_record(Field::CoreRecord, "7", &text)
            .unwrap()
            .unwrap();
        assert!(resealed.starts_with("c2."));
        assert_eq!(
            rotated
                .open_record(Field::CoreRecord, "7", &resealed)
                .unwrap(),
            RAW
        );
        // A record stored before encryption (plain JSON) is packed and sealed too.
        let plain = rotated
            .resealed_record(Field::CoreRecord, "7", RAW)
            .unwrap()
            .unwrap();
        assert!(plain.starts_with("c2."));
        assert_eq!(
            rotated.open_record(Field::CoreRecord, "7", &plain).unwrap(),
            RAW
        );
    }

    #[test]
    fn only_a_letter_digits_and_a_dot_make_a_sealed_prefix() {
        assert!(sealed_parts("k1.abc").is_some());
        assert!(sealed_parts("c12.abc").is_some());
        for not_sealed in [
            "{\"k\":1}",
            "\"c1.x\"",
            "k.abc",
            "c-1.abc",
            "k+1.abc",
            "c1",
            "",
            "x1.abc",
        ] {
            assert!(sealed_parts(not_sealed).is_none(), "{not_sealed}");
        }
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
