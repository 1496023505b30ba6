//! The files' layouts and contents: headers, identifiers that parse with the domain
//! parsers, dates in range, and outcomes that fit the procedures they refer to.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde_json::Value;

use mdor_domain::record::{
    EntryType, ImplantedDevice, LocalRecordId, Patient, PersonName, Procedure, Submission,
};
use mdor_domain::rules::{check_death, check_removal};
use mdor_domain::{
    GmcNumber, Indication, Laterality, NhsNumber, OdsCode, Opcs4Code, Postcode,
    ProductionIdentifiers, RegistryCode, Sex, UdiDi,
};

use crate::support::{WrittenDataset, date, decode_device, register, shared_dataset, text};

#[test]
fn same_seed_and_size_give_byte_identical_files() {
    let first = WrittenDataset::write("same-a", 5, 3_000);
    let second = WrittenDataset::write("same-b", 5, 3_000);
    for file in [
        "devices.csv",
        "providers.csv",
        "consultants.csv",
        "procedures.ndjson",
        "outcomes.ndjson",
        "truth.json",
    ] {
        assert!(first.read(file) == second.read(file), "{file} differs");
    }
}

#[test]
fn different_seeds_give_different_files() {
    let first = WrittenDataset::write("seed-a", 5, 1_000);
    let second = WrittenDataset::write("seed-b", 6, 1_000);
    assert!(first.read("procedures.ndjson") != second.read("procedures.ndjson"));
    assert!(first.read("devices.csv") != second.read("devices.csv"));
}

#[test]
fn sizes_scale_with_the_number_of_procedures() {
    let small = WrittenDataset::write("scale-small", 9, 1_000);
    let large = WrittenDataset::write("scale-large", 9, 4_000);
    for (dataset, n) in [(&small, 1_000u64), (&large, 4_000)] {
        assert_eq!(dataset.summary.n_procedures, n);
        assert_eq!(dataset.json_lines("procedures.ndjson").len() as u64, n);
        let devices_per_procedure = dataset.summary.n_devices as f64 / n as f64;
        assert!(
            (2.3..3.0).contains(&devices_per_procedure),
            "{devices_per_procedure} devices per procedure"
        );
        assert!(dataset.summary.n_patients < n);
        assert!(dataset.summary.n_patients > n * 8 / 10);
    }
    assert!(large.summary.n_removals > 2 * small.summary.n_removals);
    // The catalogue depends on the seed only.
    assert!(small.read("devices.csv") == large.read("devices.csv"));
    assert!(small.read("consultants.csv") == large.read("consultants.csv"));
}

#[test]
fn devices_csv_has_the_contract_header_and_valid_gtins() {
    let (header, rows) = shared_dataset().csv_rows("devices.csv");
    assert_eq!(
        header,
        [
            "udi_di",
            "manufacturer",
            "brand",
            "model",
            "device_type",
            "risk_class",
            "registry"
        ]
    );
    assert!((300..=400).contains(&rows.len()));
    let device_types = [
        "hip_stem",
        "hip_cup",
        "hip_head",
        "hip_liner",
        "knee_femoral",
        "knee_tibial",
        "knee_insert",
        "breast_implant",
        "cochlear_implant",
        "pacemaker",
        "pacing_lead",
        "pelvic_mesh",
    ];
    let mut seen_types = HashSet::new();
    let mut manufacturers = HashSet::new();
    for row in &rows {
        let udi = UdiDi::parse(&row[0]).unwrap();
        assert_eq!(udi.as_str(), row[0], "gtin is written as 14 digits");
        assert!(
            row[0].starts_with("050"),
            "{} is not a UK-style GTIN",
            row[0]
        );
        assert!(device_types.contains(&row[4].as_str()), "{}", row[4]);
        assert!(["III", "IIb", "IIa"].contains(&row[5].as_str()));
        let expected_registry = match row[4].as_str() {
            t if t.starts_with("hip_") || t.starts_with("knee_") => "njr",
            "breast_implant" => "bcir",
            "cochlear_implant" => "nrhi",
            "pelvic_mesh" => "popsui",
            _ => "mdor_core",
        };
        assert_eq!(row[6], expected_registry);
        let raw = mdor_domain::register::RawRegisterEntry {
            udi_di: row[0].clone(),
            manufacturer: row[1].clone(),
            brand: row[2].clone(),
            model: row[3].clone(),
            device_type: row[4].clone(),
            risk_class: row[5].clone(),
            registry: row[6].clone(),
        };
        assert!(raw.validate().is_ok(), "{row:?}");
        seen_types.insert(row[4].clone());
        manufacturers.insert(row[1].clone());
    }
    assert_eq!(seen_types.len(), device_types.len());
    assert!((25..=35).contains(&manufacturers.len()));
}

#[test]
fn providers_and_consultants_csv_have_the_contract_layout() {
    let dataset = shared_dataset();
    let (header, providers) = dataset.csv_rows("providers.csv");
    assert_eq!(header, ["ods_code", "name", "region"]);
    assert_eq!(providers.len(), 150);
    let regions: HashSet<&str> = providers.iter().map(|p| p[2].as_str()).collect();
    assert_eq!(regions.len(), 7);
    for provider in &providers {
        assert_eq!(OdsCode::parse(&provider[0]).unwrap().as_str(), provider[0]);
        assert!(provider[0].len() == 3 && provider[0].starts_with('R'));
        assert!(provider[1].contains("NHS"));
    }
    let ods: HashSet<&str> = providers.iter().map(|p| p[0].as_str()).collect();

    let (header, consultants) = dataset.csv_rows("consultants.csv");
    assert_eq!(
        header,
        [
            "gmc_number",
            "family_name",
            "given_name",
            "specialty",
            "provider_ods"
        ]
    );
    assert!((1_200..=1_900).contains(&consultants.len()));
    let mut gmc_numbers = HashSet::new();
    for consultant in &consultants {
        GmcNumber::parse(&consultant[0]).unwrap();
        assert!(
            gmc_numbers.insert(consultant[0].clone()),
            "duplicate gmc number"
        );
        assert!(
            [
                "orthopaedics",
                "plastic_surgery",
                "ent",
                "cardiology",
                "urogynaecology"
            ]
            .contains(&consultant[3].as_str())
        );
        assert!(ods.contains(consultant[4].as_str()));
    }
}

#[test]
fn every_procedure_line_parses_with_the_domain_parsers() {
    let dataset = shared_dataset();
    let register = register(dataset);
    let (_, consultants) = dataset.csv_rows("consultants.csv");
    let consultant_provider: HashMap<&str, &str> = consultants
        .iter()
        .map(|c| (c[0].as_str(), c[4].as_str()))
        .collect();
    let first = NaiveDate::from_ymd_opt(2012, 1, 1).unwrap();
    let last = NaiveDate::from_ymd_opt(2026, 9, 30).unwrap();
    let mut local_ids = HashSet::new();
    let mut patients: HashMap<String, Value> = HashMap::new();
    let (mut n_devices, mut n_scans, mut n_expired, mut n_unregistered) = (0, 0, 0, 0);
    let mut scan_prefixes = HashSet::new();
    for line in dataset.json_lines("procedures.ndjson") {
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys.len(), 3, "{keys:?}");
        let patient = &line["patient"];
        let procedure = &line["procedure"];
        let nhs = NhsNumber::parse(text(&patient["nhs_number"])).unwrap();
        assert!(nhs.is_test_range());
        let sex = Sex::parse(text(&patient["sex"])).unwrap();
        assert!(matches!(sex, Sex::Male | Sex::Female));
        Postcode::parse(text(&patient["postcode"])).unwrap();
        assert!(!text(&patient["family_name"]).is_empty());
        assert!(!text(&patient["given_name"]).is_empty());
        let birth = date(&patient["date_of_birth"]);
        // A repeat procedure carries exactly the same patient details.
        if let Some(earlier) = patients.insert(nhs.as_str().to_string(), patient.clone()) {
            assert_eq!(&earlier, patient);
        }

        let provider = OdsCode::parse(text(&procedure["provider"])).unwrap();
        let consultant = GmcNumber::parse(text(&procedure["consultant"])).unwrap();
        assert_eq!(consultant_provider[consultant.as_str()], provider.as_str());
        let procedure_date = date(&procedure["procedure_date"]);
        assert!((first..=last).contains(&procedure_date));
        let age = (procedure_date - birth).num_days() as f64 / 365.25;
        // Later procedures (a pacemaker years after a hip) can reach past 100.
        assert!((0.5..=110.0).contains(&age), "age {age}");
        let code = text(&procedure["opcs4_code"]);
        Opcs4Code::parse(code, text(&procedure["opcs4_version"])).unwrap();
        assert!(procedure["snomed_ct_id"].is_null());
        let laterality = Laterality::parse(text(&procedure["laterality"])).unwrap();
        let registry = text(&procedure["registry"]);
        let local_id = text(&procedure["local_record_id"]);
        assert!(local_id.starts_with(provider.as_str()));
        assert!(local_ids.insert((provider.to_string(), local_id.to_string())));

        let devices = line["devices"].as_array().unwrap();
        let expected_count = match registry {
            "njr"
                if code.starts_with("W37")
                    || code.starts_with("W38")
                    || code.starts_with("W93")
                    || code.starts_with("W94") =>
            {
                3..=4
            }
            "njr" => 3..=3,
            "bcir" if laterality == Laterality::Bilateral => 2..=2,
            "bcir" => 1..=1,
            "mdor_core" => 2..=3,
            "nrhi" | "popsui" => 1..=1,
            other => panic!("unexpected registry {other}"),
        };
        assert!(
            expected_count.contains(&devices.len()),
            "{code} {}",
            devices.len()
        );
        let paired = matches!(registry, "njr" | "bcir" | "nrhi");
        assert_eq!(laterality != Laterality::NotApplicable, paired);
        if registry == "bcir" || registry == "popsui" {
            assert_eq!(sex, Sex::Female);
        }
        for entry in devices {
            n_devices += 1;
            if let Some(scan) = entry.get("scan") {
                n_scans += 1;
                assert_eq!(entry.as_object().unwrap().len(), 1);
                scan_prefixes.insert(text(scan)[..3].to_string());
            } else {
                let keys: HashSet<&str> = entry
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                assert_eq!(
                    keys,
                    HashSet::from(["udi_di", "lot", "serial", "expiry", "manufactured"])
                );
            }
            let device = decode_device(entry);
            UdiDi::parse(&device.udi_di).unwrap();
            assert!(device.lot.is_some());
            match register.get(&device.udi_di) {
                Some((_, device_registry)) => assert_eq!(device_registry, registry),
                None => n_unregistered += 1,
            }
            if let (Some(made), Some(expiry)) = (device.manufactured, device.expiry) {
                assert!(made < expiry);
            }
            if let Some(made) = device.manufactured {
                assert!(made <= procedure_date);
            }
            if device.expiry.is_some_and(|expiry| expiry < procedure_date) {
                n_expired += 1;
            }
        }
    }
    let share = |n: i32| f64::from(n) / f64::from(n_devices);
    assert!((0.77..0.83).contains(&share(n_scans)), "{}", share(n_scans));
    assert!(
        (0.001..0.006).contains(&share(n_expired)),
        "{}",
        share(n_expired)
    );
    assert!(
        (0.002..0.009).contains(&share(n_unregistered)),
        "{}",
        share(n_unregistered)
    );
    assert_eq!(
        scan_prefixes,
        HashSet::from(["]d2".to_string(), "]C1".to_string(), "(01".to_string()])
    );
    assert_eq!(
        dataset.summary.n_devices_not_in_register,
        n_unregistered as u64
    );
    assert_eq!(
        dataset.summary.n_devices_expired_at_implant,
        n_expired as u64
    );
}

#[test]
fn outcomes_refer_to_written_procedures_and_respect_the_timeline() {
    let dataset = shared_dataset();
    let cutoff = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap();
    let (_, providers) = dataset.csv_rows("providers.csv");
    let ods: HashSet<&str> = providers.iter().map(|p| p[0].as_str()).collect();
    // (provider, local record id) -> (procedure date, number of devices, nhs number)
    let mut procedures: HashMap<(String, String), (NaiveDate, usize, String)> = HashMap::new();
    let mut latest_procedure: HashMap<String, NaiveDate> = HashMap::new();
    for line in dataset.json_lines("procedures.ndjson") {
        let nhs = text(&line["patient"]["nhs_number"]).to_string();
        let procedure_date = date(&line["procedure"]["procedure_date"]);
        let latest = latest_procedure
            .entry(nhs.clone())
            .or_insert(procedure_date);
        *latest = (*latest).max(procedure_date);
        procedures.insert(
            (
                text(&line["procedure"]["provider"]).to_string(),
                text(&line["procedure"]["local_record_id"]).to_string(),
            ),
            (
                procedure_date,
                line["devices"].as_array().unwrap().len(),
                nhs,
            ),
        );
    }
    let outcomes = dataset.json_lines("outcomes.ndjson");
    let mut deaths: HashMap<String, NaiveDate> = HashMap::new();
    for outcome in &outcomes {
        if text(&outcome["type"]) == "death" {
            let nhs = text(&outcome["nhs_number"]).to_string();
            assert!(NhsNumber::parse(&nhs).unwrap().is_test_range());
            let death = date(&outcome["date"]);
            assert!(deaths.insert(nhs.clone(), death).is_none(), "died twice");
            assert!(death > latest_procedure[&nhs], "death before a procedure");
            check_death(death, Some(latest_procedure[&nhs]), cutoff).unwrap();
            assert!(death < cutoff);
        }
    }
    let mut removed = HashSet::new();
    let mut n_removals = 0;
    for outcome in &outcomes {
        match text(&outcome["type"]) {
            "death" => {}
            "removal" => {
                n_removals += 1;
                let keys: Vec<&str> = outcome
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(String::as_str)
                    .collect();
                assert_eq!(keys.len(), 8, "{keys:?}");
                assert!(["revision", "explant"].contains(&text(&outcome["kind"])));
                assert!(!text(&outcome["reason"]).is_empty());
                assert!(ods.contains(text(&outcome["revising_provider"])));
                let key = (
                    text(&outcome["provider"]).to_string(),
                    text(&outcome["local_record_id"]).to_string(),
                );
                let (implant_date, n_devices, nhs) = &procedures[&key];
                let index = outcome["device_index"].as_u64().unwrap() as usize;
                assert!(index < *n_devices);
                assert!(removed.insert((key.clone(), index)), "device removed twice");
                let removal_date = date(&outcome["date"]);
                assert!(removal_date > *implant_date);
                assert!(removal_date < cutoff);
                check_removal(
                    *implant_date,
                    removal_date,
                    deaths.get(nhs).copied(),
                    cutoff,
                )
                .unwrap();
                if let Some(death) = deaths.get(nhs) {
                    assert!(removal_date < *death);
                }
            }
            other => panic!("unexpected outcome type {other}"),
        }
    }
    assert_eq!(n_removals, dataset.summary.n_removals);
    assert_eq!(deaths.len() as u64, dataset.summary.n_deaths);
}

#[test]
fn truth_json_names_the_injected_signals() {
    let dataset = shared_dataset();
    let truth: Value = serde_json::from_slice(&dataset.read("truth.json")).unwrap();
    assert_eq!(truth["seed"], 2026);
    assert_eq!(truth["procedures"], 20_000);
    assert_eq!(truth["cutoff_date"], "2026-10-31");
    let register = register(dataset);
    let model = &truth["injected"]["device_model"];
    assert_eq!(
        register[text(&model["udi_di"])].0,
        text(&model["device_type"])
    );
    assert_eq!(model["hazard_ratio"], 3.0);
    assert_eq!(truth["injected"]["provider"]["hazard_ratio"], 2.5);
    // Every registered model's hazard multiplier is listed; the injected model's is its ratio,
    // and the others are lognormal frailties around 1.
    let multipliers = truth["device_model_hazard_multipliers"]
        .as_object()
        .unwrap();
    assert_eq!(multipliers.len(), register.len());
    assert!(
        multipliers
            .keys()
            .all(|udi| register.contains_key(udi.as_str()))
    );
    assert_eq!(multipliers[text(&model["udi_di"])], 3.0);
    let others: Vec<f64> = multipliers
        .iter()
        .filter(|(udi, _)| udi.as_str() != text(&model["udi_di"]))
        .map(|(_, m)| m.as_f64().unwrap())
        .collect();
    let mean = others.iter().sum::<f64>() / others.len() as f64;
    assert!((0.9..1.1).contains(&mean), "mean frailty {mean}");
    assert!(others.iter().any(|&m| m > 1.0) && others.iter().any(|&m| m < 1.0));
    let lot = &truth["injected"]["faulty_lot"];
    assert!(register.contains_key(text(&lot["udi_di"])));
    assert!(!text(&lot["lot"]).is_empty());
    assert!(lot["implants"].as_u64().unwrap() > 50);
    for kind in ["hip", "knee", "breast", "cochlear", "pacemaker", "mesh"] {
        assert!(
            truth["baseline"][kind]["revision"]["shape"]
                .as_f64()
                .unwrap()
                > 0.0
        );
    }
}

#[test]
fn every_procedure_line_is_a_valid_domain_submission() {
    let today = NaiveDate::from_ymd_opt(2026, 10, 31).unwrap();
    for line in shared_dataset().json_lines("procedures.ndjson") {
        let patient = &line["patient"];
        let procedure = &line["procedure"];
        let patient = Patient {
            nhs_number: NhsNumber::parse(text(&patient["nhs_number"])).unwrap(),
            family_name: PersonName::parse(text(&patient["family_name"]), "family_name").unwrap(),
            given_name: PersonName::parse(text(&patient["given_name"]), "given_name").unwrap(),
            date_of_birth: date(&patient["date_of_birth"]),
            sex: Sex::parse(text(&patient["sex"])).unwrap(),
            postcode: Some(Postcode::parse(text(&patient["postcode"])).unwrap()),
        };
        let procedure = Procedure {
            provider: OdsCode::parse(text(&procedure["provider"])).unwrap(),
            consultant: GmcNumber::parse(text(&procedure["consultant"])).unwrap(),
            procedure_date: date(&procedure["procedure_date"]),
            opcs4: Some(
                Opcs4Code::parse(
                    text(&procedure["opcs4_code"]),
                    text(&procedure["opcs4_version"]),
                )
                .unwrap(),
            ),
            snomed: None,
            laterality: Laterality::parse(text(&procedure["laterality"])).unwrap(),
            registry: RegistryCode::parse(text(&procedure["registry"])).unwrap(),
            local_record_id: LocalRecordId::parse(
                text(&procedure["local_record_id"]),
                "local_record_id",
            )
            .unwrap(),
            indication: procedure["indication"]
                .as_str()
                .map(|code| Indication::parse(code).unwrap()),
        };
        let devices = line["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| {
                let decoded = decode_device(entry);
                let raw_scan = entry.get("scan").map(|scan| text(scan).to_string());
                ImplantedDevice {
                    udi_di: UdiDi::parse(&decoded.udi_di).unwrap(),
                    production: ProductionIdentifiers {
                        lot: decoded.lot,
                        serial: decoded.serial,
                        expiry: decoded.expiry,
                        manufactured: decoded.manufactured,
                    },
                    entry_type: if raw_scan.is_some() {
                        EntryType::Barcode
                    } else {
                        EntryType::Manual
                    },
                    raw_scan,
                }
            })
            .collect();
        if let Err(errors) = Submission::new(patient, procedure, devices, today) {
            panic!("{errors:?}");
        }
    }
}
