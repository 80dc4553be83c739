//! Import circles between the files of the collector, the notify crate and
//! the agent. A file imports another when its code names a
//! path into it: `crate::`, `super::` and `self::` paths, resolved to the
//! deepest module that is a file (so `crate::notify::receiver::email::Email`
//! is an edge to `notify/receiver/email.rs`), with `use super::*` an edge to
//! the parent. A module's references to its own descendants are not edges
//! (a `mod.rs` assembling its probes is fine), nor are `#[cfg(test)]`
//! modules, comments and doc links. A circle is a strongly connected set of
//! two or more files.
//!
//! No circle of more than two files is allowed. [`RECORDED`] lists any
//! that must be tolerated for a while (none today) and may only shrink: a
//! new or grown circle fails the test, and so does a recorded circle that
//! is gone or smaller, asking for the record to be updated. This reads
//! source files only; it needs no binaries.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Today's circles of more than two files, one line each: the crate, then
/// its modules (`crate` is `lib.rs`), sorted. None are left in the
/// collector, the agent or the notify crate; a new one fails the test.
const RECORDED: &str = "
";

#[test]
fn import_circles_only_shrink() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = BTreeSet::new();
    for (name, dir) in [
        ("collector", "collector/src"),
        ("notify", "notify/src"),
        ("agent", "agent/src"),
    ] {
        let (edges, circles) = circles(&root.join(dir));
        for circle in circles {
            println!("{name}: {} files: {}", circle.len(), circle.join(" "));
            for from in &circle {
                let into: Vec<&str> = edges[from]
                    .iter()
                    .filter(|to| circle.contains(to))
                    .map(String::as_str)
                    .collect();
                println!("    {from} -> {}", into.join(" "));
            }
            if circle.len() > 2 {
                found.insert(format!("{name}: {}", circle.join(" ")));
            }
        }
    }
    let recorded: BTreeSet<String> = RECORDED
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect();
    let grown: Vec<&String> = found
        .iter()
        .filter(|circle| !recorded.iter().any(|old| contains(old, circle)))
        .collect();
    assert!(
        grown.is_empty(),
        "new or grown import circles (move the shared helper down a layer instead):\n{}",
        grown
            .iter()
            .map(|circle| circle.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        recorded,
        found,
        "import circles shrank: update RECORDED in {} to the circles printed above",
        file!()
    );
}

/// Whether recorded circle `old` holds every module of `new` (same crate).
fn contains(old: &str, new: &str) -> bool {
    let split = |line: &str| -> (String, BTreeSet<String>) {
        let (krate, modules) = line.split_once(':').unwrap_or((line, ""));
        (
            krate.to_string(),
            modules.split_whitespace().map(str::to_string).collect(),
        )
    };
    let (old_crate, old_modules) = split(old);
    let (new_crate, new_modules) = split(new);
    old_crate == new_crate && new_modules.is_subset(&old_modules)
}

/// The import edges between the files of the crate under `src`, and every
/// circle of two or more files, each sorted.
fn circles(src: &Path) -> (Edges, Vec<Vec<String>>) {
    let modules = modules(src);
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut edges = Edges::new();
    for (module, path) in &modules {
        let text = std::fs::read_to_string(path).unwrap();
        let code = without_tests_and_comments(&text);
        let targets = edges.entry(module.clone()).or_default();
        for reference in references(&code) {
            if let Some(target) = resolve(module, &reference, &names)
                && target != *module
                && !is_descendant(&target, module)
            {
                targets.insert(target);
            }
        }
    }
    let circles = strongly_connected(&edges)
        .into_iter()
        .filter(|component| component.len() > 1)
        .collect();
    (edges, circles)
}

/// Module to the modules it imports.
type Edges = BTreeMap<String, BTreeSet<String>>;

/// Module path (`crate`, `notify`, `notify::receiver::email`) to file, for
/// every `.rs` file of the library (`main.rs` is a crate of its own).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if parts == ["main"] || parts.iter().any(|part| part == "bin") {
                continue;
            }
            if parts.last().is_some_and(|last| last == "mod") || parts == ["lib"] {
                parts.pop();
            }
            let name = match parts.is_empty() {
                true => "crate".to_string(),
                false => parts.join("::"),
            };
            out.insert(name, path);
        }
    }
    out
}

/// The source without comments, string and character literals' contents,
/// and `#[cfg(test)]` items (their braces skipped to the matching one).
pub(super) fn without_tests_and_comments(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < bytes.len() {
        let rest = &text[index..];
        if rest.starts_with("//") {
            index += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            index += rest.find("*/").map_or(rest.len(), |end| end + 2);
        } else if let Some(item) = rest.strip_prefix("#[cfg(test)]") {
            // Skip the attribute and the item after it: to the end of its
            // braces, or to its `;` when it has none.
            let brace = item.find('{');
            let semicolon = item.find(';');
            let start = index + "#[cfg(test)]".len();
            index = match (brace, semicolon) {
                (Some(brace), Some(semicolon)) if semicolon < brace => start + semicolon + 1,
                (Some(brace), _) => start + brace + matching_brace(&item[brace..]),
                (None, Some(semicolon)) => start + semicolon + 1,
                (None, None) => bytes.len(),
            };
        } else if let Some(literal) = rest.strip_prefix('"') {
            index += 1 + string_end(literal);
            out.push_str("\"\"");
        } else if let Some(length) = char_literal_length(rest) {
            index += length;
            out.push_str("' '");
        } else if rest.starts_with("r\"") || rest.starts_with("r#\"") || rest.starts_with("r##\"") {
            let hashes = rest[1..].chars().take_while(|c| *c == '#').count();
            let closing = format!("\"{}", "#".repeat(hashes));
            let body = 1 + hashes + 1;
            index += body
                + rest[body..]
                    .find(&closing)
                    .map_or(0, |end| end + closing.len());
            out.push_str("\"\"");
        } else {
            let character = rest.chars().next().unwrap();
            out.push(character);
            index += character.len_utf8();
        }
    }
    out
}

/// Length of `text` up to and including the brace matching its first `{`.
fn matching_brace(text: &str) -> usize {
    let mut depth = 0usize;
    let stripped = without_tests_and_comments_shallow(text);
    for (offset, character) in stripped.char_indices() {
        match character {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return offset + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// `text` with the contents of comments and string literals blanked
/// (same length), so that braces inside them are not counted.
fn without_tests_and_comments_shallow(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < text.len() {
        let rest = &text[index..];
        let skip = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |end| end + 2)
        } else if let Some(literal) = rest.strip_prefix('"') {
            1 + string_end(literal)
        } else if let Some(length) = char_literal_length(rest) {
            length
        } else {
            let character = rest.chars().next().unwrap();
            out.push(character);
            index += character.len_utf8();
            continue;
        };
        out.extend(std::iter::repeat_n(' ', rest[..skip].len()));
        index += skip;
    }
    out
}

/// The length of the character literal `text` starts with (`'x'`,
/// `'\n'`, `'\u{1F600}'`), or `None` (a lifetime, or no quote).
fn char_literal_length(text: &str) -> Option<usize> {
    let rest = text.strip_prefix('\'')?;
    if let Some(escaped) = rest.strip_prefix('\\') {
        let end = escaped.find('\'')?;
        return (end <= 10).then_some(2 + end + 1);
    }
    let character = rest.chars().next()?;
    rest[character.len_utf8()..]
        .starts_with('\'')
        .then_some(1 + character.len_utf8() + 1)
}

/// Length of a string literal's rest after its opening quote, closing quote
/// included.
fn string_end(text: &str) -> usize {
    let mut escaped = false;
    for (offset, character) in text.char_indices() {
        match (escaped, character) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return offset + 1,
            _ => {}
        }
    }
    text.len()
}

/// Every `crate::`, `super::` and `self::` path in `code`, `use` trees
/// expanded (`use crate::a::{b, c::D}` gives `crate::a::b`, `crate::a::c::D`).
fn references(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let tokens = tokens(code);
    let mut index = 0;
    while index < tokens.len() {
        let token = tokens[index].as_str();
        let starts_path = matches!(token, "crate" | "super" | "self")
            && tokens.get(index + 1).is_some_and(|next| next == "::")
            && (index == 0 || tokens[index - 1] != "::");
        if !starts_path {
            index += 1;
            continue;
        }
        index = use_tree(&tokens, index, Vec::new(), &mut out);
    }
    out
}

/// Reads one path (with any `{...}` groups) from `tokens[index]`, pushing
/// every full path onto `out`; returns the index after it.
fn use_tree(
    tokens: &[String],
    mut index: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        let Some(token) = tokens.get(index) else {
            out.push(prefix);
            return index;
        };
        if token == "{" {
            index += 1;
            loop {
                match tokens.get(index).map(String::as_str) {
                    None => return index,
                    Some("}") => return index + 1,
                    Some(",") => index += 1,
                    Some(_) => index = use_tree(tokens, index, prefix.clone(), out),
                }
            }
        }
        if is_identifier(token) || token == "*" {
            prefix.push(token.clone());
            index += 1;
            if tokens.get(index).is_some_and(|next| next == "::") {
                index += 1;
                continue;
            }
        }
        out.push(prefix);
        return index;
    }
}

fn is_identifier(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|first| first.is_alphabetic() || first == '_')
}

/// Identifiers, `::` and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let characters: Vec<char> = code.chars().collect();
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        if character.is_alphanumeric() || character == '_' {
            let start = index;
            while index < characters.len()
                && (characters[index].is_alphanumeric() || characters[index] == '_')
            {
                index += 1;
            }
            out.push(characters[start..index].iter().collect());
        } else if character == ':' && characters.get(index + 1) == Some(&':') {
            out.push("::".to_string());
            index += 2;
        } else {
            if !character.is_whitespace() {
                out.push(character.to_string());
            }
            index += 1;
        }
    }
    out
}

/// The deepest module file `reference` (written in `module`) names.
fn resolve(module: &str, reference: &[String], names: &BTreeSet<String>) -> Option<String> {
    let mut path: Vec<String> = match module {
        "crate" => Vec::new(),
        _ => module.split("::").map(str::to_string).collect(),
    };
    let mut parts = reference.iter().peekable();
    match parts.next().map(String::as_str) {
        Some("crate") => path.clear(),
        Some("self") => {}
        Some("super") => {
            path.pop();
            while parts.peek().is_some_and(|part| *part == "super") {
                parts.next();
                path.pop();
            }
        }
        _ => return None,
    }
    let mut deepest = name_of(&path);
    for part in parts {
        path.push(part.clone());
        let candidate = name_of(&path);
        if !names.contains(&candidate) {
            break;
        }
        deepest = candidate;
    }
    names.contains(&deepest).then_some(deepest)
}

fn name_of(path: &[String]) -> String {
    match path.is_empty() {
        true => "crate".to_string(),
        false => path.join("::"),
    }
}

/// Whether `module` lies below `ancestor`.
fn is_descendant(module: &str, ancestor: &str) -> bool {
    ancestor == "crate" || module.starts_with(&format!("{ancestor}::"))
}

/// Tarjan's strongly connected components, each sorted.
fn strongly_connected(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        state.index.insert(node, state.next);
        state.low.insert(node, state.next);
        state.next += 1;
        state.stack.push(node);
        state.on_stack.insert(node);
        let edges = state.edges;
        for target in edges.get(node).into_iter().flatten() {
            let target = target.as_str();
            if !state.index.contains_key(target) {
                visit(state, target);
                let low = state.low[node].min(state.low[target]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(target) {
                let low = state.low[node].min(state.index[target]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.to_string());
                if member == node {
                    break;
                }
            }
            component.sort();
            state.out.push(component);
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.out.sort();
    state.out
}

#[test]
fn paths_resolve_to_the_deepest_module_file_and_use_trees_expand() {
    let names: BTreeSet<String> = ["crate", "a", "a::b", "c"]
        .iter()
        .map(|name| name.to_string())
        .collect();
    let code = without_tests_and_comments(
        "use crate::a::{b::Thing, self};\n// crate::c::x\nuse super::*;\nfn f() { crate::c::run(\"crate::c\"); }\n#[cfg(test)]\nmod tests { use crate::c; fn g() { let _ = '{'; let _ = '\"'; } }\n",
    );
    let mut resolved: Vec<Option<String>> = references(&code)
        .iter()
        .map(|reference| resolve("a::b", reference, &names))
        .collect();
    resolved.sort();
    assert_eq!(
        resolved,
        [
            Some("a".to_string()),
            Some("a".to_string()),
            Some("a::b".to_string()),
            Some("c".to_string())
        ]
    );
    assert!(is_descendant("a::b", "a") && !is_descendant("a", "a::b"));
}
