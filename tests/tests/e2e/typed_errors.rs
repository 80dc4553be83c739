//! Library errors are typed: no function of a library crate returns
//! `Result<_, String>`, `Result<_, &str>` or `Result<_, Box<dyn Error>>`,
//! whose callers can only show the message, not tell what failed or
//! whether a retry can help. Binaries' `main.rs`, `bin/` targets, tests,
//! benches and fuzz targets may. Return types are read whole, across
//! lines, up to the function's body; `#[cfg(test)]` items and comments
//! are left out. This reads source files only; it needs no binaries.

use std::path::{Path, PathBuf};

use super::import_circles::without_tests_and_comments;

/// The library crates, by directory.
const CRATES: [&str; 12] = [
    "agent",
    "collector",
    "config",
    "daemon",
    "detect",
    "labels",
    "net",
    "notify",
    "parse",
    "rules",
    "sysclock",
    "wire",
];

#[test]
fn library_functions_return_typed_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for krate in CRATES {
        for path in library_files(&root.join(krate).join("src")) {
            let text = std::fs::read_to_string(&path).unwrap();
            let code = without_tests_and_comments(&text);
            for (name, returned) in untyped_errors(&code) {
                let file = path.strip_prefix(&root).unwrap_or(&path).display();
                found.push(format!("{file}: fn {name} -> {returned}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "library functions returning a message instead of a typed error (give the module a thiserror enum):\n{}",
        found.join("\n")
    );
}

#[test]
fn return_types_are_read_across_lines_and_inside_other_types() {
    let code = "pub fn a(x: &str) -> Result<u8, String> { 0 }\n\
        fn b(\n    f: impl Fn() -> Result<(), String>,\n) -> Result<[u8; 2], MyError> {}\n\
        fn c() -> impl Iterator<Item = Result<(&str, Vec<u64>), String>> {}\n\
        fn d() -> Result<Vec<String>, &'static str> {}\n\
        fn e() -> Result<(), Box<dyn std::error::Error + Send>> {}\n\
        fn f() -> anyhow::Result<Result<(), Refusal>> {}\n\
        fn g() -> Result<String, Problem> where Problem: Sized {}\n";
    let names: Vec<String> = untyped_errors(code)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
}

/// The `.rs` files under `dir`, without `main.rs` and `bin/`.
fn library_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.map(Result::unwrap) {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "bin" {
                files.extend(library_files(&path));
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") && name != "main.rs" {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Each `->` whose type holds a `Result` with a message for its error, as
/// (the function's name, the type). A closure parameter's `->` counts for
/// the function it belongs to.
fn untyped_errors(code: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for (at, _) in code.match_indices("->") {
        let returned = type_after(&code[at + 2..]);
        if !returned.split("Result<").skip(1).any(message_error) {
            continue;
        }
        let name = code[..at]
            .rfind("fn ")
            .map(|start| {
                code[start + 3..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect()
            })
            .unwrap_or_default();
        if found.last().is_none_or(|(last, _)| *last != name) {
            found.push((name, returned));
        }
    }
    found
}

/// The type at the start of `text`: up to the body's `{`, a `;`, a
/// `where`, or the bracket that closes an enclosing one; whitespace folded.
fn type_after(text: &str) -> String {
    let mut depth = 0i32;
    let mut end = text.len();
    let mut previous = ' ';
    for (offset, character) in text.char_indices() {
        match character {
            '(' | '[' | '<' => depth += 1,
            '>' if previous == '-' => {}
            ')' | ']' | '>' => depth -= 1,
            '{' | ';' if depth == 0 => {
                end = offset;
                break;
            }
            'w' if depth == 0 && text[offset..].starts_with("where") => {
                end = offset;
                break;
            }
            _ => {}
        }
        if depth < 0 {
            end = offset;
            break;
        }
        previous = character;
    }
    text[..end].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether the text after a `Result<` has a message as its error: the
/// second of its top-level arguments is `String`, `&str` (any lifetime) or
/// a boxed `dyn Error`.
fn message_error(arguments: &str) -> bool {
    let mut depth = 0i32;
    let mut start = 0;
    let mut parts = Vec::new();
    let mut previous = ' ';
    for (offset, character) in arguments.char_indices() {
        match character {
            '(' | '[' | '<' => depth += 1,
            '>' if previous == '-' => {}
            ')' | ']' | '>' if depth == 0 => {
                parts.push(&arguments[start..offset]);
                break;
            }
            ')' | ']' | '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&arguments[start..offset]);
                start = offset + 1;
            }
            _ => {}
        }
        previous = character;
    }
    let Some(error) = parts.get(1).map(|part| part.trim()) else {
        return false;
    };
    error == "String"
        || error == "std::string::String"
        || (error.starts_with('&') && error.ends_with("str"))
        || (error.starts_with("Box<dyn") && error.contains("Error"))
}
