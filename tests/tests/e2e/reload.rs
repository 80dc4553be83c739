//! Reloading the agent's configuration with SIGHUP (`systemctl reload`): a
//! valid file takes effect without a restart, an invalid one is reported
//! with its position and changes nothing.

use std::time::Duration;

use countywatch_e2e::process::wait_until;
use countywatch_e2e::{Agent, Collector, TEST_AGENT_CONFIG};

#[test]
fn sighup_applies_a_valid_config_and_refuses_an_invalid_one() {
    let collector = Collector::start();
    let agent = Agent::start_for("reload-host", &collector);
    let memory = "node_memory_MemTotal_bytes{instance=\"reload-host\",job=\"countywatch\"}";
    assert!(
        collector
            .wait_for_series(memory, Duration::from_secs(30))
            .is_some()
    );

    let config = agent.config_path();
    std::fs::write(
        &config,
        format!("{TEST_AGENT_CONFIG}probes:\n  memory:\n    enabeld: false\n"),
    )
    .unwrap();
    agent.hangup();
    assert!(
        agent
            .logs
            .wait_for("configuration not reloaded", Duration::from_secs(10))
    );
    let logged = agent.logs.all().join("\n");
    assert!(
        logged.contains(&format!("{}:", config.display())),
        "the problem names the file: {logged}"
    );
    assert!(logged.contains("enabeld"), "{logged}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        countywatch_e2e::http::sample_value(&collector.metrics(), memory).is_some(),
        "still collecting memory"
    );

    std::fs::write(
        &config,
        format!("{TEST_AGENT_CONFIG}probes:\n  memory:\n    enabled: false\n"),
    )
    .unwrap();
    agent.hangup();
    assert!(
        agent
            .logs
            .wait_for("configuration reloaded", Duration::from_secs(10))
    );
    assert!(
        wait_until(Duration::from_secs(30), || {
            countywatch_e2e::http::sample_value(&collector.metrics(), memory).is_none()
        }),
        "the memory probe is off after the reload"
    );
    assert!(
        countywatch_e2e::http::sample_value(
            &collector.metrics(),
            "node_load1{instance=\"reload-host\",job=\"countywatch\"}"
        )
        .is_some()
    );
}
