//! The data that crosses from a countywatch agent to the collector.
//!
//! An agent sends [`Batch`]es: the metric families it sampled and the
//! security events it observed since the last batch. A batch travels as
//! gzip-compressed JSON in the body of `POST /v1/batches` (see
//! `docs/wire-format.md`). This crate owns the types, their validation and
//! their encoding, the active-response decisions the collector sends back
//! ([`DecisionFeed`]), and the address blocks ([`Cidr`]) both daemons'
//! configurations write; it does no IO, so both daemons can depend on it
//! without depending on each other.

mod batch;
mod cidr;
mod codec;
mod decision;
mod event;
mod exposition;
mod metric;
mod renewal;

pub use batch::{Batch, BatchError, WIRE_VERSION, is_valid_agent_name};
pub use cidr::{Cidr, CidrError};
pub use codec::{
    CONTENT_ENCODING_GZIP, DecodeError, INGEST_PATH, decode_batch, decode_batch_within,
    encode_batch,
};
pub use decision::{
    DECISIONS_ACK_PATH, DECISIONS_AFTER_HEADER, DECISIONS_LOCAL_PATH, DECISIONS_PATH, DecisionAck,
    DecisionFeed, DecisionUpdate, LocalDecision, LocalDecisions, MAX_DECISIONS_WAIT_SECONDS,
    MAX_FEED_UPDATES, OfflineRuleFile, OfflineRules, RULES_QUERY, RefusedUpdate, ResponseMode,
};
pub use event::{
    Event, EventError, EventFields, EventKind, EventSource, FileState, MAX_FIELD_BYTES,
    MAX_RAW_BYTES, MAX_USERS_CHANGED,
};
pub use exposition::{
    write_agent_samples, write_family_header, write_samples, write_samples_at, write_text,
};
pub use metric::{
    AGENT_METRIC_PREFIXES, DEVICE_INSTANCE_LABEL, LabelText, MetricFamily, MetricKind,
    POLLING_AGENT_LABEL, Sample, ValidationError, exposed_labels, is_agent_metric_name,
    is_valid_label_name, is_valid_metric_name,
};
pub use renewal::{RENEW_PATH, RenewRequest, RenewResponse};
