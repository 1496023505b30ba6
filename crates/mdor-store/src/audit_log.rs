//! The audit log as a Merkle tree, hashed as RFC 6962 §2.1 defines: a leaf is
//! SHA-256(0x00 || entry), an interior node SHA-256(0x01 || left || right), and the tree over
//! n leaves splits at the largest power of two smaller than n.
//!
//! An entry's bytes are its canonical encoding, version 1 (also in `docs/security.md`): the
//! tag `mdor-audit-entry-v1` and then the fields `seq`, `at`, `organisation_id`, `role`,
//! `token_id`, `action`, `resource`, `patient_id`, `record_count`, `purpose`, `outcome` in
//! that order, each as a 4-byte big-endian length followed by that many bytes of UTF-8, and an
//! absent optional field as the length `0xFFFFFFFF` with no bytes. Integers are written in
//! decimal without sign or leading zeros; `at` as RFC 3339 in UTC with exactly six fractional
//! digits (`2026-11-20T10:00:00.000000Z`), the precision both engines store. Every field is
//! length-prefixed, so no two different entries share an encoding.
//!
//! Version 2, for entries that name the account whose session made the access: the tag
//! `mdor-audit-entry-v2` and the same fields with `account_id` after `token_id`. An entry
//! without an account keeps version 1, so every leaf stored before accounts were recorded
//! still verifies, and the two tags keep the versions' encodings apart.
//!
//! Version 3, for entries written for an HTTP request: the tag `mdor-audit-entry-v3`, the
//! version-2 fields with `account_id` always present (absent written as absent), and then
//! `request_id`. An entry without a request id keeps version 1 or 2 as before.
//!
//! Version 4, for entries of multi-patient reads (a recall query, a work-list page or its
//! export): the tag `mdor-audit-entry-v4`, the version-3 fields (the request id absent when
//! there was none), and then `patients`: the ids of the patients the read named, ascending,
//! in decimal, joined by `,`.
//!
//! Version 5, for entries with a person's sealed text (the reason given for breaking glass,
//! a review's decision and note): the tag `mdor-audit-entry-v5`, the version-4 fields (the
//! patients written as the empty text when the entry names none), and then `detail_digest`:
//! the commitment to that text (`FieldCipher::seal_detail`) as 64 lowercase hex digits.
//!
//! `TreeBuilder` computes the root of a growing log with a stack of perfect subtrees, in one
//! pass and O(log n) memory, so that a million entries verify without holding them.

use chrono::{DateTime, SubsecRound, Utc};
use sha2::{Digest, Sha256};

use crate::types::AuditLogEntry;

/// A SHA-256 digest: a leaf, node or root hash.
pub type Hash = [u8; 32];

/// The first field of every version-1 encoding.
const ENTRY_TAG: &str = "mdor-audit-entry-v1";

/// The first field of every version-2 encoding (an entry with an account).
const ENTRY_TAG_V2: &str = "mdor-audit-entry-v2";

/// The first field of every version-3 encoding (an entry with a request id).
const ENTRY_TAG_V3: &str = "mdor-audit-entry-v3";

/// The first field of every version-4 encoding (an entry naming the patients of a
/// multi-patient read).
const ENTRY_TAG_V4: &str = "mdor-audit-entry-v4";

/// The first field of every version-5 encoding (an entry committing to a sealed detail).
const ENTRY_TAG_V5: &str = "mdor-audit-entry-v5";

/// Length written for an absent optional field.
const ABSENT: u32 = u32::MAX;

/// The canonical bytes of an entry (see the module header).
pub fn canonical_encoding(entry: &AuditLogEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + entry.resource.len());
    let mut text = |value: Option<&str>| match value {
        Some(value) => {
            // Field values are short texts; an over-long one would be refused by the engine
            // long before 4 GiB.
            out.extend_from_slice(&(value.len() as u32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        None => out.extend_from_slice(&ABSENT.to_be_bytes()),
    };
    let version_5 = entry.detail_digest.is_some();
    let version_4 = version_5 || !entry.patients.is_empty();
    let version_3 = version_4 || entry.request_id.is_some();
    text(Some(match (version_4, &entry.request_id, entry.account) {
        (true, _, _) if version_5 => ENTRY_TAG_V5,
        (true, _, _) => ENTRY_TAG_V4,
        (false, Some(_), _) => ENTRY_TAG_V3,
        (false, None, Some(_)) => ENTRY_TAG_V2,
        (false, None, None) => ENTRY_TAG,
    }));
    text(Some(&entry.seq.to_string()));
    text(Some(&format_instant(entry.at)));
    text(Some(&entry.organisation.0.to_string()));
    text(Some(&entry.role));
    text(entry.token.map(|t| t.0.to_string()).as_deref());
    if version_3 || entry.account.is_some() {
        text(entry.account.map(|a| a.0.to_string()).as_deref());
    }
    text(Some(&entry.action));
    text(Some(&entry.resource));
    text(entry.patient.map(|p| p.0.to_string()).as_deref());
    text(Some(&entry.record_count.to_string()));
    text(Some(&entry.purpose));
    text(Some(&entry.outcome));
    if version_3 {
        text(entry.request_id.as_deref());
    }
    if version_4 {
        let ids: Vec<String> = entry.patients.iter().map(|p| p.0.to_string()).collect();
        text(Some(&ids.join(",")));
    }
    if let Some(digest) = &entry.detail_digest {
        text(Some(&hex::encode(digest)));
    }
    out
}

/// SHA-256(0x00 || canonical encoding).
pub fn leaf_hash(entry: &AuditLogEntry) -> Hash {
    leaf_hash_of(&canonical_encoding(entry))
}

/// RFC 6962 leaf hash of arbitrary bytes.
pub fn leaf_hash_of(data: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(data);
    hasher.finalize().into()
}

/// RFC 6962 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the empty tree: SHA-256 of no bytes.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The instant as stored and encoded: whole microseconds, since PostgreSQL keeps no more.
pub fn audit_instant(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// `2026-11-20T10:00:00.000000Z`, written field by field: chrono's format strings cost more
/// than the hashing when a million entries are verified.
fn format_instant(at: DateTime<Utc>) -> String {
    use chrono::{Datelike, Timelike};
    let at = audit_instant(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.nanosecond() / 1_000
    )
}

/// Root of a log built leaf by leaf. The stack holds the roots of the perfect subtrees that
/// make up the leaves so far, largest first; their heights are the set bits of the size, so
/// folding them from the right gives exactly RFC 6962's MTH.
#[derive(Debug, Clone, Default)]
pub struct TreeBuilder {
    size: u64,
    /// (height, root) of each perfect subtree, left to right.
    stack: Vec<(u32, Hash)>,
}

impl TreeBuilder {
    pub fn new() -> TreeBuilder {
        TreeBuilder::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Hash) {
        let mut height = 0;
        let mut hash = leaf;
        while let Some(&(top_height, top)) = self.stack.last() {
            if top_height != height {
                break;
            }
            self.stack.pop();
            hash = node_hash(&top, &hash);
            height += 1;
        }
        self.stack.push((height, hash));
        self.size += 1;
    }

    /// MTH of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.stack.iter().rev();
        let Some(&(_, mut hash)) = subtrees.next() else {
            return empty_root();
        };
        for (_, left) in subtrees {
            hash = node_hash(left, &hash);
        }
        hash
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::accounts::AccountId;
    use crate::types::{OrganisationId, PatientId, TokenId};

    /// RFC 6962 MTH by its recursive definition, to check the stack against.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let split = largest_power_of_two_below(n);
                node_hash(
                    &reference_root(&leaves[..split]),
                    &reference_root(&leaves[split..]),
                )
            }
        }
    }

    fn largest_power_of_two_below(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn root_of(leaves: &[Hash]) -> Hash {
        let mut tree = TreeBuilder::new();
        for leaf in leaves {
            tree.push(*leaf);
        }
        tree.root()
    }

    #[test]
    fn roots_match_the_certificate_transparency_test_vectors() {
        // The eight leaves and roots of certificate-transparency's merkle_tree_test.
        let inputs: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let leaves: Vec<Hash> = inputs.iter().map(|d| leaf_hash_of(d)).collect();
        for (n, expected) in roots.iter().enumerate() {
            let root = root_of(&leaves[..=n]);
            let hex: String = root.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(&hex, expected, "tree of {} leaves", n + 1);
        }
        let hex: String = root_of(&[]).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn the_stack_equals_the_recursive_definition_for_every_size_up_to_300() {
        let leaves: Vec<Hash> = (0u32..300)
            .map(|i| leaf_hash_of(&i.to_be_bytes()))
            .collect();
        let mut tree = TreeBuilder::new();
        for n in 1..=leaves.len() {
            tree.push(leaves[n - 1]);
            assert_eq!(tree.root(), reference_root(&leaves[..n]), "size {n}");
            assert_eq!(tree.size(), n as u64);
        }
    }

    fn entry() -> AuditLogEntry {
        AuditLogEntry {
            seq: 7,
            at: Utc
                .with_ymd_and_hms(2026, 11, 20, 10, 0, 0)
                .single()
                .unwrap_or_default(),
            organisation: OrganisationId(3),
            role: "regulator".into(),
            token: Some(TokenId(12)),
            account: None,
            action: "patient.timeline".into(),
            resource: "patient/5".into(),
            patient: Some(PatientId(5)),
            record_count: 2,
            purpose: "recall".into(),
            outcome: "ok".into(),
            request_id: None,
            patients: Vec::new(),
            detail_digest: None,
            leaf_hash: None,
        }
    }

    #[test]
    fn the_encoding_is_length_prefixed_and_tells_absent_from_empty() {
        let bytes = canonical_encoding(&entry());
        assert_eq!(&bytes[..4], &19u32.to_be_bytes());
        assert_eq!(&bytes[4..23], b"mdor-audit-entry-v1");
        assert_eq!(&bytes[23..28], b"\0\0\0\x017");
        assert_eq!(&bytes[28..32], &27u32.to_be_bytes());
        assert_eq!(&bytes[32..59], b"2026-11-20T10:00:00.000000Z");
        let mut no_token = entry();
        no_token.token = None;
        let mut by_account = entry();
        by_account.token = None;
        by_account.account = Some(AccountId(12));
        let mut empty_resource = entry();
        empty_resource.resource = String::new();
        let mut moved = entry();
        // The same characters split differently between two fields must hash differently.
        moved.action = "patient.timelinep".into();
        moved.resource = "atient/5".into();
        let hashes = [
            leaf_hash(&entry()),
            leaf_hash(&no_token),
            leaf_hash(&by_account),
            leaf_hash(&empty_resource),
            leaf_hash(&moved),
        ];
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j], "{i} and {j}");
            }
        }
    }

    #[test]
    fn an_entry_with_an_account_is_version_2_with_the_account_after_the_token() {
        let v1 = canonical_encoding(&entry());
        let mut with_account = entry();
        with_account.account = Some(AccountId(44));
        let v2 = canonical_encoding(&with_account);
        assert_eq!(&v2[4..23], b"mdor-audit-entry-v2");
        // v2 is v1 with the tag's version changed and `account_id` (`44`) inserted just before
        // the action field, that is right after the token.
        let action = b"\0\0\0\x10patient.timeline";
        let at = v1.windows(action.len()).position(|w| w == action).unwrap();
        let mut expected = v1.clone();
        expected[22] = b'2';
        expected.splice(at..at, b"\0\0\0\x0244".iter().copied());
        assert_eq!(v2, expected);
        assert_ne!(leaf_hash(&with_account), leaf_hash(&entry()));
    }

    #[test]
    fn an_entry_with_a_request_id_is_version_3_with_the_account_always_written_and_the_id_last() {
        let request = "3f2b8c1e-0d4a-4e6b-9a57-1c2d3e4f5a6b";
        let mut tokened = entry();
        tokened.request_id = Some(request.into());
        let v1 = canonical_encoding(&entry());
        let v3 = canonical_encoding(&tokened);
        assert_eq!(&v3[4..23], b"mdor-audit-entry-v3");
        // v3 of an entry without an account: v1 with the version changed, the absent account
        // written right after the token, and the request id appended.
        let action = b"\0\0\0\x10patient.timeline";
        let at = v1.windows(action.len()).position(|w| w == action).unwrap();
        let mut expected = v1.clone();
        expected[22] = b'3';
        expected.splice(at..at, ABSENT.to_be_bytes());
        expected.extend_from_slice(&36u32.to_be_bytes());
        expected.extend_from_slice(request.as_bytes());
        assert_eq!(v3, expected);

        // With an account, v3 is v2 with the version changed and the request id appended.
        let mut person = entry();
        person.token = None;
        person.account = Some(AccountId(44));
        let mut person_v3 = person.clone();
        person_v3.request_id = Some(request.into());
        let mut expected = canonical_encoding(&person);
        expected[22] = b'3';
        expected.extend_from_slice(&36u32.to_be_bytes());
        expected.extend_from_slice(request.as_bytes());
        assert_eq!(canonical_encoding(&person_v3), expected);

        // Every change of the id, and its removal, changes the leaf.
        let mut other = tokened.clone();
        other.request_id = Some("3f2b8c1e-0d4a-4e6b-9a57-1c2d3e4f5a6c".into());
        let mut empty = tokened.clone();
        empty.request_id = Some(String::new());
        let hashes = [
            leaf_hash(&entry()),
            leaf_hash(&tokened),
            leaf_hash(&other),
            leaf_hash(&empty),
        ];
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j], "{i} and {j}");
            }
        }
    }

    #[test]
    fn an_entry_with_a_detail_is_version_5_with_its_digest_in_hex_after_the_patients() {
        let mut access = entry();
        access.request_id = Some("3f2b8c1e-0d4a-4e6b-9a57-1c2d3e4f5a6b".into());
        let v3 = canonical_encoding(&access);
        access.detail_digest = Some(vec![0xab; 32]);
        let v5 = canonical_encoding(&access);
        assert_eq!(&v5[4..23], b"mdor-audit-entry-v5");
        // v3, the tag's version changed, the empty patients field, then the digest.
        let mut expected = v3.clone();
        expected[22] = b'5';
        expected.extend_from_slice(&0u32.to_be_bytes());
        expected.extend_from_slice(&64u32.to_be_bytes());
        expected.extend_from_slice("ab".repeat(32).as_bytes());
        assert_eq!(v5, expected);

        // With patients, they come before the digest; any change of the digest changes the
        // leaf, and so does dropping it.
        let mut named = access.clone();
        named.patients = vec![PatientId(5)];
        let tail = [&1u32.to_be_bytes()[..], b"5", &64u32.to_be_bytes()].concat();
        let bytes = canonical_encoding(&named);
        assert_eq!(
            &bytes[bytes.len() - 64 - tail.len()..bytes.len() - 64],
            &tail[..]
        );
        let mut edited = access.clone();
        edited.detail_digest = Some(vec![0xac; 32]);
        let mut dropped = access.clone();
        dropped.detail_digest = None;
        assert_ne!(leaf_hash(&access), leaf_hash(&edited));
        assert_ne!(leaf_hash(&access), leaf_hash(&dropped));
        assert_ne!(leaf_hash(&access), leaf_hash(&named));
    }

    #[test]
    fn an_entry_naming_patients_is_version_4_with_their_ids_ascending_after_the_request_id() {
        let mut recall = entry();
        recall.request_id = Some("3f2b8c1e-0d4a-4e6b-9a57-1c2d3e4f5a6b".into());
        let v3 = canonical_encoding(&recall);
        recall.patients = vec![PatientId(5), PatientId(12), PatientId(300)];
        let v4 = canonical_encoding(&recall);
        assert_eq!(&v4[4..23], b"mdor-audit-entry-v4");
        let mut expected = v3.clone();
        expected[22] = b'4';
        expected.extend_from_slice(&8u32.to_be_bytes());
        expected.extend_from_slice(b"5,12,300");
        assert_eq!(v4, expected);

        // Without a request id, it is written absent before the patients.
        let mut offline = recall.clone();
        offline.request_id = None;
        let bytes = canonical_encoding(&offline);
        let tail = [&ABSENT.to_be_bytes()[..], &8u32.to_be_bytes(), b"5,12,300"].concat();
        assert!(bytes.ends_with(&tail));
        assert_eq!(&bytes[4..23], b"mdor-audit-entry-v4");

        // One patient more, fewer or another changes the leaf.
        let mut more = recall.clone();
        more.patients.push(PatientId(301));
        let mut fewer = recall.clone();
        fewer.patients.pop();
        let mut other = recall.clone();
        other.patients[0] = PatientId(6);
        let hashes = [
            leaf_hash(&recall),
            leaf_hash(&more),
            leaf_hash(&fewer),
            leaf_hash(&other),
            leaf_hash(&offline),
        ];
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j], "{i} and {j}");
            }
        }
    }
}
