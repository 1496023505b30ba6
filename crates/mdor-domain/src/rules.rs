//! Pure rules about the record over time: what is flagged for follow-up, and which
//! orderings of events are impossible.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::record::ImplantedDevice;

/// Why an accepted implant needs a person to look at it. A flagged implant is stored like any
/// other; the flag stays open until someone resolves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FollowUpFlag {
    /// The device's expiry date is before the implant date.
    ExpiredAtImplant,
    /// The UDI-DI is not in the device register (yet).
    NotInRegister,
}

impl FollowUpFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            FollowUpFlag::ExpiredAtImplant => "expired_at_implant",
            FollowUpFlag::NotInRegister => "not_in_register",
        }
    }

    pub fn parse(input: &str) -> Option<FollowUpFlag> {
        match input {
            "expired_at_implant" => Some(FollowUpFlag::ExpiredAtImplant),
            "not_in_register" => Some(FollowUpFlag::NotInRegister),
            _ => None,
        }
    }
}

/// The follow-up flags one implanted device raises.
pub fn follow_up_flags(
    device: &ImplantedDevice,
    procedure_date: NaiveDate,
    in_register: bool,
) -> Vec<FollowUpFlag> {
    let mut flags = Vec::new();
    // A device is usable up to and including its expiry date.
    if device
        .production
        .expiry
        .is_some_and(|expiry| expiry < procedure_date)
    {
        flags.push(FollowUpFlag::ExpiredAtImplant);
    }
    if !in_register {
        flags.push(FollowUpFlag::NotInRegister);
    }
    flags
}

/// An ordering of events that cannot have happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimelineError {
    #[error("removal date {removal} is before the implant date {implant}")]
    RemovalBeforeImplant {
        implant: NaiveDate,
        removal: NaiveDate,
    },
    #[error("date {event} is after the patient's recorded death on {death}")]
    AfterDeath { death: NaiveDate, event: NaiveDate },
    #[error("date of death {death} is before a recorded procedure on {procedure}")]
    DeathBeforeProcedure {
        death: NaiveDate,
        procedure: NaiveDate,
    },
    #[error("date {event} is in the future")]
    InFuture { event: NaiveDate },
}

/// A revision or explant must not precede the implant it removes, nor follow death.
pub fn check_removal(
    implant_date: NaiveDate,
    removal_date: NaiveDate,
    death: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<(), TimelineError> {
    if removal_date > today {
        return Err(TimelineError::InFuture {
            event: removal_date,
        });
    }
    if removal_date < implant_date {
        return Err(TimelineError::RemovalBeforeImplant {
            implant: implant_date,
            removal: removal_date,
        });
    }
    match death {
        Some(death) if removal_date > death => Err(TimelineError::AfterDeath {
            death,
            event: removal_date,
        }),
        _ => Ok(()),
    }
}

/// A death must not precede any of the patient's procedures.
pub fn check_death(
    death: NaiveDate,
    latest_procedure: Option<NaiveDate>,
    today: NaiveDate,
) -> Result<(), TimelineError> {
    if death > today {
        return Err(TimelineError::InFuture { event: death });
    }
    match latest_procedure {
        Some(procedure) if death < procedure => {
            Err(TimelineError::DeathBeforeProcedure { death, procedure })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::EntryType;
    use crate::udi::{ProductionIdentifiers, UdiDi};

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn device(expiry: Option<&str>) -> ImplantedDevice {
        ImplantedDevice {
            udi_di: UdiDi::parse("05012345678900").unwrap(),
            production: ProductionIdentifiers {
                expiry: expiry.map(date),
                ..Default::default()
            },
            raw_scan: None,
            entry_type: EntryType::Manual,
        }
    }

    #[test]
    fn revision_before_implant_date_is_rejected() {
        let result = check_removal(
            date("2024-05-01"),
            date("2024-04-30"),
            None,
            date("2025-01-01"),
        );
        assert_eq!(
            result,
            Err(TimelineError::RemovalBeforeImplant {
                implant: date("2024-05-01"),
                removal: date("2024-04-30")
            })
        );
        assert_eq!(
            check_removal(
                date("2024-05-01"),
                date("2024-05-01"),
                None,
                date("2025-01-01")
            ),
            Ok(())
        );
    }

    #[test]
    fn removal_after_death_is_rejected() {
        let result = check_removal(
            date("2020-01-01"),
            date("2024-01-02"),
            Some(date("2024-01-01")),
            date("2025-01-01"),
        );
        assert!(matches!(result, Err(TimelineError::AfterDeath { .. })));
    }

    #[test]
    fn death_before_a_procedure_is_rejected() {
        assert!(
            check_death(
                date("2020-01-01"),
                Some(date("2021-01-01")),
                date("2025-01-01")
            )
            .is_err()
        );
        assert_eq!(
            check_death(
                date("2022-01-01"),
                Some(date("2021-01-01")),
                date("2025-01-01")
            ),
            Ok(())
        );
    }

    #[test]
    fn expired_or_unregistered_devices_are_flagged_not_dropped() {
        let on_day = date("2024-06-01");
        assert_eq!(
            follow_up_flags(&device(Some("2024-05-31")), on_day, true),
            vec![FollowUpFlag::ExpiredAtImplant]
        );
        assert_eq!(
            follow_up_flags(&device(Some("2024-06-01")), on_day, true),
            vec![]
        );
        assert_eq!(
            follow_up_flags(&device(None), on_day, false),
            vec![FollowUpFlag::NotInRegister]
        );
    }
}
