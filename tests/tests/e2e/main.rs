//! End-to-end tests: the real binaries on loopback. One test binary for the
//! whole suite (one link step); one module per area.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod alerting;
mod alertmanager_dropin;
mod anonymous_reads;
mod audit_tamper;
mod authorization;
mod bad_input;
mod cli;
mod console_web;
mod county_report;
mod crash_windows;
mod dashboards;
mod day_one;
mod detection;
mod enrolment_takeover;
mod events;
mod faults;
mod file_modes;
mod host_spoofing;
mod import_circles;
mod incident_web;
mod incidents;
mod ingest_budget;
mod link_cut;
mod local_time;
mod login_guessing;
mod node_exporter;
mod notify;
mod old_servers;
mod openssh;
mod outputs;
mod packaging;
mod ports;
mod reload;
mod response;
mod response_decisions;
mod rules;
mod service_probes;
mod skeleton;
mod snmp;
mod syslog;
mod tls_audit;
mod transport;
