//! The registries' dataset definitions: the files under `registries/` compiled into the
//! binary, so that `mdor` works from any directory, or read from a folder at start-up.
//!
//! Parsing and checking are `mdor_domain::dataset`'s; this module only finds and reads files.
//! A test checks that `SHIPPED` lists exactly the files in `registries/`, so adding a registry
//! is adding its file and one line here.

use std::path::{Path, PathBuf};

use mdor_domain::dataset::{CatalogueError, DatasetCatalogue, DefinitionError};

/// Every definition file under `registries/`, by path from the repository root, with its text.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "registries/bcir/1.0.toml",
        include_str!("../../../registries/bcir/1.0.toml"),
    ),
    (
        "registries/bcir/1.1.toml",
        include_str!("../../../registries/bcir/1.1.toml"),
    ),
    (
        "registries/mdor_core/1.0.toml",
        include_str!("../../../registries/mdor_core/1.0.toml"),
    ),
    (
        "registries/mdor_core/1.1.toml",
        include_str!("../../../registries/mdor_core/1.1.toml"),
    ),
    (
        "registries/mdor_core/1.2.toml",
        include_str!("../../../registries/mdor_core/1.2.toml"),
    ),
    (
        "registries/mtr/1.0.toml",
        include_str!("../../../registries/mtr/1.0.toml"),
    ),
    (
        "registries/nrhi/1.0.toml",
        include_str!("../../../registries/nrhi/1.0.toml"),
    ),
    (
        "registries/otr/1.0.toml",
        include_str!("../../../registries/otr/1.0.toml"),
    ),
    (
        "registries/pfr/1.0.toml",
        include_str!("../../../registries/pfr/1.0.toml"),
    ),
];

/// The definitions compiled into the binary.
pub fn shipped_catalogue() -> Result<DatasetCatalogue, CatalogueError> {
    DatasetCatalogue::from_sources(SHIPPED)
}

/// Reads every `<registry>/<version>.toml` under `dir` (other files are ignored), reporting
/// every unreadable or invalid file at once.
pub fn load_registries_dir(dir: &Path) -> Result<DatasetCatalogue, CatalogueError> {
    let mut errors = Vec::new();
    let files = definition_files(dir).unwrap_or_else(|error| {
        errors.push(DefinitionError::new(
            &dir.display().to_string(),
            None,
            format!("cannot be read: {error}"),
        ));
        Vec::new()
    });
    let mut sources = Vec::new();
    for file in files {
        let name = file.display().to_string();
        match std::fs::read_to_string(&file) {
            Ok(text) => sources.push((name, text)),
            Err(error) => errors.push(DefinitionError::new(
                &name,
                None,
                format!("cannot be read: {error}"),
            )),
        }
    }
    let borrowed: Vec<(&str, &str)> = sources
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    match DatasetCatalogue::from_sources(&borrowed) {
        Ok(catalogue) if errors.is_empty() => Ok(catalogue),
        Ok(_) => Err(CatalogueError { errors }),
        Err(mut found) => {
            errors.append(&mut found.errors);
            Err(CatalogueError { errors })
        }
    }
}

/// `dir/<folder>/<file>.toml`, sorted so that errors come in a stable order.
fn definition_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let folder = entry?.path();
        if !folder.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&folder)? {
            let file = entry?.path();
            if file.is_file() && file.extension().is_some_and(|e| e == "toml") {
                files.push(file);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repository_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn the_embedded_list_is_exactly_the_files_in_registries() {
        let root = repository_root();
        let on_disk: Vec<(String, String)> = definition_files(&root.join("registries"))
            .unwrap()
            .into_iter()
            .map(|path| {
                let relative = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                (relative, std::fs::read_to_string(&path).unwrap())
            })
            .collect();
        let embedded: Vec<(String, String)> = SHIPPED
            .iter()
            .map(|(path, text)| (path.to_string(), text.to_string()))
            .collect();
        let names = |files: &[(String, String)]| -> Vec<String> {
            files.iter().map(|(name, _)| name.clone()).collect()
        };
        assert_eq!(
            names(&embedded),
            names(&on_disk),
            "update SHIPPED in registries.rs"
        );
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn the_shipped_definitions_load_from_the_binary_and_from_the_folder_alike() {
        let embedded = shipped_catalogue().unwrap_or_else(|e| panic!("{e}"));
        let from_folder = load_registries_dir(&repository_root().join("registries"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(embedded, from_folder);
        assert_eq!(embedded.len(), SHIPPED.len());
    }
}
