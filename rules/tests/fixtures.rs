//! Data-driven tests over `testdata/`: rule files that must load, rule
//! files that must fail with exactly the messages in their `.expected`
//! file, and the shipped packs with their unit tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use countywatch_rules::{check, rulefmt, unittest};

fn files(dir: &str, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no {prefix}*{suffix} in {dir}");
    found
}

#[test]
fn good_rule_files_load() {
    for path in files("testdata/rulefmt", "good", ".yaml") {
        if let Err(problems) = rulefmt::load(&path) {
            panic!("{}: {problems}", path.display());
        }
    }
}

#[test]
fn bad_rule_files_report_every_problem_with_its_position() {
    for path in files("testdata/rulefmt", "bad", ".yaml") {
        // Report paths relative to the fixture directory, as the expected
        // files were written from there.
        let name = Path::new(path.file_name().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        let problems = rulefmt::parse(name, &text).expect_err("bad file loaded");
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        assert_eq!(
            problems.to_string(),
            expected.trim_end(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn check_reports_like_promtool() {
    let outcome = check::check_files(&["testdata/rulefmt/good.yaml"]);
    assert!(outcome.passed);
    assert_eq!(outcome.exit_code, 0);
    assert_eq!(
        outcome.report,
        "Checking testdata/rulefmt/good.yaml\n  SUCCESS: 2 rules found\n\n"
    );
    let outcome = check::check_files(&[
        "testdata/rulefmt/bad_shape.yaml",
        "testdata/rulefmt/good.yaml",
    ]);
    assert!(!outcome.passed);
    assert!(
        outcome.report.contains("SUCCESS: 2 rules found"),
        "{}",
        outcome.report
    );
}

#[test]
fn duplicate_rules_are_a_lint_error_as_in_promtool() {
    let path = "testdata/rulefmt/lint_duplicates.yaml";
    let outcome = check::check_files(&[path]);
    assert_eq!(outcome.exit_code, 0, "a lint error exits 0 by default");
    assert!(!outcome.passed);
    assert_eq!(
        outcome.report,
        format!(
            "Checking {path}\n  FAILED:\nlint error 2 duplicate rule(s) found.\nMetric: HighLoad\nLabel(s):\n\tseverity: warning\nMetric: job:up:sum\nLabel(s):\nMight cause inconsistency while recording expressions\n\n"
        )
    );
    let fatal = check::LintOptions {
        duplicate_rules: true,
        fatal: true,
    };
    assert_eq!(check::check_files_with(&[path], fatal).exit_code, 3);
    let none = check::LintOptions {
        duplicate_rules: false,
        fatal: true,
    };
    let outcome = check::check_files_with(&[path], none);
    assert_eq!(outcome.exit_code, 0);
    assert!(outcome.report.contains("SUCCESS: 6 rules found"));
    // A real error wins over lint: exit 1.
    let outcome = check::check_files_with(&[path, "testdata/rulefmt/bad_rules.yaml"], fatal);
    assert_eq!(outcome.exit_code, 1);
}

#[test]
fn shipped_packs_pass_their_unit_tests() {
    for path in files("packs", "", ".test.yaml") {
        let outcome = unittest::run_file(&path);
        assert!(outcome.passed, "{}", outcome.report);
    }
}

#[test]
fn corpus_runs_without_panicking_and_mostly_passes() {
    // The differential test in tests/ compares every case with promtool;
    // here the corpus only has to run and the expected-to-pass files pass.
    for path in files("testdata/corpus", "", ".test.yaml") {
        let outcome = unittest::run_file(&path);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if ["aggregations.test.yaml", "range_functions.test.yaml"].contains(&name.as_str()) {
            assert!(outcome.passed, "{}", outcome.report);
        }
        if name == "wrong.test.yaml" {
            assert!(!outcome.passed);
        }
    }
}
