//! Account administration for administrators: `GET /api/v1/accounts` lists every account,
//! `POST /api/v1/accounts` creates one, and `POST /api/v1/accounts/{username}/disable`,
//! `/enable` and `/reset` disable one (ending its sessions), re-enable one, or issue new
//! credentials to a holder who lost theirs; `PUT /api/v1/accounts/{username}/approver`
//! designates a provider's data manager as its organisation's approver or withdraws it
//! (administrators only). Each needs an administrator's own session (never
//! an API token) re-authenticated within 10 minutes, and is audited; see
//! `mdor_service::accounts::admin`. New credentials are in the response once, never stored
//! in clear, and never cached.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use mdor_domain::OdsCode;
use mdor_domain::record::FieldError;
use mdor_service::accounts::{AccountRequest, Username};
use mdor_service::{AccountRole, AccountSummary, CreatedAccount, PatientId};

use crate::api::{identifiable, path_error};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Caller, JsonBody, RequestState};

/// An account to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountBody {
    /// 3 to 64 letters, digits, `.`, `-` and `_`, starting with a letter or digit; stored
    /// in lowercase.
    pub username: String,
    /// provider_submitter, provider_data_manager, consultant, registry_analyst, regulator,
    /// manufacturer, researcher, system_admin or patient.
    pub role: String,
    /// ODS code of the account's organisation, of the kind the role belongs to; absent for a
    /// patient.
    pub organisation: Option<String>,
    /// For a patient: the id of the patient record the account may see.
    pub patient_id: Option<i64>,
}

/// Credentials to hand to the account's holder over a trusted channel: shown once.
#[derive(Serialize, ToSchema)]
pub struct IssuedCredentialsView {
    pub account_id: i64,
    pub username: String,
    /// To be replaced by one the holder chooses at their first sign-in.
    pub initial_password: String,
    /// The TOTP secret in base32, for typing into an authenticator app.
    pub totp_secret: String,
    /// The same as an `otpauth://` URI, for a QR code.
    pub totp_uri: String,
    /// Single-use backup codes.
    pub backup_codes: Vec<String>,
}

impl From<CreatedAccount> for IssuedCredentialsView {
    fn from(created: CreatedAccount) -> Self {
        IssuedCredentialsView {
            account_id: created.id.0,
            username: created.username,
            initial_password: created.initial_password,
            totp_secret: created.totp_secret,
            totp_uri: created.totp_uri,
            backup_codes: created.backup_codes,
        }
    }
}

/// One account, without credentials.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    pub id: i64,
    pub username: String,
    pub role: String,
    /// ODS code; absent for a patient.
    pub organisation: Option<String>,
    pub linked_to_patient: bool,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    /// When an administrator last re-enabled the account or reset its credentials.
    pub reinstated_at: Option<DateTime<Utc>>,
    /// The password is still one an administrator handed over.
    pub must_change_password: bool,
    /// A data manager an administrator designated as their organisation's approver.
    pub approver: bool,
}

impl From<AccountSummary> for AccountView {
    fn from(account: AccountSummary) -> Self {
        AccountView {
            id: account.id.0,
            username: account.username,
            role: account.role.as_str().to_string(),
            organisation: account.organisation,
            linked_to_patient: account.linked_to_patient,
            created_at: account.created_at,
            last_sign_in_at: account.last_sign_in_at,
            disabled_at: account.disabled_at,
            reinstated_at: account.reinstated_at,
            must_change_password: account.must_change_password,
            approver: account.approver,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/accounts", responses(
    (status = 200, description = "Every account in username order, without credentials; the listing is audited", body = Vec<AccountView>),
    (status = 403, description = "Not an administrator's session, or no step-up within 10 minutes", body = ErrorBody),
))]
pub async fn list_accounts(
    state: RequestState,
    Caller(principal): Caller,
) -> Result<Response, ApiError> {
    let accounts = mdor_service::list_accounts(&state.ctx, &principal).await?;
    let views: Vec<AccountView> = accounts.into_iter().map(AccountView::from).collect();
    Ok(identifiable(StatusCode::OK, views))
}

#[utoipa::path(post, path = "/api/v1/accounts", request_body = NewAccountBody, responses(
    (status = 201, description = "The account, with credentials shown once", body = IssuedCredentialsView),
    (status = 403, description = "Not an administrator's session, or no step-up within 10 minutes", body = ErrorBody),
    (status = 404, description = "No such organisation", body = ErrorBody),
    (status = 409, description = "The username is taken (username_taken)", body = ErrorBody),
    (status = 422, description = "A bad username, role, organisation or patient link", body = ErrorBody),
))]
pub async fn create_account(
    state: RequestState,
    Caller(principal): Caller,
    JsonBody(body): JsonBody<NewAccountBody>,
) -> Result<Response, ApiError> {
    let request = account_request(body)?;
    let created =
        mdor_service::administrator_create_account(&state.ctx, &principal, &request).await?;
    Ok(identifiable(
        StatusCode::CREATED,
        IssuedCredentialsView::from(created),
    ))
}

#[utoipa::path(post, path = "/api/v1/accounts/{username}/disable", params(("username" = String, Path)), responses(
    (status = 204, description = "Disabled, its sessions ended (or it already was)"),
    (status = 403, description = "Not an administrator's session, or no step-up within 10 minutes", body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub async fn disable_account(
    state: RequestState,
    Caller(principal): Caller,
    username: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let username = username_in(username)?;
    mdor_service::disable_account(&state.ctx, &principal, &username).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/accounts/{username}/enable", params(("username" = String, Path)), responses(
    (status = 204, description = "Enabled with its idle clock restarted (or it already was); its credentials are unchanged"),
    (status = 403, description = "Not an administrator's session, or no step-up within 10 minutes", body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub async fn enable_account(
    state: RequestState,
    Caller(principal): Caller,
    username: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let username = username_in(username)?;
    mdor_service::enable_account(&state.ctx, &principal, &username).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/v1/accounts/{username}/reset", params(("username" = String, Path)), responses(
    (status = 200, description = "New credentials, shown once: the password, authenticator secret and backup codes are replaced, every passkey and security key revoked and every session ended", body = IssuedCredentialsView),
    (status = 403, description = "Not an administrator's session, or no step-up within 10 minutes", body = ErrorBody),
    (status = 404, body = ErrorBody),
))]
pub async fn reset_account(
    state: RequestState,
    Caller(principal): Caller,
    username: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let username = username_in(username)?;
    let issued = mdor_service::reset_account_credentials(&state.ctx, &principal, &username).await?;
    Ok(identifiable(
        StatusCode::OK,
        IssuedCredentialsView::from(issued),
    ))
}

fn username_in(path: Result<Path<String>, PathRejection>) -> Result<Username, ApiError> {
    let Path(username) = path.map_err(|r| path_error(r, "username"))?;
    Ok(Username::parse(&username)?)
}

/// Every field parsed, every problem reported at once.
fn account_request(body: NewAccountBody) -> Result<AccountRequest, ApiError> {
    let mut errors = Vec::new();
    let username = match Username::parse(&body.username) {
        Ok(username) => Some(username),
        Err(mdor_service::ServiceError::Invalid(problems)) => {
            errors.extend(problems);
            None
        }
        Err(other) => return Err(other.into()),
    };
    let role = AccountRole::parse(body.role.trim());
    if role.is_none() {
        errors.push(FieldError::new(
            "role",
            "not_in_code_list",
            format!(
                "role must be one of {}",
                AccountRole::ALL.map(AccountRole::as_str).join(", ")
            ),
        ));
    }
    let organisation = match body.organisation.as_deref().map(OdsCode::parse) {
        None => None,
        Some(Ok(ods)) => Some(ods),
        Some(Err(error)) => {
            errors.push(FieldError::new(
                "organisation",
                "invalid_ods_code",
                error.to_string(),
            ));
            None
        }
    };
    match (username, role) {
        (Some(username), Some(role)) if errors.is_empty() => Ok(AccountRequest {
            username,
            role,
            organisation,
            patient: body.patient_id.map(PatientId),
        }),
        _ => Err(ApiError::Validation(errors)),
    }
}

/// The identity provider subject to link to an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcIdentityBody {
    /// The account holder's subject (`sub`) at the configured identity provider, 1 to 255
    /// characters, e.g. their NHS CIS2 UUID.
    pub subject: String,
}

#[utoipa::path(post, path = "/api/v1/accounts/{username}/oidc-identity", params(("username" = String, Path)), request_body = OidcIdentityBody, responses(
    (status = 204, description = "Linked: the holder may now sign in through the configured identity provider"),
    (status = 403, description = "Not an administrator's session, or no step-up within 10 minutes", body = ErrorBody),
    (status = 404, description = "No such account, or no identity provider is configured (oidc_not_configured)", body = ErrorBody),
    (status = 409, description = "The subject or the account is linked already (oidc_identity_taken)", body = ErrorBody),
    (status = 422, description = "A subject that cannot be one", body = ErrorBody),
))]
pub async fn link_oidc_identity(
    state: RequestState,
    Caller(principal): Caller,
    username: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<OidcIdentityBody>,
) -> Result<Response, ApiError> {
    let username = username_in(username)?;
    mdor_service::administrator_link_oidc_identity(
        &state.ctx,
        &principal,
        &username,
        &body.subject,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Whether a provider's data manager is their organisation's approver.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproverBody {
    /// True designates the account; false withdraws the designation.
    pub approver: bool,
}

#[utoipa::path(put, path = "/api/v1/accounts/{username}/approver", params(("username" = String, Path)), request_body = ApproverBody, responses(
    (status = 204, description = "Designated or withdrawn (or it already was as asked); audited"),
    (status = 403, description = "Not an administrator's session, or no step-up within 10 minutes", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 422, description = "The account is not a provider's data manager (not_a_data_manager)", body = ErrorBody),
))]
pub async fn set_approver(
    state: RequestState,
    Caller(principal): Caller,
    username: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<ApproverBody>,
) -> Result<Response, ApiError> {
    let username = username_in(username)?;
    mdor_service::set_approver(&state.ctx, &principal, &username, body.approver).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
