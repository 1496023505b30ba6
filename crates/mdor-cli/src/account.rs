//! `mdor account`: create the key that seals TOTP secrets, create accounts (there is no
//! self sign-up: an administrator runs this and hands the printed credentials over a trusted
//! channel), disable an account (ending its sessions) and re-enable it, reset a holder's lost
//! credentials, designate a provider's data manager as its organisation's approver (or
//! withdraw it), disable accounts unused for 90 days, and link an account to its holder's
//! identity at the OpenID Connect provider. Each is audited as role `operator`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use mdor_domain::OdsCode;
use mdor_service::accounts::{AccountKey, AccountRequest, Username};
use mdor_service::{AccountRole, Ctx};
use mdor_store::PatientId;

use crate::config::Config;
use crate::print;

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create the key that seals accounts' TOTP secrets in FILE (mode 600); name it in
    /// accounts.key_file. Losing it means re-enrolling every account's authenticator.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Create an account; its initial password, authenticator secret and backup codes are
    /// printed once and never stored in clear.
    Create {
        /// ODS code of the account's organisation (not given for a patient).
        #[arg(long)]
        org: Option<String>,
        /// provider_submitter, provider_data_manager, consultant, registry_analyst, regulator,
        /// manufacturer, researcher, system_admin or patient.
        #[arg(long)]
        role: String,
        #[arg(long)]
        username: String,
        /// For a patient: the id of the patient record the account may see.
        #[arg(long)]
        patient: Option<i64>,
    },
    /// Disable an account at once and end its live sessions (a leaver, a lost device).
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Re-enable a disabled account (a returning holder, an account expired idle); its idle
    /// clock restarts and its credentials are unchanged.
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Designate a provider's data manager as their organisation's approver, who creates and
    /// administers its staff accounts (or, with `--revoke`, withdraw it).
    Approver {
        #[arg(long)]
        username: String,
        /// Withdraw the designation instead of granting it.
        #[arg(long)]
        revoke: bool,
    },
    /// Issue new credentials to a holder who lost theirs: a new initial password,
    /// authenticator secret and backup codes are printed once; every passkey and security key
    /// is revoked and every session ended.
    Reset {
        #[arg(long)]
        username: String,
    },
    /// Disable every account not signed in to for 90 days and end their sessions (run
    /// daily).
    ExpireIdle,
    /// Let an account sign in through the OpenID Connect provider configured in `[oidc]`: the
    /// ID token's subject (`sub`, for NHS CIS2 the person's UUID) is linked to the account.
    LinkOidc {
        #[arg(long)]
        username: String,
        /// The provider's subject identifier for this person.
        #[arg(long)]
        subject: String,
    },
}

impl AccountCommand {
    /// Commands that need neither configuration nor database.
    pub fn is_offline(&self) -> bool {
        matches!(self, AccountCommand::Keygen { .. })
    }
}

pub fn run_offline(command: AccountCommand) -> anyhow::Result<()> {
    if let AccountCommand::Keygen { out } = command {
        crate::audit::write_new_file(&out, &AccountKey::generate_text(), 0o600)?;
        print(&format!(
            "accounts key written to {}; set accounts.key_file to it\n",
            out.display()
        ));
    }
    Ok(())
}

pub async fn run(ctx: Ctx, config: &Config, command: AccountCommand) -> anyhow::Result<()> {
    ctx.check_ready().await?;
    match command {
        AccountCommand::Keygen { .. } => run_offline(command),
        AccountCommand::Create {
            org,
            role,
            username,
            patient,
        } => {
            let ctx = ctx.with_account_key(load_key(config)?);
            let role = AccountRole::parse(&role).with_context(|| {
                format!(
                    "role '{role}' is not one of {}",
                    AccountRole::ALL.map(AccountRole::as_str).join(", ")
                )
            })?;
            let request = AccountRequest {
                username: Username::parse(&username).map_err(crate::load::describe)?,
                role,
                organisation: org.as_deref().map(OdsCode::parse).transpose()?,
                patient: patient.map(PatientId),
            };
            let created = mdor_service::create_account(&ctx, &request)
                .await
                .map_err(crate::load::describe)?;
            print(&format!(
                "account {} created: {} as {}\n{}",
                created.id,
                created.username,
                role.as_str(),
                credentials_text(&created)
            ));
            Ok(())
        }
        AccountCommand::Enable { username } => {
            let username = Username::parse(&username).map_err(crate::load::describe)?;
            let id = mdor_service::operator_enable_account(&ctx, &username)
                .await
                .map_err(crate::load::describe)?;
            print(&format!(
                "account {id} ({}) enabled; its idle clock restarts now\n",
                username.as_str()
            ));
            Ok(())
        }
        AccountCommand::Approver { username, revoke } => {
            let username = Username::parse(&username).map_err(crate::load::describe)?;
            let id = mdor_service::operator_set_approver(&ctx, &username, !revoke)
                .await
                .map_err(crate::load::describe)?;
            print(&format!(
                "account {id} ({}) {}\n",
                username.as_str(),
                if revoke {
                    "is no longer its organisation's approver"
                } else {
                    "is now its organisation's approver"
                }
            ));
            Ok(())
        }
        AccountCommand::Reset { username } => {
            let ctx = ctx.with_account_key(load_key(config)?);
            let username = Username::parse(&username).map_err(crate::load::describe)?;
            let issued = mdor_service::operator_reset_account_credentials(&ctx, &username)
                .await
                .map_err(crate::load::describe)?;
            print(&format!(
                "account {} ({}): new credentials; its passkeys are revoked and its sessions ended\n{}",
                issued.id,
                issued.username,
                credentials_text(&issued)
            ));
            Ok(())
        }
        AccountCommand::Disable { username } => {
            let username = Username::parse(&username).map_err(crate::load::describe)?;
            let id = mdor_service::operator_disable_account(&ctx, &username)
                .await
                .map_err(crate::load::describe)?;
            print(&format!(
                "account {id} ({}) disabled; its sessions have ended\n",
                username.as_str()
            ));
            Ok(())
        }
        AccountCommand::LinkOidc { username, subject } => {
            let settings = config
                .oidc
                .as_ref()
                .context("[oidc] is not configured; set its issuer and client first")?;
            let username = Username::parse(&username).map_err(crate::load::describe)?;
            let id = mdor_service::link_oidc_identity(&ctx, settings.issuer(), &username, &subject)
                .await
                .map_err(crate::load::describe)?;
            print(&format!(
                "account {id} ({}) may now sign in through {}\n",
                username.as_str(),
                settings.issuer()
            ));
            Ok(())
        }
        AccountCommand::ExpireIdle => {
            let disabled = mdor_service::expire_idle_accounts(&ctx)
                .await
                .map_err(crate::load::describe)?;
            print(&format!(
                "{} account(s) unused for {} days disabled\n",
                disabled.len(),
                mdor_service::accounts::IDLE_DAYS
            ));
            Ok(())
        }
    }
}

/// The credentials to hand over, as printed once.
fn credentials_text(issued: &mdor_service::CreatedAccount) -> String {
    format!(
        "initial password: {}\n\
         authenticator secret: {}\n\
         authenticator uri: {}\n\
         backup codes (each works once):\n  {}\n\
         (shown once; hand these to the account holder over a trusted channel)\n",
        issued.initial_password,
        issued.totp_secret,
        issued.totp_uri,
        issued.backup_codes.join("\n  "),
    )
}

pub(crate) fn load_key(config: &Config) -> anyhow::Result<AccountKey> {
    let path = config
        .accounts_key_file
        .as_ref()
        .context("accounts.key_file is not set; create a key with `mdor account keygen`")?;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the accounts key {}", path.display()))?;
    AccountKey::parse(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))
}
