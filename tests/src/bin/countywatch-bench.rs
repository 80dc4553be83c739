//! `countywatch-bench [NAME...]`: runs the named benchmarks, or all of them,
//! and prints one line per figure. Build with `--release`:
//!
//! ```text
//! cargo run --release -p countywatch-e2e --bin countywatch-bench -- [NAME...]
//! cargo run --release -p countywatch-e2e --bin countywatch-bench -- --list
//! ```

use std::process::ExitCode;

use countywatch_e2e::bench::ALL;

fn main() -> ExitCode {
    let names: Vec<String> = std::env::args().skip(1).collect();
    if names.iter().any(|name| name == "--list" || name == "-l") {
        for benchmark in ALL {
            println!("{}: {}", benchmark.name, benchmark.about);
        }
        return ExitCode::SUCCESS;
    }
    for name in &names {
        if !ALL.iter().any(|benchmark| benchmark.name == name) {
            eprintln!("unknown benchmark {name:?}; --list shows them");
            return ExitCode::from(2);
        }
    }
    for benchmark in ALL {
        if names.is_empty() || names.iter().any(|name| name == benchmark.name) {
            eprintln!("# {}: {}", benchmark.name, benchmark.about);
            for figure in (benchmark.run)() {
                println!("{figure}");
            }
        }
    }
    ExitCode::SUCCESS
}
