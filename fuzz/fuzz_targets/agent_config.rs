//! The agent's YAML configuration through parsing and validation.
#![no_main]

use std::path::Path;

use countywatch_agent::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("agent.yaml");
    if let Ok(config) = countywatch_config::config_file::parse::<Config>(path, &text) {
        let _ = config.validate(path);
    }
});
