//! WebAuthn passkeys and security keys (webauthn-rs, the relying party's side): registering
//! them from a session, signing in with a password and one, and stepping a session up with
//! one. An assertion is bound to the registry's origin by the browser, so a look-alike site
//! cannot relay it: these are the phishing-resistant factor that administrators, regulators
//! and researchers must sign in with (`policy::PHISHING_RESISTANT_ROLES`).
//!
//! Every ceremony has two requests. The first returns options for the browser's
//! `navigator.credentials.create()` or `.get()` and a ceremony handle (256 random bits); the
//! challenge state stays in the database, found by the handle's SHA-256, so that any server
//! can finish it and a copy of the database cannot. The second request sends the
//! authenticator's answer with the handle; the store finishes each ceremony once only, in the
//! transaction that records its outcome, and the service refuses one older than
//! `CEREMONY_LIFETIME`.
//!
//! Sign-in checks the password first (`accounts::check_password`: soft lock, dummy hash for
//! unknown usernames, the same failure for every reason), so a challenge is only ever issued
//! to someone who knows the password and nothing tells which usernames exist or have keys.
//! A wrong or replayed assertion counts towards the soft lock like a wrong code.
//!
//! Enrolment: the first credential is registered from a session signed in with a TOTP or
//! backup code, re-authenticated within the last 10 minutes (the administrator handed those
//! over a trusted channel). Once an account has a credential, adding or revoking one needs a
//! session whose latest authentication was itself a credential, so a stolen password and
//! code cannot add the thief's key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Uuid,
};

use mdor_store::{
    Account, AccountId, CeremonyKind, NewAccountAuditEvent, NewWebauthnCeremony,
    NewWebauthnCredential, SecondFactorUse, SessionAssurance, SessionFactor, StoreError,
    WebauthnCeremony, WebauthnCredential, WebauthnCredentialId, WebauthnUse,
};

use crate::accounts::{self, SignedIn};
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::sessions::{self, SessionCaller, StartedSession};

/// A ceremony not finished within this time is refused: long enough to find and touch a
/// security key, short enough that a stolen handle is soon worthless.
pub const CEREMONY_LIFETIME: Duration = Duration::minutes(5);
/// The longest name a holder may give a credential.
pub const MAX_LABEL_CHARS: usize = 64;

const HANDLE_PREFIX: &str = "mdorw_";
const REGISTER_ACTION: &str = "account.webauthn_register";
const REVOKE_ACTION: &str = "account.webauthn_revoke";
const USER_HANDLE_LABEL: &[u8] = b"mdor webauthn user handle\0";

/// Where the registry is served from, which every WebAuthn credential is bound to.
#[derive(Debug, Clone)]
pub struct WebauthnSettings {
    /// The relying party id: the registry's domain name (`registry.example.nhs.uk`), or
    /// `localhost` for a demo. Credentials registered under one id never work under another.
    pub relying_party_id: String,
    /// The origin browsers reach the registry at (`https://registry.example.nhs.uk`); its host
    /// must be the relying party id or end with `.` and it.
    pub origin: Url,
}

/// The relying party, built once from the settings.
pub struct Relying {
    webauthn: webauthn_rs::Webauthn,
}

impl Relying {
    /// Refuses settings webauthn-rs would refuse (an origin outside the relying party id).
    pub fn new(settings: &WebauthnSettings) -> Result<Relying, ServiceError> {
        let webauthn = webauthn_rs::WebauthnBuilder::new(
            &settings.relying_party_id,
            &settings.origin,
        )
        .and_then(|builder| builder.rp_name("mdor").build())
        .map_err(|error| {
            ServiceError::Input(format!(
                "webauthn settings: the origin {} is not within relying party id {}: {error}",
                settings.origin, settings.relying_party_id
            ))
        })?;
        Ok(Relying { webauthn })
    }
}

/// The first half of a ceremony: what the browser passes to `navigator.credentials`, and
/// the handle that the second half must send back.
#[derive(Debug, Serialize)]
pub struct CeremonyStarted {
    pub ceremony: String,
    /// `{"publicKey": …}` as the WebAuthn JSON encoding gives it (binary fields base64url).
    pub options: serde_json::Value,
}

/// A registered credential as its holder sees it.
#[derive(Debug, Clone, Serialize)]
pub struct CredentialSummary {
    pub id: WebauthnCredentialId,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&WebauthnCredential> for CredentialSummary {
    fn from(credential: &WebauthnCredential) -> Self {
        CredentialSummary {
            id: credential.id,
            label: credential.label.clone(),
            created_at: credential.created_at,
            last_used_at: credential.last_used_at,
        }
    }
}

/// What a sign-in ceremony keeps between its two requests: webauthn-rs's state and, when the
/// stored password hash is weaker than today's parameters, its replacement (the password is
/// not seen again).
#[derive(Serialize, Deserialize)]
struct SignInState {
    authentication: PasskeyAuthentication,
    rehashed_password: Option<String>,
}

/// The session's holder asks to register a passkey or security key. Needs a step-up within
/// the last 10 minutes; once the account has a credential, that step-up must have used one.
#[tracing::instrument(skip_all)]
pub async fn begin_registration(
    ctx: &Ctx,
    caller: &SessionCaller,
) -> Result<CeremonyStarted, ServiceError> {
    let relying = ctx.webauthn()?;
    let existing = ctx
        .store
        .webauthn_credentials(caller.session.account)
        .await?;
    require_credential_management(ctx, caller, &existing)?;
    let exclude = existing
        .iter()
        .map(passkey_of)
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .map(|passkey| passkey.cred_id().clone())
        .collect();
    let (options, state) = relying
        .webauthn
        .start_passkey_registration(
            user_handle(caller.session.account),
            &caller.username,
            &caller.username,
            Some(exclude),
        )
        .map_err(|error| webauthn_failure("start a registration", &error))?;
    begin(
        ctx,
        caller.session.account,
        CeremonyKind::Registration,
        Some(caller),
        &state,
        serde_json::to_value(&options),
    )
    .await
}

/// Finishes a registration with the authenticator's answer (`credential`, the JSON of the
/// browser's `PublicKeyCredential`) and names the credential `label`. An answer that does
/// not verify is `Invalid` on field `credential`.
#[tracing::instrument(skip_all)]
pub async fn finish_registration(
    ctx: &Ctx,
    caller: &SessionCaller,
    ceremony_handle: &str,
    credential: &serde_json::Value,
    label: &str,
) -> Result<CredentialSummary, ServiceError> {
    let relying = ctx.webauthn()?;
    let label = parse_label(label)?;
    let existing = ctx
        .store
        .webauthn_credentials(caller.session.account)
        .await?;
    require_credential_management(ctx, caller, &existing)?;
    let ceremony = open_ceremony(ctx, ceremony_handle, CeremonyKind::Registration).await?;
    if ceremony.account != caller.session.account || ceremony.session != Some(caller.session.id) {
        return Err(ceremony_not_found());
    }
    let state: PasskeyRegistration = decode_state(&ceremony)?;
    let answer: RegisterPublicKeyCredential = serde_json::from_value(credential.clone())
        .map_err(|_| invalid_credential("credential is not a WebAuthn registration answer"))?;
    let passkey = relying
        .webauthn
        .finish_passkey_registration(&answer, &state)
        .map_err(|error| {
            tracing::info!(error = %error, "webauthn registration refused");
            invalid_credential("the authenticator's answer did not verify")
        })?;
    let now = ctx.now();
    let stored = NewWebauthnCredential {
        account: caller.session.account,
        credential_id: URL_SAFE_NO_PAD.encode(passkey.cred_id()),
        label: label.to_string(),
        passkey: serde_json::to_string(&passkey)
            .map_err(|error| ServiceError::Input(format!("serialising a passkey: {error}")))?,
        at: now,
    };
    let audit = account_audit(ctx, caller, REGISTER_ACTION, now).await?;
    let id = match ctx
        .store
        .register_webauthn_credential(ceremony.id, &stored, &audit)
        .await
    {
        Ok(Some(id)) => id,
        Ok(None) => return Err(ceremony_not_found()),
        Err(StoreError::Conflict { .. }) => {
            return Err(ServiceError::Conflict {
                code: "credential_already_registered",
                field: Some("credential".into()),
                message: "this authenticator's credential is already registered".into(),
            });
        }
        Err(other) => return Err(other.into()),
    };
    tracing::info!(credential = %id, "webauthn credential registered");
    Ok(CredentialSummary {
        id,
        label: stored.label,
        created_at: now,
        last_used_at: None,
    })
}

/// The caller's live credentials, oldest first.
pub async fn list_credentials(
    ctx: &Ctx,
    caller: &SessionCaller,
) -> Result<Vec<CredentialSummary>, ServiceError> {
    Ok(ctx
        .store
        .webauthn_credentials(caller.session.account)
        .await?
        .iter()
        .map(CredentialSummary::from)
        .collect())
}

/// Revokes one of the caller's credentials (lost or replaced). Managing credentials needs a
/// recent step-up with one; another account's credential is `NotFound`.
pub async fn revoke_credential(
    ctx: &Ctx,
    caller: &SessionCaller,
    credential: WebauthnCredentialId,
) -> Result<(), ServiceError> {
    let existing = ctx
        .store
        .webauthn_credentials(caller.session.account)
        .await?;
    require_credential_management(ctx, caller, &existing)?;
    let now = ctx.now();
    let audit = account_audit(ctx, caller, REVOKE_ACTION, now).await?;
    if ctx
        .store
        .revoke_webauthn_credential(caller.session.account, credential, now, &audit)
        .await?
    {
        Ok(())
    } else {
        Err(ServiceError::NotFound { what: "credential" })
    }
}

/// The first half of a sign-in with a passkey or security key: the username and password,
/// checked exactly as a sign-in with a code checks them. Every failure, and an account with
/// no credential, is the same `Unauthenticated`.
#[tracing::instrument(skip_all)]
pub async fn begin_sign_in(
    ctx: &Ctx,
    username: &str,
    password: &str,
) -> Result<CeremonyStarted, ServiceError> {
    let relying = ctx.webauthn()?;
    let now = ctx.now();
    let account = accounts::check_password(ctx, username, password, now).await?;
    begin_assertion(
        ctx,
        &relying,
        &account,
        password,
        CeremonyKind::SignIn,
        None,
    )
    .await
}

/// The second half of a sign-in: the authenticator's assertion. On success the session
/// starts with factor `webauthn`, phishing-resistant.
#[tracing::instrument(skip_all)]
pub async fn finish_sign_in(
    ctx: &Ctx,
    ceremony_handle: &str,
    credential: &serde_json::Value,
) -> Result<StartedSession, ServiceError> {
    let ceremony = ctx
        .store
        .webauthn_ceremony(&hash_handle(ceremony_handle))
        .await?
        .filter(|ceremony| ceremony.kind == CeremonyKind::SignIn)
        .ok_or(ServiceError::Unauthenticated)?;
    let signed_in = verify_assertion(ctx, &ceremony, credential).await?;
    sessions::check_password_changed(&signed_in)?;
    sessions::start_session(ctx, &signed_in).await
}

/// The first half of a step-up with a passkey or security key: the holder's password.
#[tracing::instrument(skip_all)]
pub async fn begin_reauthentication(
    ctx: &Ctx,
    caller: &SessionCaller,
    password: &str,
) -> Result<CeremonyStarted, ServiceError> {
    let relying = ctx.webauthn()?;
    let now = ctx.now();
    let account = accounts::check_password(ctx, &caller.username, password, now).await?;
    if account.id != caller.session.account {
        // A username is never reused by another account; refuse rather than mix two up.
        return Err(ServiceError::Unauthenticated);
    }
    begin_assertion(
        ctx,
        &relying,
        &account,
        password,
        CeremonyKind::Reauthentication,
        Some(caller),
    )
    .await
}

/// The second half of a step-up: on success the session gets a new secret, and its factor
/// becomes `webauthn`.
#[tracing::instrument(skip_all)]
pub async fn finish_reauthentication(
    ctx: &Ctx,
    caller: &SessionCaller,
    ceremony_handle: &str,
    credential: &serde_json::Value,
) -> Result<StartedSession, ServiceError> {
    let ceremony = ctx
        .store
        .webauthn_ceremony(&hash_handle(ceremony_handle))
        .await?
        .filter(|ceremony| {
            ceremony.kind == CeremonyKind::Reauthentication
                && ceremony.session == Some(caller.session.id)
                && ceremony.account == caller.session.account
        })
        .ok_or(ServiceError::Unauthenticated)?;
    let signed_in = verify_assertion(ctx, &ceremony, credential).await?;
    sessions::rotate(ctx, caller, signed_in.assurance).await
}

/// A random ceremony handle; the store keeps only its SHA-256.
fn generate_handle() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{HANDLE_PREFIX}{}", hex::encode(bytes))
}

fn hash_handle(handle: &str) -> String {
    hex::encode(Sha256::digest(handle.as_bytes()))
}

/// The WebAuthn user handle of an account: stable, opaque, and not the account id itself
/// (authenticators may show or sync it).
fn user_handle(account: AccountId) -> Uuid {
    let digest = Sha256::new()
        .chain_update(USER_HANDLE_LABEL)
        .chain_update(account.0.to_be_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Uuid::from_bytes(bytes)
}

/// Adding or revoking a credential needs a step-up within the re-authentication window, and
/// once the account has a credential, a step-up made with one.
fn require_credential_management(
    ctx: &Ctx,
    caller: &SessionCaller,
    existing: &[WebauthnCredential],
) -> Result<(), ServiceError> {
    if !caller.reauthenticated_recently(ctx.now()) {
        return Err(ServiceError::ReauthenticationRequired);
    }
    if !existing.is_empty() && !caller.session.assurance.phishing_resistant {
        return Err(ServiceError::PhishingResistantFactorRequired);
    }
    Ok(())
}

async fn begin_assertion(
    ctx: &Ctx,
    relying: &Relying,
    account: &Account,
    password: &str,
    kind: CeremonyKind,
    caller: Option<&SessionCaller>,
) -> Result<CeremonyStarted, ServiceError> {
    let now = ctx.now();
    let credentials = ctx.store.webauthn_credentials(account.id).await?;
    if credentials.is_empty() {
        // The password was right, so this does not count towards the soft lock.
        return accounts::refuse(ctx, Some(account), "no_webauthn_credential", now).await;
    }
    let passkeys = credentials
        .iter()
        .map(passkey_of)
        .collect::<Result<Vec<_>, _>>()?;
    let (options, authentication) = relying
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|error| webauthn_failure("start an authentication", &error))?;
    let state = SignInState {
        authentication,
        rehashed_password: accounts::rehash_if_weak(account, password)?,
    };
    begin(
        ctx,
        account.id,
        kind,
        caller,
        &state,
        serde_json::to_value(&options),
    )
    .await
}

/// Verifies an assertion against its ceremony and completes the sign-in: the ceremony is
/// finished and the credential's counter moved on in the sign-in's transaction, with its
/// audit entry. Every failure is `Unauthenticated`, audited, and counts towards the soft lock.
async fn verify_assertion(
    ctx: &Ctx,
    ceremony: &WebauthnCeremony,
    credential: &serde_json::Value,
) -> Result<SignedIn, ServiceError> {
    let relying = ctx.webauthn()?;
    let now = ctx.now();
    let account = ctx
        .store
        .account_by_id(ceremony.account)
        .await?
        .ok_or(ServiceError::Unauthenticated)?;
    if account.disabled_at.is_some() {
        return accounts::refuse(ctx, Some(&account), "disabled", now).await;
    }
    if now - ceremony.created_at >= CEREMONY_LIFETIME {
        return accounts::refuse(ctx, Some(&account), "webauthn_ceremony_expired", now).await;
    }
    let state: SignInState = decode_state(ceremony)?;
    let Ok(answer) = serde_json::from_value::<PublicKeyCredential>(credential.clone()) else {
        return accounts::fail(ctx, &account, "bad_second_factor", now).await;
    };
    let result = match relying
        .webauthn
        .finish_passkey_authentication(&answer, &state.authentication)
    {
        Ok(result) => result,
        Err(error) => {
            tracing::info!(error = %error, "webauthn assertion refused");
            return accounts::fail(ctx, &account, "bad_second_factor", now).await;
        }
    };
    let credentials = ctx.store.webauthn_credentials(account.id).await?;
    let mut used = None;
    for stored in &credentials {
        let mut passkey = passkey_of(stored)?;
        if passkey.update_credential(&result).is_some() {
            used = Some((stored.id, passkey));
            break;
        }
    }
    let Some((credential_id, passkey)) = used else {
        // Revoked between the two requests.
        return accounts::fail(ctx, &account, "bad_second_factor", now).await;
    };
    let second_factor = SecondFactorUse::Webauthn(WebauthnUse {
        ceremony: ceremony.id,
        credential: credential_id,
        passkey: serde_json::to_string(&passkey)
            .map_err(|error| ServiceError::Input(format!("serialising a passkey: {error}")))?,
    });
    let assurance = SessionAssurance {
        factor: SessionFactor::Webauthn,
        phishing_resistant: true,
    };
    accounts::complete_login_rehashed(
        ctx,
        &account,
        state.rehashed_password,
        second_factor,
        assurance,
        now,
    )
    .await
}

/// Keeps a ceremony's state and hands out its handle and the browser's options.
async fn begin<S: Serialize>(
    ctx: &Ctx,
    account: AccountId,
    kind: CeremonyKind,
    caller: Option<&SessionCaller>,
    state: &S,
    options: serde_json::Result<serde_json::Value>,
) -> Result<CeremonyStarted, ServiceError> {
    let options = options
        .map_err(|error| ServiceError::Input(format!("serialising webauthn options: {error}")))?;
    let state = serde_json::to_string(state)
        .map_err(|error| ServiceError::Input(format!("serialising webauthn state: {error}")))?;
    let handle = generate_handle();
    ctx.store
        .insert_webauthn_ceremony(&NewWebauthnCeremony {
            account,
            kind,
            handle_hash: hash_handle(&handle),
            session: caller.map(|caller| caller.session.id),
            state,
            at: ctx.now(),
        })
        .await?;
    Ok(CeremonyStarted {
        ceremony: handle,
        options,
    })
}

/// An unfinished, unexpired ceremony of `kind` with this handle.
async fn open_ceremony(
    ctx: &Ctx,
    handle: &str,
    kind: CeremonyKind,
) -> Result<WebauthnCeremony, ServiceError> {
    let ceremony = ctx
        .store
        .webauthn_ceremony(&hash_handle(handle))
        .await?
        .filter(|ceremony| ceremony.kind == kind)
        .ok_or_else(ceremony_not_found)?;
    if ctx.now() - ceremony.created_at >= CEREMONY_LIFETIME {
        return Err(ceremony_not_found());
    }
    Ok(ceremony)
}

fn decode_state<T: for<'de> Deserialize<'de>>(
    ceremony: &WebauthnCeremony,
) -> Result<T, ServiceError> {
    serde_json::from_str(&ceremony.state).map_err(|error| {
        ServiceError::Store(StoreError::Corrupt(format!(
            "webauthn ceremony state: {error}"
        )))
    })
}

fn passkey_of(credential: &WebauthnCredential) -> Result<Passkey, ServiceError> {
    serde_json::from_str(&credential.passkey).map_err(|error| {
        ServiceError::Store(StoreError::Corrupt(format!(
            "webauthn credential {}: {error}",
            credential.id
        )))
    })
}

/// A label of 1 to `MAX_LABEL_CHARS` characters, none of them a control character.
fn parse_label(label: &str) -> Result<&str, ServiceError> {
    let label = label.trim();
    let chars = label.chars().count();
    if chars == 0 || chars > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "label",
            "invalid_label",
            format!("label must be 1 to {MAX_LABEL_CHARS} characters without control characters"),
        ));
    }
    Ok(label)
}

/// The audit entry of a holder managing their own credentials.
async fn account_audit(
    ctx: &Ctx,
    caller: &SessionCaller,
    action: &'static str,
    now: DateTime<Utc>,
) -> Result<NewAccountAuditEvent, ServiceError> {
    let organisation = match caller.organisation {
        Some(organisation) => organisation,
        None => ctx
            .store
            .registry_organisation()
            .await?
            .ok_or(ServiceError::NotFound {
                what: "registry organisation",
            })?,
    };
    Ok(NewAccountAuditEvent {
        request: ctx.request(),
        at: now,
        organisation,
        role: caller.role.as_str(),
        action,
        resource: format!("account/{}", caller.session.account),
        outcome: "ok",
    })
}

fn ceremony_not_found() -> ServiceError {
    ServiceError::NotFound {
        what: "webauthn ceremony",
    }
}

fn invalid_credential(message: &str) -> ServiceError {
    ServiceError::invalid("credential", "webauthn_credential_invalid", message)
}

fn webauthn_failure(doing: &str, error: &webauthn_rs::prelude::WebauthnError) -> ServiceError {
    ServiceError::Input(format!("webauthn could not {doing}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_handle_is_stable_per_account_and_differs_between_accounts() {
        assert_eq!(user_handle(AccountId(7)), user_handle(AccountId(7)));
        assert_ne!(user_handle(AccountId(7)), user_handle(AccountId(8)));
    }

    #[test]
    fn handles_are_random_and_stored_only_as_their_hash() {
        let first = generate_handle();
        assert!(first.starts_with(HANDLE_PREFIX));
        assert_eq!(first.len(), HANDLE_PREFIX.len() + 64);
        assert_ne!(first, generate_handle());
        assert_ne!(hash_handle(&first), first);
        assert_eq!(hash_handle(&first), hash_handle(&first));
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(parse_label("  blue key ").unwrap(), "blue key");
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(MAX_LABEL_CHARS + 1)] {
            assert!(parse_label(bad).is_err(), "{bad:?}");
        }
        assert!(parse_label(&"é".repeat(MAX_LABEL_CHARS)).is_ok());
    }
}
