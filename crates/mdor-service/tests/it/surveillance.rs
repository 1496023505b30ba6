//! Surveillance use cases: survivorship worked by hand on a twenty-procedure registry, and the
//! signals finding what `mdor-synth` injected, with state kept between runs.

use chrono::NaiveDate;

use mdor_domain::record::{
    EntryType, ImplantedDevice, LocalRecordId, Patient, PersonName, Procedure, RemovalKind,
    Submission,
};
use mdor_domain::register::{RegisterEntry, RiskClass};
use mdor_domain::{
    GmcNumber, Laterality, NhsNumber, OdsCode, Opcs4Code, ProductionIdentifiers, RegistryCode, Sex,
    Slug, UdiDi,
};
use mdor_service::{
    BulkOutcomeRecord, Ctx, DeviceGrouping, NewOrganisation, OrganisationKind, Role, ServiceError,
    SurveillanceConfig, SurvivorshipReport,
};

use crate::support::{backends, open, principal};

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

fn gtin(item: u32) -> UdiDi {
    UdiDi::parse(&mdor_synth::scan::gtin14(5_012_345, item)).unwrap()
}

fn nhs(k: u32) -> NhsNumber {
    (0..10)
        .find_map(|j| NhsNumber::from_first_nine(999_000_000 + 10 * k + j))
        .unwrap()
}

fn entry(udi_di: &UdiDi, manufacturer: &str, brand: &str, device_type: &str) -> RegisterEntry {
    RegisterEntry {
        udi_di: udi_di.clone(),
        manufacturer: manufacturer.into(),
        brand: brand.into(),
        model: "size 3".into(),
        device_type: Slug::parse(device_type).unwrap(),
        risk_class: RiskClass::III,
        registry: RegistryCode::parse("njr").unwrap(),
    }
}

fn device(udi_di: &UdiDi, lot: &str) -> ImplantedDevice {
    ImplantedDevice {
        udi_di: udi_di.clone(),
        production: ProductionIdentifiers {
            lot: Some(lot.into()),
            ..ProductionIdentifiers::default()
        },
        raw_scan: None,
        entry_type: EntryType::Manual,
    }
}

/// Procedure `k` at RA1 on 2020-01-01: stem S then cup `cup`; patients born 1940 + 7k mod 20, sexes
/// alternating, so that age and sex vary for the Cox model.
fn hip(k: u32, stem: &UdiDi, cup: &UdiDi) -> Submission {
    let patient = Patient {
        nhs_number: nhs(k),
        family_name: PersonName::parse("Testpatient", "family_name").unwrap(),
        given_name: PersonName::parse("Sam", "given_name").unwrap(),
        date_of_birth: date(1940 + (k as i32 * 7) % 20, 6, 1),
        sex: if k.is_multiple_of(2) {
            Sex::Female
        } else {
            Sex::Male
        },
        postcode: None,
    };
    let procedure = Procedure {
        provider: OdsCode::parse("RA1").unwrap(),
        consultant: GmcNumber::parse("1234567").unwrap(),
        procedure_date: date(2020, 1, 1),
        opcs4: Some(Opcs4Code::parse("W37.1", "4.10").unwrap()),
        snomed: None,
        laterality: Laterality::Left,
        registry: RegistryCode::parse("njr").unwrap(),
        local_record_id: LocalRecordId::parse(&format!("P-{k}"), "local_record_id").unwrap(),
        indication: None,
    };
    Submission::new(
        patient,
        procedure,
        vec![device(stem, "S1"), device(cup, "C1")],
        date(2026, 10, 31),
    )
    .unwrap()
}

fn removal(k: u32, device_index: i64, day: NaiveDate) -> BulkOutcomeRecord {
    BulkOutcomeRecord::Removal {
        provider: OdsCode::parse("RA1").unwrap(),
        local_record_id: format!("P-{k}"),
        device_index,
        kind: RemovalKind::Revision,
        date: day,
        reason: Some("aseptic loosening".into()),
        revising_provider: OdsCode::parse("RA1").unwrap(),
    }
}

/// Twenty hips on 2020-01-01, ten with cup A and ten with cup B, all with stem S.
/// Cup A: revised at 91, 182 and 517 days; patient 2 dies at 274 days; patient 4's stem is
/// revised at 731 days. Cup B: revised at 731 and 1,461 days. The rest are followed to the
/// analysis date, 2026-10-31 (2,495 days).
async fn twenty_hips(ctx: &Ctx) -> (UdiDi, UdiDi, UdiDi) {
    let (stem, cup_a, cup_b) = (gtin(1), gtin(2), gtin(3));
    let providers = mdor_service::ensure_organisations(
        ctx,
        &[NewOrganisation {
            ods_code: OdsCode::parse("RA1").unwrap(),
            name: "RA1 test".into(),
            kind: OrganisationKind::Provider,
            region: None,
        }],
    )
    .await
    .unwrap();
    mdor_service::upsert_register(
        ctx,
        &[
            entry(&stem, "Acme", "Steadfast", "hip_stem"),
            entry(&cup_a, "Acme", "Cupola", "hip_cup"),
            entry(&cup_b, "Other", "Bowl", "hip_cup"),
        ],
    )
    .await
    .unwrap();
    let index = mdor_service::register_index(ctx, &[stem.clone(), cup_a.clone(), cup_b.clone()])
        .await
        .unwrap();
    let submissions = (0..20)
        .map(|k| hip(k, &stem, if k < 10 { &cup_a } else { &cup_b }))
        .collect();
    let outcome = mdor_service::bulk_load(ctx, &providers, &index, submissions)
        .await
        .unwrap();
    assert_eq!(outcome.procedures, 20);
    let outcomes = [
        removal(0, 1, date(2020, 4, 1)),
        removal(1, 1, date(2020, 7, 1)),
        BulkOutcomeRecord::Death {
            nhs_number: nhs(2),
            date: date(2020, 10, 1),
        },
        removal(3, 1, date(2021, 6, 1)),
        removal(4, 0, date(2022, 1, 1)),
        removal(10, 1, date(2022, 1, 1)),
        removal(11, 1, date(2024, 1, 1)),
    ];
    let report = mdor_service::bulk_outcomes(ctx, &providers, &outcomes)
        .await
        .unwrap();
    assert!(report.unresolved.is_empty());
    (stem, cup_a, cup_b)
}

fn close(actual: f64, expected: f64) {
    assert!(
        (actual - expected).abs() < 1e-6,
        "{actual} is not {expected}"
    );
}

fn at(report: &SurvivorshipReport, years: u32) -> &mdor_service::SurvivorshipPoint {
    report.estimates.iter().find(|p| p.years == years).unwrap()
}

#[tokio::test]
async fn survivorship_of_a_ten_implant_cup_matches_kaplan_meier_and_aalen_johansen_worked_by_hand()
{
    for backend in backends() {
        let store = open(backend).await;
        let ctx = &store.ctx;
        let (stem, cup_a, _) = twenty_hips(ctx).await;
        let regulator = principal(ctx, Role::Regulator).await;

        let report =
            mdor_service::device_survivorship(ctx, &regulator, &DeviceGrouping::Model(cup_a))
                .await
                .unwrap();
        assert_eq!(report.unit, "implant");
        assert_eq!(report.device_types, ["hip_cup"]);
        assert_eq!(report.as_of, date(2026, 10, 31));
        assert_eq!(
            (report.n_units, report.n_revisions, report.n_deaths),
            (10, 3, 1)
        );
        // 1 year: S = 9/10 × 8/9 = 0.8 (the death at 274 days is censored), 7 at risk.
        let one = at(&report, 1);
        assert_eq!(one.n_at_risk, 7);
        let km = one.kaplan_meier.unwrap();
        close(km.estimate, 0.2);
        // Greenwood: σ² = 1/(10·9) + 1/(9·8) = 0.025; log interval of S, upper S clamped to 1.
        close(km.lower, 0.0);
        close(
            km.upper,
            1.0 - 0.8 * (-1.959_963_985 * 0.025f64.sqrt()).exp(),
        );
        // Aalen–Johansen: 0.1 + 0.9 × 1/9 = 0.2 before the death.
        close(one.competing_risks.unwrap().estimate, 0.2);
        // 3 and 5 years: KM 1 − 0.8 × 6/7; AJ adds S(t−) × 1/7 = 0.7/7 = 0.1 after the death.
        for years in [3, 5] {
            let point = at(&report, years);
            assert_eq!(point.n_at_risk, 6);
            close(point.kaplan_meier.unwrap().estimate, 1.0 - 0.8 * 6.0 / 7.0);
            close(point.competing_risks.unwrap().estimate, 0.3);
        }
        // Follow-up ends at 2,495 days (6.8 years).
        for years in [10, 15] {
            let point = at(&report, years);
            assert_eq!(point.n_at_risk, 0);
            assert!(point.kaplan_meier.is_none() && point.competing_risks.is_none());
        }
        assert!(
            report
                .warnings
                .contains(&"no follow-up reaches 10 years".to_string())
        );
        let hr = report
            .hazard_ratio
            .as_ref()
            .unwrap_or_else(|| panic!("{:?}", report.warnings));
        assert_eq!((hr.n_comparator, hr.n_comparator_revisions), (10, 2));
        assert_eq!(hr.adjusted_for, ["age", "sex"]);
        assert!(!hr.stratified_by_device_type);
        assert!(hr.estimate > 1.0 && hr.lower < hr.estimate && hr.estimate < hr.upper);

        // The stem with cup A as one construct: the stem revision at 731 days is an event too.
        let construct = mdor_service::device_survivorship(
            ctx,
            &regulator,
            &DeviceGrouping::Combination(vec![
                DeviceGrouping::Model(stem.clone()),
                DeviceGrouping::Brand {
                    manufacturer: "Acme".into(),
                    brand: "Cupola".into(),
                },
            ]),
        )
        .await
        .unwrap();
        assert_eq!(construct.unit, "construct");
        assert_eq!((construct.n_units, construct.n_revisions), (10, 4));
        let three = at(&construct, 3);
        assert_eq!(three.n_at_risk, 5);
        close(
            three.kaplan_meier.unwrap().estimate,
            1.0 - 0.8 * 6.0 / 7.0 * 5.0 / 6.0,
        );
        assert_eq!(construct.hazard_ratio.unwrap().n_comparator, 10);

        // The whole class has no comparator.
        let class = mdor_service::device_survivorship(
            ctx,
            &regulator,
            &DeviceGrouping::DeviceType("hip_cup".into()),
        )
        .await
        .unwrap();
        assert_eq!((class.n_units, class.n_revisions), (20, 5));
        assert!(class.hazard_ratio.is_none());
    }
}

#[tokio::test]
async fn survivorship_is_for_the_regulator_and_administrators_and_unknown_devices_are_not_found() {
    for backend in backends() {
        let store = open(backend).await;
        let ctx = &store.ctx;
        let (stem, _, _) = twenty_hips(ctx).await;
        let provider = principal(ctx, Role::ProviderSubmitter).await;
        let admin = principal(ctx, Role::Admin).await;
        let grouping = DeviceGrouping::Model(stem.clone());
        let refused = mdor_service::device_survivorship(ctx, &provider, &grouping).await;
        assert!(matches!(refused, Err(ServiceError::Forbidden { .. })));
        let report = mdor_service::device_survivorship(ctx, &admin, &grouping)
            .await
            .unwrap();
        assert_eq!((report.n_units, report.n_revisions), (20, 1));
        // The stem is its class's only model.
        assert!(report.hazard_ratio.is_none());
        let unknown = DeviceGrouping::Model(gtin(99));
        let missing = mdor_service::device_survivorship(ctx, &admin, &unknown).await;
        assert!(matches!(missing, Err(ServiceError::NotFound { .. })));
        let alerts = mdor_service::surveillance_alerts(ctx, &provider, 10).await;
        assert!(matches!(alerts, Err(ServiceError::Forbidden { .. })));
    }
}

/// Runs surveillance over a synthetic registry and checks each injected problem is alerted.
#[tokio::test]
async fn surveillance_alerts_the_injected_device_provider_and_faulty_lot_once() {
    for backend in backends() {
        let store = open(backend).await;
        let ctx = &store.ctx;
        let truth = crate::synthetic::load(ctx, SYNTHETIC_SEED, SYNTHETIC_PROCEDURES).await;
        let config = SurveillanceConfig::default();
        let run = mdor_service::run_surveillance(ctx, &config).await.unwrap();
        let alerted = |kind: &str, subject: &str| {
            run.new_alerts
                .iter()
                .any(|s| s.subject_kind == kind && s.subject == subject)
        };
        let injected = &truth.injected;
        let lot = format!("{}/{}", injected.faulty_lot.udi_di, injected.faulty_lot.lot);
        assert!(
            alerted("device_model", &injected.device_model.udi_di),
            "{:#?}",
            run.new_alerts
        );
        assert!(
            alerted("provider", &injected.provider.ods_code),
            "{:#?}",
            run.new_alerts
        );
        assert!(alerted("lot", &lot), "{:#?}", run.new_alerts);
        let device = run
            .new_alerts
            .iter()
            .find(|s| s.subject == injected.device_model.udi_di)
            .unwrap();
        assert!(device.observed > 2.0 * device.expected);
        assert!(device.statistic >= device.critical_value);
        assert!(device.explanation.contains("signalling since"));

        // The next run finds the same signals and raises no alert again.
        let again = mdor_service::run_surveillance(ctx, &config).await.unwrap();
        assert!(again.new_alerts.is_empty(), "{:#?}", again.new_alerts);
        assert_eq!(again.signalling.len(), run.signalling.len());
        assert!(again.run_id > run.run_id);
        let stored = mdor_service::latest_alerts(ctx, 1000).await.unwrap();
        assert_eq!(stored.len(), run.new_alerts.len());
    }
}

/// The injected provider (hazard ratio 2.5) is the fifth largest orthopaedic provider; below
/// about 100,000 procedures it has too few early revisions for any test at a family-wise 5%
/// to find (at 30,000: about 6 expected against 15 observed over its whole history).
const SYNTHETIC_SEED: u64 = 1;
const SYNTHETIC_PROCEDURES: u64 = 100_000;

/// The server's cohort keeper: warming reads one cohort per device type in the register, a
/// report then answers from it (a procedure added later is not yet counted), and a refresh
/// re-reads only the cohorts reports used, after which the new procedure is counted.
#[tokio::test]
async fn warmed_cohorts_answer_reports_until_a_refresh_reads_new_procedures() {
    for backend in backends() {
        let store = open(backend).await;
        let ctx = &store.ctx;
        let (stem, cup_a, cup_b) = twenty_hips(ctx).await;
        let regulator = principal(ctx, Role::Regulator).await;
        assert_eq!(mdor_service::cached_cohorts(ctx), 0);
        // hip_cup and hip_stem.
        assert_eq!(mdor_service::warm_cohorts(ctx).await.unwrap(), 2);
        assert_eq!(mdor_service::cached_cohorts(ctx), 2);

        let grouping = DeviceGrouping::Model(cup_a.clone());
        let before = mdor_service::device_survivorship(ctx, &regulator, &grouping)
            .await
            .unwrap();
        assert_eq!(before.n_units, 10);

        let providers = mdor_service::ensure_organisations(
            ctx,
            &[NewOrganisation {
                ods_code: OdsCode::parse("RA1").unwrap(),
                name: "RA1 test".into(),
                kind: OrganisationKind::Provider,
                region: None,
            }],
        )
        .await
        .unwrap();
        let index = mdor_service::register_index(ctx, &[stem.clone(), cup_a.clone(), cup_b])
            .await
            .unwrap();
        let outcome =
            mdor_service::bulk_load(ctx, &providers, &index, vec![hip(20, &stem, &cup_a)])
                .await
                .unwrap();
        assert_eq!(outcome.procedures, 1);

        let cached = mdor_service::device_survivorship(ctx, &regulator, &grouping)
            .await
            .unwrap();
        assert_eq!(cached.n_units, 10, "a warm cohort answers until refreshed");
        // Only the cup cohort was used by a report; the warmed stem cohort is left to expire.
        assert_eq!(
            mdor_service::refresh_cohorts(ctx, std::time::Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        assert_eq!(mdor_service::cached_cohorts(ctx), 2);
        let refreshed = mdor_service::device_survivorship(ctx, &regulator, &grouping)
            .await
            .unwrap();
        assert_eq!(refreshed.n_units, 11);
        // Nothing is due again until the refresh interval has passed.
        assert_eq!(
            mdor_service::refresh_cohorts(ctx, mdor_service::COHORT_REFRESH)
                .await
                .unwrap(),
            0
        );

        // With two cohorts due, the refresh reads the whole registry once and restricts it
        // per class: the cup's report is the same as from its own scoped read above.
        let stem_report = mdor_service::device_survivorship(
            ctx,
            &regulator,
            &DeviceGrouping::Model(stem.clone()),
        )
        .await
        .unwrap();
        assert_eq!(
            stem_report.n_units, 20,
            "the warmed stem cohort, not yet refreshed"
        );
        assert_eq!(
            mdor_service::refresh_cohorts(ctx, std::time::Duration::ZERO)
                .await
                .unwrap(),
            2
        );
        let stem_after = mdor_service::device_survivorship(
            ctx,
            &regulator,
            &DeviceGrouping::Model(stem.clone()),
        )
        .await
        .unwrap();
        assert_eq!(stem_after.n_units, 21);
        let cup_after = mdor_service::device_survivorship(ctx, &regulator, &grouping)
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&cup_after).unwrap(),
            serde_json::to_value(&refreshed).unwrap()
        );
    }
}
