//! The crate's floors (src/lib.rs): a module imports only from floors below
//! its own. Reads every source file and fails on an upward `crate::` path.

use std::path::{Path, PathBuf};

/// Floor of each top-level module; equal floors may not import each other.
const FLOORS: &[(&str, u8)] = &[
    ("engine", 0),
    ("stats", 0),
    ("userio", 0),
    ("prune", 1),
    ("profile", 2),
    ("session", 3),
    ("eval", 4),
    ("bench", 4),
    ("ui", 5),
    ("cli", 6),
];

fn floor(module: &str) -> Option<u8> {
    FLOORS.iter().find(|(m, _)| *m == module).map(|(_, f)| *f)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level modules named after `crate::` in a source text.
fn imported(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(i, _)| text[i + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect())
        .collect()
}

#[test]
fn no_module_imports_a_floor_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let own = rel.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
        let Some(own_floor) = floor(&own) else {
            assert!(matches!(own.as_str(), "lib" | "main"), "{} is in no floor: add it to FLOORS", rel.display());
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for module in imported(&text) {
            checked += 1;
            match floor(&module) {
                Some(f) if module != own && f >= own_floor => violations
                    .push(format!("{} (floor {own_floor}) imports crate::{module} (floor {f})", rel.display())),
                None if module != own => violations.push(format!("{} imports unknown crate::{module}", rel.display())),
                _ => {}
            }
        }
    }
    assert!(checked > 50, "only {checked} imports found: the scan is broken");
    assert!(violations.is_empty(), "upward imports:\n{}", violations.join("\n"));
}

#[test]
fn the_scan_sees_an_upward_import() {
    assert_eq!(imported("use crate::ui::app::Pane; let x = crate::engine::Engine::load;"), ["ui", "engine"]);
}
