//! Providers' data quality reports worked by hand: provider RZZ has two procedures dated
//! August 2026 and one dated September, each with one device not in the register (an open
//! follow-up flag). With the test clock on 2026-10-31 the default range is 2025-10 to 2026-09.

use chrono::NaiveDate;

use mdor_domain::record::{
    EntryType, ImplantedDevice, LocalRecordId, Patient, PersonName, Procedure, Submission,
};
use mdor_domain::{
    GmcNumber, Laterality, Month, NhsNumber, OdsCode, Opcs4Code, ProductionIdentifiers,
    RegistryCode, Sex, UdiDi,
};
use mdor_service::{
    Ctx, MonthRange, NewOrganisation, OrganisationKind, Principal, ProviderDataQuality, Role,
    ServiceError, TokenId,
};

use crate::support::{backends, open, principal, test_clock};

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

fn month(text: &str) -> Month {
    Month::parse(text).unwrap()
}

fn procedure(k: u32, procedure_date: NaiveDate) -> Submission {
    let patient = Patient {
        nhs_number: (0..10)
            .find_map(|j| NhsNumber::from_first_nine(999_200_000 + 10 * k + j))
            .unwrap(),
        family_name: PersonName::parse("Testpatient", "family_name").unwrap(),
        given_name: PersonName::parse("Sam", "given_name").unwrap(),
        date_of_birth: date(1950, 6, 1),
        sex: Sex::Female,
        postcode: None,
    };
    let procedure = Procedure {
        provider: OdsCode::parse("RZZ").unwrap(),
        consultant: GmcNumber::parse("1234567").unwrap(),
        procedure_date,
        opcs4: Some(Opcs4Code::parse("W37.1", "4.10").unwrap()),
        snomed: None,
        laterality: Laterality::Right,
        registry: RegistryCode::parse("njr").unwrap(),
        local_record_id: LocalRecordId::parse(&format!("DQ-{k}"), "local_record_id").unwrap(),
        indication: None,
    };
    let device = ImplantedDevice {
        udi_di: UdiDi::parse(&mdor_synth::scan::gtin14(5_012_345, 31)).unwrap(),
        production: ProductionIdentifiers {
            lot: Some("L1".into()),
            ..ProductionIdentifiers::default()
        },
        raw_scan: None,
        entry_type: EntryType::Manual,
    };
    Submission::new(patient, procedure, vec![device], date(2026, 10, 31)).unwrap()
}

async fn report(ctx: &Ctx, who: &Principal) -> Result<ProviderDataQuality, ServiceError> {
    let range = MonthRange::last_complete_months(test_clock().date_naive());
    mdor_service::provider_data_quality(ctx, who, &OdsCode::parse("RZZ").unwrap(), range).await
}

#[tokio::test]
async fn completeness_is_received_over_expected_per_month_and_months_below_ninety_percent_are_flagged()
 {
    for backend in backends() {
        let store = open(backend).await;
        let ctx = &store.ctx;
        let provider = principal(ctx, Role::ProviderSubmitter).await;
        let regulator = principal(ctx, Role::Regulator).await;
        for (k, day) in [
            (1, date(2026, 8, 3)),
            (2, date(2026, 8, 17)),
            (3, date(2026, 9, 9)),
        ] {
            mdor_service::register_procedure(ctx, &provider, procedure(k, day), None)
                .await
                .unwrap();
        }
        // July expects none, August two, September two.
        let csv =
            "ods_code,month,expected_procedures\nRZZ,2026-07,0\nRZZ,2026-08,2\nrzz,2026-09,2\n";
        assert_eq!(
            mdor_service::load_expected_activity(ctx, csv.as_bytes())
                .await
                .unwrap(),
            3
        );

        let dq = report(ctx, &provider).await.unwrap();
        assert_eq!((dq.from, dq.to), (month("2025-10"), month("2026-09")));
        assert_eq!(dq.completeness_target_percent, 90);
        assert_eq!(dq.months.len(), 12);
        let row = |m: &str| dq.months.iter().find(|r| r.month == month(m)).unwrap();
        // July: nothing expected, so completeness is unknown and not below target.
        assert_eq!(row("2026-07").expected_procedures, Some(0));
        assert_eq!(row("2026-07").completeness_percent, None);
        assert!(!row("2026-07").below_target);
        // August: 2 of 2 = 100%; September: 1 of 2 = 50%, below target.
        assert_eq!(row("2026-08").procedures_received, 2);
        assert_eq!(row("2026-08").completeness_percent, Some(100.0));
        assert!(!row("2026-08").below_target);
        assert_eq!(row("2026-09").procedures_received, 1);
        assert_eq!(row("2026-09").completeness_percent, Some(50.0));
        assert!(row("2026-09").below_target);
        assert_eq!(row("2026-08").procedures_with_open_flags, 2);
        assert_eq!(dq.months_below_target, [month("2026-09")]);
        // The nine months 2025-10 to 2026-06 have no figure.
        assert_eq!(dq.months_without_expected_activity.len(), 9);
        assert_eq!(dq.months_without_expected_activity[0], month("2025-10"));
        // Overall over July to September: 3 received of 4 expected = 75%.
        assert_eq!(dq.overall.procedures_received, 3);
        assert_eq!(dq.overall.expected_procedures, 4);
        assert_eq!(dq.overall.completeness_percent, Some(75.0));
        assert!(dq.overall.below_target);
        assert_eq!(dq.open_flags.len(), 1);
        assert_eq!(dq.open_flags[0].flag, "not_in_register");
        assert_eq!(dq.open_flags[0].procedures, 3);

        // A file with bad lines is refused whole, each problem naming its line and field,
        // and the stored figures are unchanged.
        let bad = "ods_code,month,expected_procedures\n\
                   RZZ,2026-09,1\n\
                   R!Z,2026-09,1\n\
                   RZZ,2026-13,1\n\
                   RZZ,2026-08,-4\n\
                   RXX,2026-08,1\n\
                   MHRA,2026-08,1\n\
                   RZZ,2026-09,3\n";
        let Err(ServiceError::Invalid(errors)) =
            mdor_service::load_expected_activity(ctx, bad.as_bytes()).await
        else {
            panic!("a bad file was loaded");
        };
        let problems: Vec<(String, &str)> =
            errors.iter().map(|e| (e.field.clone(), e.code)).collect();
        assert_eq!(
            problems,
            [
                ("line 3: ods_code".to_string(), "invalid_ods_code"),
                ("line 4: month".to_string(), "invalid_month"),
                ("line 5: expected_procedures".to_string(), "negative_count"),
                ("line 6: ods_code".to_string(), "unknown_provider"),
                // A regulator is not a provider.
                ("line 7: ods_code".to_string(), "unknown_provider"),
                ("line 8: month".to_string(), "duplicate_month"),
            ]
        );
        assert_eq!(
            report(ctx, &provider)
                .await
                .unwrap()
                .overall
                .expected_procedures,
            4
        );

        // Reloading September replaces its figure: 1 of 1, and overall 3 of 3.
        let reload = "ods_code,month,expected_procedures\nRZZ,2026-09,1\n";
        mdor_service::load_expected_activity(ctx, reload.as_bytes())
            .await
            .unwrap();
        let dq = report(ctx, &regulator).await.unwrap();
        assert_eq!(dq.overall.completeness_percent, Some(100.0));
        assert!(dq.months_below_target.is_empty());

        // Another provider's token cannot tell this provider's report from an absent one.
        let ids = mdor_service::ensure_organisations(
            ctx,
            &[NewOrganisation {
                ods_code: OdsCode::parse("RB2").unwrap(),
                name: "RB2 test".into(),
                kind: OrganisationKind::Provider,
                region: None,
            }],
        )
        .await
        .unwrap();
        let other = Principal {
            credential: mdor_service::Credential::Token(TokenId(2)),
            organisation: ids["RB2"],
            organisation_ods: "RB2".into(),
            role: mdor_service::AccountRole::ProviderSubmitter,
            patient: None,
        };
        assert!(matches!(
            report(ctx, &other).await,
            Err(ServiceError::NotFound { what: "provider" })
        ));
    }
}
