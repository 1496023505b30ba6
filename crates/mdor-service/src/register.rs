//! The device register: loading catalogue entries and looking devices up.

use std::io::Read;

use mdor_domain::UdiDi;
use mdor_domain::record::FieldError;
use mdor_domain::register::{RawRegisterEntry, RegisterEntry};
use mdor_store::DeviceModel;

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

/// The register's CSV header, in this order (documented in docs/device-register.md).
pub const REGISTER_CSV_HEADER: [&str; 7] = [
    "udi_di",
    "manufacturer",
    "brand",
    "model",
    "device_type",
    "risk_class",
    "registry",
];

/// Looks a device model up: the register is not identifiable data, and every role with an
/// organisation may read it.
pub async fn device_lookup(
    ctx: &Ctx,
    principal: &Principal,
    udi_di: &UdiDi,
) -> Result<DeviceModel, ServiceError> {
    policy::authorize(principal, Action::ReadDevice, Relationship::Independent)?;
    ctx.store
        .device_model(udi_di)
        .await?
        .ok_or(ServiceError::NotFound { what: "device" })
}

/// Inserts or updates register entries (an administrator's or operator's task).
pub async fn upsert_register(ctx: &Ctx, entries: &[RegisterEntry]) -> Result<u64, ServiceError> {
    Ok(ctx.store.upsert_device_models(entries).await?)
}

/// Reads a register CSV; every bad row is reported with its line number and nothing is
/// written unless all rows are valid.
pub async fn load_register_csv(ctx: &Ctx, input: impl Read) -> Result<u64, ServiceError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = reader
        .headers()
        .map_err(|e| ServiceError::Input(format!("register csv header: {e}")))?
        .clone();
    if header.iter().collect::<Vec<_>>() != REGISTER_CSV_HEADER {
        return Err(ServiceError::Input(format!(
            "register csv header must be exactly: {}",
            REGISTER_CSV_HEADER.join(",")
        )));
    }
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (index, row) in reader.deserialize::<RawRegisterEntry>().enumerate() {
        // Line 1 is the header.
        let line = index + 2;
        match row {
            Ok(raw) => match raw.validate() {
                Ok(entry) => entries.push(entry),
                Err(problems) => errors.extend(problems.into_iter().map(|p| FieldError {
                    field: format!("line {line}: {}", p.field),
                    ..p
                })),
            },
            Err(e) => errors.push(FieldError::new(
                format!("line {line}"),
                "malformed_row",
                e.to_string(),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    upsert_register(ctx, &entries).await
}

/// Adds or updates one register entry; administrators only, and a person only within 10
/// minutes of entering their password and second factor (administration).
pub async fn register_device(
    ctx: &Ctx,
    principal: &Principal,
    raw: &RawRegisterEntry,
) -> Result<DeviceModel, ServiceError> {
    policy::authorize(principal, Action::RegisterDevice, Relationship::Independent)?;
    principal.require_recent_authentication(ctx)?;
    let entry = raw.validate().map_err(ServiceError::Invalid)?;
    upsert_register(ctx, std::slice::from_ref(&entry)).await?;
    ctx.store
        .device_model(&entry.udi_di)
        .await?
        .ok_or(ServiceError::NotFound { what: "device" })
}
