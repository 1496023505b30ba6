//! Account administration: create accounts, list them, disable and re-enable them, and reset
//! the credentials of a holder who lost theirs. Done by an administrator (any organisation's
//! accounts) or an organisation's approver, a provider's data manager an administrator has
//! designated as one (`set_approver`; its own staff only, another organisation's accounts
//! being absent to them), through their own session (never an
//! API token: the credentials issued are a person's to hand over, and a token has no second
//! factor) signed in or stepped up with a passkey or security key within the last 10
//! minutes; or by the operator at the command line.
//!
//! Every action writes an audit entry (purpose `administration`) naming who acted and the
//! account acted on, in the transaction that makes the change; refusals are audited too.
//! A reset replaces the password (to be changed at the next sign-in), the TOTP secret and
//! every backup code, revokes every passkey and security key and ends every session, so that
//! whoever holds the old credentials or a stolen device holds nothing; re-enabling and
//! resetting restart the 90-day idle clock, so that the next daily expiry does not disable
//! the account again before its holder can sign in.

use chrono::{DateTime, Utc};
use serde::Serialize;

use mdor_store::{
    AccountId, AccountRole, CredentialReset, NewAuditEvent, OrganisationId, StoreError,
};

use super::{
    AccountRequest, CreatedAccount, Username, fresh_credentials, new_account, organisation_for,
};
use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self, Action, Relationship};

/// The purpose every administration entry records.
const PURPOSE: &str = "administration";

const CREATE_ACTION: &str = "account.create";
const LIST_ACTION: &str = "account.list";
pub(crate) const DISABLE_ACTION: &str = "account.disable";
const ENABLE_ACTION: &str = "account.enable";
const RESET_ACTION: &str = "account.reset_credentials";
const APPROVER_GRANT_ACTION: &str = "account.approver_grant";
const APPROVER_REVOKE_ACTION: &str = "account.approver_revoke";

/// Who administers an account.
#[derive(Debug, Clone, Copy)]
pub enum Administrator<'a> {
    /// An administrator's principal, checked by `authorize` before anything is read.
    Person(&'a Principal),
    /// The operator at the command line, audited as role `operator` under the registry's
    /// own organisation (or, when there is none, the account's).
    Operator,
}

impl Administrator<'_> {
    /// The audit entry of this administrator's `action` on `resource`, outcome `ok`.
    pub(crate) async fn audit(
        &self,
        ctx: &Ctx,
        action: &'static str,
        resource: String,
        account_organisation: Option<OrganisationId>,
    ) -> Result<NewAuditEvent, ServiceError> {
        match self {
            Administrator::Person(principal) => Ok(principal.audit(ctx, action, resource, PURPOSE)),
            Administrator::Operator => {
                let organisation = match ctx.store.registry_organisation().await? {
                    Some(organisation) => organisation,
                    None => account_organisation.ok_or(ServiceError::NotFound {
                        what: "registry organisation",
                    })?,
                };
                Ok(NewAuditEvent {
                    patients: Vec::new(),
                    at: ctx.now(),
                    organisation,
                    role: "operator",
                    token: None,
                    account: None,
                    action,
                    resource,
                    patient: None,
                    record_count: 0,
                    purpose: PURPOSE,
                    outcome: "ok",
                    break_glass: None,
                    request: ctx.request(),
                })
            }
        }
    }

    /// For a person: the policy lets their role do `action` for some organisation, they hold
    /// a session (not a token), a data manager among them has been designated their
    /// organisation's approver, their latest authentication resisted phishing (a passkey or
    /// security key), and they re-authenticated recently. Refusals are audited. Which
    /// accounts they reach is `reaches`.
    pub(crate) async fn authorize(
        &self,
        ctx: &Ctx,
        action: Action,
        audit_action: &'static str,
    ) -> Result<(), ServiceError> {
        let Administrator::Person(principal) = self else {
            return Ok(());
        };
        let refused = principal.audit(ctx, audit_action, "account".into(), PURPOSE);
        policy::authorize_some_audited(ctx, principal, action, &refused).await?;
        let Some(account) = principal.account() else {
            self.audit_refusal(ctx, audit_action, "account".into())
                .await?;
            return Err(ServiceError::Forbidden {
                action: "administer accounts with an API token: it takes a person's session",
                audited: true,
            });
        };
        // Read afresh on every action, so that a withdrawn designation takes effect at once.
        if principal.role == AccountRole::ProviderDataManager
            && !ctx
                .store
                .account_by_id(account)
                .await?
                .is_some_and(|a| a.approver)
        {
            self.audit_refusal(ctx, audit_action, "account".into())
                .await?;
            return Err(ServiceError::Forbidden {
                action: "administer accounts until an administrator designates you your organisation's approver",
                audited: true,
            });
        }
        // Administrators' sessions always are; an organisation's approver must have signed in
        // or stepped up with a key to issue or withdraw anyone's credentials. (The web layer
        // audits this refusal, as it does for every session held to its own routes.)
        if !principal.phishing_resistant() {
            return Err(ServiceError::PhishingResistantFactorRequired);
        }
        principal.require_recent_authentication(ctx)
    }

    /// Whether the policy lets this administrator do `action` on an account of
    /// `organisation` (`None`: a patient's, which is no organisation's).
    fn reaches(&self, action: Action, organisation: Option<OrganisationId>) -> bool {
        match (self, organisation) {
            (Administrator::Operator, _) => true,
            (Administrator::Person(principal), Some(organisation)) => {
                principal.reaches(action, organisation)
            }
            (Administrator::Person(principal), None) => {
                policy::allows(principal.role, action, Relationship::OtherOrganisation)
            }
        }
    }

    /// Writes a person's refused `audit_action` on `resource` to the audit (outcome `denied`);
    /// the operator is never refused.
    async fn audit_refusal(
        &self,
        ctx: &Ctx,
        audit_action: &'static str,
        resource: String,
    ) -> Result<(), ServiceError> {
        if let Administrator::Person(principal) = self {
            let mut refused = principal.audit(ctx, audit_action, resource, PURPOSE);
            refused.outcome = "denied";
            ctx.store.append_audit(&refused).await?;
        }
        Ok(())
    }

    /// The account `username` names, if this administrator reaches it for `action`, with the
    /// audit entry of `audit_action` on it (not yet written: the store writes it with the
    /// change). An account they do not reach is audited as refused and answered as absent.
    async fn reach(
        &self,
        ctx: &Ctx,
        action: Action,
        audit_action: &'static str,
        username: &Username,
    ) -> Result<(mdor_store::Account, NewAuditEvent), ServiceError> {
        let account = find(ctx, username).await?;
        if !self.reaches(action, account.organisation) {
            return Err(self.hidden(ctx, audit_action, &account).await);
        }
        let audit = self
            .audit(
                ctx,
                audit_action,
                format!("account/{}", account.id),
                account.organisation,
            )
            .await?;
        Ok((account, audit))
    }

    /// An account this administrator may not reach: audited as refused, answered as absent,
    /// as another organisation's records are.
    async fn hidden(
        &self,
        ctx: &Ctx,
        audit_action: &'static str,
        account: &mdor_store::Account,
    ) -> ServiceError {
        let resource = format!("account/{}", account.id);
        match self.audit_refusal(ctx, audit_action, resource).await {
            Ok(()) => ServiceError::NotFound { what: "account" },
            Err(error) => error,
        }
    }
}

/// One account as administrators review it: no credential, hash or secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountSummary {
    pub id: AccountId,
    pub username: String,
    pub role: AccountRole,
    /// ODS code of the account's organisation; `None` for a patient.
    pub organisation: Option<String>,
    /// Whether a patient's account is linked to a patient record.
    pub linked_to_patient: bool,
    pub created_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub reinstated_at: Option<DateTime<Utc>>,
    /// The password is still one an administrator was given (new or reset).
    pub must_change_password: bool,
    /// A data manager designated as their organisation's approver.
    pub approver: bool,
}

/// Creates an account (`accounts::create_account` is the operator's).
pub async fn administrator_create_account(
    ctx: &Ctx,
    principal: &Principal,
    request: &AccountRequest,
) -> Result<CreatedAccount, ServiceError> {
    create(ctx, Administrator::Person(principal), request).await
}

pub(crate) async fn create(
    ctx: &Ctx,
    by: Administrator<'_>,
    request: &AccountRequest,
) -> Result<CreatedAccount, ServiceError> {
    by.authorize(ctx, Action::CreateAccount, CREATE_ACTION)
        .await?;
    let key = ctx.account_key()?;
    let organisation = organisation_for(ctx, request).await?;
    if !by.reaches(Action::CreateAccount, organisation) {
        // The organisation was named in the request, so there is nothing to hide: refused.
        by.audit_refusal(ctx, CREATE_ACTION, "account".into())
            .await?;
        return Err(ServiceError::Forbidden {
            action: "create accounts outside your own organisation",
            audited: true,
        });
    }
    let username = request.username.as_str();
    let credentials = fresh_credentials(&key, username)?;
    let account = new_account(ctx, request, organisation, &credentials);
    // The store names the new account's id as the entry's resource.
    let audit = by
        .audit(ctx, CREATE_ACTION, "account".into(), organisation)
        .await?;
    let id = ctx
        .store
        .insert_account(&account, Some(&audit))
        .await
        .map_err(|error| match error {
            StoreError::Conflict { .. } => ServiceError::Conflict {
                code: "username_taken",
                field: Some("username".into()),
                message: "an account with this username exists".into(),
            },
            other => other.into(),
        })?;
    Ok(credentials.handed_over.for_account(id, username))
}

/// Every account, for an administrator to review who has access.
pub async fn list_accounts(
    ctx: &Ctx,
    principal: &Principal,
) -> Result<Vec<AccountSummary>, ServiceError> {
    let by = Administrator::Person(principal);
    by.authorize(ctx, Action::ListAccounts, LIST_ACTION).await?;
    let mut accounts = ctx.store.accounts().await?;
    accounts.retain(|account| by.reaches(Action::ListAccounts, account.organisation));
    let mut audit = by.audit(ctx, LIST_ACTION, "account".into(), None).await?;
    audit.record_count = accounts.len() as u64;
    ctx.store.append_audit(&audit).await?;
    Ok(accounts
        .into_iter()
        .map(|account| AccountSummary {
            id: account.id,
            username: account.username,
            role: account.role,
            organisation: account.organisation_ods,
            linked_to_patient: account.patient.is_some(),
            created_at: account.created_at,
            last_sign_in_at: account.last_login_at,
            disabled_at: account.disabled_at,
            reinstated_at: account.reinstated_at,
            must_change_password: account.must_change_password,
            approver: account.approver,
        })
        .collect())
}

/// Disables an account and ends its live sessions, with an audit entry, in one transaction.
/// An unknown username is `NotFound`; an account already disabled is left as it is.
pub async fn disable_account(
    ctx: &Ctx,
    principal: &Principal,
    username: &Username,
) -> Result<AccountId, ServiceError> {
    disable(ctx, Administrator::Person(principal), username).await
}

/// `disable_account` for the operator at the command line (`mdor account disable`).
pub async fn operator_disable_account(
    ctx: &Ctx,
    username: &Username,
) -> Result<AccountId, ServiceError> {
    disable(ctx, Administrator::Operator, username).await
}

async fn disable(
    ctx: &Ctx,
    by: Administrator<'_>,
    username: &Username,
) -> Result<AccountId, ServiceError> {
    by.authorize(ctx, Action::DisableAccount, DISABLE_ACTION)
        .await?;
    let (account, audit) = by
        .reach(ctx, Action::DisableAccount, DISABLE_ACTION, username)
        .await?;
    ctx.store
        .disable_account(account.id, ctx.now(), &audit)
        .await?;
    Ok(account.id)
}

/// Re-enables a disabled account (a returning holder, an account expired idle), restarting
/// its idle clock, with an audit entry. An unknown username is `NotFound`; an enabled
/// account is left as it is. Its credentials are unchanged: reset them too if they may be
/// lost or known to someone else.
pub async fn enable_account(
    ctx: &Ctx,
    principal: &Principal,
    username: &Username,
) -> Result<AccountId, ServiceError> {
    enable(ctx, Administrator::Person(principal), username).await
}

/// `enable_account` for the operator at the command line (`mdor account enable`).
pub async fn operator_enable_account(
    ctx: &Ctx,
    username: &Username,
) -> Result<AccountId, ServiceError> {
    enable(ctx, Administrator::Operator, username).await
}

async fn enable(
    ctx: &Ctx,
    by: Administrator<'_>,
    username: &Username,
) -> Result<AccountId, ServiceError> {
    by.authorize(ctx, Action::EnableAccount, ENABLE_ACTION)
        .await?;
    let (account, audit) = by
        .reach(ctx, Action::EnableAccount, ENABLE_ACTION, username)
        .await?;
    ctx.store
        .reinstate_account(account.id, ctx.now(), &audit)
        .await?;
    Ok(account.id)
}

/// Issues new credentials to the holder of an account who lost theirs (see the module
/// header for what a reset replaces and ends), with an audit entry, in one transaction. A
/// disabled account stays disabled. An unknown username is `NotFound`.
pub async fn reset_account_credentials(
    ctx: &Ctx,
    principal: &Principal,
    username: &Username,
) -> Result<CreatedAccount, ServiceError> {
    reset(ctx, Administrator::Person(principal), username).await
}

/// `reset_account_credentials` for the operator at the command line (`mdor account reset`).
pub async fn operator_reset_account_credentials(
    ctx: &Ctx,
    username: &Username,
) -> Result<CreatedAccount, ServiceError> {
    reset(ctx, Administrator::Operator, username).await
}

async fn reset(
    ctx: &Ctx,
    by: Administrator<'_>,
    username: &Username,
) -> Result<CreatedAccount, ServiceError> {
    by.authorize(ctx, Action::ResetAccountCredentials, RESET_ACTION)
        .await?;
    let key = ctx.account_key()?;
    let (account, audit) = by
        .reach(ctx, Action::ResetAccountCredentials, RESET_ACTION, username)
        .await?;
    let credentials = fresh_credentials(&key, &account.username)?;
    let reset = CredentialReset {
        account: account.id,
        password_hash: credentials.password_hash.clone(),
        totp_secret_sealed: credentials.totp_secret_sealed.clone(),
        backup_code_hashes: credentials.backup_code_hashes.clone(),
        at: ctx.now(),
    };
    if !ctx.store.reset_account_credentials(&reset, &audit).await? {
        return Err(ServiceError::NotFound { what: "account" });
    }
    Ok(credentials
        .handed_over
        .for_account(account.id, &account.username))
}

/// Designates a provider's data manager as their organisation's approver (`approver`
/// true) or withdraws the designation, with an audit entry; an administrator's act, never an
/// approver's (nobody widens their own organisation's issuers). An unknown username is
/// `NotFound`; an account of another role is refused naming the role; a designation already
/// as asked is left as it is.
pub async fn set_approver(
    ctx: &Ctx,
    principal: &Principal,
    username: &Username,
    approver: bool,
) -> Result<AccountId, ServiceError> {
    change_approver(ctx, Administrator::Person(principal), username, approver).await
}

/// `set_approver` for the operator at the command line (`mdor account approver`).
pub async fn operator_set_approver(
    ctx: &Ctx,
    username: &Username,
    approver: bool,
) -> Result<AccountId, ServiceError> {
    change_approver(ctx, Administrator::Operator, username, approver).await
}

async fn change_approver(
    ctx: &Ctx,
    by: Administrator<'_>,
    username: &Username,
    approver: bool,
) -> Result<AccountId, ServiceError> {
    let action = if approver {
        APPROVER_GRANT_ACTION
    } else {
        APPROVER_REVOKE_ACTION
    };
    by.authorize(ctx, Action::DesignateApprover, action).await?;
    let (account, audit) = by
        .reach(ctx, Action::DesignateApprover, action, username)
        .await?;
    if account.role != AccountRole::ProviderDataManager {
        return Err(ServiceError::invalid(
            "username",
            "not_a_data_manager",
            format!(
                "only a provider_data_manager can be an organisation's approver; this account is a {}",
                account.role.as_str()
            ),
        ));
    }
    ctx.store
        .set_account_approver(account.id, approver, &audit)
        .await?;
    Ok(account.id)
}

async fn find(ctx: &Ctx, username: &Username) -> Result<mdor_store::Account, ServiceError> {
    ctx.store
        .account_by_username(username.as_str())
        .await?
        .ok_or(ServiceError::NotFound { what: "account" })
}
