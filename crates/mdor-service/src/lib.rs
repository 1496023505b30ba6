//! Use cases shared by the web API and the CLI: register an implant procedure, record a
//! revision, explant or death, run a recall query, manage the device register and API tokens,
//! and bulk-load prepared datasets.
//!
//! Invariant: every function takes the caller's `Principal` (or is an operator task run from
//! the CLI) and checks what that principal may do before touching the store.

mod auth;
mod bulk;
mod ctx;
mod error;
mod idempotency;
mod outcomes;
mod procedures;
mod recall;
mod register;
mod surveillance;

pub use auth::{CreatedToken, Principal, authenticate, create_token, list_tokens, revoke_token};
pub use bulk::{
    BulkOutcomeRecord, LoadSummary, OutcomeLoadReport, bulk_load, bulk_outcomes,
    ensure_organisations, register_index, upsert_consultants,
};
pub use ctx::Ctx;
pub use error::ServiceError;
pub use idempotency::{IdempotencyRequest, Outcome};
pub use outcomes::{RemovalRequest, record_death, record_removal};
pub use procedures::{get_procedure, register_procedure};
pub use recall::recall;
pub use register::{device_lookup, load_register_csv, register_device, upsert_register};
pub use surveillance::{
    DeviceGrouping, DeviceRating, Estimate, FunnelOutlier, FunnelSummary, HazardRatio, HorizonRule,
    ImplantOutlier, OutlierConfig, OutlierReport, OverdispersionMethod, REPORT_YEARS, RatingConfig,
    RatingLevel, RatingOutcome, SignalConfig, SignalResult, SignalSummary, SurveillanceConfig,
    SurveillanceRun, SurvivorshipPoint, SurvivorshipReport, device_survivorship, latest_alerts,
    operator_survivorship, run_surveillance, surveillance_alerts,
};

// The store's records are the service's results; re-exported so callers need not name the
// store crate (the web layer must never reach the `Store` itself).
pub use mdor_store::{
    ApiToken, Backend, BulkLoadOutcome, Counts, DeviceModel, ImplantId, NewConsultant,
    NewOrganisation, OrganisationId, OrganisationKind, ProcedureId, ProcedureRecord,
    RecallCriteria, RecallRow, RemovalId, Role, StoredAlert, StoredImplant, StoredRemoval, TokenId,
};
