//! Registry datasets as data: a definition file says which fields a registry collects, their
//! types, code lists and rules, and one validation engine checks any record against it.
//!
//! `DatasetDefinition::parse` reads one TOML definition (the format is described in
//! `docs/datasets.md`) and rejects a definition that is itself wrong, naming the file, the
//! field and the problem. `DatasetCatalogue` holds every version of every registry's
//! definition, keyed by registry code and version, so that a record submitted under an older
//! version keeps validating against that version.
//!
//! A record reaches the engine as JSON or as one CSV row; `RecordInput` turns both into the
//! same shape, and `DatasetDefinition::validate` reports every problem at once: errors and
//! warnings kept apart, each a `FieldError` with the field path (`devices[1].udi`), a stable
//! code (`conditional_required`) and a message a data clerk understands. Typed fields are read
//! by the parsers in `identifiers` and `udi`, with their messages.
//!
//! Like the rest of this crate, nothing here does I/O: definitions arrive as strings, and
//! facts from outside the record (today's date, the device register) come through
//! `ValidationContext`.

mod catalogue;
mod definition;
mod input;
mod validate;
mod value;

pub use catalogue::{CatalogueError, DatasetCatalogue};
pub use definition::{
    Code, CodeList, DatasetDefinition, DatasetVersion, DefinitionError, DefinitionProblem,
    DeviceTypes, FieldDefinition, FieldType, GroupDefinition,
};
pub use input::RecordInput;
pub use validate::{FixedContext, ValidationContext, ValidationReport};

#[cfg(test)]
mod tests;
