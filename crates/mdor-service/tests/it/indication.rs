//! Survivorship adjusted for indication, on a registry with a known truth: cup X is no worse
//! than cup Y, but surgeons choose it for fractures, which revise four times as often. Without
//! the indication the comparison blames the cup; with it, the hazard ratio returns to 1.

use chrono::{Days, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use mdor_domain::record::{
    EntryType, ImplantedDevice, LocalRecordId, Patient, PersonName, Procedure, RemovalKind,
    Submission,
};
use mdor_domain::register::{RegisterEntry, RiskClass};
use mdor_domain::{
    GmcNumber, Indication, Laterality, NhsNumber, OdsCode, Opcs4Code, ProductionIdentifiers,
    RegistryCode, Sex, Slug, UdiDi,
};
use mdor_service::{
    BulkOutcomeRecord, Ctx, DeviceGrouping, HazardRatio, NewOrganisation, OrganisationKind, Role,
};

use crate::support::{backends, open, principal};

const N: u32 = 3_000;
/// Hazard of revision per year for osteoarthritis; fractures have four times it.
const BASE_RATE: f64 = 0.02;
const FRACTURE_HAZARD_RATIO: f64 = 4.0;

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap()
}

fn gtin(item: u32) -> UdiDi {
    UdiDi::parse(&mdor_synth::scan::gtin14(5_012_345, item)).unwrap()
}

fn entry(udi_di: &UdiDi, brand: &str, device_type: &str) -> RegisterEntry {
    RegisterEntry {
        udi_di: udi_di.clone(),
        manufacturer: "Acme".into(),
        brand: brand.into(),
        model: "size 3".into(),
        device_type: Slug::parse(device_type).unwrap(),
        risk_class: RiskClass::III,
        registry: RegistryCode::parse("njr").unwrap(),
    }
}

fn device(udi_di: &UdiDi) -> ImplantedDevice {
    ImplantedDevice {
        udi_di: udi_di.clone(),
        production: ProductionIdentifiers::default(),
        raw_scan: None,
        entry_type: EntryType::Manual,
    }
}

/// One simulated hip: its cup, its indication and its revision day, if any.
struct Hip {
    cup_x: bool,
    fracture: bool,
    revised: Option<NaiveDate>,
}

const OPERATED: NaiveDate = match NaiveDate::from_ymd_opt(2016, 1, 1) {
    Some(d) => d,
    None => panic!(),
};

/// 30% fractures; cup X for 80% of fractures and 20% of the rest; exponential revision times
/// that depend on the indication only; follow-up to the test clock's 2026-10-31.
fn simulate() -> Vec<Hip> {
    let mut rng = StdRng::seed_from_u64(20261122);
    let follow_up_years = (date(2026, 10, 31) - OPERATED).num_days() as f64 / 365.25;
    (0..N)
        .map(|_| {
            let fracture = rng.gen_bool(0.3);
            let cup_x = rng.gen_bool(if fracture { 0.8 } else { 0.2 });
            let rate = BASE_RATE * if fracture { FRACTURE_HAZARD_RATIO } else { 1.0 };
            let years = -(1.0 - rng.r#gen::<f64>()).ln() / rate;
            let revised = (years < follow_up_years)
                .then(|| OPERATED + Days::new((years * 365.25).max(1.0) as u64));
            Hip {
                cup_x,
                fracture,
                revised,
            }
        })
        .collect()
}

/// Loads the hips, recording their indication only when `record_indication`.
async fn load(ctx: &Ctx, hips: &[Hip], record_indication: bool) -> (UdiDi, UdiDi) {
    let (stem, cup_x, cup_y) = (gtin(11), gtin(12), gtin(13));
    let ra1 = OdsCode::parse("RA1").unwrap();
    let providers = mdor_service::ensure_organisations(
        ctx,
        &[NewOrganisation {
            ods_code: ra1.clone(),
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
            entry(&stem, "Steadfast", "hip_stem"),
            entry(&cup_x, "Cup X", "hip_cup"),
            entry(&cup_y, "Cup Y", "hip_cup"),
        ],
    )
    .await
    .unwrap();
    let index = mdor_service::register_index(ctx, &[stem.clone(), cup_x.clone(), cup_y.clone()])
        .await
        .unwrap();
    let submissions: Vec<Submission> = hips
        .iter()
        .enumerate()
        .map(|(k, hip)| {
            let k = k as u32;
            let patient = Patient {
                nhs_number: (0..10)
                    .find_map(|j| NhsNumber::from_first_nine(999_100_000 + 10 * k + j))
                    .unwrap(),
                family_name: PersonName::parse("Testpatient", "family_name").unwrap(),
                given_name: PersonName::parse("Sam", "given_name").unwrap(),
                date_of_birth: date(1930 + (k as i32 * 7) % 30, 6, 1),
                sex: if k.is_multiple_of(3) {
                    Sex::Male
                } else {
                    Sex::Female
                },
                postcode: None,
            };
            let indication = if hip.fracture {
                "fracture"
            } else {
                "osteoarthritis"
            };
            let procedure = Procedure {
                provider: ra1.clone(),
                consultant: GmcNumber::parse("1234567").unwrap(),
                procedure_date: OPERATED,
                opcs4: Some(Opcs4Code::parse("W37.1", "4.10").unwrap()),
                snomed: None,
                laterality: Laterality::Left,
                registry: RegistryCode::parse("njr").unwrap(),
                local_record_id: LocalRecordId::parse(&format!("H-{k}"), "local_record_id")
                    .unwrap(),
                indication: record_indication.then(|| Indication::parse(indication).unwrap()),
            };
            let cup = if hip.cup_x { &cup_x } else { &cup_y };
            Submission::new(
                patient,
                procedure,
                vec![device(&stem), device(cup)],
                date(2026, 10, 31),
            )
            .unwrap()
        })
        .collect();
    mdor_service::bulk_load(ctx, &providers, &index, submissions)
        .await
        .unwrap();
    let removals: Vec<BulkOutcomeRecord> = hips
        .iter()
        .enumerate()
        .filter_map(|(k, hip)| {
            hip.revised.map(|day| BulkOutcomeRecord::Removal {
                provider: ra1.clone(),
                local_record_id: format!("H-{k}"),
                device_index: 1,
                kind: RemovalKind::Revision,
                date: day,
                reason: None,
                revising_provider: ra1.clone(),
            })
        })
        .collect();
    let report = mdor_service::bulk_outcomes(ctx, &providers, &removals)
        .await
        .unwrap();
    assert!(report.unresolved.is_empty());
    (cup_x, cup_y)
}

async fn cup_x_hazard_ratio(backend: &str, hips: &[Hip], record_indication: bool) -> HazardRatio {
    let store = open(backend).await;
    let ctx = &store.ctx;
    let (cup_x, _) = load(ctx, hips, record_indication).await;
    let regulator = principal(ctx, Role::Regulator).await;
    let report = mdor_service::device_survivorship(ctx, &regulator, &DeviceGrouping::Model(cup_x))
        .await
        .unwrap();
    report.hazard_ratio.unwrap()
}

#[tokio::test]
async fn a_cup_chosen_for_fractures_is_not_blamed_for_them_once_indication_is_adjusted_for() {
    let hips = simulate();
    // The simulation is what it says: cup X mostly fractures, cup Y mostly osteoarthritis.
    let share = |cup_x: bool| {
        let cup: Vec<&Hip> = hips.iter().filter(|h| h.cup_x == cup_x).collect();
        cup.iter().filter(|h| h.fracture).count() as f64 / cup.len() as f64
    };
    assert!(share(true) > 0.55 && share(false) < 0.15);
    for backend in backends() {
        let adjusted = cup_x_hazard_ratio(backend, &hips, true).await;
        assert_eq!(adjusted.adjusted_for, ["age", "sex", "indication"]);
        let coding = adjusted.indication.as_ref().unwrap();
        assert_eq!(coding.reference, "osteoarthritis");
        assert_eq!(coding.levels, ["fracture"]);
        assert!(coding.pooled.is_empty());
        // The truth is 1: the interval holds it and the estimate is near it.
        assert!(
            adjusted.lower < 1.0 && 1.0 < adjusted.upper,
            "{backend}: adjusted {} ({}–{}) excludes the true 1",
            adjusted.estimate,
            adjusted.lower,
            adjusted.upper
        );
        assert!((0.75..1.33).contains(&adjusted.estimate), "{backend}");

        // Without the indication, the same patients make cup X look much worse.
        let unadjusted = cup_x_hazard_ratio(backend, &hips, false).await;
        assert_eq!(unadjusted.adjusted_for, ["age", "sex"]);
        assert!(unadjusted.indication.is_none());
        assert!(
            unadjusted.lower > 1.5,
            "{backend}: unadjusted {} ({}–{}) should be confounded upwards",
            unadjusted.estimate,
            unadjusted.lower,
            unadjusted.upper
        );
    }
}
