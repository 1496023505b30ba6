//! Every version of every registry's dataset definition, keyed by (registry, version).
//!
//! Built from (relative path, text) pairs, so that the same code serves definitions read from
//! the `registries/` folder and definitions compiled into the binary. A path must be
//! `<registry>/<version>.toml` and agree with the `registry` and `version` inside the file, so
//! that the folder tree is an honest index of what is defined.

use std::collections::BTreeMap;

use crate::dataset::definition::{DatasetDefinition, DatasetVersion, DefinitionError};
use crate::identifiers::RegistryCode;

/// Definitions that could not be loaded: every file's problems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueError {
    pub errors: Vec<DefinitionError>,
}

impl std::fmt::Display for CatalogueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CatalogueError {}

/// The loaded definitions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatasetCatalogue {
    definitions: BTreeMap<(RegistryCode, DatasetVersion), DatasetDefinition>,
}

impl DatasetCatalogue {
    /// Parses every source; `path` ends in `<registry>/<version>.toml` (e.g.
    /// `registries/bcir/1.1.toml`) and names the file in errors. Fails with the problems of
    /// every bad file, not only the first.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<DatasetCatalogue, CatalogueError> {
        let mut catalogue = DatasetCatalogue::default();
        let mut errors = Vec::new();
        for (path, text) in sources {
            match DatasetDefinition::parse(path, text) {
                Ok(definition) => {
                    if let Err(error) = catalogue.insert(path, definition) {
                        errors.push(error);
                    }
                }
                Err(error) => errors.push(error),
            }
        }
        if errors.is_empty() {
            Ok(catalogue)
        } else {
            Err(CatalogueError { errors })
        }
    }

    fn insert(&mut self, path: &str, definition: DatasetDefinition) -> Result<(), DefinitionError> {
        let expected = format!("{}/{}.toml", definition.registry(), definition.version());
        let normalised = path.replace('\\', "/");
        let in_place = normalised == expected || normalised.ends_with(&format!("/{expected}"));
        if !in_place {
            return Err(DefinitionError::new(
                path,
                None,
                format!(
                    "registry {} version {} must be in the file {expected}",
                    definition.registry(),
                    definition.version()
                ),
            ));
        }
        let key = (definition.registry().clone(), definition.version());
        if self.definitions.contains_key(&key) {
            return Err(DefinitionError::new(path, None, "is defined twice"));
        }
        self.definitions.insert(key, definition);
        Ok(())
    }

    pub fn get(
        &self,
        registry: &RegistryCode,
        version: DatasetVersion,
    ) -> Option<&DatasetDefinition> {
        self.definitions.get(&(registry.clone(), version))
    }

    /// The highest version of a registry's dataset, for new records.
    pub fn latest(&self, registry: &RegistryCode) -> Option<&DatasetDefinition> {
        self.definitions
            .iter()
            .filter(|((code, _), _)| code == registry)
            .map(|(_, definition)| definition)
            .next_back()
    }

    /// Every registry with at least one definition, in code order.
    pub fn registries(&self) -> Vec<&RegistryCode> {
        let mut codes: Vec<&RegistryCode> = self.definitions.keys().map(|(code, _)| code).collect();
        codes.dedup();
        codes
    }

    /// The versions defined for a registry, oldest first.
    pub fn versions(&self, registry: &RegistryCode) -> Vec<DatasetVersion> {
        self.definitions
            .keys()
            .filter(|(code, _)| code == registry)
            .map(|(_, version)| *version)
            .collect()
    }

    /// Every definition, by registry then version.
    pub fn definitions(&self) -> impl Iterator<Item = &DatasetDefinition> {
        self.definitions.values()
    }

    pub fn len(&self) -> usize {
        self.definitions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty()
    }
}
