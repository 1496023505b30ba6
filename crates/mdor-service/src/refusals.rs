//! Audit entries for refused requests that no use case audited itself: a request whose
//! credentials are unknown, revoked, ended or malformed (`authenticate`), and a request the
//! policy, the step-up rule, the phishing-resistant rule or the CSRF check refused
//! (`authorise`). Identifiable reads audit their own refusals with the record they name
//! (`ServiceError::Forbidden { audited: true }`), so that each refusal is one entry.
//!
//! An anonymous refusal is recorded under the registry's own organisation with role
//! `unknown`; nothing of the presented credential is written, since a mistyped token may be
//! most of a real one.

use mdor_store::{AccountId, NewAuditEvent, OrganisationId, TokenId};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::sessions::SessionCaller;

/// Why a request was refused; the audit entry's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalOutcome {
    /// No credential, or one that names no live token or session.
    Unauthenticated,
    /// The policy gives this role no such action, or not on this organisation's records.
    Forbidden,
    /// A role that must use a passkey or security key presented a session signed in with a
    /// code.
    PhishingResistantFactorRequired,
    /// Exports and administration need a step-up within the last 10 minutes.
    ReauthenticationRequired,
    /// A state-changing request made with a session cookie without its CSRF token.
    CsrfTokenInvalid,
}

impl RefusalOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalOutcome::Unauthenticated => "unauthenticated",
            RefusalOutcome::Forbidden => "forbidden",
            RefusalOutcome::PhishingResistantFactorRequired => "phishing_resistant_factor_required",
            RefusalOutcome::ReauthenticationRequired => "reauthentication_required",
            RefusalOutcome::CsrfTokenInvalid => "csrf_token_invalid",
        }
    }

    fn action(self) -> &'static str {
        match self {
            RefusalOutcome::Unauthenticated => "request.authenticate",
            _ => "request.authorise",
        }
    }

    fn purpose(self) -> &'static str {
        match self {
            RefusalOutcome::Unauthenticated => "authentication",
            _ => "authorisation",
        }
    }
}

/// Who was refused, as far as the request established it.
#[derive(Debug, Clone, Default)]
pub struct RefusedCaller {
    organisation: Option<OrganisationId>,
    role: Option<&'static str>,
    token: Option<TokenId>,
    account: Option<AccountId>,
}

impl RefusedCaller {
    /// A caller whose credential established nobody.
    pub fn anonymous() -> RefusedCaller {
        RefusedCaller::default()
    }

    pub fn of_principal(principal: &Principal) -> RefusedCaller {
        RefusedCaller {
            organisation: Some(principal.organisation),
            role: Some(principal.audit_role()),
            token: principal.token(),
            account: principal.account(),
        }
    }

    /// A session's holder, before a principal exists (a session refused for its factor).
    pub fn of_session(caller: &SessionCaller) -> RefusedCaller {
        RefusedCaller {
            organisation: caller.organisation,
            role: Some(caller.role.as_str()),
            token: None,
            account: Some(caller.session.account),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.role.is_none()
    }
}

/// Writes the audit entry of a refused request: `resource` names the method and route
/// template (never the path, which may hold identifiers). Without an organisation to record
/// it under (no registry organisation yet for an anonymous caller), nothing is written.
pub async fn audit_refusal(
    ctx: &Ctx,
    caller: &RefusedCaller,
    resource: String,
    outcome: RefusalOutcome,
) -> Result<(), ServiceError> {
    let organisation = match caller.organisation {
        Some(organisation) => organisation,
        None => match ctx.store.registry_organisation().await? {
            Some(organisation) => organisation,
            None => return Ok(()),
        },
    };
    let event = NewAuditEvent {
        patients: Vec::new(),
        request: ctx.request(),
        at: ctx.now(),
        organisation,
        role: caller.role.unwrap_or("unknown"),
        token: caller.token,
        account: caller.account,
        action: outcome.action(),
        resource,
        patient: None,
        record_count: 0,
        purpose: outcome.purpose(),
        outcome: outcome.as_str(),
        break_glass: None,
    };
    ctx.store.append_audit(&event).await?;
    Ok(())
}
