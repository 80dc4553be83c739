//! The collector's administrative commands as library functions: enrolment
//! tokens, agents and their devices, the audit trail, backups, users and
//! silences. The binary (`main.rs`) parses flags, loads the configuration
//! and calls these; they print what the operator reads on standard output
//! and return an error for standard error and exit code 1.
//!
//! Every command that changes state records its own audit entry, as
//! `cli:$USER`, after the change is done (see [`record`]). Decisions and the
//! county report have their commands beside their domain
//! (`active_response::cli`, `report::cli`).

pub mod agents;
pub mod audit_trail;
pub mod backup;
pub mod silence;
pub mod token;
pub mod user;

use std::path::Path;

use crate::audit;

/// Records a command-line action in the audit trail of `data_dir` as
/// `cli:$USER`. A failure is logged rather than returned: the action has
/// already happened and must not be reported as failed because the audit
/// store is unavailable.
fn record(data_dir: &Path, action: &str, target: &str, details: &str) {
    audit::record(data_dir, &audit::cli_actor(), action, target, details);
}
