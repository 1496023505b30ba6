//! A raw record packed for storage: deflated against a fixed dictionary and padded, so that
//! what is sealed and written is a third of the text received.
//!
//! Every accepted record keeps its raw input (issue 5), sealed because it names the patient.
//! Sealed text was the largest thing a bulk submission wrote (1.1 GB of a 2.3 GB database for
//! 1,000,000 records), and the commit is the bottleneck. A record of a few hundred bytes
//! deflates poorly alone (595 → 365 bytes), but well against a dictionary of the field names
//! and values such records share (→ about 200 bytes).
//!
//! The packed bytes are `format ‖ body ‖ zero padding`:
//! - format `0x01`: raw deflate (RFC 1951) primed with [`DICTIONARY_D1`], padded with zero
//!   bytes to a multiple of 16, so that the stored length tells less about the content;
//! - format `0x00`: the text as it is, unpadded (written only if deflating were to fail).
//!
//! A dictionary is fixed forever once records are packed against it: a better one is added
//! as a new format byte, never by editing this one. Packing happens where records are checked,
//! off the commit's thread; sealing (`FieldCipher::seal_packed`) binds the format into the
//! associated data, so a packed value cannot be passed off as a plain one.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

const FORMAT_STORED: u8 = 0x00;
const FORMAT_DEFLATE_D1: u8 = 0x01;
/// Packed lengths are rounded up to this many bytes.
const PADDING: usize = 16;
/// A 4 KiB window holds the dictionary and a whole typical record; longer records still
/// deflate, only against less history.
const WINDOW_BITS: u8 = 12;
/// The most a packed record may unpack to (a record line is at most 1 MiB; a core record
/// snapshot a few KiB). Anything larger is a corrupt or hostile value, not a record.
const MAX_UNPACKED: usize = 16 << 20;

/// What `mdor_core` and the registries' records share, most frequent last (deflate reaches
/// the end of a dictionary most cheaply). Do not edit: records packed against it need it
/// byte for byte to unpack (see the module documentation).
pub const DICTIONARY_D1: &[u8] = concat!(
    r#""procedure_id","core":"explant_reason":"side":"ear":"route":"product":"device_type":"#,
    r#""manufacturer":"revision","explant","emergency","urgent","unknown","#,
    r#""developmental_dysplasia","post_traumatic_arthritis","avascular_necrosis","#,
    r#""inflammatory_arthritis","fracture","sui_and_prolapse","prolapse","sui","#,
    r#""reconstructive","cosmetic","atrial_fibrillation_bradycardia","atrioventricular_block","#,
    r#""sick_sinus_syndrome","osteoarthritis","bilateral","W40.1","K60.1","B30.1","W38.1","#,
    r#""W93.1","W37.1","P22.1","D24.1","M53.3","W41.1","K61.1","W42.1","W94.1""#,
    r#"{"expiry":"2025-","lot":"B","manufactured":"2023-","role":"implanted","serial":"SN0000","#,
    r#""udi_di":"050"},{"role":"implanted","udi":"(01)050(17)(10)L2(21)SN0000"},"#,
    r#"{"role":"implanted","udi":"]C1010503(17)10L2\u001d2100000"},"#,
    r#"{"role":"implanted","udi":"]d2010503\u001d21SN0000"},"#,
    r#"{"role":"implanted","udi":"]d20105017102"}],"#,
    r#""patient":{"date_of_birth":"19","family_name":"","given_name":"","nhs_number":"999","#,
    r#""postcode":"","sex":"male"},"#,
    r#""procedure":{"action":"implant","consultant":"","date":"20","indication":"osteoarthritis","#,
    r#""laterality":"right","local_record_id":"R","opcs4_code":"","provider":"R","#,
    r#""urgency":"elective"}}{"devices":[{"role":"implanted","udi":"]d2010"#
)
.as_bytes();

/// Deflate's fastest level. On 100,000 synthetic `mdor_core` records (2026-12-04): level 1
/// took 5.4 µs a record for 216 packed bytes, level 6 12.4 µs for 183 and level 9 14.5 µs
/// for 181. Packing runs beside the commit on a two-core machine, so CPU counts for more than
/// the last 15% of size. The level is not part of the format: any level unpacks alike.
const LEVEL: u32 = 1;

thread_local! {
    // Deflate's state is about 100 KiB; one per thread, reset per record, instead of one
    // allocated and zeroed per record.
    static DEFLATE: RefCell<Compress> =
        RefCell::new(Compress::new_with_window_bits(Compression::new(LEVEL), false, WINDOW_BITS));
}

/// A raw record as stored before sealing. Its bytes are the record, only smaller, so `Debug`
/// shows the length alone: a record names its patient.
#[derive(Clone, PartialEq, Eq)]
pub struct PackedRecord {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for PackedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedRecord({} bytes)", self.bytes.len())
    }
}

/// Why packed bytes do not unpack: they were not written by [`PackedRecord::pack`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packed record: {0}")]
pub struct UnpackError(&'static str);

impl PackedRecord {
    /// Packs a record's text.
    pub fn pack(text: &str) -> PackedRecord {
        // Beyond what `unpack` accepts from deflate, a text is stored as it is, so that
        // whatever is packed can be unpacked.
        let deflated = (text.len() <= MAX_UNPACKED)
            .then(|| deflate(text.as_bytes()))
            .flatten();
        let bytes = deflated.unwrap_or_else(|| {
            let mut stored = Vec::with_capacity(text.len() + 1);
            stored.push(FORMAT_STORED);
            stored.extend_from_slice(text.as_bytes());
            stored
        });
        PackedRecord { bytes }
    }

    /// The record's text again.
    pub fn unpack(&self) -> Result<String, UnpackError> {
        unpack_bytes(&self.bytes)
    }

    /// Packed bytes as opened from storage; [`PackedRecord::unpack`] checks them.
    pub(crate) fn from_bytes(bytes: Vec<u8>) -> PackedRecord {
        PackedRecord { bytes }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The packed length in bytes, padding included.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// `format ‖ deflate ‖ padding`, or `None` if the deflater refused (it has no reason to).
fn deflate(text: &[u8]) -> Option<Vec<u8>> {
    DEFLATE.with(|cell| {
        let mut deflater = cell.try_borrow_mut().ok()?;
        deflater.reset();
        deflater.set_dictionary(DICTIONARY_D1).ok()?;
        // Deflate never expands by more than 5 bytes per 16 KiB block plus a few bytes.
        let mut out = Vec::with_capacity(1 + text.len() + text.len() / 1024 + 64);
        out.push(FORMAT_DEFLATE_D1);
        loop {
            let consumed = usize::try_from(deflater.total_in()).ok()?;
            let status = deflater
                .compress_vec(&text[consumed..], &mut out, FlushCompress::Finish)
                .ok()?;
            match status {
                Status::StreamEnd => break,
                // Out of room: grow and go on.
                Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
            }
        }
        out.resize(out.len().div_ceil(PADDING) * PADDING, 0);
        Some(out)
    })
}

fn unpack_bytes(bytes: &[u8]) -> Result<String, UnpackError> {
    let (&format, body) = bytes.split_first().ok_or(UnpackError("empty"))?;
    let text = match format {
        FORMAT_STORED => body.to_vec(),
        FORMAT_DEFLATE_D1 => inflate(body)?,
        _ => return Err(UnpackError("unknown format")),
    };
    String::from_utf8(text).map_err(|_| UnpackError("not UTF-8 text"))
}

fn inflate(body: &[u8]) -> Result<Vec<u8>, UnpackError> {
    let broken = UnpackError("not a deflate stream of this dictionary");
    // The largest window, so that any window the packer may ever use is covered.
    let mut inflater = Decompress::new_with_window_bits(false, 15);
    inflater
        .set_dictionary(DICTIONARY_D1)
        .map_err(|_| broken.clone())?;
    let mut out = Vec::with_capacity(body.len() * 4);
    loop {
        let consumed = usize::try_from(inflater.total_in()).map_err(|_| broken.clone())?;
        let produced = out.len();
        let status = inflater
            .decompress_vec(&body[consumed..], &mut out, FlushDecompress::Finish)
            .map_err(|_| broken.clone())?;
        if out.len() > MAX_UNPACKED {
            return Err(UnpackError("too large"));
        }
        match status {
            Status::StreamEnd => break,
            // Out of room: grow and go on.
            _ if out.len() == out.capacity() => out.reserve(out.len().max(1024)),
            // Room to write and nothing written: the stream ended early.
            _ if out.len() == produced => return Err(UnpackError("truncated")),
            _ => {}
        }
    }
    let consumed = usize::try_from(inflater.total_in()).map_err(|_| broken.clone())?;
    let padding = body.get(consumed..).ok_or(broken)?;
    // Exactly the padding `deflate` writes, so that no two byte strings unpack alike.
    if padding.len() >= PADDING
        || padding.iter().any(|&b| b != 0)
        || !(1 + body.len()).is_multiple_of(PADDING)
    {
        return Err(UnpackError("bad padding"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RECORD: &str = r#"{"devices":[{"role":"implanted","udi":"]d2010503151700908317140731101231319\u001d21SN00000001"}],"patient":{"date_of_birth":"1937-12-15","family_name":"Hunt","given_name":"Denise","nhs_number":"9990000018","postcode":"DY4 9XG","sex":"female"},"procedure":{"action":"implant","consultant":"5805215","date":"2013-01-14","indication":"sick_sinus_syndrome","laterality":"not_applicable","local_record_id":"RSJ-0000001","opcs4_code":"K61.1","provider":"RXX1","urgency":"elective"}}"#;

    #[test]
    fn a_record_packs_to_a_padded_fraction_of_its_length_and_unpacks_to_itself() {
        let packed = PackedRecord::pack(RECORD);
        assert_eq!(packed.as_bytes()[0], FORMAT_DEFLATE_D1);
        assert_eq!(packed.len() % PADDING, 0);
        // 433 bytes of text; without the dictionary deflate gives about 300.
        assert!(packed.len() * 2 < RECORD.len(), "{} bytes", packed.len());
        assert_eq!(packed.unpack().unwrap(), RECORD);
        // Nothing of the patient is readable in the packed bytes.
        let bytes = String::from_utf8_lossy(packed.as_bytes()).into_owned();
        assert!(!bytes.contains("Hunt") && !bytes.contains("9990000018"));
    }

    #[test]
    fn the_dictionary_is_what_records_were_packed_against() {
        // Changing a byte of it would make every stored record unreadable: this pins it.
        use sha2::{Digest, Sha256};
        assert_eq!(DICTIONARY_D1.len(), 1199);
        assert_eq!(
            hex::encode(Sha256::digest(DICTIONARY_D1)),
            "4146a6c3fa93ef618404544eac7abd3d48fc03b3fb0a3143f2c8b3cb06756711"
        );
    }

    #[test]
    fn empty_long_and_incompressible_texts_round_trip() {
        let long: String = (0..200_000)
            .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
            .collect();
        let noisy: String = (0..5_000u32)
            .map(|i| {
                char::from_u32(0x4e00 + (i.wrapping_mul(2_654_435_761) >> 20) % 2000).unwrap_or('x')
            })
            .collect();
        for text in ["", "x", long.as_str(), noisy.as_str()] {
            let packed = PackedRecord::pack(text);
            assert_eq!(packed.len() % PADDING, 0);
            assert_eq!(packed.unpack().unwrap(), text);
        }
    }

    #[test]
    fn the_stored_format_unpacks_too() {
        let mut bytes = vec![FORMAT_STORED];
        bytes.extend_from_slice(RECORD.as_bytes());
        assert_eq!(PackedRecord::from_bytes(bytes).unpack().unwrap(), RECORD);
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let good = PackedRecord::pack(RECORD).bytes;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "empty"),
            (vec![0x07, 1, 2, 3], "unknown format"),
            (good[..good.len() / 2].to_vec(), "truncated"),
            (
                {
                    let mut b = good.clone();
                    b.push(0);
                    b
                },
                "bad padding",
            ),
            // The last byte is padding or the end of the stream, depending on the length.
            (
                {
                    let mut b = good.clone();
                    *b.last_mut().unwrap_or(&mut 0) = 1;
                    b
                },
                "any",
            ),
            (
                {
                    let mut b = good.clone();
                    b[1] ^= 0xff;
                    b
                },
                "any",
            ),
            (vec![FORMAT_STORED, 0xff, 0xfe], "not UTF-8 text"),
        ];
        for (bytes, expected) in cases {
            let outcome = PackedRecord::from_bytes(bytes).unpack();
            match (&outcome, expected) {
                (Err(_), "any") => {}
                (Err(UnpackError(message)), expected) if *message == expected => {}
                // A flipped bit may still inflate, to other text: the seal is what detects
                // tampering; here it must only not panic or return the original.
                (Ok(text), "any") => assert_ne!(text, RECORD),
                _ => panic!("expected {expected}, got {outcome:?}"),
            }
        }
    }

    #[test]
    fn a_deflate_bomb_is_refused_and_a_text_that_large_is_stored_as_it_is() {
        let zeros = "\0".repeat(MAX_UNPACKED + 1);
        let bomb = PackedRecord::from_bytes(
            std::iter::once(FORMAT_DEFLATE_D1)
                .chain(
                    deflate(zeros.as_bytes())
                        .unwrap_or_default()
                        .into_iter()
                        .skip(1),
                )
                .collect(),
        );
        assert!(bomb.len() < 256 * 1024, "{} bytes", bomb.len());
        assert_eq!(bomb.unpack(), Err(UnpackError("too large")));
        let stored = PackedRecord::pack(&zeros);
        assert_eq!(stored.as_bytes()[0], FORMAT_STORED);
        assert_eq!(stored.unpack().unwrap().len(), zeros.len());
    }

    proptest! {
        #[test]
        fn any_text_round_trips(text in ".{0,2000}") {
            let packed = PackedRecord::pack(&text);
            prop_assert_eq!(packed.len() % PADDING, 0);
            prop_assert_eq!(packed.unpack().unwrap(), text);
        }

        #[test]
        fn any_bytes_unpack_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = PackedRecord::from_bytes(bytes).unpack();
        }
    }
}
