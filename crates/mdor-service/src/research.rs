//! Approved research projects and their pseudonymised extracts (issue 4, part 6). The
//! registry's operator creates a project for an approval (`mdor research create`) and writes
//! its extract (`mdor research extract`), for release to the project's organisation; each page
//! read is audited with its row count, purpose `research`, in the same transaction.
//!
//! An extract row (`ResearchRow`) is a separate type with no direct identifier: the patient
//! is a pseudonym keyed per project, ages are whole years, the procedure is a month and
//! outcomes are intervals in days. `research::tests` walks its serialised form.

use mdor_domain::{OdsCode, RegistryCode};
use mdor_store::{NewAuditEvent, NewResearchProject, ResearchProject, ResearchRow, StoreError};

use crate::ctx::Ctx;
use crate::error::ServiceError;

/// Rows per page (and per audited transaction) of an extract.
pub const RESEARCH_PAGE: u32 = 10_000;

/// An approval, as the operator records it.
#[derive(Debug, Clone)]
pub struct ResearchProjectRequest {
    pub reference: String,
    pub title: String,
    pub organisation: OdsCode,
    pub registry: Option<String>,
    pub approved_by: String,
}

fn check_text(field: &str, value: &str, max: usize) -> Result<String, ServiceError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ServiceError::invalid(
            field,
            "required",
            format!("{field} is required"),
        ));
    }
    if value.chars().count() > max {
        return Err(ServiceError::invalid(
            field,
            "too_long",
            format!("{field} is longer than {max} characters"),
        ));
    }
    Ok(value.to_string())
}

/// Creates a research project with its own pseudonym key.
pub async fn create_research_project(
    ctx: &Ctx,
    request: &ResearchProjectRequest,
) -> Result<ResearchProject, ServiceError> {
    let reference = check_text("reference", &request.reference, 64)?;
    if !reference
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_/.".contains(c))
    {
        return Err(ServiceError::invalid(
            "reference",
            "invalid_reference",
            "reference may hold letters, digits and - _ / . only",
        ));
    }
    let title = check_text("title", &request.title, 200)?;
    let approved_by = check_text("approved_by", &request.approved_by, 200)?;
    let registry = match &request.registry {
        Some(code) => Some(
            RegistryCode::parse(code)
                .map_err(|e| ServiceError::invalid("registry", "invalid_registry", e.to_string()))?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let Some(organisation) = ctx.store.organisation_by_ods(&request.organisation).await? else {
        return Err(ServiceError::invalid(
            "organisation",
            "unknown_organisation",
            format!(
                "no organisation {} is registered",
                request.organisation.as_str()
            ),
        ));
    };
    let created = ctx
        .store
        .create_research_project(&NewResearchProject {
            reference: reference.clone(),
            title,
            organisation: organisation.id,
            registry,
            approved_by,
            created_at: ctx.now(),
        })
        .await;
    match created {
        Ok(_) => {}
        Err(StoreError::Conflict { .. }) => {
            return Err(ServiceError::Conflict {
                code: "research_project_exists",
                field: Some("reference".into()),
                message: format!("a research project {reference} already exists"),
            });
        }
        Err(e) => return Err(e.into()),
    }
    ctx.store
        .research_project(&reference)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "research project",
        })
}

/// Writes a project's whole extract through `write`, page by page, each page audited (as the
/// operator, under the registry's own organisation or else the project's); returns the rows.
pub async fn research_extract(
    ctx: &Ctx,
    reference: &str,
    mut write: impl FnMut(&ResearchRow) -> std::io::Result<()>,
) -> Result<u64, ServiceError> {
    let Some(project) = ctx.store.research_project(reference).await? else {
        return Err(ServiceError::NotFound {
            what: "research project",
        });
    };
    let organisation = ctx
        .store
        .registry_organisation()
        .await?
        .unwrap_or(project.organisation);
    let mut after = 0;
    let mut total = 0;
    loop {
        let audit = NewAuditEvent {
            patients: Vec::new(),
            request: ctx.request(),
            at: ctx.now(),
            organisation,
            role: "operator",
            token: None,
            account: None,
            action: "research.extract",
            resource: format!("research_project/{}?after={after}", project.reference),
            patient: None,
            record_count: 0,
            purpose: "research",
            outcome: "ok",
            break_glass: None,
        };
        let rows = ctx
            .store
            .research_extract_page(project.id, after, RESEARCH_PAGE, &audit)
            .await?;
        for row in &rows {
            write(row).map_err(|e| ServiceError::Input(format!("writing the extract: {e}")))?;
        }
        total += rows.len() as u64;
        match rows.last() {
            Some(last) if rows.len() as u32 == RESEARCH_PAGE => after = last.cursor,
            _ => break,
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names a direct identifier would go by, in any of the registry's records.
    const IDENTIFYING: [&str; 10] = [
        "nhs_number",
        "nhs_number_index",
        "family_name",
        "given_name",
        "date_of_birth",
        "postcode",
        "local_record_id",
        "patient_id",
        "procedure_date",
        "date_of_death",
    ];

    #[test]
    fn an_extract_row_serialises_without_any_identifying_field() {
        let row = ResearchRow {
            cursor: 7,
            patient: "0123456789abcdef0123456789abcdef".into(),
            sex: "female".into(),
            age_at_procedure: 71,
            procedure_month: "2024-05".into(),
            provider_ods: "RA1".into(),
            registry: "njr".into(),
            laterality: "left".into(),
            udi_di: "05012345678917".into(),
            removal_kind: Some("revision".into()),
            days_to_removal: Some(400),
            days_to_death: None,
        };
        let value = serde_json::to_value(&row).unwrap();
        let fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields.len(), 11, "{fields:?}");
        for field in &fields {
            assert!(!IDENTIFYING.contains(field), "{field} is identifying");
        }
        assert!(
            !fields.contains(&"cursor"),
            "the paging cursor is not released"
        );
    }
}
