//! The conformance cases every backend must pass, each against a fresh `&dyn Store`:
//! migrations, organisations, the device register, submissions as single transactions,
//! idempotency records, removals, deaths, recalls and API tokens.

use mdor_domain::Laterality;
use mdor_domain::record::{PersonName, RemovalKind};
use mdor_store::{
    Counts, IdempotencyRecord, ImplantId, NewApiToken, NewOrganisation, NewRemoval, OrganisationId,
    OrganisationKind, ProcedureId, RecallCriteria, RecallRow, Role, Store, StoreError, TokenId,
};

use crate::fixtures::*;

// --- Migrations -------------------------------------------------------------------------

pub async fn check_migrations_reports_pending_until_migrations_are_applied(store: &dyn Store) {
    let before = store.check_migrations().await;
    assert!(
        matches!(before, Err(StoreError::MigrationsPending)),
        "{before:?}"
    );
    store.migrate().await.unwrap();
    store.check_migrations().await.unwrap();
    // Applying them again changes nothing.
    store.migrate().await.unwrap();
    store.check_migrations().await.unwrap();
    assert_eq!(store.counts().await.unwrap(), Counts::default());
}

// --- Organisations and the register -----------------------------------------------------

pub async fn organisation_upsert_keeps_its_id_and_updates_the_name(store: &dyn Store) {
    let first = store
        .upsert_organisation(&provider("RXX", "Old Name NHS Trust"))
        .await
        .unwrap();
    let renamed = NewOrganisation {
        ods_code: ods("rxx"),
        name: "New Name NHS Foundation Trust".to_string(),
        kind: OrganisationKind::Provider,
        region: None,
    };
    let second = store.upsert_organisation(&renamed).await.unwrap();
    assert_eq!(first, second);

    let by_ods = store
        .organisation_by_ods(&ods("RXX"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_ods.id, first);
    assert_eq!(by_ods.ods_code, "RXX");
    assert_eq!(by_ods.name, "New Name NHS Foundation Trust");
    assert_eq!(by_ods.kind, OrganisationKind::Provider);
    assert_eq!(by_ods.region, None);
    let by_id = store.organisation(first).await.unwrap().unwrap();
    assert_eq!(by_id.name, by_ods.name);
    assert_eq!(by_id.ods_code, "RXX");

    let regulator = store
        .upsert_organisation(&NewOrganisation {
            ods_code: ods("X26"),
            name: "Medicines and Healthcare products Regulatory Agency".to_string(),
            kind: OrganisationKind::Regulator,
            region: None,
        })
        .await
        .unwrap();
    assert_ne!(regulator, first);
    let stored = store.organisation(regulator).await.unwrap().unwrap();
    assert_eq!(stored.kind, OrganisationKind::Regulator);

    assert!(
        store
            .organisation_by_ods(&ods("RZZ"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .organisation(OrganisationId(first.0 + regulator.0 + 1000))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.counts().await.unwrap().organisations, 2);
}

pub async fn device_register_upsert_is_read_back_and_only_known_udi_dis_get_ids(store: &dyn Store) {
    let (a, b, unknown) = (udi(1), udi(2), udi(3));
    let written = store
        .upsert_device_models(&[register_entry(&a, "Model A"), register_entry(&b, "Model B")])
        .await
        .unwrap();
    assert_eq!(written, 2);

    let model_a = store.device_model(&a).await.unwrap().unwrap();
    assert_eq!(model_a.udi_di, a.as_str());
    assert_eq!(model_a.issuer, "gs1");
    assert_eq!(model_a.manufacturer, "Acme Orthopaedics");
    assert_eq!(model_a.brand, "Steadfast");
    assert_eq!(model_a.model, "Model A");
    assert_eq!(model_a.device_type, "hip_stem");
    assert_eq!(model_a.risk_class, "III");
    assert_eq!(model_a.registry, "njr");

    // Upserting again updates in place.
    store
        .upsert_device_models(&[register_entry(&a, "Model A, revised")])
        .await
        .unwrap();
    let revised = store.device_model(&a).await.unwrap().unwrap();
    assert_eq!(revised.id, model_a.id);
    assert_eq!(revised.model, "Model A, revised");
    let model_b = store.device_model(&b).await.unwrap().unwrap();
    assert_ne!(model_b.id, model_a.id);

    assert!(store.device_model(&unknown).await.unwrap().is_none());
    let mut ids = store.device_model_ids(&[&a, &unknown, &b]).await.unwrap();
    ids.sort();
    let mut expected = vec![
        (a.as_str().to_string(), model_a.id),
        (b.as_str().to_string(), model_b.id),
    ];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        store
            .device_model_ids(&[&unknown])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.device_model_ids(&[]).await.unwrap().is_empty());
    assert_eq!(store.counts().await.unwrap().device_models, 2);
}

// --- Submissions ------------------------------------------------------------------------

pub async fn submission_round_trips_every_field_and_creates_the_consultant(store: &dyn Store) {
    let provider_id = add_provider(store, "RXX").await;
    let (registered, unregistered) = (udi(10), udi(11));
    let model = add_device_model(store, &registered).await;
    let scanned = scanned_device(
        &registered,
        "LOT-7",
        "SN0042",
        date(2031, 5, 31),
        date(2025, 6, 1),
    );
    let raw_scan = scanned.raw_scan.clone().unwrap();
    assert!(raw_scan.contains(GS));
    // Expired before the procedure and not in the register: two follow-up flags.
    let expired = manual_device(&unregistered, Some("L2"), None, Some(date(2026, 1, 31)));
    let mut details = procedure("RXX", "THEATRE-0001", date(2026, 2, 10));
    details.snomed = Some(snomed("52734007"));
    details.laterality = Laterality::Right;
    let mut someone = patient(&nhs(1), date(1950, 3, 14));
    someone.family_name = PersonName::parse("Ó'Brien-Łukasiewicz", "family_name").unwrap();
    someone.given_name = PersonName::parse("Zoë", "given_name").unwrap();
    let prepared = prepare(
        submission(someone, details, vec![scanned, expired]),
        provider_id,
        &[Some(model), None],
    );
    assert_eq!(store.counts().await.unwrap().consultants, 0);

    let id = store.insert_submission(&prepared, None).await.unwrap();
    let record = store.procedure(id).await.unwrap().unwrap();

    assert_eq!(record.id, id);
    assert_eq!(record.provider, provider_id);
    assert_eq!(record.provider_ods, "RXX");
    assert_eq!(record.nhs_number, nhs(1).as_str());
    assert_eq!(record.family_name, "Ó'Brien-Łukasiewicz");
    assert_eq!(record.given_name, "Zoë");
    assert_eq!(record.date_of_birth, date(1950, 3, 14));
    assert_eq!(record.sex, "female");
    assert_eq!(record.postcode.as_deref(), Some("LS1 4AP"));
    assert_eq!(record.date_of_death, None);
    assert_eq!(record.consultant_gmc, "7654321");
    assert_eq!(record.procedure_date, date(2026, 2, 10));
    assert_eq!(record.opcs4_code.as_deref(), Some("W37.1"));
    assert_eq!(record.opcs4_version.as_deref(), Some("4.10"));
    assert_eq!(record.snomed_ct_id, Some(52_734_007));
    assert_eq!(record.laterality, "right");
    assert_eq!(record.registry, "njr");
    assert_eq!(record.local_record_id, "THEATRE-0001");
    assert_eq!(record.indication.as_deref(), Some("osteoarthritis"));
    assert_eq!(record.created_at, instant(2026, 11, 1, 9));
    assert_eq!(record.implants.len(), 2);

    let first = &record.implants[0];
    assert_eq!(first.position, 0);
    assert_eq!(first.udi_di, registered.as_str());
    assert_eq!(first.device_model, Some(model));
    assert_eq!(first.lot.as_deref(), Some("LOT-7"));
    assert_eq!(first.serial.as_deref(), Some("SN0042"));
    assert_eq!(first.expiry, Some(date(2031, 5, 31)));
    assert_eq!(first.manufactured, Some(date(2025, 6, 1)));
    assert_eq!(first.raw_scan.as_deref(), Some(raw_scan.as_str()));
    assert_eq!(first.entry_type, "barcode");
    assert!(first.flags.is_empty(), "{:?}", first.flags);
    assert!(first.removal.is_none());

    let second = &record.implants[1];
    assert_eq!(second.position, 1);
    assert_eq!(second.udi_di, unregistered.as_str());
    assert_eq!(second.device_model, None);
    assert_eq!(second.lot.as_deref(), Some("L2"));
    assert_eq!(second.serial, None);
    assert_eq!(second.expiry, Some(date(2026, 1, 31)));
    assert_eq!(second.manufactured, None);
    assert_eq!(second.raw_scan, None);
    assert_eq!(second.entry_type, "manual");
    assert_eq!(second.flags, ["expired_at_implant", "not_in_register"]);
    assert_ne!(first.id, second.id);

    let counts = store.counts().await.unwrap();
    assert_eq!(counts.consultants, 1);
    assert_eq!(counts.patients, 1);
    assert_eq!(counts.procedures, 1);
    assert_eq!(counts.implants, 2);
    assert_eq!(counts.open_flags, 2);

    assert_eq!(
        store
            .procedure_by_local_id(provider_id, "THEATRE-0001")
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(
        store
            .procedure_by_local_id(provider_id, "THEATRE-0002")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .procedure_by_local_id(OrganisationId(provider_id.0 + 1000), "THEATRE-0001")
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .procedure(ProcedureId(id.0 + 1000))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn second_submission_with_the_same_date_of_birth_reuses_the_patient(store: &dyn Store) {
    let provider_id = add_provider(store, "RXX").await;
    let device = udi(10);
    let first = simple(1, provider_id, "RXX", "A-1", date(2020, 1, 1), &device);
    let first_id = store.insert_submission(&first, None).await.unwrap();

    // The same patient, submitted later with a new family name and no postcode.
    let mut second = simple(1, provider_id, "RXX", "A-2", date(2022, 6, 1), &device);
    second.submission.patient.family_name = PersonName::parse("Newname", "family_name").unwrap();
    second.submission.patient.postcode = None;
    let second_id = store.insert_submission(&second, None).await.unwrap();
    assert_ne!(first_id, second_id);

    let first_record = store.procedure(first_id).await.unwrap().unwrap();
    let second_record = store.procedure(second_id).await.unwrap().unwrap();
    assert_eq!(first_record.patient_id, second_record.patient_id);
    // The latest name is kept; a missing postcode does not erase the stored one.
    assert_eq!(first_record.family_name, "Newname");
    assert_eq!(second_record.postcode.as_deref(), Some("LS1 4AP"));

    let counts = store.counts().await.unwrap();
    assert_eq!(counts.patients, 1);
    assert_eq!(counts.procedures, 2);
    assert_eq!(counts.implants, 2);
    // The consultant was created by the first submission and reused by the second.
    assert_eq!(counts.consultants, 1);
}

pub async fn submission_with_another_date_of_birth_is_a_patient_mismatch_and_writes_nothing(
    store: &dyn Store,
) {
    let provider_id = add_provider(store, "RXX").await;
    let device = udi(10);
    let first_id = store
        .insert_submission(
            &simple(1, provider_id, "RXX", "A-1", date(2020, 1, 1), &device),
            None,
        )
        .await
        .unwrap();
    let before = store.counts().await.unwrap();

    let mut other = simple(1, provider_id, "RXX", "A-2", date(2022, 6, 1), &device);
    other.submission.patient.date_of_birth = date(1950, 3, 15);
    other.submission.patient.family_name = PersonName::parse("Other", "family_name").unwrap();
    let result = store.insert_submission(&other, None).await;
    assert!(
        matches!(result, Err(StoreError::PatientMismatch)),
        "{result:?}"
    );

    assert_eq!(store.counts().await.unwrap(), before);
    assert_eq!(
        store
            .procedure_by_local_id(provider_id, "A-2")
            .await
            .unwrap(),
        None
    );
    let stored = store.procedure(first_id).await.unwrap().unwrap();
    assert_eq!(stored.date_of_birth, date(1950, 3, 14));
    assert_eq!(stored.family_name, "Testpatient");
}

pub async fn duplicate_local_record_id_is_a_conflict_and_leaves_nothing_behind(store: &dyn Store) {
    let provider_id = add_provider(store, "RXX").await;
    let device = udi(10);
    store
        .insert_submission(
            &simple(1, provider_id, "RXX", "A-1", date(2020, 1, 1), &device),
            None,
        )
        .await
        .unwrap();
    let before = store.counts().await.unwrap();

    // A new patient under a local record id the provider already used.
    let duplicate = simple(2, provider_id, "RXX", "A-1", date(2021, 1, 1), &device);
    let result = store.insert_submission(&duplicate, None).await;
    match result {
        Err(StoreError::Conflict { constraint }) => {
            assert!(constraint.contains("local_record_id"), "{constraint}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.counts().await.unwrap(), before);
    assert!(
        store
            .patient_timeline_bounds(&nhs(2))
            .await
            .unwrap()
            .is_none(),
        "the new patient of the failed submission was left behind"
    );

    // Local record ids are unique per provider, not globally.
    let other_provider = add_provider(store, "RYY").await;
    let elsewhere = simple(2, other_provider, "RYY", "A-1", date(2021, 1, 1), &device);
    store.insert_submission(&elsewhere, None).await.unwrap();
    assert_eq!(store.counts().await.unwrap().procedures, 2);
}

pub async fn submission_for_an_unknown_provider_is_a_conflict_and_leaves_nothing_behind(
    store: &dyn Store,
) {
    let provider_id = add_provider(store, "RXX").await;
    let before = store.counts().await.unwrap();
    let orphan = simple(
        1,
        OrganisationId(provider_id.0 + 1000),
        "RXX",
        "A-1",
        date(2020, 1, 1),
        &udi(10),
    );
    let result = store.insert_submission(&orphan, None).await;
    assert!(
        matches!(result, Err(StoreError::Conflict { .. })),
        "foreign keys must be enforced: {result:?}"
    );
    assert_eq!(store.counts().await.unwrap(), before);
    assert!(
        store
            .patient_timeline_bounds(&nhs(1))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn idempotency_record_is_written_with_the_submission_and_a_reused_key_is_a_conflict(
    store: &dyn Store,
) {
    let provider_id = add_provider(store, "RXX").await;
    let token = add_token(store, provider_id, "hash-1").await;
    let device = udi(10);
    let record = idempotency(token, "key-1", r#"{"procedure_id":1}"#);
    store
        .insert_submission(
            &simple(1, provider_id, "RXX", "A-1", date(2020, 1, 1), &device),
            Some(&record),
        )
        .await
        .unwrap();
    let expected = IdempotencyRecord {
        request_hash: "sha256-of-key-1".to_string(),
        response_status: 201,
        response_body: r#"{"procedure_id":1}"#.to_string(),
    };
    assert_eq!(
        store.idempotency_record(token, "key-1").await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store.idempotency_record(token, "key-2").await.unwrap(),
        None
    );
    let before = store.counts().await.unwrap();

    // Another submission under the same token and key: refused, and nothing of it stays.
    let reused = idempotency(token, "key-1", r#"{"procedure_id":2}"#);
    let result = store
        .insert_submission(
            &simple(2, provider_id, "RXX", "A-2", date(2021, 1, 1), &device),
            Some(&reused),
        )
        .await;
    match result {
        Err(StoreError::Conflict { constraint }) => {
            assert!(constraint.contains("idempotency_key"), "{constraint}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.counts().await.unwrap(), before);
    assert_eq!(
        store
            .procedure_by_local_id(provider_id, "A-2")
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .patient_timeline_bounds(&nhs(2))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.idempotency_record(token, "key-1").await.unwrap(),
        Some(expected)
    );

    // Keys are scoped to their token.
    let other_token = add_token(store, provider_id, "hash-2").await;
    store
        .insert_submission(
            &simple(3, provider_id, "RXX", "A-3", date(2021, 1, 1), &device),
            Some(&idempotency(other_token, "key-1", "{}")),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .idempotency_record(other_token, "key-1")
            .await
            .unwrap()
            .map(|r| r.response_body),
        Some("{}".to_string())
    );
}

// --- Removals and deaths ----------------------------------------------------------------

fn removal(implant: ImplantId, revising_provider: OrganisationId) -> NewRemoval {
    NewRemoval {
        implant,
        kind: RemovalKind::Revision,
        removal_date: date(2024, 6, 1),
        reason: Some("aseptic loosening".to_string()),
        revising_provider,
        recorded_at: instant(2024, 6, 2, 10),
    }
}

pub async fn removal_is_recorded_once_and_shown_with_the_revising_provider(store: &dyn Store) {
    let implanting = add_provider(store, "RXX").await;
    let revising = add_provider(store, "RYY").await;
    let id = store
        .insert_submission(
            &simple(1, implanting, "RXX", "A-1", date(2020, 1, 1), &udi(10)),
            None,
        )
        .await
        .unwrap();
    let record = store.procedure(id).await.unwrap().unwrap();
    let implant = record.implants[0].id;

    let context = store.implant_context(implant).await.unwrap().unwrap();
    assert_eq!(context.implant, implant);
    assert_eq!(context.procedure, id);
    assert_eq!(context.provider, implanting);
    assert_eq!(context.patient, record.patient_id);
    assert_eq!(context.procedure_date, date(2020, 1, 1));
    assert_eq!(context.date_of_death, None);
    assert!(!context.already_removed);
    assert!(
        store
            .implant_context(ImplantId(implant.0 + 1000))
            .await
            .unwrap()
            .is_none()
    );

    let ids = store
        .insert_removals(&[removal(implant, revising)], None)
        .await
        .unwrap();
    assert_eq!(ids.len(), 1);
    let context = store.implant_context(implant).await.unwrap().unwrap();
    assert!(context.already_removed);

    let mut again = removal(implant, implanting);
    again.kind = RemovalKind::Explant;
    match store.insert_removals(&[again], None).await {
        Err(StoreError::Conflict { constraint }) => {
            assert!(constraint.contains("implant_id"), "{constraint}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.counts().await.unwrap().removals, 1);

    let record = store.procedure(id).await.unwrap().unwrap();
    let stored = record.implants[0].removal.as_ref().unwrap();
    assert_eq!(stored.id, ids[0]);
    assert_eq!(stored.kind, "revision");
    assert_eq!(stored.removal_date, date(2024, 6, 1));
    assert_eq!(stored.reason.as_deref(), Some("aseptic loosening"));
    assert_eq!(stored.revising_provider, "RYY");
}

pub async fn removals_are_recorded_all_or_none(store: &dyn Store) {
    let provider_id = add_provider(store, "RXX").await;
    let token = add_token(store, provider_id, "hash-1").await;
    let device = udi(10);
    let prepared = prepare(
        submission(
            patient(&nhs(1), date(1950, 3, 14)),
            procedure("RXX", "A-1", date(2020, 1, 1)),
            vec![
                manual_device(&device, Some("L1"), Some("S1"), None),
                manual_device(&device, Some("L1"), Some("S2"), None),
            ],
        ),
        provider_id,
        &[None, None],
    );
    let id = store.insert_submission(&prepared, None).await.unwrap();
    let record = store.procedure(id).await.unwrap().unwrap();
    let (first, second) = (record.implants[0].id, record.implants[1].id);
    store
        .insert_removals(&[removal(first, provider_id)], None)
        .await
        .unwrap();
    let before = store.counts().await.unwrap();

    // The second removal is fine, the first is a repeat: neither is written.
    let result = store
        .insert_removals(
            &[removal(second, provider_id), removal(first, provider_id)],
            Some(&idempotency(token, "key-1", "{}")),
        )
        .await;
    assert!(
        matches!(result, Err(StoreError::Conflict { .. })),
        "{result:?}"
    );
    assert_eq!(store.counts().await.unwrap(), before);
    let context = store.implant_context(second).await.unwrap().unwrap();
    assert!(!context.already_removed);
    assert_eq!(
        store.idempotency_record(token, "key-1").await.unwrap(),
        None
    );

    // Alone, it is recorded together with its idempotency record.
    store
        .insert_removals(
            &[removal(second, provider_id)],
            Some(&idempotency(token, "key-1", "{}")),
        )
        .await
        .unwrap();
    assert_eq!(store.counts().await.unwrap().removals, 2);
    assert!(
        store
            .idempotency_record(token, "key-1")
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn timeline_bounds_and_deaths_are_recorded_and_unknown_nhs_numbers_reported(
    store: &dyn Store,
) {
    let first_provider = add_provider(store, "RXX").await;
    let second_provider = add_provider(store, "RYY").await;
    let token = add_token(store, first_provider, "hash-1").await;
    let device = udi(10);
    let early = store
        .insert_submission(
            &simple(1, first_provider, "RXX", "A-1", date(2018, 5, 1), &device),
            None,
        )
        .await
        .unwrap();
    store
        .insert_submission(
            &simple(1, second_provider, "RYY", "B-1", date(2021, 9, 9), &device),
            None,
        )
        .await
        .unwrap();
    let early_record = store.procedure(early).await.unwrap().unwrap();
    let patient_id = early_record.patient_id;

    let bounds = store
        .patient_timeline_bounds(&nhs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bounds.patient, patient_id);
    let mut expected_providers = vec![first_provider, second_provider];
    expected_providers.sort();
    assert_eq!(bounds.providers, expected_providers);
    assert_eq!(bounds.latest_procedure, Some(date(2021, 9, 9)));
    assert_eq!(bounds.latest_removal, None);
    assert_eq!(bounds.date_of_death, None);

    let mut revision = removal(early_record.implants[0].id, second_provider);
    revision.removal_date = date(2023, 2, 2);
    store.insert_removals(&[revision], None).await.unwrap();
    let bounds = store
        .patient_timeline_bounds(&nhs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bounds.latest_removal, Some(date(2023, 2, 2)));
    assert!(
        store
            .patient_timeline_bounds(&nhs(50))
            .await
            .unwrap()
            .is_none()
    );

    store
        .record_death(
            patient_id,
            date(2025, 1, 15),
            Some(&idempotency(token, "death-1", "{}")),
        )
        .await
        .unwrap();
    let bounds = store
        .patient_timeline_bounds(&nhs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bounds.date_of_death, Some(date(2025, 1, 15)));
    let record = store.procedure(early).await.unwrap().unwrap();
    assert_eq!(record.date_of_death, Some(date(2025, 1, 15)));
    let context = store
        .implant_context(record.implants[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(context.date_of_death, Some(date(2025, 1, 15)));
    assert!(
        store
            .idempotency_record(token, "death-1")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.counts().await.unwrap().deaths, 1);

    for (k, local) in [(2, "A-2"), (3, "A-3")] {
        store
            .insert_submission(
                &simple(k, first_provider, "RXX", local, date(2019, 1, 1), &device),
                None,
            )
            .await
            .unwrap();
    }
    let unknown = store
        .bulk_deaths(&[
            (nhs(2), date(2024, 3, 3)),
            (nhs(60), date(2024, 4, 4)),
            (nhs(3), date(2024, 5, 5)),
        ])
        .await
        .unwrap();
    assert_eq!(unknown, [1]);
    for (k, died) in [(2, date(2024, 3, 3)), (3, date(2024, 5, 5))] {
        let bounds = store
            .patient_timeline_bounds(&nhs(k))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bounds.date_of_death, Some(died));
    }
    assert!(
        store
            .patient_timeline_bounds(&nhs(60))
            .await
            .unwrap()
            .is_none()
    );
    let counts = store.counts().await.unwrap();
    assert_eq!(counts.deaths, 3);
    assert_eq!(counts.patients, 3);
}

// --- Recall -----------------------------------------------------------------------------

/// One recalled device as the recall fixture built it.
struct RecallFixture {
    serial: String,
    lot: Option<String>,
    expiry: chrono::NaiveDate,
    implanted: chrono::NaiveDate,
    nhs_number: String,
}

fn serials(rows: &[RecallRow]) -> Vec<String> {
    rows.iter().map(|r| r.serial.clone().unwrap()).collect()
}

fn expected_serials(
    fixtures: &[RecallFixture],
    keep: impl Fn(&RecallFixture) -> bool,
) -> Vec<String> {
    fixtures
        .iter()
        .filter(|f| keep(f))
        .map(|f| f.serial.clone())
        .collect()
}

pub async fn recall_narrows_by_lot_serial_expiry_and_implant_date(store: &dyn Store) {
    let provider_id = add_provider(store, "RXX").await;
    let (recalled, other) = (udi(20), udi(21));
    let mut fixtures = Vec::new();
    for i in 0..12u32 {
        let lot = match i % 3 {
            0 => Some("LOT-A"),
            1 => Some("LOT-B"),
            _ => None,
        };
        let serial = format!("SN{i:03}");
        let expiry = date(2027, 1 + i, 1);
        let implanted = date(2020, 1 + i, 10);
        let mut devices = vec![manual_device(&recalled, lot, Some(&serial), Some(expiry))];
        if i % 2 == 0 {
            devices.push(manual_device(&other, lot, Some(&serial), Some(expiry)));
        }
        let n_devices = devices.len();
        let prepared = prepare(
            submission(
                patient(&nhs(i), date(1950, 3, 14)),
                procedure("RXX", &format!("R-{i}"), implanted),
                devices,
            ),
            provider_id,
            &vec![None; n_devices],
        );
        store.insert_submission(&prepared, None).await.unwrap();
        fixtures.push(RecallFixture {
            serial,
            lot: lot.map(str::to_string),
            expiry,
            implanted,
            nhs_number: nhs(i).as_str().to_string(),
        });
    }

    let all = store.recall(&recall_of(&recalled)).await.unwrap();
    assert_eq!(serials(&all), expected_serials(&fixtures, |_| true));
    for (row, fixture) in all.iter().zip(&fixtures) {
        assert_eq!(row.udi_di, recalled.as_str());
        assert_eq!(row.lot, fixture.lot);
        assert_eq!(row.expiry, Some(fixture.expiry));
        assert_eq!(row.procedure_date, fixture.implanted);
        assert_eq!(row.nhs_number, fixture.nhs_number);
        assert_eq!(row.family_name, "Testpatient");
        assert_eq!(row.given_name, "Alex");
        assert_eq!(row.date_of_birth, date(1950, 3, 14));
        assert_eq!(row.postcode.as_deref(), Some("LS1 4AP"));
        assert_eq!(row.date_of_death, None);
        assert_eq!(row.provider_ods, "RXX");
        assert_eq!(row.provider_name, "RXX Hospitals NHS Trust");
        assert_eq!(row.removal_date, None);
    }
    assert!(all.windows(2).all(|w| w[0].implant_id < w[1].implant_id));

    let other_rows = store.recall(&recall_of(&other)).await.unwrap();
    assert_eq!(other_rows.len(), 6);
    assert!(store.recall(&recall_of(&udi(22))).await.unwrap().is_empty());

    let by_lot = RecallCriteria {
        lot: Some("LOT-A".to_string()),
        ..recall_of(&recalled)
    };
    assert_eq!(
        serials(&store.recall(&by_lot).await.unwrap()),
        expected_serials(&fixtures, |f| f.lot.as_deref() == Some("LOT-A"))
    );

    let by_serial = RecallCriteria {
        serial: Some("SN005".to_string()),
        ..recall_of(&recalled)
    };
    assert_eq!(serials(&store.recall(&by_serial).await.unwrap()), ["SN005"]);
    let by_lot_and_serial = RecallCriteria {
        lot: Some("LOT-A".to_string()),
        serial: Some("SN003".to_string()),
        ..recall_of(&recalled)
    };
    assert_eq!(
        serials(&store.recall(&by_lot_and_serial).await.unwrap()),
        ["SN003"]
    );
    let contradictory = RecallCriteria {
        lot: Some("LOT-B".to_string()),
        serial: Some("SN003".to_string()),
        ..recall_of(&recalled)
    };
    assert!(store.recall(&contradictory).await.unwrap().is_empty());

    // Date bounds are inclusive at both ends.
    let by_expiry = RecallCriteria {
        expiry_from: Some(date(2027, 3, 1)),
        expiry_to: Some(date(2027, 6, 1)),
        ..recall_of(&recalled)
    };
    assert_eq!(
        serials(&store.recall(&by_expiry).await.unwrap()),
        expected_serials(&fixtures, |f| {
            f.expiry >= date(2027, 3, 1) && f.expiry <= date(2027, 6, 1)
        })
    );
    assert_eq!(store.recall(&by_expiry).await.unwrap().len(), 4);
    let expiring_late = RecallCriteria {
        expiry_from: Some(date(2027, 10, 1)),
        ..recall_of(&recalled)
    };
    assert_eq!(
        serials(&store.recall(&expiring_late).await.unwrap()),
        ["SN009", "SN010", "SN011"]
    );

    let by_implant_date = RecallCriteria {
        implanted_from: Some(date(2020, 4, 10)),
        implanted_to: Some(date(2020, 7, 10)),
        ..recall_of(&recalled)
    };
    assert_eq!(
        serials(&store.recall(&by_implant_date).await.unwrap()),
        ["SN003", "SN004", "SN005", "SN006"]
    );
    let implanted_early = RecallCriteria {
        implanted_to: Some(date(2020, 2, 9)),
        ..recall_of(&recalled)
    };
    assert_eq!(
        serials(&store.recall(&implanted_early).await.unwrap()),
        ["SN000"]
    );

    let everything = RecallCriteria {
        lot: Some("LOT-B".to_string()),
        expiry_from: Some(date(2027, 1, 1)),
        expiry_to: Some(date(2027, 12, 1)),
        implanted_from: Some(date(2020, 3, 1)),
        implanted_to: Some(date(2020, 12, 31)),
        ..recall_of(&recalled)
    };
    assert_eq!(
        serials(&store.recall(&everything).await.unwrap()),
        ["SN004", "SN007", "SN010"]
    );
}

pub async fn recall_pages_by_implant_id_without_gaps_or_duplicates(store: &dyn Store) {
    let provider_id = add_provider(store, "RXX").await;
    let (recalled, other) = (udi(20), udi(21));
    let mut expected: Vec<ImplantId> = Vec::new();
    // Five procedures of seven devices, five of them recalled, interleaved with others so
    // that the recalled implants' ids are not contiguous.
    for p in 0..5u32 {
        let devices: Vec<_> = [true, false, true, true, false, true, true]
            .iter()
            .enumerate()
            .map(|(d, &is_recalled)| {
                let udi_di = if is_recalled { &recalled } else { &other };
                manual_device(udi_di, Some("LOT"), Some(&format!("SN{p}-{d}")), None)
            })
            .collect();
        let prepared = prepare(
            submission(
                patient(&nhs(p), date(1950, 3, 14)),
                procedure("RXX", &format!("P-{p}"), date(2021, 1 + p, 1)),
                devices,
            ),
            provider_id,
            &[None; 7],
        );
        let id = store.insert_submission(&prepared, None).await.unwrap();
        let record = store.procedure(id).await.unwrap().unwrap();
        expected.extend(
            record
                .implants
                .iter()
                .filter(|i| i.udi_di == recalled.as_str())
                .map(|i| i.id),
        );
    }
    expected.sort();
    assert_eq!(expected.len(), 25);

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let criteria = RecallCriteria {
            after,
            limit: 10,
            ..recall_of(&recalled)
        };
        let page: Vec<ImplantId> = store
            .recall(&criteria)
            .await
            .unwrap()
            .iter()
            .map(|r| r.implant_id)
            .collect();
        if page.is_empty() {
            break;
        }
        after = page.last().copied();
        pages.push(page);
        assert!(pages.len() <= 3, "more pages than implants: {pages:?}");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    let concatenated: Vec<ImplantId> = pages.concat();
    assert_eq!(concatenated, expected);
}

pub async fn recall_shows_the_removal_date_of_a_removed_implant(store: &dyn Store) {
    let provider_id = add_provider(store, "RXX").await;
    let recalled = udi(20);
    let mut ids = Vec::new();
    for k in 0..3u32 {
        let prepared = simple(
            k,
            provider_id,
            "RXX",
            &format!("A-{k}"),
            date(2020, 1 + k, 1),
            &recalled,
        );
        ids.push(store.insert_submission(&prepared, None).await.unwrap());
    }
    let removed = store.procedure(ids[1]).await.unwrap().unwrap();
    let mut revision = removal(removed.implants[0].id, provider_id);
    revision.removal_date = date(2023, 8, 8);
    store.insert_removals(&[revision], None).await.unwrap();
    let died = store.procedure(ids[2]).await.unwrap().unwrap();
    store
        .record_death(died.patient_id, date(2024, 2, 2), None)
        .await
        .unwrap();

    let rows = store.recall(&recall_of(&recalled)).await.unwrap();
    assert_eq!(rows.len(), 3);
    let removal_dates: Vec<_> = rows.iter().map(|r| r.removal_date).collect();
    assert_eq!(removal_dates, [None, Some(date(2023, 8, 8)), None]);
    let deaths: Vec<_> = rows.iter().map(|r| r.date_of_death).collect();
    assert_eq!(deaths, [None, None, Some(date(2024, 2, 2))]);
    let procedures: Vec<ProcedureId> = rows.iter().map(|r| r.procedure_id).collect();
    assert_eq!(procedures, ids);
}

// --- Tokens -----------------------------------------------------------------------------

pub async fn tokens_are_found_by_hash_until_revoked(store: &dyn Store) {
    let provider_id = add_provider(store, "RXX").await;
    let regulator = store
        .upsert_organisation(&NewOrganisation {
            ods_code: ods("X26"),
            name: "Regulator".to_string(),
            kind: OrganisationKind::Regulator,
            region: None,
        })
        .await
        .unwrap();
    let submitter = store
        .insert_token(&NewApiToken {
            token_hash: "aa11".to_string(),
            organisation: provider_id,
            role: Role::ProviderSubmitter,
            label: "theatre system".to_string(),
            created_at: instant(2026, 10, 1, 8),
        })
        .await
        .unwrap();
    let inspector = store
        .insert_token(&NewApiToken {
            token_hash: "bb22".to_string(),
            organisation: regulator,
            role: Role::Regulator,
            label: "recall desk".to_string(),
            created_at: instant(2026, 10, 2, 8),
        })
        .await
        .unwrap();
    assert_ne!(submitter, inspector);

    let found = store.token_by_hash("aa11").await.unwrap().unwrap();
    assert_eq!(found.id, submitter);
    assert_eq!(found.organisation, provider_id);
    assert_eq!(found.organisation_ods, "RXX");
    assert_eq!(found.role, Role::ProviderSubmitter);
    assert_eq!(found.label, "theatre system");
    assert_eq!(found.created_at, instant(2026, 10, 1, 8));
    assert_eq!(found.revoked_at, None);
    assert!(store.token_by_hash("cc33").await.unwrap().is_none());

    let listed = store.tokens().await.unwrap();
    assert_eq!(
        listed.iter().map(|t| t.id).collect::<Vec<_>>(),
        [submitter, inspector]
    );
    assert_eq!(listed[1].role, Role::Regulator);
    assert_eq!(listed[1].organisation_ods, "X26");

    let duplicate = store
        .insert_token(&NewApiToken {
            token_hash: "aa11".to_string(),
            organisation: regulator,
            role: Role::Admin,
            label: "copy".to_string(),
            created_at: instant(2026, 10, 3, 8),
        })
        .await;
    match duplicate {
        Err(StoreError::Conflict { constraint }) => {
            assert!(constraint.contains("token_hash"), "{constraint}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    assert!(store.revoke_token(submitter).await.unwrap());
    assert!(!store.revoke_token(submitter).await.unwrap());
    assert!(
        !store
            .revoke_token(TokenId(inspector.0 + 1000))
            .await
            .unwrap()
    );
    assert!(store.token_by_hash("aa11").await.unwrap().is_none());
    assert_eq!(
        store.token_by_hash("bb22").await.unwrap().map(|t| t.id),
        Some(inspector)
    );
    let listed = store.tokens().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0].revoked_at.is_some());
    assert!(listed[1].revoked_at.is_none());
}
