//! Review items of break-glass accesses, written once for both engines (see `recall_cases` for
//! why a macro expands the same bodies per connection type). The item itself is inserted by
//! `recall_cases`'s `insert_audit`, in the transaction of the audit entry it names.
//!
//! The reason, and the decision with its note, are sealed details (`FieldCipher::seal_detail`):
//! each opens only against the digest of its audit entry (the access's, the decision's), which
//! the entry's leaf hash commits to.

/// The review item of the audit entry at position `$1`, made by account `$2` for reason `$3`.
pub(crate) const REVIEW_INSERT: &str =
    "INSERT INTO access_review (audit_seq, account_id, reason) VALUES ($1, $2, $3)";

/// Review items with their accesses: who (organisation, role, account), when, what, why, and
/// the digests the sealed reason and decision open against.
pub(crate) const REVIEW_SELECT: &str = "SELECT r.id, r.audit_seq, a.at, \
       o.ods_code AS organisation_ods, a.role, r.account_id, acc.username, a.action, \
       a.resource, a.patient_id, a.purpose, a.outcome, r.reason, r.decision, r.decision_note, \
       r.decided_by, d.username AS decided_by_username, r.decided_at, \
       a.detail_digest AS reason_digest, de.detail_digest AS decision_digest \
     FROM access_review r \
     JOIN audit_event a ON a.seq = r.audit_seq \
     JOIN organisation o ON o.id = a.organisation_id \
     JOIN account acc ON acc.id = r.account_id \
     LEFT JOIN account d ON d.id = r.decided_by \
     LEFT JOIN audit_event de ON de.seq = r.decision_seq";

/// Records a decision on an open item, never by the person who broke glass, naming the
/// decision's audit entry (`$6`).
pub(crate) const REVIEW_DECIDE: &str = "UPDATE access_review \
     SET decision = $1, decision_note = $2, decided_by = $3, decided_at = $4, decision_seq = $6 \
     WHERE id = $5 AND decision IS NULL AND account_id <> $3";

/// Expands, inside a backend module next to its `recall` module (whose `insert_audit` writes
/// the decision's audit entry), the access review functions for `$conn`.
macro_rules! access_review_queries {
    ($conn:ty) => {
        use $crate::access_reviews::AccessReviewRow;
        use $crate::backend::access_reviews as ar;

        pub(super) async fn list(
            conn: &mut $conn,
            cipher: &$crate::field_crypto::FieldCipher,
            query: &AccessReviewQuery,
        ) -> StoreResult<Vec<AccessReview>> {
            let rows: Vec<AccessReviewRow> = sqlx::query_as(&format!(
                "{} WHERE ($1 OR r.decision IS NULL) AND r.id > $2 ORDER BY r.id LIMIT $3",
                ar::REVIEW_SELECT
            ))
            .bind(query.include_decided)
            .bind(query.after.map_or(0, |a| a.0))
            .bind(i64::from(query.limit))
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter().map(|row| row.open(cipher)).collect()
        }

        pub(super) async fn get(
            conn: &mut $conn,
            cipher: &$crate::field_crypto::FieldCipher,
            id: AccessReviewId,
        ) -> StoreResult<Option<AccessReview>> {
            let row: Option<AccessReviewRow> =
                sqlx::query_as(&format!("{} WHERE r.id = $1", ar::REVIEW_SELECT))
                    .bind(id.0)
                    .fetch_optional(&mut *conn)
                    .await?;
            row.map(|row| row.open(cipher)).transpose()
        }

        /// Records the decision and its audit entry, whose leaf commits to the sealed
        /// decision and note; false when the item is decided already, absent, or the
        /// reviewer's own access, and then the caller must not commit (the entry is written
        /// first, so that the item can name it).
        pub(super) async fn decide(
            conn: &mut $conn,
            decision: &AccessReviewDecision,
            audit: &NewAuditEvent,
        ) -> StoreResult<bool> {
            let digest = decision.sealed.digest.to_vec();
            let seq = super::recall::insert_audit_entry(conn, |seq| {
                let mut entry = AuditLogEntry::appended(seq, audit);
                entry.detail_digest = Some(digest);
                entry
            })
            .await?;
            let updated = sqlx::query(ar::REVIEW_DECIDE)
                .bind(decision.decision.as_str())
                .bind(&decision.sealed.sealed)
                .bind(decision.by.0)
                .bind(decision.at)
                .bind(decision.review.0)
                .bind(seq as i64)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            Ok(updated == 1)
        }
    };
}

pub(crate) use access_review_queries;
