//! Review items of break-glass accesses on every backend: each audited write of a break-glass
//! access (a procedure read, a timeline, a refusal written on its own) raises exactly one item
//! naming its audit entry, and a decision is recorded once, never by the person who broke
//! glass. On a SQLite file and on PostgreSQL, a side connection can neither delete an item nor
//! rewrite its reason or decision, finds the reason and note sealed, and on SQLite, with the
//! triggers dropped, a reason moved to another item or a decision changed in clear no longer
//! opens: each is held by the commitment its audit entry's leaf hashes.

use std::str::FromStr;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions as _, Connection, PgConnection};

use mdor_store::{
    AccessReviewDecision, AccessReviewQuery, AccountId, AccountRole, Field, FieldCipher,
    NewAuditEvent, NewOrganisation, OrganisationId, OrganisationKind, ReviewDecision, Store,
    StoreError, connect, decision_detail,
};

use crate::fixtures::*;
use crate::harness::{TempSqliteFile, postgres_url, unique_name, with_database};

struct People {
    provider: OrganisationId,
    registry: OrganisationId,
    consultant: AccountId,
    admin: AccountId,
}

async fn people(store: &dyn Store) -> People {
    let provider = add_provider(store, "RXR").await;
    let registry = store
        .upsert_organisation(&NewOrganisation {
            ods_code: ods("MDOR"),
            name: "The registry".to_string(),
            kind: OrganisationKind::Registry,
            region: None,
        })
        .await
        .unwrap();
    let account =
        |username: &str, role, organisation| new_account(username, role, Some(organisation));
    let consultant = store
        .insert_account(
            &account("a.consultant", AccountRole::Consultant, provider),
            None,
        )
        .await
        .unwrap();
    let admin = store
        .insert_account(
            &account("an.admin", AccountRole::SystemAdmin, registry),
            None,
        )
        .await
        .unwrap();
    People {
        provider,
        registry,
        consultant,
        admin,
    }
}

fn break_glass(
    cipher: &FieldCipher,
    organisation: OrganisationId,
    account: AccountId,
    action: &'static str,
    reason: &str,
) -> NewAuditEvent {
    NewAuditEvent {
        patients: Vec::new(),
        request: None,
        at: instant(2026, 2, 1, 3),
        organisation,
        role: "consultant",
        token: None,
        account: Some(account),
        action,
        resource: "patient".to_string(),
        patient: None,
        record_count: 0,
        purpose: "break_glass:direct_care",
        outcome: "ok",
        break_glass: Some(cipher.seal_detail(Field::BreakGlassReason, reason).unwrap()),
    }
}

/// The note every decision here records.
const NOTE: &str = "seen in ED that night";

fn decision(
    cipher: &FieldCipher,
    review: mdor_store::AccessReviewId,
    by: AccountId,
    verdict: ReviewDecision,
) -> AccessReviewDecision {
    AccessReviewDecision {
        review,
        decision: verdict,
        sealed: cipher
            .seal_detail(Field::ReviewDecision, &decision_detail(verdict, Some(NOTE)))
            .unwrap(),
        by,
        at: instant(2026, 2, 2, 10),
    }
}

fn all_reviews() -> AccessReviewQuery {
    AccessReviewQuery {
        include_decided: true,
        after: None,
        limit: 100,
    }
}

pub async fn a_break_glass_access_raises_one_review_item_decided_once_by_another_person(
    store: &dyn Store,
) {
    let people = people(store).await;
    let cipher = store.identifier_cipher().await.unwrap();
    let udi_di = udi(1);
    let procedure = store
        .insert_submission(
            &simple(
                1,
                people.provider,
                "RXR",
                "LOC-1",
                date(2025, 5, 1),
                &udi_di,
            ),
            None,
        )
        .await
        .unwrap();
    let patient = store
        .patient_timeline_bounds(&nhs(1))
        .await
        .unwrap()
        .unwrap()
        .patient;

    // An entry without a break-glass reason raises nothing.
    let mut plain = break_glass(
        &cipher,
        people.provider,
        people.consultant,
        "procedure.read",
        "x",
    );
    plain.break_glass = None;
    store.append_audit(&plain).await.unwrap();
    assert!(
        store
            .access_reviews(&all_reviews())
            .await
            .unwrap()
            .is_empty()
    );

    // A procedure read, a timeline and a miss written on its own: one item each.
    let read = store
        .audited_procedure(
            procedure,
            None,
            &break_glass(
                &cipher,
                people.provider,
                people.consultant,
                "procedure.read",
                "unconscious in ED",
            ),
        )
        .await
        .unwrap();
    assert!(read.is_some());
    let timeline = store
        .patient_timeline(
            patient,
            &break_glass(
                &cipher,
                people.provider,
                people.consultant,
                "patient.timeline",
                "MRI safety check out of hours",
            ),
        )
        .await
        .unwrap();
    assert!(timeline.is_some());
    let mut miss = break_glass(
        &cipher,
        people.provider,
        people.consultant,
        "patient.timeline",
        "miss",
    );
    miss.outcome = "not_found";
    store.append_audit(&miss).await.unwrap();

    let entries = store.audit_events(None, 100).await.unwrap();
    let reviews = store.access_reviews(&all_reviews()).await.unwrap();
    assert_eq!(reviews.len(), 3, "{reviews:?}");
    for (review, (reason, seq, action, outcome)) in reviews.iter().zip([
        ("unconscious in ED", 2, "procedure.read", "ok"),
        ("MRI safety check out of hours", 3, "patient.timeline", "ok"),
        ("miss", 4, "patient.timeline", "not_found"),
    ]) {
        assert_eq!(review.reason, reason);
        assert_eq!(review.audit_seq, seq);
        assert_eq!(review.action, action);
        assert_eq!(review.outcome, outcome);
        assert_eq!(review.account, people.consultant);
        assert_eq!(review.username, "a.consultant");
        assert_eq!(review.organisation_ods, "RXR");
        assert_eq!(review.role, "consultant");
        assert_eq!(review.purpose, "break_glass:direct_care");
        assert_eq!(review.at, instant(2026, 2, 1, 3));
        assert_eq!(review.decision, None);
    }
    assert_eq!(
        reviews[0].patient,
        Some(patient),
        "the read names its patient"
    );
    assert_eq!(reviews[1].patient, Some(patient));
    assert_eq!(entries.len(), 4);

    // The person who broke glass cannot decide; another can, once.
    let first = reviews[0].id;
    let audit = |account| {
        let mut audit = break_glass(
            &cipher,
            people.registry,
            account,
            "access_review.decide",
            "x",
        );
        audit.break_glass = None;
        audit.purpose = "review";
        audit
    };
    assert!(
        !store
            .decide_access_review(
                &decision(
                    &cipher,
                    first,
                    people.consultant,
                    ReviewDecision::Appropriate
                ),
                &audit(people.consultant),
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .decide_access_review(
                &decision(&cipher, first, people.admin, ReviewDecision::Inappropriate),
                &audit(people.admin),
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .decide_access_review(
                &decision(&cipher, first, people.admin, ReviewDecision::Appropriate),
                &audit(people.admin),
            )
            .await
            .unwrap(),
        "a decision is final"
    );
    assert_eq!(
        store.audit_events(None, 100).await.unwrap().len(),
        5,
        "only the recorded decision is audited"
    );
    let decided = store.access_review(first).await.unwrap().unwrap();
    assert_eq!(decided.decision, Some(ReviewDecision::Inappropriate));
    assert_eq!(decided.decided_by, Some(people.admin));
    assert_eq!(decided.decided_by_username.as_deref(), Some("an.admin"));
    assert_eq!(decided.decided_at, Some(instant(2026, 2, 2, 10)));
    assert_eq!(decided.decision_note.as_deref(), Some(NOTE));

    let open = store
        .access_reviews(&AccessReviewQuery {
            include_decided: false,
            after: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        open.iter().map(|r| r.audit_seq).collect::<Vec<_>>(),
        vec![3, 4]
    );
    let after = store
        .access_reviews(&AccessReviewQuery {
            include_decided: true,
            after: Some(reviews[1].id),
            limit: 1,
        })
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, reviews[2].id);
    assert!(
        store
            .access_review(mdor_store::AccessReviewId(999))
            .await
            .unwrap()
            .is_none()
    );
}

/// Writes two reviewed accesses and decides the first, for the side-connection tests.
async fn one_decided_review(store: &dyn Store) {
    store.migrate().await.unwrap();
    let people = people(store).await;
    let cipher = store.identifier_cipher().await.unwrap();
    for reason in ["emergency", "second opinion"] {
        store
            .append_audit(&break_glass(
                &cipher,
                people.provider,
                people.consultant,
                "patient.timeline",
                reason,
            ))
            .await
            .unwrap();
    }
    let review = store.access_reviews(&all_reviews()).await.unwrap()[0].id;
    let mut audit = break_glass(
        &cipher,
        people.registry,
        people.admin,
        "access_review.decide",
        "x",
    );
    audit.break_glass = None;
    assert!(
        store
            .decide_access_review(
                &decision(&cipher, review, people.admin, ReviewDecision::Appropriate),
                &audit,
            )
            .await
            .unwrap()
    );
}

/// The reason and note as the database holds them: sealed values, with no trace of the text.
fn assert_sealed(stored: &[(String, Option<String>)]) {
    assert_eq!(stored.len(), 2);
    assert!(stored[0].1.is_some(), "the decided item has its note");
    for (reason, note) in stored {
        for value in std::iter::once(reason).chain(note) {
            assert!(value.starts_with('k'), "{value}");
            for text in ["emergency", "second opinion", NOTE] {
                assert!(!value.contains(text), "{value}");
            }
        }
    }
}

const STORED: &str = "SELECT reason, decision_note FROM access_review ORDER BY id";

/// What a side connection tries; each must be refused.
const TAMPERING: [&str; 3] = [
    "UPDATE access_review SET decision = 'inappropriate'",
    "UPDATE access_review SET reason = 'edited'",
    "DELETE FROM access_review",
];

#[tokio::test]
async fn sqlite_review_items_cannot_be_deleted_and_their_reason_and_decision_are_final() {
    let file = TempSqliteFile::new("access-review-final");
    let store = connect(&file.url(), &crate::harness::keyed())
        .await
        .unwrap();
    one_decided_review(&*store).await;
    let mut side = SqliteConnectOptions::from_str(&file.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for statement in TAMPERING {
        let refused = sqlx::query(statement).execute(&mut side).await.unwrap_err();
        assert!(
            refused.to_string().contains("access_review")
                || refused.to_string().contains("access review"),
            "{statement}: {refused}"
        );
    }
    let review = &store.access_reviews(&all_reviews()).await.unwrap()[0];
    assert_eq!(review.reason, "emergency");
    assert_eq!(review.decision, Some(ReviewDecision::Appropriate));
    assert_eq!(review.decision_note.as_deref(), Some(NOTE));
    let stored: Vec<(String, Option<String>)> =
        sqlx::query_as(STORED).fetch_all(&mut side).await.unwrap();
    assert_sealed(&stored);

    // Past the triggers (a side connection may drop them on SQLite), the commitments still
    // hold: the second item's sealed reason moved onto the first does not open, and neither
    // does a decision changed in clear.
    sqlx::raw_sql(
        "DROP TRIGGER access_review_final; \
         UPDATE access_review SET reason = (SELECT reason FROM access_review ORDER BY id DESC LIMIT 1) \
           WHERE id = (SELECT MIN(id) FROM access_review)",
    )
    .execute(&mut side)
    .await
    .unwrap();
    let moved = store.access_reviews(&all_reviews()).await.unwrap_err();
    assert!(matches!(moved, StoreError::Corrupt(_)), "{moved}");
    sqlx::raw_sql(&format!(
        "UPDATE access_review SET reason = '{}', decision = 'inappropriate' \
           WHERE id = (SELECT MIN(id) FROM access_review)",
        stored[0].0
    ))
    .execute(&mut side)
    .await
    .unwrap();
    let flipped = store.access_reviews(&all_reviews()).await.unwrap_err();
    assert!(
        flipped.to_string().contains("decision does not match"),
        "{flipped}"
    );
}

#[tokio::test]
async fn postgres_review_items_cannot_be_deleted_truncated_and_their_reason_and_decision_are_final()
{
    let Some(admin_url) = postgres_url("review_items_are_final") else {
        return;
    };
    let database = unique_name("mdor_test");
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = with_database(&admin_url, &database);
    let outcome = tokio::spawn(async move {
        let store = connect(&url, &crate::harness::keyed()).await.unwrap();
        one_decided_review(&*store).await;
        let mut side = PgConnection::connect(&url).await.unwrap();
        for statement in TAMPERING.into_iter().chain(["TRUNCATE access_review"]) {
            let refused = sqlx::query(statement).execute(&mut side).await.unwrap_err();
            assert!(
                refused.to_string().contains("access_review")
                    || refused.to_string().contains("access review"),
                "{statement}: {refused}"
            );
        }
        let review = &store.access_reviews(&all_reviews()).await.unwrap()[0];
        assert_eq!(review.reason, "emergency");
        assert_eq!(review.decision, Some(ReviewDecision::Appropriate));
        assert_eq!(review.decision_note.as_deref(), Some(NOTE));
        let stored: Vec<(String, Option<String>)> =
            sqlx::query_as(STORED).fetch_all(&mut side).await.unwrap();
        assert_sealed(&stored);
        side.close().await.unwrap();
    })
    .await;
    crate::harness::drop_database(&mut admin, &database).await;
    outcome.unwrap();
}
