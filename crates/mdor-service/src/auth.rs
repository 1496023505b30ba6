//! API tokens for system-to-system submission: each bound to one organisation and one role,
//! stored only as a SHA-256 hash, revocable; and the `Principal` every use case checks,
//! established from a token or from an account's session (`sessions`).
//!
//! Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force that
//! a slow password hash would protect.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use mdor_domain::OdsCode;
use mdor_store::{
    AccountId, AccountRole, ApiToken, NewApiToken, NewAuditEvent, OrganisationId, OrganisationKind,
    PatientId, Role, SessionId, TokenId,
};

use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

const TOKEN_PREFIX: &str = "mdor_";

/// Who is calling: an organisation and a role, established from a token or a session.
///
/// `role` is the role the policy (`policy::POLICIES`) judges: an account's own, or the one a
/// token's role acts as (`policy::policy_role`). A patient belongs to no organisation and acts
/// under the registry's own, which the audit names for them (as for their sign-ins); no
/// record is ever their own organisation's (`relationship_to`), and `organisation_ods` is
/// empty. Their own record is the one their account is linked to (`patient`).
#[derive(Debug, Clone)]
pub struct Principal {
    pub credential: Credential,
    pub organisation: OrganisationId,
    pub organisation_ods: String,
    pub role: AccountRole,
    /// The patient record a patient's account is linked to; `None` for everyone else.
    pub patient: Option<PatientId>,
}

/// What the caller authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A system's API token, sent with every request.
    Token(TokenId),
    /// A person's session, started by a sign-in with a password and a second factor.
    Session {
        account: AccountId,
        session: SessionId,
        /// When the holder last entered their password and second factor.
        reauthenticated_at: DateTime<Utc>,
        /// Whether that latest authentication used a phishing-resistant factor (a passkey or
        /// security key, or an identity provider's sign-in at a level configured as one).
        phishing_resistant: bool,
    },
}

impl Principal {
    /// The API token the caller used, if it used one (audit entries, idempotency keys and
    /// submissions name it).
    pub fn token(&self) -> Option<TokenId> {
        match self.credential {
            Credential::Token(token) => Some(token),
            Credential::Session { .. } => None,
        }
    }

    /// Exports and administration by a person need their password and second factor
    /// entered within `sessions::REAUTHENTICATION_WINDOW`; a system's token, which is
    /// presented whole with every request and never left in a browser, always passes.
    pub fn require_recent_authentication(&self, ctx: &Ctx) -> Result<(), ServiceError> {
        match self.credential {
            Credential::Token(_) => Ok(()),
            Credential::Session {
                reauthenticated_at, ..
            } if ctx.now() - reauthenticated_at < crate::sessions::REAUTHENTICATION_WINDOW => {
                Ok(())
            }
            Credential::Session { .. } => Err(ServiceError::ReauthenticationRequired),
        }
    }

    /// The caller's organisation against `organisation`, the owner of a record.
    pub fn relationship_to(&self, organisation: OrganisationId) -> Relationship {
        if self.role != AccountRole::Patient && organisation == self.organisation {
            Relationship::OwnOrganisation
        } else {
            Relationship::OtherOrganisation
        }
    }

    /// The caller against a patient's record: a patient's own linked record is
    /// `OwnPatientRecord`; any other patient's is another organisation's, which the policy
    /// gives patients nothing of.
    pub fn relationship_to_patient(&self, patient: PatientId) -> Relationship {
        if self.role == AccountRole::Patient && self.patient == Some(patient) {
            Relationship::OwnPatientRecord
        } else {
            Relationship::OtherOrganisation
        }
    }

    /// Whether the policy lets this principal do `action` on a record of `organisation`.
    pub fn reaches(&self, action: Action, organisation: OrganisationId) -> bool {
        policy::allows(self.role, action, self.relationship_to(organisation))
    }

    /// The organisation whose records `action` is limited to for this principal: `None` when
    /// the policy lets it reach other organisations' too.
    pub fn scope(&self, action: Action) -> Option<OrganisationId> {
        if policy::allows(self.role, action, Relationship::OtherOrganisation) {
            None
        } else {
            Some(self.organisation)
        }
    }

    /// The role as the audit records it: a token's role by its own name (`admin` for an
    /// administrator's token, as entries have always said), an account's by the account
    /// role's (`system_admin`, `consultant`, …).
    pub fn audit_role(&self) -> &'static str {
        match (&self.credential, self.role) {
            (Credential::Token(_), AccountRole::SystemAdmin) => Role::Admin.as_str(),
            _ => self.role.as_str(),
        }
    }

    /// Whether the caller is a person whose latest authentication resisted phishing; a
    /// system's token never is.
    pub fn phishing_resistant(&self) -> bool {
        matches!(
            self.credential,
            Credential::Session {
                phishing_resistant: true,
                ..
            }
        )
    }

    /// The account whose session the caller holds, if a person (audit entries name it).
    pub fn account(&self) -> Option<AccountId> {
        match self.credential {
            Credential::Token(_) => None,
            Credential::Session { account, .. } => Some(account),
        }
    }

    /// An audit entry of this principal's access, outcome `ok` until the store or the
    /// caller says otherwise.
    pub(crate) fn audit(
        &self,
        ctx: &Ctx,
        action: &'static str,
        resource: String,
        purpose: &'static str,
    ) -> NewAuditEvent {
        NewAuditEvent {
            patients: Vec::new(),
            request: ctx.request(),
            at: ctx.now(),
            organisation: self.organisation,
            role: self.audit_role(),
            token: self.token(),
            account: self.account(),
            action,
            resource,
            patient: None,
            record_count: 0,
            purpose,
            outcome: "ok",
            break_glass: None,
        }
    }
}

/// A new token: the secret is shown once and never stored.
pub struct CreatedToken {
    pub id: TokenId,
    pub secret: String,
}

/// Creates a token for an organisation. A provider submitter's organisation must be a
/// provider, a regulator's a regulator; administrators belong to the registry.
pub async fn create_token(
    ctx: &Ctx,
    ods_code: &OdsCode,
    role: Role,
    label: &str,
) -> Result<CreatedToken, ServiceError> {
    let organisation =
        ctx.store
            .organisation_by_ods(ods_code)
            .await?
            .ok_or(ServiceError::NotFound {
                what: "organisation",
            })?;
    let allowed = match role {
        Role::ProviderSubmitter => organisation.kind == OrganisationKind::Provider,
        Role::Regulator => organisation.kind == OrganisationKind::Regulator,
        Role::Admin => organisation.kind == OrganisationKind::Registry,
    };
    if !allowed {
        return Err(ServiceError::invalid(
            "role",
            "role_not_allowed_for_organisation",
            format!(
                "role {} cannot belong to a {} organisation",
                role.as_str(),
                organisation.kind.as_str()
            ),
        ));
    }
    let label = label.trim();
    if label.is_empty() || label.len() > 100 {
        return Err(ServiceError::invalid(
            "label",
            "invalid_label",
            "label must be 1 to 100 characters",
        ));
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(bytes));
    let id = ctx
        .store
        .insert_token(&NewApiToken {
            token_hash: hash_token(&secret),
            organisation: organisation.id,
            role,
            label: label.to_string(),
            created_at: ctx.now(),
        })
        .await?;
    Ok(CreatedToken { id, secret })
}

/// Resolves a bearer token to its principal; unknown and revoked tokens are the same error.
#[tracing::instrument(skip_all)]
pub async fn authenticate(ctx: &Ctx, bearer: &str) -> Result<Principal, ServiceError> {
    if !bearer.starts_with(TOKEN_PREFIX) || bearer.len() != TOKEN_PREFIX.len() + 64 {
        return Err(ServiceError::Unauthenticated);
    }
    let token: ApiToken = ctx
        .store
        .token_by_hash(&hash_token(bearer))
        .await?
        .ok_or(ServiceError::Unauthenticated)?;
    Ok(Principal {
        credential: Credential::Token(token.id),
        organisation: token.organisation,
        organisation_ods: token.organisation_ods,
        role: policy::policy_role(token.role),
        patient: None,
    })
}

pub async fn list_tokens(ctx: &Ctx) -> Result<Vec<ApiToken>, ServiceError> {
    Ok(ctx.store.tokens().await?)
}

pub async fn revoke_token(ctx: &Ctx, id: TokenId) -> Result<(), ServiceError> {
    if ctx.store.revoke_token(id).await? {
        Ok(())
    } else {
        Err(ServiceError::NotFound { what: "live token" })
    }
}

fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}
