//! Conformance cases for surveillance storage: the pseudonymous analysis extract (joins,
//! scope, lot dictionary) and signal state kept between runs with its alerts.

use mdor_domain::record::{Procedure, RemovalKind};
use mdor_domain::{Sex, Slug};
use mdor_store::{
    AnalysisScope, NewRemoval, NewSurveillanceRun, SignalUpdate, Store, SurveillanceRunId,
};

use crate::fixtures::*;

pub async fn analysis_extract_joins_each_implant_to_its_procedure_patient_removal_and_death(
    store: &dyn Store,
) {
    let provider = add_provider(store, "RXX").await;
    let revising = add_provider(store, "RYY").await;
    let stem = udi(10);
    let stem_id = add_device_model(store, &stem).await;
    let unregistered = udi(11);
    let mut prepared = prepare(
        submission(
            patient(&nhs(1), date(1950, 3, 14)),
            procedure("RXX", "A-1", date(2020, 3, 14)),
            vec![
                manual_device(&stem, Some("LOT1"), None, None),
                manual_device(&unregistered, Some("LOT1"), None, None),
            ],
        ),
        provider,
        &[Some(stem_id), None],
    );
    prepared.submission.patient.sex = Sex::Male;
    let first = store.insert_submission(&prepared, None).await.unwrap();
    let second = store
        .insert_submission(
            &prepare(
                submission(
                    patient(&nhs(2), date(1960, 1, 1)),
                    Procedure {
                        indication: None,
                        ..procedure("RXX", "A-2", date(2021, 1, 1))
                    },
                    vec![manual_device(&stem, None, None, None)],
                ),
                provider,
                &[Some(stem_id)],
            ),
            None,
        )
        .await
        .unwrap();
    let record = store.procedure(first).await.unwrap().unwrap();
    let removed = record.implants[0].id;
    store
        .insert_removals(
            &[NewRemoval {
                implant: removed,
                kind: RemovalKind::Explant,
                removal_date: date(2022, 5, 1),
                reason: None,
                revising_provider: revising,
                recorded_at: instant(2022, 5, 2, 9),
            }],
            None,
        )
        .await
        .unwrap();
    let bounds = store
        .patient_timeline_bounds(&nhs(1))
        .await
        .unwrap()
        .unwrap();
    store
        .record_death(bounds.patient, date(2023, 2, 1), None)
        .await
        .unwrap();

    let extract = store.analysis_extract(&AnalysisScope::All).await.unwrap();
    assert_eq!(extract.device_models.len(), 1);
    assert_eq!(extract.device_models[0].udi_di, stem.as_str());
    let providers: Vec<&str> = extract.providers.iter().map(|p| p.1.as_str()).collect();
    assert_eq!(providers, ["RXX", "RYY"]);
    assert_eq!(extract.consultants.len(), 1);
    assert_eq!(extract.consultants[0].1, "7654321");
    assert_eq!(extract.lots, ["LOT1"]);
    assert_eq!(extract.indications, ["osteoarthritis"]);
    assert_eq!(extract.implants.len(), 3);
    let a = &extract.implants[0];
    assert_eq!(a.implant, removed);
    assert_eq!(a.procedure, first);
    assert_eq!(a.position, 0);
    assert_eq!(a.procedure_date, date(2020, 3, 14));
    assert_eq!(a.device_model, Some(stem_id));
    assert_eq!(a.lot, Some(0));
    assert_eq!(a.provider, provider);
    assert_eq!(a.consultant, extract.consultants[0].0);
    // Analysis never sees the (sealed) date of birth, only the middle of the birth month:
    // born 1950-03-14, counted from 1950-03-15, 25,567 days before 2020-03-14, / 365.25.
    assert!((a.age_at_procedure - 25_567.0 / 365.25).abs() < 1e-12);
    assert_eq!(a.sex, Sex::Male);
    assert_eq!(a.removal, Some((date(2022, 5, 1), RemovalKind::Explant)));
    assert_eq!(a.date_of_death, Some(date(2023, 2, 1)));
    assert_eq!(a.indication, Some(0));
    let b = &extract.implants[1];
    assert_eq!((b.position, b.device_model, b.removal), (1, None, None));
    assert_eq!(b.date_of_death, Some(date(2023, 2, 1)));
    let c = &extract.implants[2];
    assert_eq!(c.procedure, second);
    assert_eq!(
        (c.sex, c.lot, c.device_model),
        (Sex::Female, None, Some(stem_id))
    );
    assert_eq!((c.removal, c.date_of_death), (None, None));
    assert_eq!(c.indication, None);

    // A device-type scope keeps only registered implants of that type.
    let hips = store
        .analysis_extract(&AnalysisScope::DeviceTypes(vec!["hip_stem".into()]))
        .await
        .unwrap();
    let ids: Vec<_> = hips.implants.iter().map(|i| i.implant).collect();
    assert_eq!(ids, [a.implant, c.implant]);
    assert_eq!(hips.implants[0], extract.implants[0]);
    assert_eq!(hips.implants[1], extract.implants[2]);
    assert_eq!(hips.indications, ["osteoarthritis"]);
    let none = store
        .analysis_extract(&AnalysisScope::DeviceTypes(vec!["pacemaker".into()]))
        .await
        .unwrap();
    assert!(none.implants.is_empty());
}

fn update(subject: &str, state: &str, raise_alert: bool, statistic: f64) -> SignalUpdate {
    SignalUpdate {
        method: "maxsprt".into(),
        subject_kind: "device_model".into(),
        subject: subject.into(),
        state: state.into(),
        since: date(2024, 3, 1),
        observed: 12.0,
        expected: 3.5,
        statistic,
        critical_value: 4.2,
        explanation: format!("{subject} signalled"),
        raise_alert,
    }
}

fn run(day: u32, signals: Vec<SignalUpdate>) -> NewSurveillanceRun {
    NewSurveillanceRun {
        started_at: instant(2026, 11, day, 8),
        finished_at: instant(2026, 11, day, 9),
        as_of: date(2026, 11, day),
        n_implants: 100,
        summary: "{}".into(),
        signals,
    }
}

pub async fn surveillance_runs_keep_each_signals_first_run_and_store_only_raised_alerts(
    store: &dyn Store,
) {
    assert!(store.surveillance_signals().await.unwrap().is_empty());
    assert!(store.latest_surveillance_run().await.unwrap().is_none());
    let first = store
        .save_surveillance_run(&run(1, vec![update("A", "signalled", true, 9.0)]))
        .await
        .unwrap();
    let second = store
        .save_surveillance_run(&run(
            2,
            vec![
                update("A", "signalled", false, 11.0),
                update("B", "signalled", true, 5.0),
            ],
        ))
        .await
        .unwrap();
    let third = store
        .save_surveillance_run(&run(3, vec![update("A", "cleared", false, 1.0)]))
        .await
        .unwrap();
    assert!(first < second && second < third);
    let latest = store.latest_surveillance_run().await.unwrap().unwrap();
    assert_eq!(latest.id, third);
    assert_eq!(latest.finished_at, instant(2026, 11, 3, 9));
    assert_eq!(latest.as_of, date(2026, 11, 3));
    assert_eq!(latest.n_implants, 100);

    let signals = store.surveillance_signals().await.unwrap();
    assert_eq!(signals.len(), 2);
    let a = &signals[0];
    assert_eq!((a.subject.as_str(), a.state.as_str()), ("A", "cleared"));
    assert_eq!((a.first_run, a.last_run), (first, third));
    assert_eq!(a.statistic, 1.0);
    let b = &signals[1];
    assert_eq!((b.first_run, b.last_run), (second, second));
    assert_eq!(b.since, date(2024, 3, 1));

    let alerts = store.surveillance_alerts(10).await.unwrap();
    let raised: Vec<(&str, SurveillanceRunId)> =
        alerts.iter().map(|a| (a.subject.as_str(), a.run)).collect();
    assert_eq!(raised, [("B", second), ("A", first)]);
    assert_eq!(alerts[1].statistic, 9.0);
    assert_eq!(alerts[1].explanation, "A signalled");
    assert_eq!(alerts[1].raised_at, instant(2026, 11, 1, 9));
    assert_eq!(store.surveillance_alerts(1).await.unwrap().len(), 1);
}

/// A scoped extract (read by SQLite in one joined statement) holds exactly the scope's
/// implants of the whole extract (read table by table), field for field, including a
/// procedure with two implants of the scope, a patient with two procedures and a removal.
pub async fn a_scoped_extract_is_the_whole_extract_restricted_to_the_scope(store: &dyn Store) {
    let provider = add_provider(store, "RXX").await;
    let stem = udi(20);
    let mut cup_entry = register_entry(&udi(21), "Cup 52");
    cup_entry.device_type = Slug::parse("hip_cup").unwrap();
    store.upsert_device_models(&[cup_entry]).await.unwrap();
    let stem_id = add_device_model(store, &stem).await;
    let cup_id = store.device_model(&udi(21)).await.unwrap().unwrap().id;
    let mut ids = Vec::new();
    for (k, (nhs_k, devices)) in [(1, 2), (1, 1), (2, 3), (3, 1)].into_iter().enumerate() {
        let mut list = Vec::new();
        let mut models = Vec::new();
        for d in 0..devices {
            // Stems and cups alternate; every procedure has at least one stem.
            let (u, m) = if d % 2 == 0 {
                (stem.clone(), stem_id)
            } else {
                (udi(21), cup_id)
            };
            list.push(manual_device(&u, Some(&format!("L{k}{d}")), None, None));
            models.push(Some(m));
        }
        let id = store
            .insert_submission(
                &prepare(
                    submission(
                        patient(&nhs(nhs_k), date(1948 + nhs_k as i32, 6, 30)),
                        procedure("RXX", &format!("S-{k}"), date(2019 + k as i32, 2, 28)),
                        list,
                    ),
                    provider,
                    &models,
                ),
                None,
            )
            .await
            .unwrap();
        ids.push(id);
    }
    let first = store.procedure(ids[2]).await.unwrap().unwrap();
    store
        .insert_removals(
            &[NewRemoval {
                implant: first.implants[2].id,
                kind: RemovalKind::Revision,
                removal_date: date(2024, 7, 1),
                reason: None,
                revising_provider: provider,
                recorded_at: instant(2024, 7, 2, 9),
            }],
            None,
        )
        .await
        .unwrap();

    let all = store.analysis_extract(&AnalysisScope::All).await.unwrap();
    assert_eq!(all.implants.len(), 7);
    let stems = store
        .analysis_extract(&AnalysisScope::DeviceTypes(vec!["hip_stem".into()]))
        .await
        .unwrap();
    let expected: Vec<_> = all
        .implants
        .iter()
        .filter(|i| i.device_model == Some(stem_id))
        .cloned()
        .collect();
    assert_eq!(expected.len(), 5);
    // Lots are indexes into each extract's own dictionary; compare the codes instead.
    let lot_codes = |extract: &mdor_store::AnalysisExtract,
                     implants: &[mdor_store::AnalysisImplant]| {
        implants
            .iter()
            .map(|i| i.lot.map(|k| extract.lots[k as usize].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        lot_codes(&stems, &stems.implants),
        lot_codes(&all, &expected)
    );
    let strip = |implants: &[mdor_store::AnalysisImplant]| {
        implants
            .iter()
            .map(|i| mdor_store::AnalysisImplant {
                lot: None,
                ..i.clone()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&stems.implants), strip(&expected));
    let both = store
        .analysis_extract(&AnalysisScope::DeviceTypes(vec![
            "hip_cup".into(),
            "hip_stem".into(),
        ]))
        .await
        .unwrap();
    assert_eq!(strip(&both.implants), strip(&all.implants));
    assert!(all.implants.iter().any(|i| i.removal.is_some()));

    // Restricting the whole extract gives what a scoped read gives, lot dictionary included.
    let cups = store
        .analysis_extract(&AnalysisScope::DeviceTypes(vec!["hip_cup".into()]))
        .await
        .unwrap();
    let scopes = [
        AnalysisScope::DeviceTypes(vec!["hip_stem".into()]),
        AnalysisScope::DeviceTypes(vec!["hip_cup".into()]),
        AnalysisScope::DeviceTypes(vec!["hip_cup".into(), "hip_stem".into()]),
        AnalysisScope::DeviceTypes(vec!["knee_femoral".into()]),
        AnalysisScope::All,
    ];
    let parts: Vec<_> = scopes.iter().map(|s| all.restricted_to(s)).collect();
    for (part, read) in parts.iter().zip([&stems, &cups, &both]) {
        assert_eq!(part.implants, read.implants);
        assert_eq!(part.lots, read.lots);
        let ids = |e: &mdor_store::AnalysisExtract| {
            e.device_models.iter().map(|m| m.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(part), ids(read));
        assert_eq!(part.providers, read.providers);
    }
    assert_eq!(parts[0].implants.len(), 5);
    assert_eq!(parts[1].implants.len(), 2);
    assert!(parts[3].implants.is_empty() && parts[3].lots.is_empty());
    assert_eq!(parts[4].implants, all.implants);
    assert_eq!(parts[4].lots, all.lots);
}
