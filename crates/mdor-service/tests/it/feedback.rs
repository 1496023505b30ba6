//! Feedback reports worked by hand on two providers' hip cups: forty cups at RA1 (Acme, ten
//! revised at 100 days) and forty at RB2 (Other, four revised at 200 days), all implanted on
//! 2020-01-01 with no deaths, so every cumulative revision is a plain proportion: RA1 25%,
//! RB2 10% (shown as suppressed: four revisions), national 14 of 80 = 17.5%.

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
use mdor_service::disclosure::Published;
use mdor_service::{
    BulkOutcomeRecord, Ctx, FeedbackReport, FeedbackSubject, NewOrganisation, OrganisationKind,
    Role, ServiceError,
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
        .find_map(|j| NhsNumber::from_first_nine(999_100_000 + 10 * k + j))
        .unwrap()
}

fn cup(k: u32, ods: &str, gmc: &str, udi_di: &UdiDi) -> Submission {
    let patient = Patient {
        nhs_number: nhs(k),
        family_name: PersonName::parse("Testpatient", "family_name").unwrap(),
        given_name: PersonName::parse("Sam", "given_name").unwrap(),
        date_of_birth: date(1950, 6, 1),
        sex: Sex::Female,
        postcode: None,
    };
    let procedure = Procedure {
        provider: OdsCode::parse(ods).unwrap(),
        consultant: GmcNumber::parse(gmc).unwrap(),
        procedure_date: date(2020, 1, 1),
        opcs4: Some(Opcs4Code::parse("W37.1", "4.10").unwrap()),
        snomed: None,
        laterality: Laterality::Right,
        registry: RegistryCode::parse("njr").unwrap(),
        local_record_id: LocalRecordId::parse(&format!("F-{k}"), "local_record_id").unwrap(),
        indication: None,
    };
    let device = ImplantedDevice {
        udi_di: udi_di.clone(),
        production: ProductionIdentifiers {
            lot: Some("L1".into()),
            ..ProductionIdentifiers::default()
        },
        raw_scan: None,
        entry_type: EntryType::Manual,
    };
    Submission::new(patient, procedure, vec![device], date(2026, 10, 31)).unwrap()
}

async fn two_providers(ctx: &Ctx) {
    let organisations: Vec<NewOrganisation> = ["RA1", "RB2"]
        .iter()
        .map(|ods| NewOrganisation {
            ods_code: OdsCode::parse(ods).unwrap(),
            name: format!("{ods} test"),
            kind: OrganisationKind::Provider,
            region: None,
        })
        .collect();
    let providers = mdor_service::ensure_organisations(ctx, &organisations)
        .await
        .unwrap();
    let (acme, other) = (gtin(21), gtin(22));
    let entry = |udi_di: &UdiDi, manufacturer: &str| RegisterEntry {
        udi_di: udi_di.clone(),
        manufacturer: manufacturer.into(),
        brand: "Cup".into(),
        model: "52 mm".into(),
        device_type: Slug::parse("hip_cup").unwrap(),
        risk_class: RiskClass::III,
        registry: RegistryCode::parse("njr").unwrap(),
    };
    mdor_service::upsert_register(ctx, &[entry(&acme, "Acme"), entry(&other, "Other")])
        .await
        .unwrap();
    let index = mdor_service::register_index(ctx, &[acme.clone(), other.clone()])
        .await
        .unwrap();
    let submissions = (0..80)
        .map(|k| {
            if k < 40 {
                cup(k, "RA1", "1234567", &acme)
            } else {
                cup(k, "RB2", "7654321", &other)
            }
        })
        .collect();
    mdor_service::bulk_load(ctx, &providers, &index, submissions)
        .await
        .unwrap();
    let removal = |k: u32, ods: &str, day: NaiveDate| BulkOutcomeRecord::Removal {
        provider: OdsCode::parse(ods).unwrap(),
        local_record_id: format!("F-{k}"),
        device_index: 0,
        kind: RemovalKind::Revision,
        date: day,
        reason: None,
        revising_provider: OdsCode::parse(ods).unwrap(),
    };
    let mut removals: Vec<BulkOutcomeRecord> = (0..10)
        .map(|k| removal(k, "RA1", date(2020, 4, 10)))
        .collect();
    removals.extend((40..44).map(|k| removal(k, "RB2", date(2020, 7, 19))));
    let report = mdor_service::bulk_outcomes(ctx, &providers, &removals)
        .await
        .unwrap();
    assert!(report.unresolved.is_empty());
}

fn one_year(report: &FeedbackReport) -> &mdor_service::RevisionRow {
    report
        .revision
        .iter()
        .find(|r| r.device_type == "hip_cup" && r.years == 1)
        .unwrap()
}

#[tokio::test]
async fn feedback_reports_show_revision_against_national_with_small_numbers_suppressed() {
    for backend in backends() {
        let store = open(backend).await;
        let ctx = &store.ctx;
        two_providers(ctx).await;
        let regulator = principal(ctx, Role::Regulator).await;

        let ra1 = FeedbackSubject::Provider("RA1".into());
        let report = mdor_service::feedback_report(ctx, &regulator, &ra1)
            .await
            .unwrap();
        assert_eq!(report.volumes.len(), 1, "{backend}");
        assert_eq!(report.volumes[0].year, 2020);
        assert_eq!(report.volumes[0].procedures, Published::Count(40));
        assert_eq!(report.completeness[0].percent, Some(100.0));
        let row = one_year(&report);
        let own = row.subject.as_ref().unwrap();
        assert_eq!(own.percent, Some(25.0));
        assert_eq!(own.at_risk, Published::Count(30));
        assert_eq!(own.revisions, Published::Count(10));
        assert!(own.lower.unwrap() < 25.0 && own.upper.unwrap() > 25.0);
        let national = row.national.as_ref().unwrap();
        assert_eq!(national.percent, Some(17.5));
        assert_eq!(national.at_risk, Published::Count(65));
        // Ten years is beyond the follow-up: no estimate at all.
        let ten = report.revision.iter().find(|r| r.years == 10).unwrap();
        assert!(ten.subject.is_none());

        // RB2's four revisions are a suppressible count: the estimate is withheld.
        let rb2 = FeedbackSubject::Provider("RB2".into());
        let report = mdor_service::feedback_report(ctx, &regulator, &rb2)
            .await
            .unwrap();
        let own = one_year(&report).subject.clone().unwrap();
        assert_eq!((own.percent, own.revisions), (None, Published::Suppressed));
        assert_eq!(own.at_risk, Published::Count(35));
        let csv = mdor_service::feedback_csv(&report);
        assert!(
            csv.contains("revision,hip_cup,1y,subject_percent,*\n"),
            "{csv}"
        );
        assert!(
            csv.contains("revision,hip_cup,1y,national_percent,17.5\n"),
            "{csv}"
        );

        // A consultant and a manufacturer see the same implants as RA1 here.
        for subject in [
            FeedbackSubject::Consultant("1234567".into()),
            FeedbackSubject::Manufacturer("Acme".into()),
        ] {
            let report = mdor_service::feedback_report(ctx, &regulator, &subject)
                .await
                .unwrap();
            let own = one_year(&report).subject.clone().unwrap();
            assert_eq!(own.percent, Some(25.0), "{subject:?}");
        }

        // A provider reads only its own report; an unknown subject is not found.
        let other = principal(ctx, Role::ProviderSubmitter).await;
        let refused = mdor_service::feedback_report(ctx, &other, &ra1).await;
        assert!(
            matches!(refused, Err(ServiceError::Forbidden { .. })),
            "{refused:?}"
        );
        let missing = mdor_service::feedback_report(
            ctx,
            &regulator,
            &FeedbackSubject::Provider("RZZ".into()),
        )
        .await;
        assert!(
            matches!(missing, Err(ServiceError::NotFound { .. })),
            "{missing:?}"
        );
    }
}
