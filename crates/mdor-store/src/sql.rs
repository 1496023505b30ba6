//! SQL shared by both backends. Placeholders are `$N`, which SQLite and PostgreSQL both
//! accept; dialect-specific statements live in the backend modules.

use chrono::NaiveDate;

use crate::types::RecallCriteria;

pub const ORGANISATION_UPSERT: &str = "INSERT INTO organisation (ods_code, name, kind, region) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (ods_code) DO UPDATE SET name = excluded.name, kind = excluded.kind, region = excluded.region \
     RETURNING id";

pub const ORGANISATION_COLUMNS: &str = "SELECT id, ods_code, name, kind, region FROM organisation";

pub const CONSULTANT_UPSERT: &str = "INSERT INTO consultant (gmc_number, family_name, given_name, specialty, organisation_id) \
     VALUES ($1, $2, $3, $4, $5) \
     ON CONFLICT (gmc_number) DO UPDATE SET \
       family_name = COALESCE(excluded.family_name, consultant.family_name), \
       given_name = COALESCE(excluded.given_name, consultant.given_name), \
       specialty = COALESCE(excluded.specialty, consultant.specialty), \
       organisation_id = COALESCE(excluded.organisation_id, consultant.organisation_id)";

/// Creates an unnamed consultant the first time a GMC number is seen in a submission.
pub const CONSULTANT_ENSURE: &str = "INSERT INTO consultant (gmc_number) VALUES ($1) \
     ON CONFLICT (gmc_number) DO NOTHING";

pub const CONSULTANT_ID: &str = "SELECT id FROM consultant WHERE gmc_number = $1";

pub const DEVICE_MODEL_UPSERT: &str = "INSERT INTO device_model \
     (udi_di, issuer, manufacturer, brand, model, device_type, risk_class, registry) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (udi_di) DO UPDATE SET issuer = excluded.issuer, manufacturer = excluded.manufacturer, \
       brand = excluded.brand, model = excluded.model, device_type = excluded.device_type, \
       risk_class = excluded.risk_class, registry = excluded.registry";

pub const DEVICE_MODEL_BY_UDI: &str = "SELECT id, udi_di, issuer, manufacturer, brand, model, device_type, risk_class, registry \
     FROM device_model WHERE udi_di = $1";

/// A patient by the blind index of their NHS number: id and sealed date of birth.
pub const PATIENT_BY_NHS: &str =
    "SELECT id, date_of_birth FROM patient WHERE nhs_number_index = $1";

pub const PATIENT_INSERT: &str = "INSERT INTO patient \
     (nhs_number, family_name, given_name, date_of_birth, sex, postcode, created_at, \
      nhs_number_index, birth_month_mid) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

/// Keeps the latest demographics a provider sent; the date of birth is never changed here.
pub const PATIENT_UPDATE_DEMOGRAPHICS: &str = "UPDATE patient SET family_name = $2, given_name = $3, sex = $4, \
     postcode = COALESCE($5, postcode) WHERE id = $1";

pub const PROCEDURE_INSERT: &str = "INSERT INTO procedure \
     (patient_id, provider_id, consultant_id, procedure_date, opcs4_code, opcs4_version, snomed_ct_id, \
      laterality, registry, local_record_id, created_at, indication) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id";

pub const IMPLANT_INSERT: &str = "INSERT INTO implant \
     (procedure_id, position, udi_di, device_model_id, lot, serial, expiry, manufactured, raw_scan, entry_type) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";

pub const FLAG_INSERT: &str =
    "INSERT INTO follow_up_flag (implant_id, flag, raised_at) VALUES ($1, $2, $3)";

pub const IDEMPOTENCY_INSERT: &str = "INSERT INTO idempotency_key \
     (token_id, idempotency_key, request_hash, response_status, response_body, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

pub const IDEMPOTENCY_SELECT: &str = "SELECT request_hash, response_status, response_body \
     FROM idempotency_key WHERE token_id = $1 AND idempotency_key = $2";

pub const PROCEDURE_SELECT: &str = "SELECT p.id, p.provider_id, o.ods_code AS provider_ods, p.patient_id, \
       pt.nhs_number_index, pt.nhs_number, pt.family_name, pt.given_name, pt.date_of_birth, pt.sex, pt.postcode, \
       pt.date_of_death, c.gmc_number AS consultant_gmc, p.procedure_date, p.opcs4_code, p.opcs4_version, p.snomed_ct_id, \
       p.laterality, p.registry, p.local_record_id, p.created_at, p.indication \
     FROM procedure p \
     JOIN patient pt ON pt.id = p.patient_id \
     JOIN organisation o ON o.id = p.provider_id \
     JOIN consultant c ON c.id = p.consultant_id \
     WHERE p.id = $1";

pub const IMPLANTS_OF_PROCEDURE: &str = "SELECT i.id, i.position, i.udi_di, i.device_model_id, i.lot, i.serial, \
       i.expiry, i.manufactured, i.raw_scan, i.entry_type, \
       r.id AS removal_id, r.kind AS removal_kind, r.removal_date, r.reason AS removal_reason, \
       ro.ods_code AS revising_provider \
     FROM implant i \
     LEFT JOIN removal r ON r.implant_id = i.id \
     LEFT JOIN organisation ro ON ro.id = r.revising_provider_id \
     WHERE i.procedure_id = $1 ORDER BY i.position";

pub const OPEN_FLAGS_OF_PROCEDURE: &str = "SELECT f.implant_id, f.flag FROM follow_up_flag f \
     JOIN implant i ON i.id = f.implant_id \
     WHERE i.procedure_id = $1 AND f.resolved_at IS NULL ORDER BY f.implant_id, f.flag";

pub const PROCEDURE_BY_LOCAL_ID: &str =
    "SELECT id FROM procedure WHERE provider_id = $1 AND local_record_id = $2";

pub const IMPLANT_CONTEXT: &str = "SELECT i.id, i.procedure_id, p.provider_id, p.patient_id, p.procedure_date, pt.date_of_death, \
       (SELECT COUNT(*) FROM removal r WHERE r.implant_id = i.id) AS removals \
     FROM implant i JOIN procedure p ON p.id = i.procedure_id JOIN patient pt ON pt.id = p.patient_id \
     WHERE i.id = $1";

pub const REMOVAL_INSERT: &str = "INSERT INTO removal \
     (implant_id, kind, removal_date, reason, revising_provider_id, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

pub const PATIENT_BOUNDS: &str = "SELECT pt.id, pt.date_of_death, \
       (SELECT MAX(p.procedure_date) FROM procedure p WHERE p.patient_id = pt.id) AS latest_procedure, \
       (SELECT MAX(r.removal_date) FROM removal r JOIN implant i ON i.id = r.implant_id \
          JOIN procedure p ON p.id = i.procedure_id WHERE p.patient_id = pt.id) AS latest_removal \
     FROM patient pt WHERE pt.nhs_number_index = $1";

pub const PATIENT_PROVIDERS: &str =
    "SELECT DISTINCT provider_id FROM procedure WHERE patient_id = $1 ORDER BY provider_id";

pub const PATIENT_DEATH_UPDATE: &str = "UPDATE patient SET date_of_death = $2 WHERE id = $1";

pub const TOKEN_INSERT: &str = "INSERT INTO api_token (token_hash, organisation_id, role, label, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING id";

pub const TOKEN_COLUMNS: &str = "SELECT t.id, t.organisation_id, o.ods_code AS organisation_ods, t.role, t.label, \
       t.created_at, t.revoked_at FROM api_token t JOIN organisation o ON o.id = t.organisation_id";

pub const TOKEN_REVOKE: &str =
    "UPDATE api_token SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";

pub const COUNTS: &str = "SELECT \
       (SELECT COUNT(*) FROM organisation) AS organisations, \
       (SELECT COUNT(*) FROM consultant) AS consultants, \
       (SELECT COUNT(*) FROM device_model) AS device_models, \
       (SELECT COUNT(*) FROM patient) AS patients, \
       (SELECT COUNT(*) FROM procedure) AS procedures, \
       (SELECT COUNT(*) FROM implant) AS implants, \
       (SELECT COUNT(*) FROM removal) AS removals, \
       (SELECT COUNT(*) FROM patient WHERE date_of_death IS NOT NULL) AS deaths, \
       (SELECT COUNT(*) FROM follow_up_flag WHERE resolved_at IS NULL) AS open_flags";

/// A value bound to a dynamically built statement.
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    Date(NaiveDate),
    Int(i64),
}

/// The recall query with only the criteria that were given, so that each backend's planner
/// can use the `(udi_di, lot)` and `(udi_di, serial)` indexes.
pub fn recall_query(criteria: &RecallCriteria) -> (String, Vec<Param>) {
    let mut sql = String::from(
        "SELECT i.id AS implant_id, p.id AS procedure_id, p.procedure_date, i.udi_di, i.lot, i.serial, i.expiry, \
           pt.nhs_number_index, pt.nhs_number, pt.family_name, pt.given_name, pt.date_of_birth, pt.postcode, \
           pt.date_of_death, o.ods_code AS provider_ods, o.name AS provider_name, r.removal_date, \
           pt.id AS patient_id \
         FROM implant i \
         JOIN procedure p ON p.id = i.procedure_id \
         JOIN patient pt ON pt.id = p.patient_id \
         JOIN organisation o ON o.id = p.provider_id \
         LEFT JOIN removal r ON r.implant_id = i.id \
         WHERE i.udi_di = $1",
    );
    let mut params = vec![Param::Text(criteria.udi_di.as_str().to_string())];
    let mut push = |sql: &mut String, condition: &str, param: Param| {
        params.push(param);
        sql.push_str(&format!(" AND {condition} ${}", params.len()));
    };
    if let Some(lot) = &criteria.lot {
        push(&mut sql, "i.lot =", Param::Text(lot.clone()));
    }
    if let Some(serial) = &criteria.serial {
        push(&mut sql, "i.serial =", Param::Text(serial.clone()));
    }
    if let Some(from) = criteria.expiry_from {
        push(&mut sql, "i.expiry >=", Param::Date(from));
    }
    if let Some(to) = criteria.expiry_to {
        push(&mut sql, "i.expiry <=", Param::Date(to));
    }
    if let Some(from) = criteria.implanted_from {
        push(&mut sql, "p.procedure_date >=", Param::Date(from));
    }
    if let Some(to) = criteria.implanted_to {
        push(&mut sql, "p.procedure_date <=", Param::Date(to));
    }
    if let Some(after) = criteria.after {
        push(&mut sql, "i.id >", Param::Int(after.0));
    }
    params.push(Param::Int(i64::from(criteria.limit)));
    sql.push_str(&format!(" ORDER BY i.id LIMIT ${}", params.len()));
    (sql, params)
}

// ---- Surveillance (issue 6): the analysis extract and persisted signal state ----

/// The statements that read one analysis extract; every table is read in id order.
pub struct AnalysisQueries {
    pub device_models: String,
    pub providers: String,
    pub consultants: String,
    pub procedures: String,
    pub patients: String,
    pub implants: String,
    pub removals: String,
    /// Bound, in order, to every statement that has a scope filter.
    pub params: Vec<String>,
    /// The scope's row filters, for backends that page through the large tables themselves.
    pub filters: AnalysisFilters,
}

/// The `WHERE` conditions that narrow the four large tables to a scope (empty for the whole
/// registry); each uses the placeholders `$1..$n` of `AnalysisQueries::params`.
#[derive(Debug, Clone, Default)]
pub struct AnalysisFilters {
    pub procedures: Option<String>,
    pub patients: Option<String>,
    pub implants: Option<String>,
    pub removals: Option<String>,
}

/// The extract's statements; with a device-type scope each table is narrowed to the rows that
/// implants of those types need.
pub fn analysis_queries(scope: &crate::analysis::AnalysisScope) -> AnalysisQueries {
    use crate::analysis::AnalysisScope;
    let (models_filter, params) = match scope {
        AnalysisScope::All => (None, Vec::new()),
        AnalysisScope::DeviceTypes(types) => {
            let placeholders: Vec<String> = (1..=types.len()).map(|i| format!("${i}")).collect();
            (
                Some(format!(
                    "SELECT id FROM device_model WHERE device_type IN ({})",
                    placeholders.join(", ")
                )),
                types.clone(),
            )
        }
    };
    let implants_filter = models_filter
        .as_ref()
        .map(|m| format!("SELECT id FROM implant WHERE device_model_id IN ({m})"));
    let procedures_filter = models_filter
        .as_ref()
        .map(|m| format!("SELECT procedure_id FROM implant WHERE device_model_id IN ({m})"));
    let condition = |column: &str, filter: &Option<String>| {
        filter.as_ref().map(|f| format!("{column} IN ({f})"))
    };
    let filters = AnalysisFilters {
        procedures: condition("id", &procedures_filter),
        patients: condition(
            "id",
            &procedures_filter
                .as_ref()
                .map(|f| format!("SELECT patient_id FROM procedure WHERE id IN ({f})")),
        ),
        implants: condition("device_model_id", &models_filter),
        removals: condition("implant_id", &implants_filter),
    };
    let where_clause = |filter: &Option<String>| match filter {
        Some(f) => format!(" WHERE {f}"),
        None => String::new(),
    };
    AnalysisQueries {
        device_models: "SELECT id, udi_di, issuer, manufacturer, brand, model, device_type, risk_class, registry \
             FROM device_model ORDER BY id"
            .to_string(),
        providers: "SELECT id, ods_code FROM organisation WHERE kind = 'provider' ORDER BY id"
            .to_string(),
        consultants: "SELECT id, gmc_number FROM consultant ORDER BY id".to_string(),
        procedures: format!(
            "SELECT id, patient_id, provider_id, consultant_id, procedure_date, indication FROM procedure{} ORDER BY id",
            where_clause(&filters.procedures)
        ),
        patients: format!(
            "SELECT id, birth_month_mid, sex, date_of_death FROM patient{} ORDER BY id",
            where_clause(&filters.patients)
        ),
        implants: format!(
            "SELECT id, procedure_id, position, device_model_id, lot FROM implant{} ORDER BY id",
            where_clause(&filters.implants)
        ),
        removals: format!(
            "SELECT implant_id, removal_date, kind FROM removal{} ORDER BY implant_id",
            where_clause(&filters.removals)
        ),
        params,
        filters,
    }
}

pub const SURVEILLANCE_SIGNALS: &str = "SELECT method, subject_kind, subject, state, since, observed, expected, \
       statistic, critical_value, explanation, first_run_id, last_run_id \
     FROM surveillance_signal ORDER BY id";

pub const SURVEILLANCE_RUN_INSERT: &str = "INSERT INTO surveillance_run \
     (started_at, finished_at, as_of, n_implants, n_alerts, summary) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

/// Keeps the run that first raised a signal; everything else is the latest run's view.
pub const SURVEILLANCE_SIGNAL_UPSERT: &str = "INSERT INTO surveillance_signal \
     (method, subject_kind, subject, state, since, observed, expected, statistic, critical_value, \
      explanation, first_run_id, last_run_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
     ON CONFLICT (method, subject_kind, subject) DO UPDATE SET state = excluded.state, \
       since = excluded.since, observed = excluded.observed, expected = excluded.expected, \
       statistic = excluded.statistic, critical_value = excluded.critical_value, \
       explanation = excluded.explanation, last_run_id = excluded.last_run_id \
     RETURNING id";

pub const SURVEILLANCE_ALERT_INSERT: &str = "INSERT INTO surveillance_alert \
     (signal_id, run_id, raised_at, since, observed, expected, statistic, critical_value, explanation) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub const LATEST_SURVEILLANCE_RUN: &str =
    "SELECT id, finished_at, as_of, n_implants FROM surveillance_run ORDER BY id DESC LIMIT 1";

pub const SURVEILLANCE_ALERTS: &str = "SELECT a.id, a.run_id, a.raised_at, s.method, s.subject_kind, s.subject, \
       a.since, a.observed, a.expected, a.statistic, a.critical_value, a.explanation \
     FROM surveillance_alert a JOIN surveillance_signal s ON s.id = a.signal_id \
     ORDER BY a.id DESC LIMIT $1";
