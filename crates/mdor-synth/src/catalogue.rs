//! The fixed part of a synthetic dataset: device models, providers and consultants.
//!
//! The catalogue depends only on the seed, so datasets of different sizes from one seed share
//! the same register and organisations, and a small test dataset looks like a sample of a
//! large one.

use std::collections::HashSet;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use mdor_domain::register::RiskClass;
use mdor_domain::{GmcNumber, OdsCode, RegistryCode, UdiDi};

use crate::hazard::lognormal_frailty;
use crate::names;
use crate::scan::gtin14;

/// The kind of implant procedure; decides which device types go in, the OPCS-4 codes, the
/// specialty and the revision hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcedureKind {
    Hip,
    Knee,
    Breast,
    Cochlear,
    Pacemaker,
    Mesh,
}

impl ProcedureKind {
    pub const ALL: [ProcedureKind; 6] = [
        ProcedureKind::Hip,
        ProcedureKind::Knee,
        ProcedureKind::Breast,
        ProcedureKind::Cochlear,
        ProcedureKind::Pacemaker,
        ProcedureKind::Mesh,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProcedureKind::Hip => "hip",
            ProcedureKind::Knee => "knee",
            ProcedureKind::Breast => "breast",
            ProcedureKind::Cochlear => "cochlear",
            ProcedureKind::Pacemaker => "pacemaker",
            ProcedureKind::Mesh => "mesh",
        }
    }

    pub fn specialty(self) -> Specialty {
        match self {
            ProcedureKind::Hip | ProcedureKind::Knee => Specialty::Orthopaedics,
            ProcedureKind::Breast => Specialty::PlasticSurgery,
            ProcedureKind::Cochlear => Specialty::Ent,
            ProcedureKind::Pacemaker => Specialty::Cardiology,
            ProcedureKind::Mesh => Specialty::Urogynaecology,
        }
    }

    pub fn registry(self) -> &'static str {
        match self {
            ProcedureKind::Hip | ProcedureKind::Knee => "njr",
            ProcedureKind::Breast => "bcir",
            ProcedureKind::Cochlear => "nrhi",
            ProcedureKind::Pacemaker => "mdor_core",
            ProcedureKind::Mesh => "popsui",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            ProcedureKind::Hip => 0,
            ProcedureKind::Knee => 1,
            ProcedureKind::Breast => 2,
            ProcedureKind::Cochlear => 3,
            ProcedureKind::Pacemaker => 4,
            ProcedureKind::Mesh => 5,
        }
    }
}

/// The device types in the register, written as their slugs in `devices.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceType {
    HipStem,
    HipCup,
    HipHead,
    HipLiner,
    KneeFemoral,
    KneeTibial,
    KneeInsert,
    BreastImplant,
    CochlearImplant,
    Pacemaker,
    PacingLead,
    PelvicMesh,
}

impl DeviceType {
    pub const ALL: [DeviceType; 12] = [
        DeviceType::HipStem,
        DeviceType::HipCup,
        DeviceType::HipHead,
        DeviceType::HipLiner,
        DeviceType::KneeFemoral,
        DeviceType::KneeTibial,
        DeviceType::KneeInsert,
        DeviceType::BreastImplant,
        DeviceType::CochlearImplant,
        DeviceType::Pacemaker,
        DeviceType::PacingLead,
        DeviceType::PelvicMesh,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::HipStem => "hip_stem",
            DeviceType::HipCup => "hip_cup",
            DeviceType::HipHead => "hip_head",
            DeviceType::HipLiner => "hip_liner",
            DeviceType::KneeFemoral => "knee_femoral",
            DeviceType::KneeTibial => "knee_tibial",
            DeviceType::KneeInsert => "knee_insert",
            DeviceType::BreastImplant => "breast_implant",
            DeviceType::CochlearImplant => "cochlear_implant",
            DeviceType::Pacemaker => "pacemaker",
            DeviceType::PacingLead => "pacing_lead",
            DeviceType::PelvicMesh => "pelvic_mesh",
        }
    }

    pub fn procedure_kind(self) -> ProcedureKind {
        match self {
            DeviceType::HipStem
            | DeviceType::HipCup
            | DeviceType::HipHead
            | DeviceType::HipLiner => ProcedureKind::Hip,
            DeviceType::KneeFemoral | DeviceType::KneeTibial | DeviceType::KneeInsert => {
                ProcedureKind::Knee
            }
            DeviceType::BreastImplant => ProcedureKind::Breast,
            DeviceType::CochlearImplant => ProcedureKind::Cochlear,
            DeviceType::Pacemaker | DeviceType::PacingLead => ProcedureKind::Pacemaker,
            DeviceType::PelvicMesh => ProcedureKind::Mesh,
        }
    }

    /// Human words for brand names, e.g. `Hip Stem`.
    fn family_words(self) -> &'static str {
        match self {
            DeviceType::HipStem => "Hip Stem",
            DeviceType::HipCup => "Acetabular Cup",
            DeviceType::HipHead => "Femoral Head",
            DeviceType::HipLiner => "Acetabular Liner",
            DeviceType::KneeFemoral => "Femoral Component",
            DeviceType::KneeTibial => "Tibial Tray",
            DeviceType::KneeInsert => "Tibial Insert",
            DeviceType::BreastImplant => "Breast Implant",
            DeviceType::CochlearImplant => "Cochlear Implant",
            DeviceType::Pacemaker => "Pacemaker",
            DeviceType::PacingLead => "Pacing Lead",
            DeviceType::PelvicMesh => "Pelvic Mesh",
        }
    }

    /// How many models of this type the register holds.
    fn n_models(self) -> usize {
        match self {
            DeviceType::HipStem => 50,
            DeviceType::HipCup => 45,
            DeviceType::HipHead => 30,
            DeviceType::HipLiner => 35,
            DeviceType::KneeFemoral => 35,
            DeviceType::KneeTibial => 30,
            DeviceType::KneeInsert => 35,
            DeviceType::BreastImplant => 40,
            DeviceType::CochlearImplant => 12,
            DeviceType::Pacemaker => 30,
            DeviceType::PacingLead => 20,
            DeviceType::PelvicMesh => 18,
        }
    }

    /// Devices with their own serial number on the label: active implants and breast
    /// implants. Orthopaedic components and mesh are traced by lot.
    pub(crate) fn is_serialised(self) -> bool {
        matches!(
            self,
            DeviceType::BreastImplant
                | DeviceType::CochlearImplant
                | DeviceType::Pacemaker
                | DeviceType::PacingLead
        )
    }

    pub(crate) fn index(self) -> usize {
        // The discriminant is the position in `ALL`, which lists the variants in order.
        self as usize
    }
}

/// The clinical specialty of a consultant, written as its slug in `consultants.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Specialty {
    Orthopaedics,
    PlasticSurgery,
    Ent,
    Cardiology,
    Urogynaecology,
}

impl Specialty {
    pub const ALL: [Specialty; 5] = [
        Specialty::Orthopaedics,
        Specialty::PlasticSurgery,
        Specialty::Ent,
        Specialty::Cardiology,
        Specialty::Urogynaecology,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Specialty::Orthopaedics => "orthopaedics",
            Specialty::PlasticSurgery => "plastic_surgery",
            Specialty::Ent => "ent",
            Specialty::Cardiology => "cardiology",
            Specialty::Urogynaecology => "urogynaecology",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Specialty::Orthopaedics => 0,
            Specialty::PlasticSurgery => 1,
            Specialty::Ent => 2,
            Specialty::Cardiology => 3,
            Specialty::Urogynaecology => 4,
        }
    }

    /// Share of providers that offer the specialty, and how many consultants (at least,
    /// spread) each such provider has.
    fn provision(self) -> (f64, usize, usize) {
        match self {
            Specialty::Orthopaedics => (0.95, 3, 5),
            Specialty::PlasticSurgery => (0.40, 1, 3),
            Specialty::Ent => (0.15, 1, 2),
            Specialty::Cardiology => (0.80, 2, 3),
            Specialty::Urogynaecology => (0.60, 1, 2),
        }
    }
}

/// One device model in the register (one row of `devices.csv`), with the hidden parameters
/// the generator uses for it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceModel {
    pub udi_di: UdiDi,
    pub manufacturer: String,
    pub brand: String,
    pub model: String,
    pub device_type: DeviceType,
    pub risk_class: RiskClass,
    pub registry: RegistryCode,
    /// Hidden: a valid GTIN of an unregistered variant of this model (another pack size),
    /// used for the devices whose UDI-DI is deliberately missing from the register.
    pub unregistered_variant_gtin: String,
    /// Hidden: relative popularity among models of the same type.
    pub popularity: f64,
    /// Hidden: multiplier on the revision hazard of constructs containing this model.
    pub hazard_multiplier: f64,
    /// Hidden: years from manufacture to expiry printed on the label.
    pub shelf_life_years: u32,
    /// Hidden: whether the label carries a manufacture date (AI 11).
    pub labels_manufacture_date: bool,
    /// Hidden: index into the manufacturer table, for pairing stems with cups.
    pub manufacturer_index: usize,
}

/// One provider trust (one row of `providers.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub ods_code: OdsCode,
    pub name: String,
    pub region: &'static str,
    /// Hidden: postcode areas of the provider's region, for its patients' addresses.
    pub postcode_areas: &'static [&'static str],
    /// Hidden: relative volume of procedures.
    pub volume: f64,
    /// Hidden: multiplier on the revision hazard of all procedures done here.
    pub hazard_multiplier: f64,
}

/// One consultant (one row of `consultants.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct Consultant {
    pub gmc_number: GmcNumber,
    pub family_name: String,
    pub given_name: String,
    pub specialty: Specialty,
    /// Index into `Catalogue::providers`.
    pub provider_index: usize,
}

/// Device models, providers and consultants, plus the lookup tables the generator needs.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub device_models: Vec<DeviceModel>,
    pub providers: Vec<Provider>,
    pub consultants: Vec<Consultant>,
    /// Model indexes by `DeviceType::index()`, with cumulative popularity for sampling.
    pub(crate) models_by_type: Vec<WeightedIndexes>,
    /// Provider indexes offering each specialty (`Specialty::index()`), weighted by volume.
    pub(crate) providers_by_specialty: Vec<WeightedIndexes>,
    /// Consultant indexes by provider, then by specialty.
    pub(crate) consultants_by_provider: Vec<[Vec<usize>; 5]>,
    /// Index of the device model given three times its class's revision hazard.
    pub(crate) injected_device_model: usize,
    /// Index of the provider given 2.5 times the revision hazard.
    pub(crate) injected_provider: usize,
    /// Index of the device model one of whose lots is faulty.
    pub(crate) faulty_lot_model: usize,
}

/// Indexes into a table with cumulative weights, sampled by binary search.
#[derive(Debug, Clone, Default)]
pub(crate) struct WeightedIndexes {
    pub(crate) indexes: Vec<usize>,
    cumulative: Vec<f64>,
}

impl WeightedIndexes {
    fn push(&mut self, index: usize, weight: f64) {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        self.indexes.push(index);
        self.cumulative.push(total + weight);
    }

    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = rng.r#gen::<f64>() * total;
        let position = self.cumulative.partition_point(|&c| c <= target);
        self.indexes[position.min(self.indexes.len() - 1)]
    }

    /// Share of the total weight held by `index`.
    pub(crate) fn share(&self, index: usize) -> f64 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let mut previous = 0.0;
        for (&candidate, &cumulative) in self.indexes.iter().zip(&self.cumulative) {
            if candidate == index {
                return (cumulative - previous) / total;
            }
            previous = cumulative;
        }
        0.0
    }
}

/// Hazard ratio of the injected device model relative to its class.
pub const INJECTED_DEVICE_MODEL_HAZARD_RATIO: f64 = 3.0;
/// Hazard ratio of the injected provider.
pub const INJECTED_PROVIDER_HAZARD_RATIO: f64 = 2.5;
/// Spread (sigma of the log) of per-model frailty.
pub const MODEL_FRAILTY_SIGMA: f64 = 0.15;
/// Spread (sigma of the log) of per-provider frailty.
pub const PROVIDER_FRAILTY_SIGMA: f64 = 0.10;

const N_PROVIDERS: usize = 150;

impl Catalogue {
    pub(crate) fn generate(rng: &mut ChaCha8Rng) -> Catalogue {
        let device_models = generate_device_models(rng);
        let providers = generate_providers(rng);
        let offered = offered_specialties(rng, providers.len());
        let consultants = generate_consultants(rng, &offered);

        let mut models_by_type = vec![WeightedIndexes::default(); DeviceType::ALL.len()];
        for (index, model) in device_models.iter().enumerate() {
            models_by_type[model.device_type.index()].push(index, model.popularity);
        }
        let mut providers_by_specialty = vec![WeightedIndexes::default(); Specialty::ALL.len()];
        let mut consultants_by_provider: Vec<[Vec<usize>; 5]> =
            vec![Default::default(); providers.len()];
        for (index, consultant) in consultants.iter().enumerate() {
            consultants_by_provider[consultant.provider_index][consultant.specialty.index()]
                .push(index);
        }
        for (provider_index, provider) in providers.iter().enumerate() {
            for specialty in Specialty::ALL {
                if !consultants_by_provider[provider_index][specialty.index()].is_empty() {
                    providers_by_specialty[specialty.index()].push(provider_index, provider.volume);
                }
            }
        }

        let mut catalogue = Catalogue {
            device_models,
            providers,
            consultants,
            models_by_type,
            providers_by_specialty,
            consultants_by_provider,
            injected_device_model: 0,
            injected_provider: 0,
            faulty_lot_model: 0,
        };
        catalogue.inject_signals();
        catalogue
    }

    /// Chooses the injected device model, provider and faulty-lot model deterministically
    /// from popularity ranks, so that each has enough volume to be detectable: the
    /// third most used hip cup, the fifth busiest orthopaedic provider, the most used knee
    /// femoral component.
    fn inject_signals(&mut self) {
        let ranked_models = |device_type: DeviceType, models: &[DeviceModel]| {
            let mut indexes: Vec<usize> = (0..models.len())
                .filter(|&i| models[i].device_type == device_type)
                .collect();
            indexes.sort_by(|&a, &b| models[b].popularity.total_cmp(&models[a].popularity));
            indexes
        };
        let cups = ranked_models(DeviceType::HipCup, &self.device_models);
        self.injected_device_model = cups[2.min(cups.len() - 1)];
        self.device_models[self.injected_device_model].hazard_multiplier =
            INJECTED_DEVICE_MODEL_HAZARD_RATIO;

        let femorals = ranked_models(DeviceType::KneeFemoral, &self.device_models);
        self.faulty_lot_model = femorals[0];

        let orthopaedic = &self.providers_by_specialty[Specialty::Orthopaedics.index()];
        let mut ranked_providers = orthopaedic.indexes.clone();
        ranked_providers.sort_by(|&a, &b| {
            self.providers[b]
                .volume
                .total_cmp(&self.providers[a].volume)
        });
        self.injected_provider = ranked_providers[4.min(ranked_providers.len() - 1)];
        self.providers[self.injected_provider].hazard_multiplier = INJECTED_PROVIDER_HAZARD_RATIO;
    }

    pub fn injected_device_model(&self) -> &DeviceModel {
        &self.device_models[self.injected_device_model]
    }

    pub fn injected_provider(&self) -> &Provider {
        &self.providers[self.injected_provider]
    }

    pub fn faulty_lot_model(&self) -> &DeviceModel {
        &self.device_models[self.faulty_lot_model]
    }
}

/// About 30 fictional manufacturers, each making devices for one or two procedure kinds,
/// with two to four brands per device type and several models (sizes, variants) per brand.
fn generate_device_models(rng: &mut ChaCha8Rng) -> Vec<DeviceModel> {
    // Which manufacturers make which device types: orthopaedic companies make hips and
    // knees, cardiac companies pacemakers and leads, and so on.
    const MAKERS: &[(usize, &[DeviceType])] = &[
        (
            12,
            &[
                DeviceType::HipStem,
                DeviceType::HipCup,
                DeviceType::HipHead,
                DeviceType::HipLiner,
                DeviceType::KneeFemoral,
                DeviceType::KneeTibial,
                DeviceType::KneeInsert,
            ],
        ),
        (5, &[DeviceType::BreastImplant]),
        (3, &[DeviceType::CochlearImplant]),
        (6, &[DeviceType::Pacemaker, DeviceType::PacingLead]),
        (4, &[DeviceType::PelvicMesh]),
    ];
    const SUFFIXES: &[&str] = &[
        "Orthopaedics",
        "Aesthetics",
        "Hearing",
        "Cardiac Systems",
        "Surgical",
    ];
    let mut company_names: Vec<&str> = names::COMPANY_PREFIXES.to_vec();
    company_names.shuffle(rng);
    let mut brand_stems: Vec<&str> = names::BRAND_STEMS.to_vec();
    brand_stems.shuffle(rng);
    let mut next_brand_stem = 0usize;

    let mut manufacturers: Vec<(String, u32, &[DeviceType])> = Vec::new();
    for (group, &(count, types)) in MAKERS.iter().enumerate() {
        for _ in 0..count {
            let name = format!(
                "{} {}",
                company_names[manufacturers.len() % company_names.len()],
                SUFFIXES[group]
            );
            // GS1 UK company prefixes start 50; seven digits leave five for the item.
            let company_prefix =
                5_010_000 + 1_000 * manufacturers.len() as u32 + rng.gen_range(0..1000);
            manufacturers.push((name, company_prefix, types));
        }
    }

    let mut models = Vec::new();
    for device_type in DeviceType::ALL {
        let makers: Vec<usize> = (0..manufacturers.len())
            .filter(|&m| manufacturers[m].2.contains(&device_type))
            .collect();
        let n_models = device_type.n_models();
        // Models are dealt to makers round-robin and grouped into brands of one to four.
        let mut brand_for_maker: Vec<(String, usize)> = vec![(String::new(), 0); makers.len()];
        for model_number in 0..n_models {
            let maker_slot = model_number % makers.len();
            let maker = makers[maker_slot];
            let (brand, models_left) = &mut brand_for_maker[maker_slot];
            if *models_left == 0 {
                let stem = brand_stems[next_brand_stem % brand_stems.len()];
                let generation = next_brand_stem / brand_stems.len() + 1;
                next_brand_stem += 1;
                *brand = if generation > 1 {
                    format!("{stem} {generation} {}", device_type.family_words())
                } else {
                    format!("{stem} {}", device_type.family_words())
                };
                *models_left = rng.gen_range(1..=4);
            }
            *models_left -= 1;
            let (manufacturer_name, company_prefix, _) = &manufacturers[maker];
            let item_reference = 100 * device_type.index() as u32 + model_number as u32 + 1;
            let gtin = gtin14(*company_prefix, item_reference);
            // The item reference range 90000+ is never registered, so these variants are
            // guaranteed to be absent from devices.csv.
            let unregistered = gtin14(*company_prefix, 90_000 + item_reference);
            let model_name = model_name(rng, device_type, model_number);
            let risk_class = match device_type {
                // Older suburethral tapes kept their pre-2017 class IIb marking.
                DeviceType::PelvicMesh if model_number % 3 == 0 => RiskClass::IIb,
                _ => RiskClass::III,
            };
            models.push(DeviceModel {
                // Cannot fail: gtin14 appends the check digit that UdiDi::parse verifies.
                udi_di: UdiDi::parse(&gtin).unwrap_or_else(|_| unreachable!("{gtin}")),
                manufacturer: manufacturer_name.clone(),
                brand: brand.clone(),
                model: model_name,
                device_type,
                risk_class,
                // Cannot fail: every registry() slug is lower-case letters and underscores.
                registry: RegistryCode::parse(device_type.procedure_kind().registry())
                    .unwrap_or_else(|_| unreachable!()),
                unregistered_variant_gtin: unregistered,
                // Zipf-like popularity: a few models dominate, as in every registry.
                popularity: 1.0 / (rng.gen_range(1..=n_models) as f64).powf(1.1),
                hazard_multiplier: lognormal_frailty(rng, MODEL_FRAILTY_SIGMA),
                shelf_life_years: rng.gen_range(2..=5),
                labels_manufacture_date: rng.gen_bool(0.4),
                manufacturer_index: maker,
            });
        }
    }
    models
}

fn model_name(rng: &mut ChaCha8Rng, device_type: DeviceType, model_number: usize) -> String {
    let size = match device_type {
        DeviceType::HipStem => format!("Size {}", rng.gen_range(0..=12)),
        DeviceType::HipCup => format!("{} mm", 44 + 2 * rng.gen_range(0..=12)),
        DeviceType::HipHead => format!(
            "{} mm {}",
            [22, 28, 32, 36, 40][rng.gen_range(0..5)],
            ["-3.5", "+0", "+3.5", "+7"][rng.gen_range(0..4)]
        ),
        DeviceType::HipLiner => format!(
            "{} mm {}",
            [28, 32, 36][rng.gen_range(0..3)],
            ["XLPE", "UHMWPE", "Ceramic"][rng.gen_range(0..3)]
        ),
        DeviceType::KneeFemoral | DeviceType::KneeTibial => {
            format!("Size {}", rng.gen_range(1..=9))
        }
        DeviceType::KneeInsert => format!("{} mm", 9 + rng.gen_range(0..8)),
        DeviceType::BreastImplant => format!(
            "{} cc {}",
            150 + 25 * rng.gen_range(0..20),
            ["Round", "Anatomical"][rng.gen_range(0..2)]
        ),
        DeviceType::CochlearImplant => ["Slim Straight", "Contour", "Mid-Scala", "Lateral Wall"]
            [rng.gen_range(0..4)]
        .to_string(),
        DeviceType::Pacemaker => ["SR", "DR", "DR MRI", "SR MRI"][rng.gen_range(0..4)].to_string(),
        DeviceType::PacingLead => format!("{} cm", [45, 52, 58, 65][rng.gen_range(0..4)]),
        DeviceType::PelvicMesh => [
            "Retropubic Tape",
            "Transobturator Tape",
            "Prolapse Mesh",
            "Sacrocolpopexy Mesh",
        ][rng.gen_range(0..4)]
        .to_string(),
    };
    format!(
        "{}-{:03} {size}",
        device_type_code(device_type),
        model_number + 1
    )
}

fn device_type_code(device_type: DeviceType) -> &'static str {
    match device_type {
        DeviceType::HipStem => "HS",
        DeviceType::HipCup => "HC",
        DeviceType::HipHead => "HH",
        DeviceType::HipLiner => "HL",
        DeviceType::KneeFemoral => "KF",
        DeviceType::KneeTibial => "KT",
        DeviceType::KneeInsert => "KI",
        DeviceType::BreastImplant => "BI",
        DeviceType::CochlearImplant => "CI",
        DeviceType::Pacemaker => "PM",
        DeviceType::PacingLead => "PL",
        DeviceType::PelvicMesh => "PX",
    }
}

/// 150 providers with unique three-character ODS codes starting with R and unique names.
fn generate_providers(rng: &mut ChaCha8Rng) -> Vec<Provider> {
    let mut codes: Vec<String> = Vec::new();
    for second in b'A'..=b'Z' {
        for third in b"0123456789ABCDEFGHJKLMNPQRSTUVWXYZ" {
            codes.push(format!("R{}{}", second as char, *third as char));
        }
    }
    codes.shuffle(rng);
    codes.truncate(N_PROVIDERS);
    codes.sort();

    let mut places: Vec<String> = Vec::new();
    for prefix in names::PLACE_PREFIXES {
        for suffix in names::PLACE_SUFFIXES {
            places.push(format!("{prefix}{suffix}"));
        }
    }
    places.shuffle(rng);

    codes
        .into_iter()
        .enumerate()
        .map(|(index, code)| {
            let (region, postcode_areas) = names::REGIONS[rng.gen_range(0..names::REGIONS.len())];
            let pattern =
                names::TRUST_NAME_PATTERNS[rng.gen_range(0..names::TRUST_NAME_PATTERNS.len())];
            Provider {
                // Cannot fail: three ASCII letters and digits always make a valid ODS code.
                ods_code: OdsCode::parse(&code).unwrap_or_else(|_| unreachable!("{code}")),
                name: format!("{} {pattern}", places[index]),
                region,
                postcode_areas,
                // Provider sizes vary about tenfold, as trusts do.
                volume: lognormal_frailty(rng, 0.6),
                hazard_multiplier: lognormal_frailty(rng, PROVIDER_FRAILTY_SIGMA),
            }
        })
        .collect()
}

/// For each provider, how many consultants it has in each specialty (0 when not offered).
fn offered_specialties(rng: &mut ChaCha8Rng, n_providers: usize) -> Vec<[usize; 5]> {
    let mut offered = vec![[0usize; 5]; n_providers];
    for specialty in Specialty::ALL {
        let (share, at_least, spread) = specialty.provision();
        for counts in offered.iter_mut() {
            if rng.gen_bool(share) {
                counts[specialty.index()] = at_least + rng.gen_range(0..=spread);
            }
        }
        // Every specialty needs somewhere to happen, whatever the draws.
        if offered.iter().all(|counts| counts[specialty.index()] == 0) {
            offered[0][specialty.index()] = at_least;
        }
    }
    offered
}

fn generate_consultants(rng: &mut ChaCha8Rng, offered: &[[usize; 5]]) -> Vec<Consultant> {
    let mut used_gmc_numbers = HashSet::new();
    let mut consultants = Vec::new();
    for (provider_index, counts) in offered.iter().enumerate() {
        for specialty in Specialty::ALL {
            for _ in 0..counts[specialty.index()] {
                let gmc = loop {
                    let candidate: u32 = rng.gen_range(2_000_000..8_000_000);
                    if used_gmc_numbers.insert(candidate) {
                        break candidate;
                    }
                };
                let gmc = format!("{gmc:07}");
                consultants.push(Consultant {
                    // Cannot fail: seven digits, never all zeros.
                    gmc_number: GmcNumber::parse(&gmc).unwrap_or_else(|_| unreachable!("{gmc}")),
                    family_name: names::FAMILY_NAMES[rng.gen_range(0..names::FAMILY_NAMES.len())]
                        .to_string(),
                    given_name: names::CONSULTANT_GIVEN_NAMES
                        [rng.gen_range(0..names::CONSULTANT_GIVEN_NAMES.len())]
                    .to_string(),
                    specialty,
                    provider_index,
                });
            }
        }
    }
    consultants
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn catalogue() -> Catalogue {
        Catalogue::generate(&mut ChaCha8Rng::seed_from_u64(7))
    }

    #[test]
    fn register_has_a_few_hundred_models_from_about_thirty_manufacturers() {
        let catalogue = catalogue();
        assert!((300..=400).contains(&catalogue.device_models.len()));
        let manufacturers: HashSet<&str> = catalogue
            .device_models
            .iter()
            .map(|m| m.manufacturer.as_str())
            .collect();
        assert_eq!(manufacturers.len(), 30);
        let udis: HashSet<&str> = catalogue
            .device_models
            .iter()
            .map(|m| m.udi_di.as_str())
            .collect();
        assert_eq!(udis.len(), catalogue.device_models.len());
        for model in &catalogue.device_models {
            assert!(!udis.contains(model.unregistered_variant_gtin.as_str()));
            assert!(UdiDi::parse(&model.unregistered_variant_gtin).is_ok());
            assert!(model.udi_di.as_str().starts_with("050"));
        }
    }

    #[test]
    fn providers_and_consultants_are_unique_and_every_specialty_is_offered() {
        let catalogue = catalogue();
        assert_eq!(catalogue.providers.len(), N_PROVIDERS);
        let codes: HashSet<&str> = catalogue
            .providers
            .iter()
            .map(|p| p.ods_code.as_str())
            .collect();
        assert_eq!(codes.len(), N_PROVIDERS);
        let names: HashSet<&str> = catalogue
            .providers
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names.len(), N_PROVIDERS);
        assert!((1_200..=1_900).contains(&catalogue.consultants.len()));
        let gmcs: HashSet<&str> = catalogue
            .consultants
            .iter()
            .map(|c| c.gmc_number.as_str())
            .collect();
        assert_eq!(gmcs.len(), catalogue.consultants.len());
        for specialty in Specialty::ALL {
            assert!(
                !catalogue.providers_by_specialty[specialty.index()]
                    .indexes
                    .is_empty()
            );
        }
    }

    #[test]
    fn device_type_index_is_the_position_in_all() {
        for (position, device_type) in DeviceType::ALL.iter().enumerate() {
            assert_eq!(device_type.index(), position);
        }
    }

    #[test]
    fn injected_signals_point_at_the_intended_kinds_of_thing() {
        let catalogue = catalogue();
        assert_eq!(
            catalogue.injected_device_model().device_type,
            DeviceType::HipCup
        );
        assert_eq!(catalogue.injected_device_model().hazard_multiplier, 3.0);
        assert_eq!(
            catalogue.faulty_lot_model().device_type,
            DeviceType::KneeFemoral
        );
        assert_eq!(catalogue.injected_provider().hazard_multiplier, 2.5);
    }
}
