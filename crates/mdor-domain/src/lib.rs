//! mdor's vocabulary: identifiers parsed once at the edge, the core record, and pure rules.
//!
//! Every type here is valid by construction: a value that exists has passed its parser.
//! Nothing in this crate does I/O, async work, SQL or HTTP.

pub mod access;
pub mod dataset;
pub mod identifiers;
pub mod month;
pub mod record;
pub mod register;
pub mod rules;
pub mod udi;

pub use access::{AccessPurpose, BreakGlassReason};
pub use identifiers::{
    GmcNumber, IdentifierError, Indication, Laterality, NhsNumber, OdsCode, Opcs4Code, Postcode,
    RegistryCode, Sex, Slug, SnomedCtId,
};
pub use month::{Month, MonthError};
pub use udi::{ParsedUdi, ProductionIdentifiers, UdiDi, UdiError, UdiIssuer};
