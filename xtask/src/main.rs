//! Project automation: `cargo run -p xtask -- tidy` checks that every Rust file opens with a
//! `//!` line saying what it is for; the same check runs as a test in `cargo test`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("tidy") => {
            let problems = missing_module_docs(&workspace_root());
            for problem in &problems {
                eprintln!("{problem}");
            }
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        _ => {
            eprintln!("usage: cargo run -p xtask -- tidy");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Rust files under `crates/`, `xtask/` and `fuzz/` whose first line is not a `//!` comment.
fn missing_module_docs(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "fuzz"] {
        collect_rust_files(&root.join(dir), &mut files);
    }
    files
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default();
            (!first.starts_with("//!"))
                .then(|| format!("{} does not start with a //! line", path.display()))
        })
        .collect()
}

fn collect_rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && name != "corpus" && name != "artifacts" {
                collect_rust_files(&path, files);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rust_file_starts_with_a_module_doc_line() {
        let problems = missing_module_docs(&workspace_root());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_file_without_a_module_doc_line_is_reported() {
        let dir = std::env::temp_dir().join(format!("mdor-tidy-{}", std::process::id()));
        let crate_dir = dir.join("crates/example/src");
        std::fs::create_dir_all(&crate_dir).unwrap();
        std::fs::write(crate_dir.join("good.rs"), "//! Has one.\nfn f() {}\n").unwrap();
        std::fs::write(crate_dir.join("bad.rs"), "fn f() {}\n").unwrap();
        let problems = missing_module_docs(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("bad.rs"));
    }
}
