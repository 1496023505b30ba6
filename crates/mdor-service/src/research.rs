//! Approved research projects and their pseudonymised extracts (issue 4, parts 1, 4 and 6).
//! The registry's operator creates a project for an approval (`mdor research create`) and
//! names the researchers it approved (`mdor research add-member`), each change audited. A
//! researcher named on a project reads its extract over the API
//! (`open_research_extract`, after a step-up within 10 minutes, as for every export); the
//! operator can still write one for release (`mdor research extract`). Either way each page
//! read is audited with its row count, purpose `research`, in the same transaction.
//!
//! An extract row (`ResearchRow`) is a separate type with no direct identifier: the patient
//! is a pseudonym keyed per project, ages are whole years, the procedure is a month and
//! outcomes are intervals in days. `research::tests` walks its serialised form.

use mdor_domain::{OdsCode, RegistryCode};
use mdor_store::{AccountRole, NewAuditEvent, NewResearchProject, StoreError};
pub use mdor_store::{ResearchFilter, ResearchProject, ResearchRow};

use crate::accounts::{Administrator, Username};
use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

/// The audit action of every page read of an extract.
const EXTRACT_ACTION: &str = "research.extract";
const MEMBER_ADD_ACTION: &str = "research.member_add";
const MEMBER_REMOVE_ACTION: &str = "research.member_remove";

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
    /// The approval's last day, if it has one: after it the extract is closed.
    pub expires_on: Option<chrono::NaiveDate>,
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

/// A project's reference: 1 to 64 letters, digits and `- _ / .`.
fn check_reference(reference: &str) -> Result<String, ServiceError> {
    let reference = check_text("reference", reference, 64)?;
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
    Ok(reference)
}

/// Creates a research project with its own pseudonym key.
pub async fn create_research_project(
    ctx: &Ctx,
    request: &ResearchProjectRequest,
) -> Result<ResearchProject, ServiceError> {
    let reference = check_reference(&request.reference)?;
    let title = check_text("title", &request.title, 200)?;
    let approved_by = check_text("approved_by", &request.approved_by, 200)?;
    if let Some(last_day) = request.expires_on
        && last_day < ctx.now().date_naive()
    {
        return Err(ServiceError::invalid(
            "expires_on",
            "in_the_past",
            format!("expires_on {last_day} has passed: an approval that has ended opens nothing"),
        ));
    }
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
            expires_on: request.expires_on,
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

/// `Conflict` once the project's approval has ended: its extract is closed to everyone, and
/// nobody is named on it any more.
fn check_approval_current(ctx: &Ctx, project: &ResearchProject) -> Result<(), ServiceError> {
    match project.expires_on {
        Some(last_day) if last_day < ctx.now().date_naive() => Err(ServiceError::Conflict {
            code: "research_approval_expired",
            field: None,
            message: format!(
                "the approval of research project {} ended on {last_day}",
                project.reference
            ),
        }),
        _ => Ok(()),
    }
}

/// The project named `reference`, for the operator.
async fn project_named(ctx: &Ctx, reference: &str) -> Result<ResearchProject, ServiceError> {
    ctx.store
        .research_project(reference)
        .await?
        .ok_or(ServiceError::NotFound {
            what: "research project",
        })
}

/// The operator's audit entry of naming `account` on `project`, or removing it.
async fn member_audit(
    ctx: &Ctx,
    action: &'static str,
    project: &ResearchProject,
    account: mdor_store::AccountId,
) -> Result<NewAuditEvent, ServiceError> {
    let resource = format!("research_project/{}/member/{account}", project.reference);
    Administrator::Operator
        .audit(ctx, action, resource, Some(project.organisation))
        .await
}

/// Names a researcher on a project (the operator, for an approval that lists them): the
/// account must be a researcher's. Audited, purpose `administration`, in the transaction that
/// adds them.
pub async fn add_research_member(
    ctx: &Ctx,
    reference: &str,
    username: &Username,
) -> Result<ResearchProject, ServiceError> {
    let project = project_named(ctx, reference).await?;
    check_approval_current(ctx, &project)?;
    let account = ctx
        .store
        .account_by_username(username.as_str())
        .await?
        .ok_or_else(|| {
            ServiceError::invalid(
                "username",
                "unknown_account",
                format!("no account {} exists", username.as_str()),
            )
        })?;
    if account.role != AccountRole::Researcher {
        return Err(ServiceError::invalid(
            "username",
            "not_a_researcher",
            format!(
                "{} is a {} account; only researchers are named on research projects",
                account.username,
                account.role.as_str()
            ),
        ));
    }
    let audit = member_audit(ctx, MEMBER_ADD_ACTION, &project, account.id).await?;
    match ctx
        .store
        .add_research_member(project.id, account.id, &audit)
        .await
    {
        Ok(()) => Ok(project),
        Err(StoreError::Conflict { .. }) => Err(ServiceError::Conflict {
            code: "already_a_member",
            field: Some("username".into()),
            message: format!(
                "{} is already named on research project {}",
                account.username, project.reference
            ),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Removes a researcher from a project (the operator): from then on the extract is absent to
/// them. Audited like `add_research_member`; `NotFound` if they were not named on it.
pub async fn remove_research_member(
    ctx: &Ctx,
    reference: &str,
    username: &Username,
) -> Result<ResearchProject, ServiceError> {
    let project = project_named(ctx, reference).await?;
    let not_a_member = ServiceError::NotFound {
        what: "research project member",
    };
    let Some(account) = ctx.store.account_by_username(username.as_str()).await? else {
        return Err(not_a_member);
    };
    let audit = member_audit(ctx, MEMBER_REMOVE_ACTION, &project, account.id).await?;
    if ctx
        .store
        .remove_research_member(project.id, account.id, &audit)
        .await?
    {
        Ok(project)
    } else {
        Err(not_a_member)
    }
}

/// The approved projects naming the calling researcher, by reference.
pub async fn own_research_projects(
    ctx: &Ctx,
    principal: &Principal,
) -> Result<Vec<ResearchProject>, ServiceError> {
    policy::authorize(
        principal,
        Action::ListResearchProjects,
        Relationship::Independent,
    )?;
    let Some(account) = principal.account() else {
        return Err(ServiceError::Forbidden {
            action: Action::ListResearchProjects.describe(),
            audited: false,
        });
    };
    Ok(ctx.store.research_projects_of(account).await?)
}

/// One project's extract being read, page by page. Made only by `open_research_extract`,
/// after every check, or for the operator; each `next_page` writes its own audit entry in the
/// transaction that reads the page, so a stream cut short has audited exactly what it read.
pub struct ResearchExtract {
    project: ResearchProject,
    filter: ResearchFilter,
    audit: NewAuditEvent,
    after: i64,
    done: bool,
}

impl ResearchExtract {
    pub fn project(&self) -> &ResearchProject {
        &self.project
    }

    /// The next page of at most `RESEARCH_PAGE` rows, audited; `None` once every row was read.
    pub async fn next_page(&mut self, ctx: &Ctx) -> Result<Option<Vec<ResearchRow>>, ServiceError> {
        if self.done {
            return Ok(None);
        }
        let mut audit = self.audit.clone();
        audit.at = ctx.now();
        // The resource is the query: the project, the narrowing asked for and the page.
        let narrowed = self.filter.query_text();
        audit.resource = format!(
            "research_project/{}?after={}{}{narrowed}",
            self.project.reference,
            self.after,
            if narrowed.is_empty() { "" } else { "&" },
        );
        let rows = ctx
            .store
            .research_extract_page(
                self.project.id,
                &self.filter,
                self.after,
                RESEARCH_PAGE,
                &audit,
            )
            .await?;
        match rows.last() {
            Some(last) if rows.len() as u32 == RESEARCH_PAGE => self.after = last.cursor,
            _ => self.done = true,
        }
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(rows))
    }
}

/// Checks a researcher's narrowing: a date range in order, and a device type that could be
/// one of the register's (a `Slug`, as the register's types are); each problem names its
/// field.
pub fn check_filter(filter: &ResearchFilter) -> Result<(), ServiceError> {
    if let (Some(from), Some(to)) = (filter.implanted_from, filter.implanted_to)
        && from > to
    {
        return Err(ServiceError::invalid(
            "implanted_to",
            "date_range_reversed",
            format!("implanted_to {to} is before implanted_from {from}"),
        ));
    }
    if let Some(device_type) = &filter.device_type
        && let Err(e) = mdor_domain::Slug::parse_field(device_type, "device_type")
    {
        return Err(ServiceError::invalid(
            "device_type",
            "invalid_device_type",
            e.to_string(),
        ));
    }
    Ok(())
}

/// Opens a project's extract for a researcher, narrowed by `filter` within the approval: the
/// policy (a researcher's session), a step-up within 10 minutes, and their name on the
/// project. A project not naming them is `NotFound`, as an absent one; the refusal or miss is
/// audited (outcome `denied` or `not_found`).
pub async fn open_research_extract(
    ctx: &Ctx,
    principal: &Principal,
    reference: &str,
    filter: ResearchFilter,
) -> Result<ResearchExtract, ServiceError> {
    let reference = check_reference(reference)?;
    check_filter(&filter)?;
    let audit = principal.audit(
        ctx,
        EXTRACT_ACTION,
        format!("research_project/{reference}"),
        "research",
    );
    policy::authorize_audited(
        ctx,
        principal,
        Action::ExtractResearch,
        Relationship::Independent,
        &audit,
    )
    .await?;
    principal.require_recent_authentication(ctx)?;
    // Only a person is named on a project: `own_research_projects` refuses anyone else.
    let named = own_research_projects(ctx, principal)
        .await?
        .into_iter()
        .find(|p| p.reference == reference);
    let Some(project) = named else {
        let mut missed = audit;
        missed.outcome = "not_found";
        ctx.store.append_audit(&missed).await?;
        return Err(ServiceError::NotFound {
            what: "research project",
        });
    };
    if let Err(expired) = check_approval_current(ctx, &project) {
        let mut refused = audit;
        refused.outcome = "approval_expired";
        ctx.store.append_audit(&refused).await?;
        return Err(expired);
    }
    Ok(ResearchExtract {
        project,
        filter,
        audit,
        after: 0,
        done: false,
    })
}

/// Writes a project's extract, narrowed by `filter`, through `write`, page by page, each page
/// audited (as the operator, under the registry's own organisation or else the project's);
/// returns the rows.
pub async fn research_extract(
    ctx: &Ctx,
    reference: &str,
    filter: ResearchFilter,
    mut write: impl FnMut(&ResearchRow) -> std::io::Result<()>,
) -> Result<u64, ServiceError> {
    check_filter(&filter)?;
    let project = project_named(ctx, reference).await?;
    check_approval_current(ctx, &project)?;
    let organisation = ctx
        .store
        .registry_organisation()
        .await?
        .unwrap_or(project.organisation);
    let mut extract = ResearchExtract {
        audit: NewAuditEvent {
            patients: Vec::new(),
            request: ctx.request(),
            at: ctx.now(),
            organisation,
            role: "operator",
            token: None,
            account: None,
            action: EXTRACT_ACTION,
            resource: String::new(),
            patient: None,
            record_count: 0,
            purpose: "research",
            outcome: "ok",
            break_glass: None,
        },
        project,
        filter,
        after: 0,
        done: false,
    };
    let mut total = 0;
    while let Some(rows) = extract.next_page(ctx).await? {
        for row in &rows {
            write(row).map_err(|e| ServiceError::Input(format!("writing the extract: {e}")))?;
        }
        total += rows.len() as u64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrowing_needs_its_dates_in_order_and_a_register_like_device_type() {
        let day = |d| chrono::NaiveDate::from_ymd_opt(2025, 1, d).unwrap();
        let field = |filter: ResearchFilter| match check_filter(&filter) {
            Err(ServiceError::Invalid(errors)) => errors[0].field.clone(),
            other => panic!("{other:?}"),
        };
        let fine = ResearchFilter {
            implanted_from: Some(day(1)),
            implanted_to: Some(day(1)),
            device_type: Some("hip_cup".into()),
        };
        assert!(check_filter(&fine).is_ok());
        assert!(check_filter(&ResearchFilter::default()).is_ok());
        assert_eq!(
            field(ResearchFilter {
                implanted_from: Some(day(2)),
                implanted_to: Some(day(1)),
                device_type: None,
            }),
            "implanted_to"
        );
        for bad in ["", "Hip cup", "hip-cup", "x'; --", &"a".repeat(65)] {
            assert_eq!(
                field(ResearchFilter {
                    device_type: Some(bad.to_string()),
                    ..ResearchFilter::default()
                }),
                "device_type",
                "{bad}"
            );
        }
        assert_eq!(
            fine.query_text(),
            "implanted_from=2025-01-01&implanted_to=2025-01-01&device_type=hip_cup"
        );
    }

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
            pseudonym: "0123456789abcdef0123456789abcdef".into(),
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
