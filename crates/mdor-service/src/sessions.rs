//! Server-side sessions of accounts: started only by a full sign-in (password and second
//! factor), ended by sign-out, revocation, the idle (30 minutes) or absolute (12 hours)
//! timeout, or the account being disabled; re-authentication (step-up) replaces the secret
//! and records when it happened, so that exports and administration can demand one within
//! the last 10 minutes.
//!
//! A session's secret is 256 random bits, given to the browser as a cookie and stored only as
//! its SHA-256, like API tokens: a copy of the database cannot be replayed. Its CSRF token is
//! derived from the secret (a SHA-256 under a separate label), so it needs no storage, cannot
//! be computed from what the database holds, and is checked in constant time.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use mdor_store::{
    AccountId, AccountRole, NewAccountAuditEvent, NewSession, OrganisationId, PatientId,
    SessionAccount, SessionAssurance, SessionEnd, SessionId, StoredSession,
};

use crate::accounts::{SignedIn, change_password, login};
use crate::auth::{Credential, Principal};
use crate::ctx::Ctx;
use crate::error::ServiceError;
use crate::policy::{self};

/// A session unused for this long has ended.
pub const IDLE_TIMEOUT: Duration = Duration::minutes(30);
/// A session this old has ended, however busy.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::hours(12);
/// Exports and administration need the password and second factor entered this recently.
pub const REAUTHENTICATION_WINDOW: Duration = Duration::minutes(10);
/// A session's last use is written at most this often, so that a page of requests costs one
/// write, not one each; the idle timeout is accurate to within it.
pub const TOUCH_INTERVAL: Duration = Duration::minutes(1);

const SECRET_PREFIX: &str = "mdors_";
const CSRF_LABEL: &[u8] = b"mdor csrf token\0";
const SIGN_OUT_ACTION: &str = "session.sign_out";
const REVOKE_ACTION: &str = "session.revoke";

/// The cookie value of a session. Never logged: `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

impl SessionSecret {
    /// A secret as presented by a browser; `None` when it cannot be one of ours.
    pub fn parse(input: &str) -> Option<SessionSecret> {
        let hex_part = input.strip_prefix(SECRET_PREFIX)?;
        let well_formed = hex_part.len() == 64
            && hex_part
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        well_formed.then(|| SessionSecret(input.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The CSRF token a state-changing request made with this session must carry.
    pub fn csrf_token(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(CSRF_LABEL);
        hasher.update(self.0.as_bytes());
        hex::encode(hasher.finalize())
    }

    /// Whether `presented` is this session's CSRF token, compared in constant time.
    pub fn csrf_token_matches(&self, presented: &str) -> bool {
        self.csrf_token()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }

    pub(crate) fn generate() -> SessionSecret {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionSecret(format!("{SECRET_PREFIX}{}", hex::encode(bytes)))
    }

    pub(crate) fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(..)")
    }
}

/// What a sign-in asks for: the credentials and, when the password is still the initial one
/// an administrator generated, the holder's new password.
pub struct SignInRequest<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub second_factor: &'a str,
    pub new_password: Option<&'a str>,
}

/// A session just started or stepped up: the secret goes into the cookie, the CSRF token to
/// the client's script.
#[derive(Debug)]
pub struct StartedSession {
    pub id: SessionId,
    pub secret: SessionSecret,
    pub account: AccountId,
    pub role: AccountRole,
    pub organisation_ods: Option<String>,
    pub created_at: DateTime<Utc>,
    pub reauthenticated_at: DateTime<Utc>,
    /// When the absolute timeout ends the session.
    pub expires_at: DateTime<Utc>,
    /// The factor the holder just authenticated with.
    pub assurance: SessionAssurance,
}

/// A request's live session and the account it acts for.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    pub session: StoredSession,
    pub username: String,
    pub role: AccountRole,
    pub organisation: Option<OrganisationId>,
    pub organisation_ods: Option<String>,
    pub patient: Option<PatientId>,
}

impl SessionCaller {
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.session.created_at + ABSOLUTE_TIMEOUT
    }

    /// Whether the holder entered their password and second factor within the last
    /// `REAUTHENTICATION_WINDOW` (the sign-in counts).
    pub fn reauthenticated_recently(&self, now: DateTime<Utc>) -> bool {
        now - self.session.reauthenticated_at < REAUTHENTICATION_WINDOW
    }

    /// The principal the session acts as on the registry's records, judged by the same
    /// policy as API tokens (`policy::POLICIES`) under the account's own role. A patient, who
    /// belongs to no organisation, acts under the registry's own (the audit names it, as for
    /// their sign-ins) and reaches only the patient record the account is linked to.
    ///
    /// A role that must use a phishing-resistant factor (`policy::needs_phishing_resistant_factor`)
    /// whose session was established with a code gets `PhishingResistantFactorRequired`
    /// instead: such a session may only manage itself and register a passkey or security key.
    pub async fn principal(&self, ctx: &Ctx) -> Result<Principal, ServiceError> {
        if policy::needs_phishing_resistant_factor(self.role)
            && !self.session.assurance.phishing_resistant
        {
            return Err(ServiceError::PhishingResistantFactorRequired);
        }
        let (organisation, organisation_ods) = match (self.organisation, &self.organisation_ods) {
            (Some(organisation), Some(ods)) => (organisation, ods.clone()),
            _ => {
                let registry =
                    ctx.store
                        .registry_organisation()
                        .await?
                        .ok_or(ServiceError::NotFound {
                            what: "registry organisation",
                        })?;
                (registry, String::new())
            }
        };
        Ok(Principal {
            credential: Credential::Session {
                account: self.session.account,
                session: self.session.id,
                reauthenticated_at: self.session.reauthenticated_at,
                phishing_resistant: self.session.assurance.phishing_resistant,
            },
            organisation,
            organisation_ods,
            role: self.role,
            patient: self.patient.filter(|_| self.role == AccountRole::Patient),
        })
    }
}

/// Whether a sign-in with `signed_in` may start a session yet: an account still on its
/// initial password must choose its own first.
pub(crate) fn check_password_changed(signed_in: &SignedIn) -> Result<(), ServiceError> {
    if signed_in.must_change_password {
        return Err(ServiceError::Conflict {
            code: "password_change_required",
            field: Some("new_password".into()),
            message: "this account still has its initial password: sign in again with a new_password of your own".into(),
        });
    }
    Ok(())
}

/// Signs in (`accounts::login`, or `accounts::change_password` when a new password is given)
/// and starts a fresh session. Every failure of the credentials is the same
/// `ServiceError::Unauthenticated`; an account whose password is still the initial one gets
/// no session until its holder chooses a new one.
#[tracing::instrument(skip_all)]
pub async fn sign_in(
    ctx: &Ctx,
    request: &SignInRequest<'_>,
) -> Result<StartedSession, ServiceError> {
    let signed_in = match request.new_password {
        Some(new_password) => {
            change_password(
                ctx,
                request.username,
                request.password,
                request.second_factor,
                new_password,
            )
            .await?
        }
        None => {
            login(
                ctx,
                request.username,
                request.password,
                request.second_factor,
            )
            .await?
        }
    };
    check_password_changed(&signed_in)?;
    start_session(ctx, &signed_in).await
}

/// The live session with this secret, recording its use. An ended, timed-out or unknown
/// session, and one whose account is disabled, are the same `Unauthenticated`; a timed-out
/// session or a disabled account's is ended as it is found.
#[tracing::instrument(skip_all)]
pub async fn authenticate_session(
    ctx: &Ctx,
    secret: &SessionSecret,
) -> Result<SessionCaller, ServiceError> {
    live_session(ctx, &secret.hash()).await
}

/// `authenticate_session` by the SHA-256 of the secret, as the store keeps it: an OpenID
/// Connect step-up finds the session that started it this way (`oidc`).
pub(crate) async fn live_session(
    ctx: &Ctx,
    secret_hash: &str,
) -> Result<SessionCaller, ServiceError> {
    let now = ctx.now();
    let found = ctx
        .store
        .session_by_secret_hash(secret_hash)
        .await?
        .ok_or(ServiceError::Unauthenticated)?;
    let session = &found.session;
    let ended = if found.account_disabled_at.is_some() {
        Some(SessionEnd::AccountDisabled)
    } else if now >= session.created_at + ABSOLUTE_TIMEOUT {
        Some(SessionEnd::Expired)
    } else if now >= session.last_seen_at + IDLE_TIMEOUT {
        Some(SessionEnd::Idle)
    } else {
        None
    };
    if let Some(reason) = ended {
        ctx.store
            .end_session(session.account, session.id, now, reason, None)
            .await?;
        return Err(ServiceError::Unauthenticated);
    }
    if now - session.last_seen_at >= TOUCH_INTERVAL {
        ctx.store.touch_session(session.id, now).await?;
    }
    Ok(caller(found, now))
}

/// Ends the caller's own session.
pub async fn sign_out(ctx: &Ctx, caller: &SessionCaller) -> Result<(), ServiceError> {
    end(
        ctx,
        caller,
        caller.session.id,
        SessionEnd::SignedOut,
        SIGN_OUT_ACTION,
    )
    .await
}

/// The caller's live sessions, oldest first.
pub async fn list_sessions(
    ctx: &Ctx,
    caller: &SessionCaller,
) -> Result<Vec<StoredSession>, ServiceError> {
    Ok(ctx.store.account_sessions(caller.session.account).await?)
}

/// Ends one of the caller's own live sessions (the current one included); another account's
/// session is `NotFound`, like an absent one.
pub async fn revoke_session(
    ctx: &Ctx,
    caller: &SessionCaller,
    session: SessionId,
) -> Result<(), ServiceError> {
    end(ctx, caller, session, SessionEnd::Revoked, REVOKE_ACTION).await
}

/// Step-up: the holder enters their password and second factor again (a full sign-in,
/// audited and counted towards the soft lock like any other), and the session gets a new
/// secret and a new re-authentication time. The old secret stops working at once.
#[tracing::instrument(skip_all)]
pub async fn reauthenticate(
    ctx: &Ctx,
    caller: &SessionCaller,
    password: &str,
    second_factor: &str,
) -> Result<StartedSession, ServiceError> {
    let signed_in = login(ctx, &caller.username, password, second_factor).await?;
    if signed_in.account != caller.session.account {
        // A username is never reused by another account; refuse rather than mix two up.
        return Err(ServiceError::Unauthenticated);
    }
    rotate(ctx, caller, signed_in.assurance).await
}

/// Gives a live session a new secret after its holder re-authenticated with `assurance`.
pub(crate) async fn rotate(
    ctx: &Ctx,
    caller: &SessionCaller,
    assurance: SessionAssurance,
) -> Result<StartedSession, ServiceError> {
    let now = stored_instant(ctx.now());
    let secret = SessionSecret::generate();
    if !ctx
        .store
        .rotate_session(caller.session.id, &secret.hash(), now, assurance)
        .await?
    {
        return Err(ServiceError::Unauthenticated);
    }
    Ok(StartedSession {
        id: caller.session.id,
        secret,
        account: caller.session.account,
        role: caller.role,
        organisation_ods: caller.organisation_ods.clone(),
        created_at: caller.session.created_at,
        reauthenticated_at: now,
        expires_at: caller.expires_at(),
        assurance,
    })
}

/// Starts a session for an account that has just signed in, by password and second factor
/// (`sign_in`) or through the identity provider (`oidc`).
pub(crate) async fn start_session(
    ctx: &Ctx,
    signed_in: &SignedIn,
) -> Result<StartedSession, ServiceError> {
    let now = stored_instant(ctx.now());
    let secret = SessionSecret::generate();
    let id = ctx
        .store
        .insert_session(&NewSession {
            account: signed_in.account,
            secret_hash: secret.hash(),
            at: now,
            assurance: signed_in.assurance,
        })
        .await?;
    Ok(StartedSession {
        id,
        secret,
        account: signed_in.account,
        role: signed_in.role,
        organisation_ods: signed_in.organisation_ods.clone(),
        created_at: now,
        reauthenticated_at: now,
        expires_at: now + ABSOLUTE_TIMEOUT,
        assurance: signed_in.assurance,
    })
}

/// An instant as both engines store it (PostgreSQL keeps microseconds), so that what a
/// sign-in or step-up reports is what a later request reads back.
fn stored_instant(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

fn caller(found: SessionAccount, now: DateTime<Utc>) -> SessionCaller {
    let mut session = found.session;
    if now - session.last_seen_at >= TOUCH_INTERVAL {
        session.last_seen_at = now;
    }
    SessionCaller {
        session,
        username: found.username,
        role: found.role,
        organisation: found.organisation,
        organisation_ods: found.organisation_ods,
        patient: found.patient,
    }
}

/// Ends a session of the caller's account with its audit entry, under the account's
/// organisation or, for patients, the registry's own.
async fn end(
    ctx: &Ctx,
    caller: &SessionCaller,
    session: SessionId,
    reason: SessionEnd,
    action: &'static str,
) -> Result<(), ServiceError> {
    let organisation = match caller.organisation {
        Some(organisation) => Some(organisation),
        None => ctx.store.registry_organisation().await?,
    };
    let audit = organisation.map(|organisation| NewAccountAuditEvent {
        request: ctx.request(),
        at: ctx.now(),
        organisation,
        role: caller.role.as_str(),
        action,
        resource: format!("account/{}/session/{session}", caller.session.account),
        outcome: reason.as_str(),
    });
    let ended = ctx
        .store
        .end_session(
            caller.session.account,
            session,
            ctx.now(),
            reason,
            audit.as_ref(),
        )
        .await?;
    if ended {
        Ok(())
    } else {
        Err(ServiceError::NotFound { what: "session" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_has_256_random_bits_and_its_csrf_token_is_derived_from_it() {
        let secret = SessionSecret::generate();
        let parsed = SessionSecret::parse(secret.expose()).unwrap();
        assert_eq!(parsed, secret);
        assert_eq!(secret.expose().len(), SECRET_PREFIX.len() + 64);
        assert_ne!(SessionSecret::generate(), secret);
        let token = secret.csrf_token();
        assert!(secret.csrf_token_matches(&token));
        assert!(!secret.csrf_token_matches(&token[..63]));
        assert!(!secret.csrf_token_matches(&SessionSecret::generate().csrf_token()));
        // The CSRF token is not the stored hash: the database cannot forge one.
        assert_ne!(token, secret.hash());
        assert_eq!(format!("{secret:?}"), "SessionSecret(..)");
    }

    #[test]
    fn only_well_formed_secrets_parse() {
        for bad in [
            "",
            "mdors_",
            &format!("mdor_{}", "a".repeat(64)),
            &format!("mdors_{}", "A".repeat(64)),
            &format!("mdors_{}", "a".repeat(63)),
        ] {
            assert!(SessionSecret::parse(bad).is_none(), "{bad}");
        }
    }
}
