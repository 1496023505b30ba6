//! Authorisation as data: which role may do which action, in which relationship to the
//! organisation whose records the action touches. `POLICIES` is the whole policy in one table;
//! a (role, action, relationship) it does not list is denied. Every use case that touches
//! records asks it through `authorize` (or `allows` to scope a query) before the store, for
//! sessions and API tokens alike.
//!
//! The roles are the nine account roles; an API token's role acts as one of them
//! (`policy_role`). The relationship is the caller's organisation against the record's: the
//! same organisation, another one, or none at all (the device register, national analyses,
//! recall queries and cases as a whole); for a patient, their own patient record; and
//! break-glass, another organisation's record reached only by a person who states a written
//! reason, which raises a review item (`access`). A role allowed an action only for its own
//! organisation gets another organisation's record as `NotFound`, indistinguishable from an
//! absent one, where the record's existence would tell something; a role with no row for the
//! action at all is `Forbidden`.
//!
//! Identifiable reads beyond the caller's own organisation (`Action::takes_stated_purpose`)
//! carry a stated purpose; `access::begin_access` applies these rules for every one of them.

use AccountRole::{
    Consultant, Manufacturer, ProviderDataManager, ProviderSubmitter, RegistryAnalyst, Regulator,
    Researcher, SystemAdmin,
};
use Action::*;
use mdor_store::{AccountRole, Role};

use crate::auth::Principal;
use crate::ctx::Ctx;
use crate::error::ServiceError;

/// Declares `Action` and `Action::ALL` from one list, so that an action cannot be added to the
/// enum and be missed by the checks that walk every action.
macro_rules! actions {
    ($($name:ident),* $(,)?) => {
        /// One use case, or one operation on a kind of resource.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $($name,)*
        }

        impl Action {
            /// Every action, in the order of the policy matrix in `docs/security.md`.
            pub const ALL: [Action; [$(stringify!($name)),*].len()] = [$(Action::$name),*];
        }
    };
}

actions! {
    RegisterProcedure,
    ReadProcedure,
    ReadProcedureVersions,
    RecordRemoval,
    RecordDeath,
    RegisterDevice,
    ReadDevice,
    ReadSurvivorship,
    ReadSurveillanceAlerts,
    RecallSearch,
    ReadTimeline,
    ReadAccessLog,
    ReadFeedbackReport,
    ReadDataQuality,
    CreateSubmission,
    ReadSubmission,
    ReadSubmissionReport,
    ReadQuarantine,
    ResubmitQuarantined,
    OpenRecallCase,
    RefreshRecallCase,
    ReadRecallCase,
    ReadRecallWorklist,
    ExportRecallWorklist,
    UpdateRecallStatus,
    ListAccounts,
    CreateAccount,
    DisableAccount,
    EnableAccount,
    ResetAccountCredentials,
    DesignateApprover,
    LinkOidcIdentity,
    ReadOwnTimeline,
    ReadOwnAccessLog,
    ReadAccessReviews,
    DecideAccessReview,
    ListResearchProjects,
    ExtractResearch,
}

/// The caller's organisation against the organisation of the record an action touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relationship {
    /// The record is the caller's own organisation's (a provider's own procedure).
    OwnOrganisation,
    /// The record is another organisation's.
    OtherOrganisation,
    /// The action concerns no organisation's records in particular.
    Independent,
    /// Another organisation's record, reached by a person who breaks glass: states a written
    /// reason, is audited as break-glass and raises a review item. Never for API tokens.
    BreakGlass,
    /// The caller's own patient record: a patient account's linked record, and no other.
    OwnPatientRecord,
}

/// One row of the policy: `role` may do `action` in each of `relationships`.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub action: Action,
    pub role: AccountRole,
    pub relationships: &'static [Relationship],
}

const OWN: &[Relationship] = &[Relationship::OwnOrganisation];
const ANY: &[Relationship] = &[
    Relationship::OwnOrganisation,
    Relationship::OtherOrganisation,
];
const INDEPENDENT: &[Relationship] = &[Relationship::Independent];
const BREAK_GLASS: &[Relationship] = &[Relationship::BreakGlass];
const OWN_OR_BREAK_GLASS: &[Relationship] =
    &[Relationship::OwnOrganisation, Relationship::BreakGlass];
const OWN_PATIENT_RECORD: &[Relationship] = &[Relationship::OwnPatientRecord];

const fn allow(
    action: Action,
    role: AccountRole,
    relationships: &'static [Relationship],
) -> Policy {
    Policy {
        action,
        role,
        relationships,
    }
}

/// The policy. Anything not listed is denied: patients reach only their own record,
/// manufacturers read the device register and the aggregate report on their own devices,
/// researchers the device register and the pseudonymised extracts of the projects that name
/// them, and registry analysts read only aggregates. Administrators administer (the
/// device register, accounts, the access log on a patient's behalf, review decisions) and read
/// aggregates; they reach an organisation's identifiable records only by breaking glass.
/// `docs/security.md` shows this table as a matrix; keep the two in step.
pub const POLICIES: &[Policy] = &[
    // Procedures: a provider's own; regulators any, with a stated purpose; a consultant
    // treating another provider's patient, and administrators, by breaking glass.
    allow(RegisterProcedure, ProviderSubmitter, OWN),
    allow(RegisterProcedure, ProviderDataManager, OWN),
    allow(ReadProcedure, ProviderSubmitter, OWN),
    allow(ReadProcedure, ProviderDataManager, OWN),
    allow(ReadProcedure, Consultant, OWN_OR_BREAK_GLASS),
    allow(ReadProcedure, Regulator, ANY),
    allow(ReadProcedure, SystemAdmin, BREAK_GLASS),
    allow(ReadProcedureVersions, ProviderSubmitter, OWN),
    allow(ReadProcedureVersions, ProviderDataManager, OWN),
    allow(ReadProcedureVersions, Regulator, ANY),
    allow(ReadProcedureVersions, SystemAdmin, BREAK_GLASS),
    // Outcomes: recorded by the caller's organisation (a revision may be of an implant done
    // elsewhere, for a patient the caller names by NHS number); administrators record deaths
    // traced nationally, a write that returns nothing the caller did not send.
    allow(RecordRemoval, ProviderSubmitter, OWN),
    allow(RecordRemoval, ProviderDataManager, OWN),
    allow(RecordDeath, ProviderSubmitter, OWN),
    allow(RecordDeath, ProviderDataManager, OWN),
    allow(RecordDeath, SystemAdmin, ANY),
    // The device register: not identifiable; changed by administrators only.
    allow(RegisterDevice, SystemAdmin, INDEPENDENT),
    allow(ReadDevice, ProviderSubmitter, INDEPENDENT),
    allow(ReadDevice, ProviderDataManager, INDEPENDENT),
    allow(ReadDevice, Consultant, INDEPENDENT),
    allow(ReadDevice, RegistryAnalyst, INDEPENDENT),
    allow(ReadDevice, Regulator, INDEPENDENT),
    allow(ReadDevice, Manufacturer, INDEPENDENT),
    allow(ReadDevice, Researcher, INDEPENDENT),
    allow(ReadDevice, SystemAdmin, INDEPENDENT),
    // National analyses: aggregates over every provider.
    allow(ReadSurvivorship, RegistryAnalyst, INDEPENDENT),
    allow(ReadSurvivorship, Regulator, INDEPENDENT),
    allow(ReadSurvivorship, SystemAdmin, INDEPENDENT),
    allow(ReadSurveillanceAlerts, Regulator, INDEPENDENT),
    allow(ReadSurveillanceAlerts, SystemAdmin, INDEPENDENT),
    // Identifiable searches across providers, with a stated purpose.
    allow(RecallSearch, Regulator, INDEPENDENT),
    // A patient's timeline: a provider's own patients (direct care); regulators any, with a
    // stated purpose; a consultant treating another provider's patient, and administrators,
    // by breaking glass.
    allow(ReadTimeline, ProviderSubmitter, OWN),
    allow(ReadTimeline, ProviderDataManager, OWN),
    allow(ReadTimeline, Consultant, OWN_OR_BREAK_GLASS),
    allow(ReadTimeline, Regulator, ANY),
    allow(ReadTimeline, SystemAdmin, BREAK_GLASS),
    // Who accessed a patient's record: an administrator on the patient's behalf.
    allow(ReadAccessLog, SystemAdmin, INDEPENDENT),
    // A patient's own record and who accessed it.
    allow(ReadOwnTimeline, AccountRole::Patient, OWN_PATIENT_RECORD),
    allow(ReadOwnAccessLog, AccountRole::Patient, OWN_PATIENT_RECORD),
    // Reports: a provider's own; regulators, analysts and administrators any.
    allow(ReadFeedbackReport, ProviderSubmitter, OWN),
    allow(ReadFeedbackReport, ProviderDataManager, OWN),
    allow(ReadFeedbackReport, Consultant, OWN),
    // A manufacturer reads the aggregate report on its own devices only.
    allow(ReadFeedbackReport, Manufacturer, OWN),
    allow(ReadFeedbackReport, RegistryAnalyst, ANY),
    allow(ReadFeedbackReport, Regulator, ANY),
    allow(ReadFeedbackReport, SystemAdmin, ANY),
    allow(ReadDataQuality, ProviderSubmitter, OWN),
    allow(ReadDataQuality, ProviderDataManager, OWN),
    allow(ReadDataQuality, RegistryAnalyst, ANY),
    allow(ReadDataQuality, Regulator, ANY),
    allow(ReadDataQuality, SystemAdmin, ANY),
    // Bulk submission: a provider's own; administrators follow every job's progress (its
    // state and counts, nothing of its records).
    allow(CreateSubmission, ProviderSubmitter, OWN),
    allow(CreateSubmission, ProviderDataManager, OWN),
    allow(ReadSubmission, ProviderSubmitter, OWN),
    allow(ReadSubmission, ProviderDataManager, OWN),
    allow(ReadSubmission, SystemAdmin, ANY),
    allow(ReadSubmissionReport, ProviderSubmitter, OWN),
    allow(ReadSubmissionReport, ProviderDataManager, OWN),
    allow(ReadQuarantine, ProviderSubmitter, OWN),
    allow(ReadQuarantine, ProviderDataManager, OWN),
    allow(ResubmitQuarantined, ProviderSubmitter, OWN),
    allow(ResubmitQuarantined, ProviderDataManager, OWN),
    // Recall cases: opened by the regulator; each provider works its own patients. A case's
    // summary holds no identifiers; its work items are read with a stated purpose.
    allow(OpenRecallCase, Regulator, INDEPENDENT),
    allow(OpenRecallCase, SystemAdmin, INDEPENDENT),
    allow(RefreshRecallCase, Regulator, INDEPENDENT),
    allow(RefreshRecallCase, SystemAdmin, INDEPENDENT),
    allow(ReadRecallCase, ProviderSubmitter, OWN),
    allow(ReadRecallCase, ProviderDataManager, OWN),
    allow(ReadRecallCase, Consultant, OWN),
    allow(ReadRecallCase, Regulator, ANY),
    allow(ReadRecallCase, SystemAdmin, ANY),
    allow(ReadRecallWorklist, ProviderSubmitter, OWN),
    allow(ReadRecallWorklist, ProviderDataManager, OWN),
    allow(ReadRecallWorklist, Consultant, OWN),
    allow(ReadRecallWorklist, Regulator, ANY),
    allow(ExportRecallWorklist, ProviderSubmitter, OWN),
    allow(ExportRecallWorklist, ProviderDataManager, OWN),
    allow(ExportRecallWorklist, Consultant, OWN),
    allow(ExportRecallWorklist, Regulator, ANY),
    allow(UpdateRecallStatus, ProviderSubmitter, OWN),
    allow(UpdateRecallStatus, ProviderDataManager, OWN),
    allow(UpdateRecallStatus, Consultant, OWN),
    allow(UpdateRecallStatus, Regulator, ANY),
    // Accounts: administrators any organisation's (and patients'); a provider's data manager
    // is its approver, for its own organisation's staff only. Both act through a session
    // whose latest authentication resisted phishing (`accounts::admin`).
    allow(ListAccounts, SystemAdmin, ANY),
    allow(ListAccounts, ProviderDataManager, OWN),
    allow(CreateAccount, SystemAdmin, ANY),
    allow(CreateAccount, ProviderDataManager, OWN),
    allow(DisableAccount, SystemAdmin, ANY),
    allow(DisableAccount, ProviderDataManager, OWN),
    allow(EnableAccount, SystemAdmin, ANY),
    allow(EnableAccount, ProviderDataManager, OWN),
    allow(ResetAccountCredentials, SystemAdmin, ANY),
    allow(ResetAccountCredentials, ProviderDataManager, OWN),
    // Who is an organisation's approver is an administrator's decision alone.
    allow(DesignateApprover, SystemAdmin, ANY),
    // The review of break-glass accesses, and identity provider links.
    allow(LinkOidcIdentity, SystemAdmin, INDEPENDENT),
    allow(ReadAccessReviews, SystemAdmin, INDEPENDENT),
    allow(DecideAccessReview, SystemAdmin, INDEPENDENT),
    // Research: a researcher (of the registry's own organisation, like analysts) lists the
    // approved projects naming them and reads their pseudonymised extracts; no organisation's
    // records in particular, and the use case reads only projects naming the caller
    // (`research_project_member`), any other being absent.
    allow(ListResearchProjects, Researcher, INDEPENDENT),
    allow(ExtractResearch, Researcher, INDEPENDENT),
];

impl Action {
    /// Whether the action concerns no organisation's records in particular: its rows say
    /// `Independent`, and its use case asks with that relationship.
    pub fn is_independent(self) -> bool {
        POLICIES
            .iter()
            .filter(|p| p.action == self)
            .all(|p| p.relationships == INDEPENDENT)
    }

    /// Whether the action is an identifiable read that some role makes beyond its own
    /// organisation: such a read states its purpose (and a break-glass one its reason), and
    /// the audit records it.
    pub fn takes_stated_purpose(self) -> bool {
        matches!(
            self,
            ReadProcedure
                | ReadProcedureVersions
                | RecallSearch
                | ReadTimeline
                | ReadRecallWorklist
                | ExportRecallWorklist
        )
    }

    /// Whether only a person (a session, never an API token) may do the action: a review
    /// decision is someone's judgement and names them, account administration issues and
    /// withdraws people's credentials, which a token without a second factor must not, and
    /// a research project names the people who may handle its extract. Breaking glass needs
    /// a person too.
    pub fn needs_a_person(self) -> bool {
        matches!(
            self,
            DecideAccessReview
                | ListAccounts
                | CreateAccount
                | DisableAccount
                | EnableAccount
                | ResetAccountCredentials
                | DesignateApprover
                | LinkOidcIdentity
                | ListResearchProjects
                | ExtractResearch
        )
    }

    /// What a refusal says the role may not do.
    pub fn describe(self) -> &'static str {
        match self {
            RegisterProcedure => "submit procedures",
            ReadProcedure => "read procedures",
            ReadProcedureVersions => "read a procedure's versions",
            RecordRemoval => "record revisions",
            RecordDeath => "record deaths",
            RegisterDevice => "change the device register",
            ReadDevice => "read the device register",
            ReadSurvivorship => "read survivorship reports",
            ReadSurveillanceAlerts => "read surveillance alerts",
            RecallSearch => "run recall queries",
            ReadTimeline => "read patient timelines",
            ReadAccessLog => "read a patient's access log",
            ReadFeedbackReport => "read this feedback report",
            ReadDataQuality => "read data quality reports",
            CreateSubmission => "submit procedures",
            ReadSubmission => "read submissions",
            ReadSubmissionReport => "read submission reports",
            ReadQuarantine => "read a provider's quarantine",
            ResubmitQuarantined => "resubmit quarantined records",
            OpenRecallCase => "open recall cases",
            RefreshRecallCase => "refresh recall cases",
            ReadRecallCase => "read recall cases",
            ReadRecallWorklist => "read recall work lists",
            ExportRecallWorklist => "export recall work lists",
            UpdateRecallStatus => "update recall follow-up",
            ListAccounts => "list accounts",
            CreateAccount => "create accounts",
            DisableAccount => "disable accounts",
            EnableAccount => "re-enable accounts",
            ResetAccountCredentials => "reset accounts' credentials",
            DesignateApprover => "designate organisations' approvers (administrators only)",
            LinkOidcIdentity => "link accounts to identity provider subjects",
            ReadOwnTimeline => "read a patient's own record (patients only)",
            ReadOwnAccessLog => "read who accessed a patient's own record (patients only)",
            ReadAccessReviews => "read break-glass review items",
            DecideAccessReview => "decide break-glass review items",
            ListResearchProjects => "list research projects (researchers only)",
            ExtractResearch => "read research extracts (researchers named on the project only)",
        }
    }
}

/// The account role an API token's role acts as.
pub fn policy_role(role: Role) -> AccountRole {
    match role {
        Role::ProviderSubmitter => AccountRole::ProviderSubmitter,
        Role::Regulator => AccountRole::Regulator,
        Role::Admin => AccountRole::SystemAdmin,
    }
}

/// Roles whose people may act only through a session established with a phishing-resistant
/// factor (a WebAuthn passkey or security key, or an identity provider's sign-in asserting
/// one): administrators (they manage accounts and the register), regulators (they read every
/// provider's identifiable records) and researchers (their work is exporting extracts). A
/// code typed into a look-alike site can be relayed; a WebAuthn assertion is bound to the
/// registry's origin. Their sessions established with a code may only manage themselves and
/// register such a factor (`sessions::SessionCaller::principal`).
pub const PHISHING_RESISTANT_ROLES: [AccountRole; 3] = [SystemAdmin, Regulator, Researcher];

/// Whether people of `role` must sign in with a phishing-resistant factor.
pub fn needs_phishing_resistant_factor(role: AccountRole) -> bool {
    PHISHING_RESISTANT_ROLES.contains(&role)
}

/// Whether the policy lets `role` do `action` in `relationship`.
pub fn allows(role: AccountRole, action: Action, relationship: Relationship) -> bool {
    POLICIES
        .iter()
        .any(|p| p.action == action && p.role == role && p.relationships.contains(&relationship))
}

/// Whether `role` may break glass for `action` (a person only: `access::begin_access`).
pub fn allows_break_glass(role: AccountRole, action: Action) -> bool {
    allows(role, action, Relationship::BreakGlass)
}

/// Whether `role` reaches `action`'s records only by breaking glass: without it, refused.
pub fn only_by_break_glass(role: AccountRole, action: Action) -> bool {
    allows_break_glass(role, action)
        && POLICIES
            .iter()
            .filter(|p| p.action == action && p.role == role)
            .all(|p| p.relationships == BREAK_GLASS)
}

/// Whether `role` must state a purpose for `action` when not breaking glass: an identifiable
/// read of other organisations' records, or across all of them.
pub fn needs_stated_purpose(role: AccountRole, action: Action) -> bool {
    action.takes_stated_purpose()
        && (allows(role, action, Relationship::OtherOrganisation)
            || allows(role, action, Relationship::Independent))
}

/// Whether the policy lets `role` do `action` in any relationship at all.
pub fn allows_some(role: AccountRole, action: Action) -> bool {
    POLICIES
        .iter()
        .any(|p| p.action == action && p.role == role)
}

/// `Forbidden` unless the policy lets the principal do `action` in `relationship`.
pub fn authorize(
    principal: &Principal,
    action: Action,
    relationship: Relationship,
) -> Result<(), ServiceError> {
    if allows(principal.role, action, relationship) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden {
            action: action.describe(),
            audited: false,
        })
    }
}

/// `Forbidden` unless the policy lets the principal do `action` for some organisation: the
/// first check of a use case whose record it has not read yet. The use case then checks the
/// record's organisation (`Principal::reaches`) and hides what it may not reach.
pub fn authorize_some(principal: &Principal, action: Action) -> Result<(), ServiceError> {
    if allows_some(principal.role, action) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden {
            action: action.describe(),
            audited: false,
        })
    }
}

/// `authorize`, with a refusal written to the audit (outcome `denied`) before it is returned.
pub(crate) async fn authorize_audited(
    ctx: &Ctx,
    principal: &Principal,
    action: Action,
    relationship: Relationship,
    refused: &mdor_store::NewAuditEvent,
) -> Result<(), ServiceError> {
    if allows(principal.role, action, relationship) {
        return Ok(());
    }
    let mut refused = refused.clone();
    refused.outcome = "denied";
    ctx.store.append_audit(&refused).await?;
    Err(ServiceError::Forbidden {
        action: action.describe(),
        audited: true,
    })
}

/// `authorize_some`, with a refusal written to the audit (outcome `denied`) before it is
/// returned: for identifiable reads, so that a role probing them is visible.
pub(crate) async fn authorize_some_audited(
    ctx: &Ctx,
    principal: &Principal,
    action: Action,
    refused: &mdor_store::NewAuditEvent,
) -> Result<(), ServiceError> {
    if allows_some(principal.role, action) {
        return Ok(());
    }
    let mut refused = refused.clone();
    refused.outcome = "denied";
    ctx.store.append_audit(&refused).await?;
    Err(ServiceError::Forbidden {
        action: action.describe(),
        audited: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_a_row_and_no_row_is_repeated() {
        for action in Action::ALL {
            assert!(
                POLICIES.iter().any(|p| p.action == action),
                "{action:?} has no policy"
            );
        }
        for (i, a) in POLICIES.iter().enumerate() {
            for b in &POLICIES[i + 1..] {
                assert!(
                    !(a.action == b.action && a.role == b.role),
                    "{:?} {:?} twice",
                    a.action,
                    a.role
                );
            }
        }
    }

    #[test]
    fn patients_reach_only_their_own_record_and_an_action_is_either_independent_or_organisational()
    {
        for p in POLICIES {
            let own_record = p.relationships.contains(&Relationship::OwnPatientRecord);
            assert_eq!(
                p.role == AccountRole::Patient,
                own_record,
                "{:?} {:?}: patients' rows, and only theirs, are their own record",
                p.action,
                p.role
            );
            assert!(
                !own_record || p.relationships == OWN_PATIENT_RECORD,
                "{:?}: a patient reaches nothing else",
                p.action
            );
        }
        for action in Action::ALL {
            let rows: Vec<_> = POLICIES.iter().filter(|p| p.action == action).collect();
            let independent = rows
                .iter()
                .filter(|p| p.relationships == INDEPENDENT)
                .count();
            assert!(
                independent == 0 || independent == rows.len(),
                "{action:?} mixes independent and organisational rows"
            );
        }
    }

    #[test]
    fn break_glass_is_for_direct_care_roles_and_administrators_and_only_for_single_records() {
        let breakers: Vec<(Action, AccountRole)> = POLICIES
            .iter()
            .filter(|p| p.relationships.contains(&Relationship::BreakGlass))
            .map(|p| (p.action, p.role))
            .collect();
        assert_eq!(
            breakers,
            vec![
                (ReadProcedure, Consultant),
                (ReadProcedure, SystemAdmin),
                (ReadProcedureVersions, SystemAdmin),
                (ReadTimeline, Consultant),
                (ReadTimeline, SystemAdmin),
            ],
            "no writes, no bulk reads, no manufacturers, researchers or analysts"
        );
        for (action, role) in breakers {
            assert!(
                action.takes_stated_purpose(),
                "{action:?} is audited with its purpose"
            );
            assert!(!allows(role, action, Relationship::OtherOrganisation));
        }
        assert!(only_by_break_glass(SystemAdmin, ReadTimeline));
        assert!(!only_by_break_glass(Consultant, ReadTimeline));
    }

    #[test]
    fn administrators_reach_no_organisations_identifiable_records_without_breaking_glass() {
        for action in Action::ALL.into_iter().filter(|a| a.takes_stated_purpose()) {
            assert!(
                !allows(SystemAdmin, action, Relationship::OtherOrganisation)
                    && !allows(SystemAdmin, action, Relationship::Independent),
                "{action:?}"
            );
        }
        for action in [
            ReadSubmissionReport,
            ReadQuarantine,
            ReadRecallWorklist,
            ExportRecallWorklist,
            UpdateRecallStatus,
            RecallSearch,
        ] {
            assert!(!allows_some(SystemAdmin, action), "{action:?}");
        }
        for action in [
            ListAccounts,
            CreateAccount,
            DisableAccount,
            EnableAccount,
            ResetAccountCredentials,
        ] {
            assert!(allows(SystemAdmin, action, Relationship::OtherOrganisation));
            assert!(allows(
                ProviderDataManager,
                action,
                Relationship::OwnOrganisation
            ));
            assert!(!allows(
                ProviderDataManager,
                action,
                Relationship::OtherOrganisation
            ));
        }
        for action in [
            RegisterDevice,
            LinkOidcIdentity,
            ReadAccessLog,
            ReadAccessReviews,
            DecideAccessReview,
        ] {
            assert!(allows(SystemAdmin, action, Relationship::Independent));
        }
        // Approvers are designated by administrators only: no role, an approver's included,
        // widens its own organisation's issuers.
        assert!(allows(
            SystemAdmin,
            DesignateApprover,
            Relationship::OtherOrganisation
        ));
        for role in AccountRole::ALL {
            if role != SystemAdmin {
                assert!(!allows_some(role, DesignateApprover), "{role:?}");
            }
        }
    }

    #[test]
    fn token_roles_act_as_their_account_roles() {
        assert!(allows(
            policy_role(Role::ProviderSubmitter),
            RegisterProcedure,
            Relationship::OwnOrganisation
        ));
        assert!(!allows(
            policy_role(Role::ProviderSubmitter),
            ReadProcedure,
            Relationship::OtherOrganisation
        ));
        assert!(allows(
            policy_role(Role::Admin),
            RegisterDevice,
            Relationship::Independent
        ));
        assert!(!allows(
            policy_role(Role::Regulator),
            RegisterDevice,
            Relationship::Independent
        ));
    }
}
