//! Patient histories: one patient's procedures, the devices in them, and what happened to
//! them afterwards, generated together so nothing has to be remembered between patients.
//!
//! `Generator` holds the catalogue and the fixed parameters; `PatientHistories` is the
//! streaming iterator that draws one patient at a time from a single ChaCha8 stream, so the
//! same seed and size always give the same records in the same order.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use mdor_domain::record::RemovalKind;
use mdor_domain::{GmcNumber, Laterality, NhsNumber, OdsCode, Postcode, RegistryCode, Sex};

use crate::SynthError;
use crate::catalogue::{Catalogue, DeviceModel, DeviceType, ProcedureKind};
use crate::hazard::{
    self, BaselineHazard, DAYS_PER_YEAR, MORTALITY, baseline_hazard, clamped_normal,
    unit_exponential,
};
use crate::names;
use crate::scan::{LabelData, ScanForm, encode_scan};

/// What to generate: the seed decides everything; `n_procedures` decides how much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthConfig {
    pub seed: u64,
    pub n_procedures: u64,
}

impl SynthConfig {
    pub fn new(seed: u64, n_procedures: u64) -> SynthConfig {
        SynthConfig { seed, n_procedures }
    }
}

/// The first procedure date generated.
pub const FIRST_PROCEDURE_DATE: NaiveDate = date(2012, 1, 1);
/// The last procedure date generated.
pub const LAST_PROCEDURE_DATE: NaiveDate = date(2026, 9, 30);
/// Follow-up ends the day before this date: every removal and death is before it.
pub const CUTOFF_DATE: NaiveDate = date(2026, 10, 31);

/// Hazard ratio of the faulty lot during its early window.
pub const FAULTY_LOT_HAZARD_RATIO: f64 = 10.0;
/// Years after implant during which the faulty lot's hazard is raised.
pub const FAULTY_LOT_WINDOW_YEARS: f64 = 2.0;
/// How many implants the faulty lot is sized to contain (in expectation).
pub const FAULTY_LOT_TARGET_IMPLANTS: f64 = 200.0;

/// Share of devices implanted after their expiry date.
pub const EXPIRED_AT_IMPLANT_PROBABILITY: f64 = 0.003;
/// Share of devices whose UDI-DI is not in the register.
pub const NOT_IN_REGISTER_PROBABILITY: f64 = 0.005;
/// Share of devices entered by scanning a barcode; the rest are typed in.
pub const SCAN_PROBABILITY: f64 = 0.8;

/// The lowest NHS number stem used; all synthetic patients are in the 999 test range.
const FIRST_NHS_STEM: u32 = 999_000_000;
const LAST_NHS_STEM: u32 = 999_999_999;

/// The mix of first procedures; hips and knees gain a little more from second joints.
const KIND_MIX: [(ProcedureKind, f64); 6] = [
    (ProcedureKind::Hip, 0.24),
    (ProcedureKind::Knee, 0.24),
    (ProcedureKind::Breast, 0.17),
    (ProcedureKind::Cochlear, 0.04),
    (ProcedureKind::Pacemaker, 0.21),
    (ProcedureKind::Mesh, 0.10),
];

/// One line of `procedures.ndjson`: exactly the API's create-procedure body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcedureRecord {
    pub patient: PatientDetails,
    pub procedure: ProcedureDetails,
    pub devices: Vec<DeviceEntry>,
    /// Hidden truth, not serialised: the kind of procedure.
    #[serde(skip)]
    pub procedure_kind: ProcedureKind,
    /// Hidden truth, not serialised: one entry per device, in the order of `devices`.
    #[serde(skip)]
    pub device_truth: Vec<DeviceTruth>,
}

/// What the generator knows about one implanted device and the registry must work out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTruth {
    /// Index into `Catalogue::device_models` of the device's true model, also when it was
    /// recorded under an unregistered UDI-DI.
    pub model_index: u16,
    pub in_faulty_lot: bool,
    /// The recorded expiry date is before the procedure date.
    pub expired_at_implant: bool,
    /// The recorded UDI-DI is not in `devices.csv`.
    pub not_in_register: bool,
}

/// The `patient` object of a procedure line; identical in every procedure of one patient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatientDetails {
    pub nhs_number: NhsNumber,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: NaiveDate,
    pub sex: Sex,
    pub postcode: Postcode,
}

/// The `procedure` object of a procedure line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcedureDetails {
    pub provider: OdsCode,
    pub consultant: GmcNumber,
    pub procedure_date: NaiveDate,
    pub opcs4_code: &'static str,
    pub opcs4_version: &'static str,
    pub snomed_ct_id: Option<String>,
    pub laterality: Laterality,
    pub registry: RegistryCode,
    pub local_record_id: String,
    /// Why the procedure was done; absent for kinds whose registry records none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indication: Option<&'static str>,
}

/// One implanted device as submitted: a raw barcode scan or hand-typed label fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DeviceEntry {
    Scan {
        scan: String,
    },
    Manual {
        udi_di: String,
        lot: Option<String>,
        serial: Option<String>,
        expiry: Option<NaiveDate>,
        manufactured: Option<NaiveDate>,
    },
}

/// One line of `outcomes.ndjson`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutcomeRecord {
    /// A device removed; identified by the original procedure's provider and local record
    /// id and its index in that procedure's `devices`.
    Removal {
        kind: RemovalKind,
        provider: OdsCode,
        local_record_id: String,
        device_index: usize,
        date: NaiveDate,
        reason: &'static str,
        revising_provider: OdsCode,
    },
    Death {
        nhs_number: NhsNumber,
        date: NaiveDate,
    },
}

/// Everything about one patient: procedures in date order, then outcomes in date order with
/// any death last.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientHistory {
    pub procedures: Vec<ProcedureRecord>,
    pub outcomes: Vec<OutcomeRecord>,
}

/// The lot of one model given a manufacturing fault: every unit of that model manufactured
/// in `[manufactured_from, manufactured_until)` carries lot `lot`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultyLot {
    pub model_index: usize,
    pub lot: String,
    pub manufactured_from: NaiveDate,
    pub manufactured_until: NaiveDate,
    pub hazard_ratio: f64,
    pub window_years: f64,
}

/// The catalogue and fixed parameters of one dataset. Cheap to iterate many times.
#[derive(Debug, Clone)]
pub struct Generator {
    config: SynthConfig,
    catalogue: Catalogue,
    baselines: Vec<BaselineHazard>,
    faulty_lot: FaultyLot,
}

impl Generator {
    pub fn new(config: SynthConfig) -> Generator {
        let mut catalogue_rng = ChaCha8Rng::seed_from_u64(config.seed);
        // Stream 0 draws the catalogue, stream 1 the patients: the catalogue is then the same
        // whatever the dataset size.
        catalogue_rng.set_stream(0);
        let catalogue = Catalogue::generate(&mut catalogue_rng);
        let baselines = ProcedureKind::ALL
            .iter()
            .map(|&k| baseline_hazard(k))
            .collect();
        let faulty_lot = size_faulty_lot(&catalogue, config.n_procedures);
        Generator {
            config,
            catalogue,
            baselines,
            faulty_lot,
        }
    }

    pub fn config(&self) -> &SynthConfig {
        &self.config
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn faulty_lot(&self) -> &FaultyLot {
        &self.faulty_lot
    }

    pub fn baseline_hazards(&self) -> &[BaselineHazard] {
        &self.baselines
    }

    /// Patient histories until `n_procedures` procedures have been produced. An item is an
    /// error only when the 999 range of NHS numbers runs out (about 909,000 patients).
    pub fn patient_histories(&self) -> PatientHistories<'_> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        rng.set_stream(1);
        PatientHistories {
            generator: self,
            rng,
            n_procedures_done: 0,
            next_nhs_stem: FIRST_NHS_STEM,
            next_local_record_number: vec![1; self.catalogue.providers.len()],
            next_serial_number: 1,
            indication_rng: {
                // A stream of its own, so that indications leave every other draw as it was.
                let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
                rng.set_stream(2);
                rng
            },
            failed: false,
        }
    }
}

/// The streaming iterator over patient histories; see `Generator::patient_histories`.
#[derive(Debug, Clone)]
pub struct PatientHistories<'a> {
    generator: &'a Generator,
    rng: ChaCha8Rng,
    n_procedures_done: u64,
    next_nhs_stem: u32,
    next_local_record_number: Vec<u32>,
    next_serial_number: u64,
    indication_rng: ChaCha8Rng,
    failed: bool,
}

impl Iterator for PatientHistories<'_> {
    type Item = Result<PatientHistory, SynthError>;

    fn next(&mut self) -> Option<Self::Item> {
        let remaining = self.generator.config.n_procedures - self.n_procedures_done;
        if remaining == 0 || self.failed {
            return None;
        }
        let Some(nhs_number) = self.next_nhs_number() else {
            self.failed = true;
            return Some(Err(SynthError::NhsNumbersExhausted {
                n_procedures_done: self.n_procedures_done,
            }));
        };
        let history = self.generate_patient(nhs_number, remaining);
        self.n_procedures_done += history.procedures.len() as u64;
        Some(Ok(history))
    }
}

/// One planned procedure of a patient, before devices and outcomes are drawn.
struct PlannedProcedure {
    kind: ProcedureKind,
    day: i32,
    laterality: Laterality,
    provider_index: usize,
}

impl PatientHistories<'_> {
    fn next_nhs_number(&mut self) -> Option<NhsNumber> {
        while self.next_nhs_stem <= LAST_NHS_STEM {
            let stem = self.next_nhs_stem;
            self.next_nhs_stem += 1;
            if let Some(number) = NhsNumber::from_first_nine(stem) {
                return Some(number);
            }
        }
        None
    }

    fn generate_patient(&mut self, nhs_number: NhsNumber, remaining: u64) -> PatientHistory {
        let first_kind = sample_kind(&mut self.rng);
        let sex = sample_sex(&mut self.rng, first_kind);
        let first_day = sample_procedure_day(&mut self.rng);
        let age_at_first = sample_age(&mut self.rng, first_kind);
        let birth_day = first_day - (age_at_first * DAYS_PER_YEAR).round() as i32;
        let first_provider = self.sample_provider(first_kind);

        let family_name = pick(&mut self.rng, names::FAMILY_NAMES);
        let given_name = match sex {
            Sex::Male => pick(&mut self.rng, names::GIVEN_NAMES_MALE),
            _ => pick(&mut self.rng, names::GIVEN_NAMES_FEMALE),
        };
        let postcode = self.sample_postcode(first_provider);

        let death_day = self.sample_death_day(first_kind, sex, age_at_first, first_day);
        let end_of_procedures = (death_day - 1).min(day_number(LAST_PROCEDURE_DATE));

        let mut plan = vec![PlannedProcedure {
            kind: first_kind,
            day: first_day,
            laterality: self.sample_laterality(first_kind),
            provider_index: first_provider,
        }];
        self.plan_later_procedures(&mut plan, age_at_first, end_of_procedures);
        plan.sort_by_key(|p| p.day);
        plan.truncate(remaining.min(plan.len() as u64) as usize);

        let patient = PatientDetails {
            nhs_number: nhs_number.clone(),
            family_name: family_name.to_string(),
            given_name: given_name.to_string(),
            date_of_birth: date_from_day(birth_day),
            sex,
            postcode,
        };
        let mut procedures = Vec::with_capacity(plan.len());
        let mut removals: Vec<(i32, OutcomeRecord)> = Vec::new();
        for planned in &plan {
            let age_years = f64::from(planned.day - birth_day) / DAYS_PER_YEAR;
            let record = self.generate_procedure(&patient, planned);
            self.draw_revision(&record, planned, age_years, sex, death_day, &mut removals);
            procedures.push(record);
        }
        removals.sort_by_key(|(day, _)| *day);
        let mut outcomes: Vec<OutcomeRecord> = removals.into_iter().map(|(_, r)| r).collect();
        if death_day < day_number(CUTOFF_DATE) {
            outcomes.push(OutcomeRecord::Death {
                nhs_number,
                date: date_from_day(death_day),
            });
        }
        PatientHistory {
            procedures,
            outcomes,
        }
    }

    /// Second joints (the other hip years later), a knee after a hip, sequential bilateral
    /// cochlear implants and later pacemakers, when they fall before death and the end of
    /// the data.
    fn plan_later_procedures(
        &mut self,
        plan: &mut Vec<PlannedProcedure>,
        age_at_first: f64,
        end_of_procedures: i32,
    ) {
        let first_kind = plan[0].kind;
        let first_day = plan[0].day;
        let first_provider = plan[0].provider_index;
        let first_side = plan[0].laterality;
        let mut later: Vec<(ProcedureKind, i32, Laterality)> = Vec::new();
        match first_kind {
            ProcedureKind::Hip | ProcedureKind::Knee => {
                if self.rng.gen_bool(0.28) {
                    let gap = self.rng.gen_range(180..=2_900);
                    later.push((first_kind, first_day + gap, opposite(first_side)));
                }
                if self.rng.gen_bool(0.08) {
                    let other = if first_kind == ProcedureKind::Hip {
                        ProcedureKind::Knee
                    } else {
                        ProcedureKind::Hip
                    };
                    let gap = self.rng.gen_range(90..=3_650);
                    let side = self.sample_laterality(other);
                    later.push((other, first_day + gap, side));
                }
            }
            ProcedureKind::Cochlear => {
                let probability = if age_at_first < 18.0 { 0.35 } else { 0.10 };
                if self.rng.gen_bool(probability) {
                    let gap = self.rng.gen_range(60..=1_100);
                    later.push((first_kind, first_day + gap, opposite(first_side)));
                }
            }
            ProcedureKind::Breast | ProcedureKind::Pacemaker | ProcedureKind::Mesh => {}
        }
        // Conduction disease is common in old age: some older patients of every kind
        // later need a pacemaker.
        if first_kind != ProcedureKind::Pacemaker && age_at_first >= 60.0 && self.rng.gen_bool(0.05)
        {
            let gap = self.rng.gen_range(30..=3_650);
            later.push((
                ProcedureKind::Pacemaker,
                first_day + gap,
                Laterality::NotApplicable,
            ));
        }
        for (kind, day, laterality) in later {
            if day > end_of_procedures {
                continue;
            }
            // Most patients go back to the same trust; some have moved or been referred.
            let same_provider_possible = !self.generator.catalogue.consultants_by_provider
                [first_provider][kind.specialty().index()]
            .is_empty();
            let provider_index = if same_provider_possible && self.rng.gen_bool(0.85) {
                first_provider
            } else {
                self.sample_provider(kind)
            };
            plan.push(PlannedProcedure {
                kind,
                day,
                laterality,
                provider_index,
            });
        }
    }

    fn generate_procedure(
        &mut self,
        patient: &PatientDetails,
        planned: &PlannedProcedure,
    ) -> ProcedureRecord {
        let generator = self.generator;
        let catalogue = &generator.catalogue;
        let provider = &catalogue.providers[planned.provider_index];
        let consultants = &catalogue.consultants_by_provider[planned.provider_index]
            [planned.kind.specialty().index()];
        let consultant =
            &catalogue.consultants[consultants[self.rng.gen_range(0..consultants.len())]];
        let record_number = self.next_local_record_number[planned.provider_index];
        self.next_local_record_number[planned.provider_index] += 1;
        let local_record_id = format!("{}-{record_number:07}", provider.ods_code);
        let indication = {
            let mix = hazard::indications(planned.kind);
            let roll: f64 = self.indication_rng.r#gen();
            let mut cumulative = 0.0;
            mix.iter()
                .find(|i| {
                    cumulative += i.share;
                    roll < cumulative
                })
                .or(mix.last())
                .map(|i| i.code)
        };

        let (opcs4_code, model_indexes) = self.choose_devices(planned);
        let mut devices = Vec::with_capacity(model_indexes.len());
        let mut device_truth = Vec::with_capacity(model_indexes.len());
        for &model_index in &model_indexes {
            let (entry, truth) = self.generate_device(model_index, planned.day);
            devices.push(entry);
            device_truth.push(truth);
        }
        ProcedureRecord {
            patient: patient.clone(),
            procedure: ProcedureDetails {
                provider: provider.ods_code.clone(),
                consultant: consultant.gmc_number.clone(),
                procedure_date: date_from_day(planned.day),
                opcs4_code,
                opcs4_version: opcs4_version(planned.day),
                snomed_ct_id: None,
                laterality: planned.laterality,
                // Cannot fail: registry() returns fixed lower-case slugs.
                registry: RegistryCode::parse(planned.kind.registry())
                    .unwrap_or_else(|_| unreachable!()),
                local_record_id,
                indication,
            },
            devices,
            procedure_kind: planned.kind,
            device_truth,
        }
    }

    /// The OPCS-4 code and the device models of one procedure, in the order the devices are
    /// recorded (stem, cup, head, liner for a hip).
    fn choose_devices(&mut self, planned: &PlannedProcedure) -> (&'static str, Vec<u16>) {
        let generator = self.generator;
        let catalogue = &generator.catalogue;
        let rng = &mut self.rng;
        let pick_model = |rng: &mut ChaCha8Rng, device_type: DeviceType, maker: Option<usize>| {
            let candidates = &catalogue.models_by_type[device_type.index()];
            // Surgeons mostly use components from one manufacturer's system, so try a few
            // times for the same maker before accepting a mix-and-match construct.
            let mut chosen = candidates.sample(rng);
            if let Some(maker) = maker {
                for _ in 0..6 {
                    if catalogue.device_models[chosen].manufacturer_index == maker {
                        break;
                    }
                    chosen = candidates.sample(rng);
                }
            }
            chosen as u16
        };
        let maker_of =
            |index: u16| Some(catalogue.device_models[index as usize].manufacturer_index);
        match planned.kind {
            ProcedureKind::Hip => {
                let fixation: f64 = rng.r#gen();
                let (code, cemented_cup) = if fixation < 0.30 {
                    ("W37.1", true)
                } else if fixation < 0.65 {
                    ("W38.1", false)
                } else if fixation < 0.95 {
                    ("W93.1", false)
                } else {
                    ("W94.1", true)
                };
                let cup = pick_model(rng, DeviceType::HipCup, None);
                let stem = pick_model(rng, DeviceType::HipStem, maker_of(cup));
                let head = pick_model(rng, DeviceType::HipHead, maker_of(cup));
                // A cemented all-polyethylene cup is one piece; a press-fit shell takes a liner.
                let monobloc = cemented_cup && rng.gen_bool(0.8);
                let mut models = vec![stem, cup, head];
                if !monobloc {
                    models.push(pick_model(rng, DeviceType::HipLiner, maker_of(cup)));
                }
                (code, models)
            }
            ProcedureKind::Knee => {
                let fixation: f64 = rng.r#gen();
                let code = if fixation < 0.85 {
                    "W40.1"
                } else if fixation < 0.95 {
                    "W41.1"
                } else {
                    "W42.1"
                };
                let femoral = pick_model(rng, DeviceType::KneeFemoral, None);
                let tibial = pick_model(rng, DeviceType::KneeTibial, maker_of(femoral));
                let insert = pick_model(rng, DeviceType::KneeInsert, maker_of(femoral));
                (code, vec![femoral, tibial, insert])
            }
            ProcedureKind::Breast => {
                let implant = pick_model(rng, DeviceType::BreastImplant, None);
                let models = if planned.laterality == Laterality::Bilateral {
                    vec![implant, implant]
                } else {
                    vec![implant]
                };
                ("B30.1", models)
            }
            ProcedureKind::Cochlear => (
                "D24.1",
                vec![pick_model(rng, DeviceType::CochlearImplant, None)],
            ),
            ProcedureKind::Pacemaker => {
                let generator = pick_model(rng, DeviceType::Pacemaker, None);
                let lead = pick_model(rng, DeviceType::PacingLead, maker_of(generator));
                let dual_chamber = rng.gen_bool(0.65);
                let code = if rng.gen_bool(0.9) { "K60.1" } else { "K61.1" };
                let models = if dual_chamber {
                    vec![generator, lead, lead]
                } else {
                    vec![generator, lead]
                };
                (code, models)
            }
            ProcedureKind::Mesh => {
                let mesh = pick_model(rng, DeviceType::PelvicMesh, None);
                // The operation follows from the product: a tape for stress incontinence, a
                // mesh for prolapse repair.
                let product = catalogue.device_models[mesh as usize].model.as_str();
                let code = if product.contains("Retropubic Tape") {
                    "M53.3"
                } else if product.contains("Transobturator Tape") {
                    "M53.6"
                } else {
                    "P22.1"
                };
                (code, vec![mesh])
            }
        }
    }

    /// One device's label, how it was entered, and the truth about it.
    fn generate_device(
        &mut self,
        model_index: u16,
        implant_day: i32,
    ) -> (DeviceEntry, DeviceTruth) {
        let generator = self.generator;
        let model = &generator.catalogue.device_models[model_index as usize];
        let shelf_life_days = (f64::from(model.shelf_life_years) * DAYS_PER_YEAR) as i32;
        let (manufactured_day, expiry_day) = if self.rng.gen_bool(EXPIRED_AT_IMPLANT_PROBABILITY) {
            let expiry = implant_day - self.rng.gen_range(1..=180);
            (expiry - shelf_life_days, expiry)
        } else {
            let storage_days = self.rng.gen_range(14..=700.min(shelf_life_days - 30));
            let manufactured = implant_day - storage_days;
            (manufactured, manufactured + shelf_life_days)
        };
        let faulty_lot = &generator.faulty_lot;
        let in_faulty_lot = model_index as usize == faulty_lot.model_index
            && (day_number(faulty_lot.manufactured_from)
                ..day_number(faulty_lot.manufactured_until))
                .contains(&manufactured_day);
        let lot = if in_faulty_lot {
            faulty_lot.lot.clone()
        } else {
            lot_code(model, model_index as usize, date_from_day(manufactured_day))
        };
        let serial = if model.device_type.is_serialised() {
            let number = self.next_serial_number;
            self.next_serial_number += 1;
            Some(if model.manufacturer_index.is_multiple_of(2) {
                format!("{number:09}")
            } else {
                format!("SN{number:08}")
            })
        } else {
            None
        };
        let not_in_register = self.rng.gen_bool(NOT_IN_REGISTER_PROBABILITY);
        let gtin = if not_in_register {
            model.unregistered_variant_gtin.as_str()
        } else {
            model.udi_di.as_str()
        };
        let mut truth = DeviceTruth {
            model_index,
            in_faulty_lot,
            expired_at_implant: expiry_day < implant_day,
            not_in_register,
        };
        let manufactured = model
            .labels_manufacture_date
            .then(|| date_from_day(manufactured_day));
        let expiry = date_from_day(expiry_day);
        if self.rng.gen_bool(SCAN_PROBABILITY) {
            let roll: f64 = self.rng.r#gen();
            let form = if roll < 0.7 {
                ScanForm::DataMatrix
            } else if roll < 0.8 {
                ScanForm::Gs1_128
            } else {
                ScanForm::HumanReadable
            };
            let label = LabelData {
                gtin14: gtin,
                expiry: Some(expiry),
                manufactured,
                lot: Some(&lot),
                serial: serial.as_deref(),
            };
            let scan = encode_scan(&label, form);
            (DeviceEntry::Scan { scan }, truth)
        } else {
            // Hand entry sometimes misses the expiry date off the form.
            let expiry = self.rng.gen_bool(0.95).then_some(expiry);
            truth.expired_at_implant &= expiry.is_some();
            let entry = DeviceEntry::Manual {
                udi_di: gtin.to_string(),
                lot: Some(lot),
                serial,
                expiry,
                manufactured,
            };
            (entry, truth)
        }
    }

    /// Draws the first revision of the procedure's construct, if it happens before death and
    /// the cutoff, and pushes one removal per removed device.
    fn draw_revision(
        &mut self,
        record: &ProcedureRecord,
        planned: &PlannedProcedure,
        age_years: f64,
        sex: Sex,
        death_day: i32,
        removals: &mut Vec<(i32, OutcomeRecord)>,
    ) {
        let generator = self.generator;
        let catalogue = &generator.catalogue;
        let baseline = &generator.baselines[planned.kind.index()];
        let provider = &catalogue.providers[planned.provider_index];
        let models: Vec<&DeviceModel> = record
            .device_truth
            .iter()
            .map(|truth| &catalogue.device_models[truth.model_index as usize])
            .collect();

        // Frailties multiply across the distinct models in the construct; a bilateral pair of
        // one model counts once.
        let indication_effect = hazard::indications(planned.kind)
            .iter()
            .find(|i| Some(i.code) == record.procedure.indication)
            .map_or(1.0, |i| i.hazard_ratio);
        let mut multiplier = provider.hazard_multiplier
            * patient_multiplier(planned.kind, age_years, sex)
            * indication_effect;
        for (position, truth) in record.device_truth.iter().enumerate() {
            let seen_before = record.device_truth[..position]
                .iter()
                .any(|earlier| earlier.model_index == truth.model_index);
            if !seen_before {
                multiplier *= models[position].hazard_multiplier;
            }
        }
        let has_faulty_lot = record.device_truth.iter().any(|t| t.in_faulty_lot);
        let early_multiplier = if has_faulty_lot {
            FAULTY_LOT_HAZARD_RATIO
        } else {
            1.0
        };
        let revision_years = hazard::years_until_revision(
            &baseline.revision,
            multiplier,
            early_multiplier,
            FAULTY_LOT_WINDOW_YEARS,
            unit_exponential(&mut self.rng),
        );
        // Pacemaker generators also wear out: battery depletion competes with complications.
        let battery_years = baseline.battery_depletion.map(|battery| {
            let generator_model = models[0];
            battery.inverse_cumulative_hazard(
                unit_exponential(&mut self.rng) * generator_model.hazard_multiplier.recip(),
            )
        });
        let battery_first = battery_years.is_some_and(|b| b < revision_years);
        let event_years = battery_years.map_or(revision_years, |b| b.min(revision_years));
        // Clamped so that a practically infinite time cannot overflow the day arithmetic.
        let event_days = (event_years * DAYS_PER_YEAR).ceil().min(1.0e6) as i32;
        let event_day = planned.day + event_days.max(1);
        if event_day >= death_day || event_day >= day_number(CUTOFF_DATE) {
            return;
        }

        let in_early_window = event_years < FAULTY_LOT_WINDOW_YEARS;
        let (kind, reason, removed) = if battery_first {
            (RemovalKind::Revision, "battery depletion", vec![0])
        } else {
            let cause = self.sample_cause(record, &models, baseline, in_early_window);
            let cause_in_faulty_lot = record.device_truth[cause].in_faulty_lot && in_early_window;
            self.removal_set(record, &models, cause, cause_in_faulty_lot)
        };
        let revising_provider = if self.rng.gen_bool(0.8) {
            planned.provider_index
        } else {
            self.sample_provider(planned.kind)
        };
        let revising_ods = &catalogue.providers[revising_provider].ods_code;
        for device_index in removed {
            removals.push((
                event_day,
                OutcomeRecord::Removal {
                    kind,
                    provider: record.procedure.provider.clone(),
                    local_record_id: record.procedure.local_record_id.clone(),
                    device_index,
                    date: date_from_day(event_day),
                    reason,
                    revising_provider: revising_ods.clone(),
                },
            ));
        }
    }

    /// The device whose failure caused the revision, drawn in proportion to its share of the
    /// construct's hazard.
    fn sample_cause(
        &mut self,
        record: &ProcedureRecord,
        models: &[&DeviceModel],
        baseline: &BaselineHazard,
        in_early_window: bool,
    ) -> usize {
        let weights: Vec<f64> = models
            .iter()
            .enumerate()
            .map(|(i, model)| {
                let share = baseline
                    .component_share
                    .get(model.device_type.as_str())
                    .copied()
                    .unwrap_or(0.0);
                let lot = if record.device_truth[i].in_faulty_lot && in_early_window {
                    FAULTY_LOT_HAZARD_RATIO
                } else {
                    1.0
                };
                share * model.hazard_multiplier * lot
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut target = self.rng.r#gen::<f64>() * total;
        for (i, weight) in weights.iter().enumerate() {
            if target < *weight {
                return i;
            }
            target -= weight;
        }
        weights.len() - 1
    }

    /// What is removed with the failed device, and why, following common revision practice:
    /// a failed cup takes its liner and head with it, an infected joint comes out whole.
    fn removal_set(
        &mut self,
        record: &ProcedureRecord,
        models: &[&DeviceModel],
        cause: usize,
        cause_in_faulty_lot: bool,
    ) -> (RemovalKind, &'static str, Vec<usize>) {
        let rng = &mut self.rng;
        let all: Vec<usize> = (0..models.len()).collect();
        let of_types = |types: &[DeviceType]| -> Vec<usize> {
            (0..models.len())
                .filter(|&i| i == cause || types.contains(&models[i].device_type))
                .collect()
        };
        let cause_type = models[cause].device_type;
        let pick_reason = |rng: &mut ChaCha8Rng, reasons: &[&'static str]| pick(rng, reasons);
        match record.procedure_kind {
            ProcedureKind::Hip | ProcedureKind::Knee => {
                let full_revision = if record.procedure_kind == ProcedureKind::Hip {
                    0.2
                } else {
                    0.3
                };
                // A manufacturing fault breaks the component itself, never an infection.
                if !cause_in_faulty_lot && rng.gen_bool(full_revision) {
                    return (RemovalKind::Revision, "infection", all);
                }
                let (reasons, removed): (&[&'static str], Vec<usize>) = match cause_type {
                    DeviceType::HipStem => (
                        &["aseptic loosening", "periprosthetic fracture", "pain"],
                        of_types(&[DeviceType::HipHead]),
                    ),
                    DeviceType::HipCup => (
                        &[
                            "aseptic loosening",
                            "dislocation",
                            "adverse reaction to particulate debris",
                        ],
                        of_types(&[DeviceType::HipLiner, DeviceType::HipHead]),
                    ),
                    DeviceType::HipHead | DeviceType::HipLiner => (
                        &["dislocation", "implant wear"],
                        of_types(&[DeviceType::HipLiner, DeviceType::HipHead]),
                    ),
                    DeviceType::KneeFemoral | DeviceType::KneeTibial => (
                        &["aseptic loosening", "malalignment", "pain"],
                        of_types(&[DeviceType::KneeInsert]),
                    ),
                    _ => (&["instability", "implant wear"], of_types(&[])),
                };
                let reason = if cause_in_faulty_lot {
                    "implant fracture"
                } else {
                    pick_reason(rng, reasons)
                };
                (RemovalKind::Revision, reason, removed)
            }
            ProcedureKind::Breast => {
                let kind = if rng.gen_bool(0.75) {
                    RemovalKind::Revision
                } else {
                    RemovalKind::Explant
                };
                let reason = pick_reason(
                    rng,
                    &[
                        "capsular contracture",
                        "implant rupture",
                        "malposition",
                        "patient request",
                    ],
                );
                let removed = if models.len() > 1 && rng.gen_bool(0.5) {
                    all
                } else {
                    vec![cause]
                };
                (kind, reason, removed)
            }
            ProcedureKind::Cochlear => (
                RemovalKind::Revision,
                pick_reason(rng, &["device failure", "infection", "electrode migration"]),
                vec![cause],
            ),
            ProcedureKind::Pacemaker => {
                if rng.gen_bool(0.25) {
                    return (RemovalKind::Revision, "infection", all);
                }
                let reason = if cause_type == DeviceType::PacingLead {
                    "lead displacement"
                } else {
                    "generator malfunction"
                };
                (RemovalKind::Revision, reason, vec![cause])
            }
            ProcedureKind::Mesh => {
                let kind = if rng.gen_bool(0.85) {
                    RemovalKind::Explant
                } else {
                    RemovalKind::Revision
                };
                let reason = pick_reason(
                    rng,
                    &[
                        "mesh exposure",
                        "chronic pain",
                        "recurrent incontinence",
                        "urinary retention",
                    ],
                );
                (kind, reason, vec![cause])
            }
        }
    }

    fn sample_provider(&mut self, kind: ProcedureKind) -> usize {
        self.generator.catalogue.providers_by_specialty[kind.specialty().index()]
            .sample(&mut self.rng)
    }

    fn sample_laterality(&mut self, kind: ProcedureKind) -> Laterality {
        match kind {
            ProcedureKind::Hip | ProcedureKind::Knee | ProcedureKind::Cochlear => {
                if self.rng.gen_bool(0.5) {
                    Laterality::Left
                } else {
                    Laterality::Right
                }
            }
            // Augmentation is nearly always bilateral; reconstruction after mastectomy is
            // often one side.
            ProcedureKind::Breast => {
                let roll: f64 = self.rng.r#gen();
                if roll < 0.7 {
                    Laterality::Bilateral
                } else if roll < 0.85 {
                    Laterality::Left
                } else {
                    Laterality::Right
                }
            }
            ProcedureKind::Pacemaker | ProcedureKind::Mesh => Laterality::NotApplicable,
        }
    }

    /// A postcode near the provider (nine times in ten) or anywhere in England.
    fn sample_postcode(&mut self, provider_index: usize) -> Postcode {
        let areas = if self.rng.gen_bool(0.9) {
            self.generator.catalogue.providers[provider_index].postcode_areas
        } else {
            names::REGIONS[self.rng.gen_range(0..names::REGIONS.len())].1
        };
        let area = pick(&mut self.rng, areas);
        let district = self
            .rng
            .gen_range(1..=if area.len() == 1 { 30 } else { 20 });
        let sector = self.rng.gen_range(1..=9);
        let unit_first = names::POSTCODE_INWARD_LETTERS
            [self.rng.gen_range(0..names::POSTCODE_INWARD_LETTERS.len())]
            as char;
        let unit_second = names::POSTCODE_INWARD_LETTERS
            [self.rng.gen_range(0..names::POSTCODE_INWARD_LETTERS.len())]
            as char;
        let text = format!("{area}{district} {sector}{unit_first}{unit_second}");
        // Cannot fail: letters + digits, then digit + two letters, is the shape parse accepts.
        Postcode::parse(&text).unwrap_or_else(|_| unreachable!("{text}"))
    }

    /// The day of death, or a day after the cutoff when the patient outlives follow-up.
    fn sample_death_day(
        &mut self,
        kind: ProcedureKind,
        sex: Sex,
        age_years: f64,
        first_day: i32,
    ) -> i32 {
        let sex_multiplier = match sex {
            Sex::Male => MORTALITY.male_multiplier,
            _ => MORTALITY.female_multiplier,
        };
        // People needing a pacemaker are sicker than their age group; elective breast and
        // joint patients are a little healthier.
        let kind_multiplier = match kind {
            ProcedureKind::Pacemaker => 1.6,
            ProcedureKind::Hip | ProcedureKind::Knee | ProcedureKind::Mesh => 0.9,
            ProcedureKind::Breast => 0.8,
            ProcedureKind::Cochlear => 1.0,
        };
        let years = MORTALITY.years_until_death(
            age_years,
            sex_multiplier * kind_multiplier,
            unit_exponential(&mut self.rng),
        );
        let days = (years * DAYS_PER_YEAR).ceil().min(1.0e6) as i32;
        first_day + days.max(1)
    }
}

/// Age and sex effects on revision, mild as in the registries: younger and male patients
/// revise joints more often.
fn patient_multiplier(kind: ProcedureKind, age_years: f64, sex: Sex) -> f64 {
    match kind {
        ProcedureKind::Hip | ProcedureKind::Knee => {
            let sex_effect = if sex == Sex::Male { 1.15 } else { 1.0 };
            sex_effect * (-0.02 * (age_years - 70.0)).exp()
        }
        ProcedureKind::Breast => (-0.01 * (age_years - 40.0)).exp(),
        ProcedureKind::Cochlear | ProcedureKind::Pacemaker | ProcedureKind::Mesh => 1.0,
    }
}

/// Sizes the faulty lot's manufacturing window so that it holds about 200 implants at this
/// dataset size, between one week and two years of production.
fn size_faulty_lot(catalogue: &Catalogue, n_procedures: u64) -> FaultyLot {
    let model_index = catalogue.faulty_lot_model;
    let model = &catalogue.device_models[model_index];
    let kind = model.device_type.procedure_kind();
    let kind_share = KIND_MIX
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0.0, |(_, share)| *share);
    let model_share = catalogue.models_by_type[model.device_type.index()].share(model_index);
    let span_days = f64::from(day_number(LAST_PROCEDURE_DATE) - day_number(FIRST_PROCEDURE_DATE));
    // Second joints add about a third more knees than first procedures alone, and there
    // are about 0.88 patients per procedure.
    let implants_per_day = n_procedures as f64 * 0.88 * kind_share * 1.3 * model_share / span_days;
    let window_days = (FAULTY_LOT_TARGET_IMPLANTS / implants_per_day.max(1e-9)).clamp(7.0, 730.0);
    let manufactured_from = date(2018, 3, 5);
    let manufactured_until =
        date_from_day(day_number(manufactured_from) + window_days.ceil() as i32);
    FaultyLot {
        model_index,
        lot: lot_code(model, model_index, manufactured_from),
        manufactured_from,
        manufactured_until,
        hazard_ratio: FAULTY_LOT_HAZARD_RATIO,
        window_years: FAULTY_LOT_WINDOW_YEARS,
    }
}

/// A lot code in the manufacturer's house style, the same for every unit of one model made
/// in the same week (or month, for the third style).
fn lot_code(model: &DeviceModel, model_index: usize, manufactured: NaiveDate) -> String {
    let year = manufactured.year().rem_euclid(100);
    let week = manufactured.iso_week().week();
    match model.manufacturer_index % 3 {
        0 => format!("{year:02}{week:02}{:03}", model_index % 1000),
        1 => format!(
            "L{year:02}W{week:02}{}",
            (b'A' + (model_index % 26) as u8) as char
        ),
        _ => format!("B{model_index:03}-{year:02}{:02}", manufactured.month()),
    }
}

/// OPCS-4 version in force on the day: a new version each April.
fn opcs4_version(day: i32) -> &'static str {
    const CHANGES: [(NaiveDate, &str); 4] = [
        (date(2014, 4, 1), "4.7"),
        (date(2017, 4, 1), "4.8"),
        (date(2020, 4, 1), "4.9"),
        (date(2023, 4, 1), "4.10"),
    ];
    let mut version = "4.6";
    for (from, name) in CHANGES {
        if day >= day_number(from) {
            version = name;
        }
    }
    version
}

fn sample_kind(rng: &mut ChaCha8Rng) -> ProcedureKind {
    let mut target: f64 = rng.r#gen();
    for (kind, share) in KIND_MIX {
        if target < share {
            return kind;
        }
        target -= share;
    }
    ProcedureKind::Hip
}

fn sample_sex(rng: &mut ChaCha8Rng, kind: ProcedureKind) -> Sex {
    let female_share = match kind {
        ProcedureKind::Hip => 0.60,
        ProcedureKind::Knee => 0.57,
        ProcedureKind::Breast | ProcedureKind::Mesh => 1.0,
        ProcedureKind::Cochlear => 0.50,
        ProcedureKind::Pacemaker => 0.42,
    };
    if rng.gen_bool(female_share) {
        Sex::Female
    } else {
        Sex::Male
    }
}

/// Age at the procedure, in years, by kind of procedure.
fn sample_age(rng: &mut ChaCha8Rng, kind: ProcedureKind) -> f64 {
    match kind {
        ProcedureKind::Hip => clamped_normal(rng, 69.0, 10.0, 30.0, 97.0),
        ProcedureKind::Knee => clamped_normal(rng, 70.0, 9.0, 40.0, 95.0),
        ProcedureKind::Breast => clamped_normal(rng, 41.0, 10.0, 19.0, 75.0),
        ProcedureKind::Cochlear => {
            if rng.gen_bool(0.4) {
                rng.gen_range(1.0..12.0)
            } else {
                clamped_normal(rng, 58.0, 16.0, 18.0, 92.0)
            }
        }
        ProcedureKind::Pacemaker => clamped_normal(rng, 77.0, 9.0, 30.0, 100.0),
        ProcedureKind::Mesh => clamped_normal(rng, 55.0, 10.0, 30.0, 82.0),
    }
}

/// A procedure day between the first and last procedure dates, with volumes growing about
/// 4% a year and the 2020–21 pandemic dip in elective surgery.
fn sample_procedure_day(rng: &mut ChaCha8Rng) -> i32 {
    let first = day_number(FIRST_PROCEDURE_DATE);
    let last = day_number(LAST_PROCEDURE_DATE);
    loop {
        let day = rng.gen_range(first..=last);
        let date = date_from_day(day);
        let year = date.year();
        // Implants are elective or urgent lists: few at weekends, none on Christmas Day,
        // Boxing Day or New Year's Day.
        let closed = matches!((date.month(), date.day()), (12, 25) | (12, 26) | (1, 1));
        let weekend = date.weekday().number_from_monday() >= 6;
        if closed || (weekend && rng.gen_bool(0.9)) {
            continue;
        }
        let weight = (1.0 + 0.04 * f64::from(year - 2012)) / 1.6
            * match year {
                2020 => 0.55,
                2021 => 0.85,
                _ => 1.0,
            };
        if rng.r#gen::<f64>() < weight {
            return day;
        }
    }
}

fn opposite(laterality: Laterality) -> Laterality {
    match laterality {
        Laterality::Left => Laterality::Right,
        Laterality::Right => Laterality::Left,
        other => other,
    }
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())]
}

const fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(date) => date,
        None => panic!("invalid constant date"),
    }
}

pub(crate) fn day_number(date: NaiveDate) -> i32 {
    date.num_days_from_ce()
}

pub(crate) fn date_from_day(day: i32) -> NaiveDate {
    // Every day number used here is within a few centuries of today, well inside chrono's
    // range, so the fallback is never taken.
    NaiveDate::from_num_days_from_ce_opt(day).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcs4_version_follows_the_april_releases() {
        assert_eq!(opcs4_version(day_number(date(2013, 5, 1))), "4.6");
        assert_eq!(opcs4_version(day_number(date(2020, 3, 31))), "4.8");
        assert_eq!(opcs4_version(day_number(date(2020, 4, 1))), "4.9");
        assert_eq!(opcs4_version(day_number(date(2026, 1, 1))), "4.10");
    }

    #[test]
    fn histories_stop_at_exactly_the_requested_number_of_procedures() {
        let generator = Generator::new(SynthConfig::new(3, 1_234));
        let total: usize = generator
            .patient_histories()
            .map(|h| h.unwrap().procedures.len())
            .sum();
        assert_eq!(total, 1_234);
    }

    #[test]
    fn faulty_lot_is_sized_for_about_two_hundred_implants() {
        let generator = Generator::new(SynthConfig::new(11, 200_000));
        let in_lot: usize = generator
            .patient_histories()
            .map(|h| h.unwrap())
            .flat_map(|h| h.procedures)
            .map(|p| p.device_truth.iter().filter(|t| t.in_faulty_lot).count())
            .sum();
        assert!(
            (120..=300).contains(&in_lot),
            "{in_lot} implants in the faulty lot"
        );
    }
}
