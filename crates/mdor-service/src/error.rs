//! Service errors: what went wrong in the registry's terms, for the web layer to render.

use mdor_domain::record::FieldError;
use mdor_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The input breaks one or more rules; every problem is listed.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// Absent, or present but not visible to this principal: the two are indistinguishable.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("missing or invalid credentials")]
    Unauthenticated,
    /// The policy refuses. `audited` says whether the use case has already written the
    /// refusal to the audit (identifiable reads write theirs with the record they name); the
    /// web layer audits every other refusal itself (`mdor_web::api::refusals`).
    #[error("this role may not {action}")]
    Forbidden { action: &'static str, audited: bool },
    /// A person's session must re-enter its password and second factor first (step-up).
    #[error("re-authentication required")]
    ReauthenticationRequired,
    /// An identifiable read beyond the caller's own organisation without a stated purpose
    /// the caller may give; `message` says which purposes it may state.
    #[error("{message}")]
    PurposeRequired { message: &'static str },
    /// A stated purpose this caller may not give for this read.
    #[error("{message}")]
    PurposeNotAllowed { message: &'static str },
    /// The caller's role reaches these records only by breaking glass, and it did not.
    #[error("this role reaches these records only by breaking glass, with a written reason")]
    BreakGlassRequired,
    /// The caller's role may act only through a session established with a phishing-resistant
    /// factor (a WebAuthn passkey or security key), and this one was established with a code.
    #[error("this role needs a session established with a passkey or security key")]
    PhishingResistantFactorRequired,
    #[error("{message}")]
    Conflict {
        code: &'static str,
        field: Option<String>,
        message: String,
    },
    #[error("idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    #[error("storage failure")]
    Store(#[source] StoreError),
    #[error("{0}")]
    Input(String),
    /// OpenID Connect sign-in was asked for, but this registry has no `[oidc]` settings.
    #[error("openid connect sign-in is not configured")]
    OidcNotConfigured,
    /// The identity provider could not be reached, or answered nonsense, before any sign-in
    /// was attempted (starting one); at the callback this is a failed sign-in like any other.
    #[error("the identity provider is unavailable")]
    IdentityProviderUnavailable,
    /// An upload larger than the configured limit.
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::PatientMismatch => ServiceError::Conflict {
                code: "patient_details_conflict",
                field: Some("patient.date_of_birth".into()),
                message:
                    "a patient with this nhs_number is registered with a different date_of_birth"
                        .into(),
            },
            StoreError::NotFound { what } => ServiceError::NotFound { what },
            other => ServiceError::Store(other),
        }
    }
}

impl ServiceError {
    pub(crate) fn invalid(
        field: &str,
        code: &'static str,
        message: impl Into<String>,
    ) -> ServiceError {
        ServiceError::Invalid(vec![FieldError::new(field, code, message)])
    }
}

/// An error and each of its causes, joined by ": ", for the operator's log.
///
/// `ServiceError::Store` alone says only "storage failure"; the cause (a SQL error, a
/// conflict's constraint) is what an operator needs. Database errors name tables and
/// constraints, never bound values, so no identifier reaches the log through this.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
