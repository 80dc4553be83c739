//! Label sets and the templates rendered from them, with nothing else, so
//! that a crate can name a series or render an annotation without linking a
//! query language.
//!
//! - [`labels`]: sorted label sets, the identity of a series or detection.
//! - [`template`]: the Go-template subset allowed in labels and annotations.
//!
//! `countywatch-rules` (PromQL) and `countywatch-detect` (security events)
//! both use them; the agent links `countywatch-detect` for offline active
//! response, and this split is what keeps the PromQL parser out of it.
//!
//! **Architecture Invariant:** no dependencies beyond `std`, no IO.

pub mod labels;
pub mod template;
