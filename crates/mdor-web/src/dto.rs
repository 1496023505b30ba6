//! The JSON shapes of the API: request bodies with their conversion to domain types, and
//! response views. The bulk loader reads the same `ProcedureBody` from NDJSON, so that a file
//! line and an API call are one format.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use mdor_domain::record::{
    EntryType, FieldError, ImplantedDevice, LocalRecordId, Patient, PersonName, Procedure,
    RemovalKind, RemovalReason, Submission,
};
use mdor_domain::udi::{ProductionIdentifiers, UdiDi, parse_scan};
use mdor_domain::{
    GmcNumber, IdentifierError, Indication, Laterality, NhsNumber, OdsCode, Opcs4Code, Postcode,
    RegistryCode, Sex, SnomedCtId,
};
use mdor_service::{DeviceModel, ProcedureRecord, RecallRow, StoredImplant, StoredRemoval};

/// A procedure with its patient and devices, as submitted by a provider.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcedureBody {
    pub patient: PatientBody,
    pub procedure: ProcedureFields,
    /// Each device either as a raw barcode scan or as fields typed from the label.
    pub devices: Vec<DeviceBody>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientBody {
    /// Ten digits, spaces or hyphens allowed; modulus-11 checked.
    #[schema(example = "9990000018")]
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    /// `YYYY-MM-DD`.
    #[schema(example = "1950-03-02")]
    pub date_of_birth: String,
    /// `male`, `female`, `indeterminate` or `not_known`.
    pub sex: String,
    pub postcode: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcedureFields {
    /// ODS code of the provider; must be the token's own organisation.
    #[schema(example = "RA1")]
    pub provider: String,
    /// GMC number of the responsible consultant.
    #[schema(example = "1234567")]
    pub consultant: String,
    #[schema(example = "2024-06-01")]
    pub procedure_date: String,
    #[schema(example = "W37.1")]
    pub opcs4_code: Option<String>,
    /// Defaults to 4.10.
    pub opcs4_version: Option<String>,
    pub snomed_ct_id: Option<String>,
    /// `left`, `right`, `bilateral` or `not_applicable`.
    pub laterality: String,
    #[schema(example = "njr")]
    pub registry: String,
    /// The provider's own record id; unique per provider.
    pub local_record_id: String,
    /// Why the procedure was done, as a lower-case code (`osteoarthritis`, `fracture`,
    /// `reconstructive`); survivorship adjusts hazard ratios for it.
    #[schema(example = "osteoarthritis")]
    pub indication: Option<String>,
}

/// Give `scan` for a barcode entry, or `udi_di` with the production identifiers for a manual
/// entry, not both.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    /// The raw scan exactly as the scanner sent it (GS1 or HIBCC, any supported form).
    pub scan: Option<String>,
    pub udi_di: Option<String>,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<String>,
    pub manufactured: Option<String>,
}

impl ProcedureBody {
    /// Parses every field into domain types and checks the submission's rules, reporting all
    /// problems at once.
    pub fn into_submission(self, today: NaiveDate) -> Result<Submission, Vec<FieldError>> {
        let mut errors = Vec::new();
        let patient = self.patient.into_patient(&mut errors);
        let procedure = self.procedure.into_procedure(&mut errors);
        let devices: Vec<_> = self
            .devices
            .into_iter()
            .enumerate()
            .filter_map(|(i, d)| d.into_device(i, &mut errors))
            .collect();
        match (patient, procedure) {
            (Some(patient), Some(procedure)) if errors.is_empty() => {
                Submission::new(patient, procedure, devices, today)
            }
            _ => Err(errors),
        }
    }
}

impl PatientBody {
    fn into_patient(self, errors: &mut Vec<FieldError>) -> Option<Patient> {
        let nhs_number = ident(
            NhsNumber::parse(&self.nhs_number),
            "patient.nhs_number",
            errors,
        );
        let family_name = PersonName::parse(&self.family_name, "patient.family_name")
            .map_err(|e| errors.push(e))
            .ok();
        let given_name = PersonName::parse(&self.given_name, "patient.given_name")
            .map_err(|e| errors.push(e))
            .ok();
        let date_of_birth = date(&self.date_of_birth, "patient.date_of_birth", errors);
        let sex = ident(Sex::parse(&self.sex), "patient.sex", errors);
        let postcode = match self
            .postcode
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            Some(p) => Some(ident(Postcode::parse(p), "patient.postcode", errors)?),
            None => None,
        };
        Some(Patient {
            nhs_number: nhs_number?,
            family_name: family_name?,
            given_name: given_name?,
            date_of_birth: date_of_birth?,
            sex: sex?,
            postcode,
        })
    }
}

impl ProcedureFields {
    fn into_procedure(self, errors: &mut Vec<FieldError>) -> Option<Procedure> {
        let provider = ident(OdsCode::parse(&self.provider), "procedure.provider", errors);
        let consultant = ident(
            GmcNumber::parse(&self.consultant),
            "procedure.consultant",
            errors,
        );
        let procedure_date = date(&self.procedure_date, "procedure.procedure_date", errors);
        let version = self
            .opcs4_version
            .as_deref()
            .unwrap_or(Opcs4Code::DEFAULT_VERSION);
        let opcs4 = self.opcs4_code.as_deref().map(|code| {
            ident(
                Opcs4Code::parse(code, version),
                "procedure.opcs4_code",
                errors,
            )
        });
        let snomed = self
            .snomed_ct_id
            .as_deref()
            .map(|id| ident(SnomedCtId::parse(id), "procedure.snomed_ct_id", errors));
        let laterality = ident(
            Laterality::parse(&self.laterality),
            "procedure.laterality",
            errors,
        );
        let registry = ident(
            RegistryCode::parse(&self.registry),
            "procedure.registry",
            errors,
        );
        let local_record_id =
            LocalRecordId::parse(&self.local_record_id, "procedure.local_record_id")
                .map_err(|e| errors.push(e))
                .ok();
        let indication = match self
            .indication
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            Some(i) => Some(ident(Indication::parse(i), "procedure.indication", errors)?),
            None => None,
        };
        Some(Procedure {
            provider: provider?,
            consultant: consultant?,
            procedure_date: procedure_date?,
            opcs4: opcs4.flatten(),
            snomed: snomed.flatten(),
            laterality: laterality?,
            registry: registry?,
            local_record_id: local_record_id?,
            indication,
        })
    }
}

impl DeviceBody {
    fn into_device(self, index: usize, errors: &mut Vec<FieldError>) -> Option<ImplantedDevice> {
        let path = |field: &str| format!("devices[{index}].{field}");
        let manual_given = self.udi_di.is_some()
            || self.lot.is_some()
            || self.serial.is_some()
            || self.expiry.is_some()
            || self.manufactured.is_some();
        match (self.scan, manual_given) {
            (Some(_), true) => {
                errors.push(FieldError::new(
                    format!("devices[{index}]"),
                    "scan_and_fields",
                    "give either scan or udi_di with its fields, not both",
                ));
                None
            }
            (Some(scan), false) => match parse_scan(&scan) {
                Ok(parsed) => Some(ImplantedDevice {
                    udi_di: parsed.di,
                    production: parsed.production,
                    raw_scan: Some(scan),
                    entry_type: EntryType::Barcode,
                }),
                Err(e) => {
                    errors.push(FieldError::new(path("scan"), "invalid_udi", e.to_string()));
                    None
                }
            },
            (None, _) => {
                let Some(udi) = self.udi_di else {
                    errors.push(FieldError::new(
                        path("udi_di"),
                        "required",
                        "give scan or udi_di",
                    ));
                    return None;
                };
                let udi_di = UdiDi::parse(&udi)
                    .map_err(|e| {
                        errors.push(FieldError::new(
                            path("udi_di"),
                            "invalid_udi",
                            e.to_string(),
                        ))
                    })
                    .ok();
                let text = |value: Option<String>, field: &str, errors: &mut Vec<FieldError>| {
                    let value = value
                        .map(|v| v.trim().to_string())
                        .filter(|v| !v.is_empty())?;
                    if value.len() > 20 || value.chars().any(|c| c.is_control()) {
                        errors.push(FieldError::new(
                            path(field),
                            "invalid_text",
                            format!("{field} must be at most 20 printable characters"),
                        ));
                    }
                    Some(value)
                };
                let lot = text(self.lot, "lot", errors);
                let serial = text(self.serial, "serial", errors);
                let expiry = self
                    .expiry
                    .as_deref()
                    .and_then(|d| date(d, &path("expiry"), errors));
                let manufactured = self
                    .manufactured
                    .as_deref()
                    .and_then(|d| date(d, &path("manufactured"), errors));
                Some(ImplantedDevice {
                    udi_di: udi_di?,
                    production: ProductionIdentifiers {
                        lot,
                        serial,
                        expiry,
                        manufactured,
                    },
                    raw_scan: None,
                    entry_type: EntryType::Manual,
                })
            }
        }
    }
}

/// Records a field's identifier error with the code every route uses for it
/// (`invalid_check_digit` or `invalid_format`).
pub(crate) fn ident<T>(
    result: Result<T, IdentifierError>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    result
        .map_err(|e| {
            let code = if e.problem.contains("check digit") {
                "invalid_check_digit"
            } else {
                "invalid_format"
            };
            errors.push(FieldError::new(
                field,
                code,
                format!("{field} {}", e.problem),
            ));
        })
        .ok()
}

/// Parses a `YYYY-MM-DD` date, recording an error naming `field` when it is not one.
pub fn date(input: &str, field: &str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(input.trim(), "%Y-%m-%d")
        .map_err(|_| {
            errors.push(FieldError::new(
                field,
                "invalid_date",
                format!("{field} must be a real date written YYYY-MM-DD"),
            ))
        })
        .ok()
}

/// A revision or explant report.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemovalBody {
    /// The patient's NHS number: proves the reporting provider knows whose implant this is.
    pub nhs_number: String,
    /// `revision` or `explant`.
    pub kind: String,
    pub removal_date: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeathBody {
    pub nhs_number: String,
    pub date_of_death: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemovalCreated {
    pub removal_id: i64,
    pub implant_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeathRecorded {
    pub date_of_death: NaiveDate,
}

/// A stored procedure as returned by the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcedureView {
    pub id: i64,
    pub provider: String,
    pub consultant: String,
    pub procedure_date: NaiveDate,
    pub opcs4_code: Option<String>,
    pub opcs4_version: Option<String>,
    pub snomed_ct_id: Option<String>,
    pub laterality: String,
    pub registry: String,
    pub local_record_id: String,
    pub indication: Option<String>,
    pub created_at: DateTime<Utc>,
    pub patient: PatientView,
    pub implants: Vec<ImplantView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatientView {
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: NaiveDate,
    pub sex: String,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImplantView {
    pub id: i64,
    pub position: i64,
    pub udi_di: String,
    /// False when the UDI-DI is not in the device register (flagged for follow-up).
    pub in_register: bool,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub manufactured: Option<NaiveDate>,
    pub raw_scan: Option<String>,
    /// `barcode` or `manual`.
    pub entry_type: String,
    /// Open follow-up flags: `expired_at_implant`, `not_in_register`.
    pub follow_up_flags: Vec<String>,
    pub removal: Option<RemovalView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemovalView {
    pub id: i64,
    pub kind: String,
    pub removal_date: NaiveDate,
    pub reason: Option<String>,
    pub revising_provider: String,
}

impl From<ProcedureRecord> for ProcedureView {
    fn from(r: ProcedureRecord) -> Self {
        ProcedureView {
            id: r.id.0,
            provider: r.provider_ods,
            consultant: r.consultant_gmc,
            procedure_date: r.procedure_date,
            opcs4_code: r.opcs4_code,
            opcs4_version: r.opcs4_version,
            snomed_ct_id: r.snomed_ct_id.map(|id| id.to_string()),
            laterality: r.laterality,
            registry: r.registry,
            local_record_id: r.local_record_id,
            indication: r.indication,
            created_at: r.created_at,
            patient: PatientView {
                nhs_number: r.nhs_number,
                family_name: r.family_name,
                given_name: r.given_name,
                date_of_birth: r.date_of_birth,
                sex: r.sex,
                postcode: r.postcode,
                date_of_death: r.date_of_death,
            },
            implants: r.implants.into_iter().map(ImplantView::from).collect(),
        }
    }
}

impl From<StoredImplant> for ImplantView {
    fn from(i: StoredImplant) -> Self {
        ImplantView {
            id: i.id.0,
            position: i.position,
            udi_di: i.udi_di,
            in_register: i.device_model.is_some(),
            lot: i.lot,
            serial: i.serial,
            expiry: i.expiry,
            manufactured: i.manufactured,
            raw_scan: i.raw_scan,
            entry_type: i.entry_type,
            follow_up_flags: i.flags,
            removal: i.removal.map(RemovalView::from),
        }
    }
}

impl From<StoredRemoval> for RemovalView {
    fn from(r: StoredRemoval) -> Self {
        RemovalView {
            id: r.id.0,
            kind: r.kind,
            removal_date: r.removal_date,
            reason: r.reason,
            revising_provider: r.revising_provider,
        }
    }
}

impl RemovalBody {
    /// Parses the body; the implant id comes from the path.
    pub fn parse(
        self,
    ) -> Result<(NhsNumber, RemovalKind, NaiveDate, Option<RemovalReason>), Vec<FieldError>> {
        let mut errors = Vec::new();
        let nhs = ident(
            NhsNumber::parse(&self.nhs_number),
            "nhs_number",
            &mut errors,
        );
        let kind = RemovalKind::parse(&self.kind);
        if kind.is_none() {
            errors.push(FieldError::new(
                "kind",
                "invalid_kind",
                "kind must be revision or explant",
            ));
        }
        let removal_date = date(&self.removal_date, "removal_date", &mut errors);
        let reason = match self.reason.as_deref() {
            Some(r) => RemovalReason::parse(r).map_err(|e| errors.push(e)).ok(),
            None => None,
        };
        match (nhs, kind, removal_date) {
            (Some(nhs), Some(kind), Some(date)) if errors.is_empty() => {
                Ok((nhs, kind, date, reason))
            }
            _ => Err(errors),
        }
    }
}

/// A device register entry to add or update (the register CSV's columns).
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterEntryBody {
    /// GTIN or HIBCC primary identifier.
    pub udi_di: String,
    pub manufacturer: String,
    pub brand: String,
    pub model: String,
    /// e.g. `hip_cup`, `breast_implant`.
    pub device_type: String,
    /// `III`, `IIb` or `IIa`.
    pub risk_class: String,
    /// e.g. `njr`, `bcir`.
    pub registry: String,
}

/// A device register entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub udi_di: String,
    /// `gs1` or `hibcc`.
    pub issuer: String,
    pub manufacturer: String,
    pub brand: String,
    pub model: String,
    pub device_type: String,
    /// `III`, `IIb` or `IIa`.
    pub risk_class: String,
    pub registry: String,
}

impl From<DeviceModel> for DeviceView {
    fn from(d: DeviceModel) -> Self {
        DeviceView {
            udi_di: d.udi_di,
            issuer: d.issuer,
            manufacturer: d.manufacturer,
            brand: d.brand,
            model: d.model,
            device_type: d.device_type,
            risk_class: d.risk_class,
            registry: d.registry,
        }
    }
}

/// One page of a recall.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecallPage {
    pub implants: Vec<RecallImplant>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecallImplant {
    pub implant_id: i64,
    pub procedure_id: i64,
    pub procedure_date: NaiveDate,
    pub udi_di: String,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<NaiveDate>,
    pub nhs_number: String,
    pub family_name: String,
    pub given_name: String,
    pub date_of_birth: NaiveDate,
    pub postcode: Option<String>,
    pub date_of_death: Option<NaiveDate>,
    pub provider: String,
    pub provider_name: String,
    /// Set when the implant has already been revised or explanted.
    pub removal_date: Option<NaiveDate>,
}

impl From<RecallRow> for RecallImplant {
    fn from(r: RecallRow) -> Self {
        RecallImplant {
            implant_id: r.implant_id.0,
            procedure_id: r.procedure_id.0,
            procedure_date: r.procedure_date,
            udi_di: r.udi_di,
            lot: r.lot,
            serial: r.serial,
            expiry: r.expiry,
            nhs_number: r.nhs_number,
            family_name: r.family_name,
            given_name: r.given_name,
            date_of_birth: r.date_of_birth,
            postcode: r.postcode,
            date_of_death: r.date_of_death,
            provider: r.provider_ods,
            provider_name: r.provider_name,
            removal_date: r.removal_date,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` when the database answers and its schema is current.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
}

// ---- Surveillance (issue 6) ----

/// Cumulative revision of a device model and its hazard ratio against the rest of its class.
#[derive(Debug, Serialize, ToSchema)]
pub struct SurvivorshipView {
    /// What was analysed, in words.
    pub grouping: String,
    /// `implant` (one device model) or `construct` (a combination).
    pub unit: String,
    /// The device types making up the comparison class.
    pub device_types: Vec<String>,
    /// Follow-up is censored at this analysis date.
    pub as_of: NaiveDate,
    pub n_units: u64,
    pub n_revisions: u64,
    /// Deaths before any revision: censored for Kaplan–Meier, competing for Aalen–Johansen.
    pub n_deaths: u64,
    /// Cumulative revision at 1, 3, 5, 10 and 15 years.
    pub estimates: Vec<SurvivorshipPointView>,
    /// Absent when it cannot be estimated; `warnings` says why.
    pub hazard_ratio: Option<HazardRatioView>,
    pub warnings: Vec<String>,
}

/// Cumulative revision (a proportion, 0 to 1) at one time, with 95% intervals.
#[derive(Debug, Serialize, ToSchema)]
pub struct SurvivorshipPointView {
    pub years: u32,
    /// Units still under observation at that time.
    pub n_at_risk: u64,
    /// 1 − Kaplan–Meier (deaths censored); absent beyond the last follow-up.
    pub kaplan_meier: Option<EstimateView>,
    /// Aalen–Johansen cumulative incidence of revision with death as a competing risk.
    pub competing_risks: Option<EstimateView>,
}

/// A proportion with its 95% confidence interval.
#[derive(Debug, Serialize, ToSchema)]
pub struct EstimateView {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
}

/// The Cox hazard ratio of revision against the rest of the class.
#[derive(Debug, Serialize, ToSchema)]
pub struct HazardRatioView {
    pub estimate: f64,
    pub lower: f64,
    pub upper: f64,
    pub p_value: f64,
    pub n_comparator: u64,
    pub n_comparator_revisions: u64,
    /// Covariates besides group membership (`age`, `sex`, `indication`), those that vary.
    pub adjusted_for: Vec<String>,
    /// How indication was adjusted for; absent when it was not.
    pub indication: Option<IndicationAdjustmentView>,
    pub stratified_by_device_type: bool,
}

/// The indication levels of the hazard ratio's model.
#[derive(Debug, Serialize, ToSchema)]
pub struct IndicationAdjustmentView {
    /// The level the others are compared with: the class's most common indication.
    pub reference: String,
    /// Levels with a coefficient of their own (`not_recorded`: no indication in the dataset;
    /// `other`: pooled indications).
    pub levels: Vec<String>,
    /// Indications with too few revisions for a coefficient of their own.
    pub pooled: Vec<String>,
}

impl From<mdor_service::Estimate> for EstimateView {
    fn from(e: mdor_service::Estimate) -> Self {
        EstimateView {
            estimate: e.estimate,
            lower: e.lower,
            upper: e.upper,
        }
    }
}

impl From<mdor_service::SurvivorshipReport> for SurvivorshipView {
    fn from(r: mdor_service::SurvivorshipReport) -> Self {
        SurvivorshipView {
            grouping: r.grouping,
            unit: r.unit.to_string(),
            device_types: r.device_types,
            as_of: r.as_of,
            n_units: r.n_units,
            n_revisions: r.n_revisions,
            n_deaths: r.n_deaths,
            estimates: r
                .estimates
                .into_iter()
                .map(|p| SurvivorshipPointView {
                    years: p.years,
                    n_at_risk: p.n_at_risk,
                    kaplan_meier: p.kaplan_meier.map(EstimateView::from),
                    competing_risks: p.competing_risks.map(EstimateView::from),
                })
                .collect(),
            hazard_ratio: r.hazard_ratio.map(|h| HazardRatioView {
                estimate: h.estimate,
                lower: h.lower,
                upper: h.upper,
                p_value: h.p_value,
                n_comparator: h.n_comparator,
                n_comparator_revisions: h.n_comparator_revisions,
                adjusted_for: h.adjusted_for.iter().map(|s| s.to_string()).collect(),
                indication: h.indication.map(|i| IndicationAdjustmentView {
                    reference: i.reference,
                    levels: i.levels,
                    pooled: i.pooled,
                }),
                stratified_by_device_type: h.stratified_by_device_type,
            }),
            warnings: r.warnings,
        }
    }
}
