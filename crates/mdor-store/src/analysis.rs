//! The surveillance analysis extract and the persisted signal state: what the store returns
//! for survival analysis and outlier detection, and what it keeps between surveillance runs.
//!
//! The extract is deliberately plain and pseudonymous: store ids, dates, age and sex, never an
//! NHS number, name, date of birth or postcode. Dimension tables (device models, providers,
//! consultants, lot codes) are returned once and referenced from each implant, so that an
//! extract of millions of implants stays compact.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use mdor_domain::Sex;
use mdor_domain::record::RemovalKind;

use crate::error::StoreError;
use crate::types::{DeviceModel, DeviceModelId, ImplantId, OrganisationId, ProcedureId};

/// A consultant's store id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ConsultantId(pub i64);

/// A surveillance run's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SurveillanceRunId(pub i64);

/// Which implants an extract holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnalysisScope {
    /// Every implant.
    All,
    /// Only implants of registered models of these device types (for one class's report).
    DeviceTypes(Vec<String>),
}

/// Everything surveillance reads, in one consistent snapshot.
#[derive(Debug, Clone, Default)]
pub struct AnalysisExtract {
    /// The whole device register (implants refer to it by id).
    pub device_models: Vec<DeviceModel>,
    /// Organisations that performed at least one procedure, with their ODS codes.
    pub providers: Vec<(OrganisationId, String)>,
    /// Consultants, with their GMC numbers (professional, not patient, identifiers).
    pub consultants: Vec<(ConsultantId, String)>,
    /// Distinct lot codes; `AnalysisImplant::lot` indexes this.
    pub lots: Vec<String>,
    /// Distinct indication codes; `AnalysisImplant::indication` indexes this.
    pub indications: Vec<String>,
    /// One row per implant in the scope, in implant id order.
    pub implants: Vec<AnalysisImplant>,
}

impl AnalysisExtract {
    /// The part of a whole-registry extract that `Store::analysis_extract` returns for
    /// `scope`: the scope's implants of registered models in implant order, lot codes
    /// re-indexed in first-seen order, and the dimension tables (and the few indication codes)
    /// whole. One read of everything
    /// restricted once per class is cheaper than one read per class, each of which scans
    /// every implant.
    pub fn restricted_to(&self, scope: &AnalysisScope) -> AnalysisExtract {
        let wanted_models: Vec<DeviceModelId> = match scope {
            AnalysisScope::All => Vec::new(),
            AnalysisScope::DeviceTypes(types) => self
                .device_models
                .iter()
                .filter(|m| types.contains(&m.device_type))
                .map(|m| m.id)
                .collect(),
        };
        let wanted = |implant: &AnalysisImplant| match scope {
            AnalysisScope::All => true,
            AnalysisScope::DeviceTypes(_) => implant
                .device_model
                .is_some_and(|m| wanted_models.contains(&m)),
        };
        let mut lots = Vec::new();
        let mut lot_map: HashMap<u32, u32> = HashMap::new();
        let implants = self
            .implants
            .iter()
            .filter(|i| wanted(i))
            .map(|implant| AnalysisImplant {
                lot: implant.lot.map(|old| {
                    *lot_map.entry(old).or_insert_with(|| {
                        lots.push(self.lots[old as usize].clone());
                        (lots.len() - 1) as u32
                    })
                }),
                ..implant.clone()
            })
            .collect();
        AnalysisExtract {
            device_models: self.device_models.clone(),
            providers: self.providers.clone(),
            consultants: self.consultants.clone(),
            lots,
            indications: self.indications.clone(),
            implants,
        }
    }
}

/// One implant as the analysis sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisImplant {
    pub implant: ImplantId,
    pub procedure: ProcedureId,
    /// The device's position in its procedure (0-based).
    pub position: i32,
    pub procedure_date: NaiveDate,
    /// `None` when the UDI-DI is not in the register.
    pub device_model: Option<DeviceModelId>,
    /// Index into `AnalysisExtract::lots`.
    pub lot: Option<u32>,
    pub provider: OrganisationId,
    pub consultant: ConsultantId,
    /// The procedure's indication: an index into `AnalysisExtract::indications`.
    pub indication: Option<u32>,
    /// Age in years at the procedure date (days / 365.25), counted from the 15th of the
    /// month of birth: the extract never opens the sealed date of birth.
    pub age_at_procedure: f64,
    pub sex: Sex,
    /// The implant's removal (each implant has at most one).
    pub removal: Option<(NaiveDate, RemovalKind)>,
    pub date_of_death: Option<NaiveDate>,
}

/// A signal as kept between surveillance runs; absent means the subject has never signalled.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredSignal {
    /// `maxsprt` or `cusum`.
    pub method: String,
    /// `device_model`, `lot`, `provider` or `consultant`.
    pub subject_kind: String,
    /// UDI-DI, `UDI-DI/lot`, ODS code or GMC number.
    pub subject: String,
    /// `signalled` or `cleared`.
    pub state: String,
    /// The data date on which the statistic first crossed its critical value.
    pub since: NaiveDate,
    pub observed: f64,
    pub expected: f64,
    pub statistic: f64,
    pub critical_value: f64,
    pub explanation: String,
    pub first_run: SurveillanceRunId,
    pub last_run: SurveillanceRunId,
}

/// The new or changed state of one signal, written by a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalUpdate {
    pub method: String,
    pub subject_kind: String,
    pub subject: String,
    pub state: String,
    pub since: NaiveDate,
    pub observed: f64,
    pub expected: f64,
    pub statistic: f64,
    pub critical_value: f64,
    pub explanation: String,
    /// Whether this update raises an alert (a new or renewed signal).
    pub raise_alert: bool,
}

/// One surveillance run with the signal changes it made; written in one transaction.
#[derive(Debug, Clone)]
pub struct NewSurveillanceRun {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The analysis date: follow-up is censored here.
    pub as_of: NaiveDate,
    pub n_implants: i64,
    /// The run's report as JSON, kept for audit.
    pub summary: String,
    pub signals: Vec<SignalUpdate>,
}

/// When the latest surveillance run finished and what it covered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurveillanceRunInfo {
    pub id: SurveillanceRunId,
    pub finished_at: DateTime<Utc>,
    pub as_of: NaiveDate,
    pub n_implants: i64,
}

/// An alert as stored: raised by one run for one signal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredAlert {
    pub id: i64,
    pub run: SurveillanceRunId,
    pub raised_at: DateTime<Utc>,
    pub method: String,
    pub subject_kind: String,
    pub subject: String,
    pub since: NaiveDate,
    pub observed: f64,
    pub expected: f64,
    pub statistic: f64,
    pub critical_value: f64,
    pub explanation: String,
}

/// An implant row: id, procedure_id, position, device_model_id, lot.
pub(crate) type ImplantRow = (i64, i64, i32, Option<i64>, Option<String>);

/// A procedure row: id, patient_id, provider_id, consultant_id, procedure_date, indication.
pub(crate) type ProcedureRow = (i64, i64, i64, i64, NaiveDate, Option<String>);

/// Raw rows as read by a backend, joined into an extract by `assemble`.
#[derive(Default)]
pub(crate) struct ExtractRows {
    pub device_models: Vec<DeviceModel>,
    pub providers: Vec<(i64, String)>,
    pub consultants: Vec<(i64, String)>,
    pub procedures: Vec<ProcedureRow>,
    /// id, birth_month_mid (the 15th of the month of birth: the date itself is sealed), sex,
    /// date_of_death.
    pub patients: Vec<(i64, NaiveDate, String, Option<NaiveDate>)>,
    pub implants: Vec<ImplantRow>,
    /// implant_id, removal_date, kind.
    pub removals: Vec<(i64, NaiveDate, String)>,
}

/// Joins the tables in memory: each is read once in id order, which both engines do with a
/// sequential scan, instead of one index lookup per implant for each joined table.
pub(crate) fn assemble(rows: ExtractRows) -> Result<AnalysisExtract, StoreError> {
    let ExtractRows {
        device_models,
        providers,
        consultants,
        procedures,
        patients,
        implants,
        removals,
    } = rows;
    let patient_index: HashMap<i64, usize> =
        patients.iter().enumerate().map(|(i, p)| (p.0, i)).collect();
    let mut sexes = Vec::with_capacity(patients.len());
    for (id, _, sex, _) in &patients {
        let sex = Sex::parse(sex)
            .map_err(|_| StoreError::Corrupt(format!("patient {id} has sex '{sex}'")))?;
        sexes.push(sex);
    }
    let procedure_index = IdIndex::new(procedures.iter().map(|p| p.0));
    // A handful of codes, so a linear search beats hashing each procedure's.
    let mut indications: Vec<String> = Vec::new();
    let mut procedure_indication = Vec::with_capacity(procedures.len());
    for p in &procedures {
        procedure_indication.push(p.5.as_deref().map(|code| {
            match indications.iter().position(|known| known == code) {
                Some(k) => k as u32,
                None => {
                    indications.push(code.to_string());
                    (indications.len() - 1) as u32
                }
            }
        }));
    }
    // Both are in implant id order, so each implant's removal is found by walking along.
    let mut parsed_removals = Vec::with_capacity(removals.len());
    for (implant, date, kind) in removals {
        let kind = RemovalKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("removal kind '{kind}'")))?;
        parsed_removals.push((implant, date, kind));
    }
    let mut next_removal = 0;
    let mut lots: Vec<String> = Vec::new();
    let mut lot_index: HashMap<String, u32> = HashMap::new();
    let mut out = Vec::with_capacity(implants.len());
    for (id, procedure_id, position, device_model, lot) in implants {
        let p = procedure_index
            .get(procedure_id)
            .ok_or_else(|| StoreError::Corrupt(format!("implant {id} has no procedure")))?;
        let (_, patient_id, provider, consultant, procedure_date, _) = procedures[p];
        let &q = patient_index.get(&patient_id).ok_or_else(|| {
            StoreError::Corrupt(format!("procedure {procedure_id} has no patient"))
        })?;
        let (_, date_of_birth, _, date_of_death) = &patients[q];
        let lot = lot.map(|code| match lot_index.get(&code) {
            Some(&k) => k,
            None => {
                let k = lots.len() as u32;
                lot_index.insert(code.clone(), k);
                lots.push(code);
                k
            }
        });
        out.push(AnalysisImplant {
            implant: ImplantId(id),
            procedure: ProcedureId(procedure_id),
            position,
            procedure_date,
            device_model: device_model.map(DeviceModelId),
            lot,
            provider: OrganisationId(provider),
            consultant: ConsultantId(consultant),
            indication: procedure_indication[p],
            age_at_procedure: (procedure_date - *date_of_birth).num_days() as f64 / 365.25,
            sex: sexes[q],
            removal: {
                while next_removal < parsed_removals.len() && parsed_removals[next_removal].0 < id {
                    next_removal += 1;
                }
                parsed_removals
                    .get(next_removal)
                    .filter(|r| r.0 == id)
                    .map(|r| (r.1, r.2))
            },
            date_of_death: *date_of_death,
        });
    }
    Ok(AnalysisExtract {
        device_models,
        providers: providers
            .into_iter()
            .map(|(id, ods)| (OrganisationId(id), ods))
            .collect(),
        consultants: consultants
            .into_iter()
            .map(|(id, gmc)| (ConsultantId(id), gmc))
            .collect(),
        lots,
        indications,
        implants: out,
    })
}

#[derive(sqlx::FromRow)]
pub(crate) struct SignalRow {
    pub method: String,
    pub subject_kind: String,
    pub subject: String,
    pub state: String,
    pub since: NaiveDate,
    pub observed: f64,
    pub expected: f64,
    pub statistic: f64,
    pub critical_value: f64,
    pub explanation: String,
    pub first_run_id: i64,
    pub last_run_id: i64,
}

impl From<SignalRow> for StoredSignal {
    fn from(row: SignalRow) -> Self {
        StoredSignal {
            method: row.method,
            subject_kind: row.subject_kind,
            subject: row.subject,
            state: row.state,
            since: row.since,
            observed: row.observed,
            expected: row.expected,
            statistic: row.statistic,
            critical_value: row.critical_value,
            explanation: row.explanation,
            first_run: SurveillanceRunId(row.first_run_id),
            last_run: SurveillanceRunId(row.last_run_id),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AlertRow {
    pub id: i64,
    pub run_id: i64,
    pub raised_at: DateTime<Utc>,
    pub method: String,
    pub subject_kind: String,
    pub subject: String,
    pub since: NaiveDate,
    pub observed: f64,
    pub expected: f64,
    pub statistic: f64,
    pub critical_value: f64,
    pub explanation: String,
}

impl From<AlertRow> for StoredAlert {
    fn from(row: AlertRow) -> Self {
        StoredAlert {
            id: row.id,
            run: SurveillanceRunId(row.run_id),
            raised_at: row.raised_at,
            method: row.method,
            subject_kind: row.subject_kind,
            subject: row.subject,
            since: row.since,
            observed: row.observed,
            expected: row.expected,
            statistic: row.statistic,
            critical_value: row.critical_value,
            explanation: row.explanation,
        }
    }
}

/// Positions of rows by id: a vector when ids are dense (as sequences and rowids make them),
/// a hash map otherwise.
enum IdIndex {
    Dense(Vec<u32>),
    Sparse(HashMap<i64, usize>),
}

impl IdIndex {
    fn new(ids: impl ExactSizeIterator<Item = i64> + Clone) -> IdIndex {
        let n = ids.len();
        let max = ids.clone().max().unwrap_or(0);
        let min = ids.clone().min().unwrap_or(0);
        if min >= 0 && (max as u64) <= 4 * n as u64 + 1024 && n < u32::MAX as usize {
            let mut positions = vec![u32::MAX; max as usize + 1];
            for (i, id) in ids.enumerate() {
                positions[id as usize] = i as u32;
            }
            IdIndex::Dense(positions)
        } else {
            IdIndex::Sparse(ids.enumerate().map(|(i, id)| (id, i)).collect())
        }
    }

    fn get(&self, id: i64) -> Option<usize> {
        match self {
            IdIndex::Dense(positions) => usize::try_from(id)
                .ok()
                .and_then(|id| positions.get(id))
                .filter(|&&p| p != u32::MAX)
                .map(|&p| p as usize),
            IdIndex::Sparse(map) => map.get(&id).copied(),
        }
    }
}
