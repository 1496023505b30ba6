//! Review items of break-glass accesses, as stored (`access_review`, migration 0015).
//!
//! A review item is written by `insert_audit` in the same transaction as the audit entry of
//! the break-glass access it names (`NewAuditEvent::break_glass`), so neither exists without
//! the other. It holds the entry's position and the reason; who, when, what and why are read
//! from the entry itself. A decision (appropriate or inappropriate, with a note) is recorded
//! once, by another person than the one who broke glass: the service checks it and the
//! table's CHECK constraint and triggers hold the store to it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::accounts::AccountId;
use crate::error::StoreError;
use crate::field_crypto::{Field, FieldCipher, SealedDetail};
use crate::types::PatientId;

/// The text a decision's commitment covers: the decision, a newline, and the note (empty when
/// there is none), so that neither can be changed alone.
pub fn decision_detail(decision: ReviewDecision, note: Option<&str>) -> String {
    format!("{}\n{}", decision.as_str(), note.unwrap_or(""))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AccessReviewId(pub i64);

impl std::fmt::Display for AccessReviewId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the reviewer decided about a break-glass access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Appropriate,
    Inappropriate,
}

impl ReviewDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Appropriate => "appropriate",
            ReviewDecision::Inappropriate => "inappropriate",
        }
    }

    pub fn parse(input: &str) -> Option<ReviewDecision> {
        [ReviewDecision::Appropriate, ReviewDecision::Inappropriate]
            .into_iter()
            .find(|d| d.as_str() == input)
    }
}

/// A review item with the break-glass access it names.
///
/// `reason` and `decision_note` are text people typed: `Debug` leaves them out.
#[derive(Clone, Serialize)]
pub struct AccessReview {
    pub id: AccessReviewId,
    /// The break-glass access's audit entry, by its position in the log.
    pub audit_seq: u64,
    /// When the access was made.
    pub at: DateTime<Utc>,
    pub organisation_ods: String,
    pub role: String,
    /// The person who broke glass.
    pub account: AccountId,
    pub username: String,
    pub action: String,
    pub resource: String,
    pub patient: Option<PatientId>,
    pub purpose: String,
    pub outcome: String,
    pub reason: String,
    pub decision: Option<ReviewDecision>,
    pub decision_note: Option<String>,
    pub decided_by: Option<AccountId>,
    pub decided_by_username: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for AccessReview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessReview")
            .field("id", &self.id)
            .field("audit_seq", &self.audit_seq)
            .field("account", &self.account)
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

/// Which review items to list, oldest first, keyset-paged by id.
#[derive(Debug, Clone)]
pub struct AccessReviewQuery {
    /// Decided items too, not only the open ones.
    pub include_decided: bool,
    pub after: Option<AccessReviewId>,
    pub limit: u32,
}

/// A reviewer's decision, as the service checked it.
#[derive(Clone)]
pub struct AccessReviewDecision {
    pub review: AccessReviewId,
    pub decision: ReviewDecision,
    /// The decision and note (`decision_detail`) sealed with their commitment for
    /// `Field::ReviewDecision`; the decision's audit entry commits to it.
    pub sealed: SealedDetail,
    /// The reviewer: never the person who broke glass.
    pub by: AccountId,
    pub at: DateTime<Utc>,
}

impl std::fmt::Debug for AccessReviewDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessReviewDecision")
            .field("review", &self.review)
            .field("decision", &self.decision)
            .field("by", &self.by)
            .finish_non_exhaustive()
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccessReviewRow {
    pub id: i64,
    pub audit_seq: i64,
    pub at: DateTime<Utc>,
    pub organisation_ods: String,
    pub role: String,
    pub account_id: i64,
    pub username: String,
    pub action: String,
    pub resource: String,
    pub patient_id: Option<i64>,
    pub purpose: String,
    pub outcome: String,
    pub reason: String,
    pub decision: Option<String>,
    pub decision_note: Option<String>,
    pub decided_by: Option<i64>,
    pub decided_by_username: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The access entry's commitment to the reason; `None` for an item recorded before
    /// reasons were sealed (migration 0024), whose reason is in clear.
    pub reason_digest: Option<Vec<u8>>,
    /// The decision entry's commitment to the decision and note; `None` while open, and for
    /// a decision recorded before 0024 (its note in clear).
    pub decision_digest: Option<Vec<u8>>,
}

impl AccessReviewRow {
    /// The item with its reason and note opened against their audit entries' commitments.
    pub(crate) fn open(self, cipher: &FieldCipher) -> Result<AccessReview, StoreError> {
        let decision = self
            .decision
            .as_deref()
            .map(|d| {
                ReviewDecision::parse(d)
                    .ok_or_else(|| StoreError::Corrupt(format!("access review decision {d}")))
            })
            .transpose()?;
        let reason = match &self.reason_digest {
            Some(digest) => cipher.open_detail(Field::BreakGlassReason, digest, &self.reason)?,
            None => self.reason.clone(),
        };
        let decision_note = match (&self.decision_digest, &self.decision_note, decision) {
            (Some(digest), Some(sealed), Some(decision)) => {
                let text = cipher.open_detail(Field::ReviewDecision, digest, sealed)?;
                let (committed, note) = text.split_once('\n').unwrap_or((text.as_str(), ""));
                // The decision is kept in clear for listing open items; its commitment
                // holds it to what the reviewer decided.
                if committed != decision.as_str() {
                    return Err(StoreError::Corrupt(format!(
                        "access review {} decision does not match its audit entry's commitment",
                        self.id
                    )));
                }
                (!note.is_empty()).then(|| note.to_string())
            }
            (Some(_), _, _) => {
                return Err(StoreError::Corrupt(format!(
                    "access review {} has a committed decision but no sealed note",
                    self.id
                )));
            }
            (None, note, _) => note.clone(),
        };
        let row = self;
        Ok(AccessReview {
            id: AccessReviewId(row.id),
            audit_seq: row.audit_seq as u64,
            at: row.at,
            organisation_ods: row.organisation_ods,
            role: row.role,
            account: AccountId(row.account_id),
            username: row.username,
            action: row.action,
            resource: row.resource,
            patient: row.patient_id.map(PatientId),
            purpose: row.purpose,
            outcome: row.outcome,
            reason,
            decision,
            decision_note,
            decided_by: row.decided_by.map(AccountId),
            decided_by_username: row.decided_by_username,
            decided_at: row.decided_at,
        })
    }
}
