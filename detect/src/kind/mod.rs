//! The correlation kinds, one file each. Every kind is a pure function of a
//! group's state and one matching event (a [`Hit`]); it returns the hits
//! that made it fire, if it fired. The engine owns grouping, eviction,
//! cooldown and turning hits into a [`crate::Detection`].
//!
//! A kind's file owns its rule-file section (`Raw`), its validated
//! parameters (`Spec`) and what a group key remembers (`State`), and
//! implements [`Kind`]. The `detection_kinds!` table below is the one
//! place that lists them: it declares their modules and makes the
//! rule-file keys of
//! [`crate::rulefmt::RawRule`], [`KindSpec`] and [`GroupState`]. A rule
//! with none of the keys is `single`: every match fires.

pub mod single;

use std::fmt::Debug;

use countywatch_config::config_file::Problems;
use countywatch_wire::Event;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::condition::{Condition, Scope};

/// One kind of correlation, as its file declares it.
pub trait Kind {
    /// The rule-file section as written (`threshold:`, ...).
    type Raw: Clone + Debug + DeserializeOwned;
    /// A valid section in YAML flow style, for the table's tests.
    const EXAMPLE: &'static str;
    /// The validated parameters.
    type Spec: Clone + Debug;
    /// What one group key remembers; saved in snapshots.
    type State: Clone + Debug + PartialEq + Eq + Serialize + DeserializeOwned;

    /// Checks the section, adding every problem; `None` when the rule
    /// cannot be used.
    fn validate(problems: &mut Problems, scope: &Scope, raw: &Self::Raw) -> Option<Self::Spec>;

    /// The parameters that give a key's state its meaning, for the rule's
    /// signature: state restored from a snapshot is kept only when they
    /// are unchanged.
    fn parameters(spec: &Self::Spec) -> String;

    /// How long a key's state is worth keeping after its last match.
    fn retention_ms(spec: &Self::Spec) -> i64;

    /// The state of a new key; `first` is the hit that made it.
    fn initial_state(spec: &Self::Spec, first: Hit) -> Self::State;

    /// Takes one matching event into a key's state; returns the hits that
    /// fired, if it fired.
    fn on_match(
        spec: &Self::Spec,
        state: &mut Self::State,
        event: &Event,
        hit: Hit,
        context: &mut MatchContext<'_>,
    ) -> Option<Vec<Hit>>;

    /// The first word of the state's list, if it has one: reading it
    /// brings the list into the cache (see the engine's `prefetch`).
    fn first_heap_word(state: &Self::State) -> Option<i64>;

    /// Heap bytes the state holds, for the memory figure.
    fn heap_bytes(state: &Self::State) -> usize;

    /// Steps the kind matches events against on its own, besides the rule's
    /// `match` (a sequence's steps): each with the matches it needs.
    fn steps(_spec: &Self::Spec) -> Option<&[(Condition, usize)]> {
        None
    }

    /// Whether the kind also fires as time passes (absence), through
    /// [`Kind::fire_due`].
    const FIRES_ON_TIME: bool = false;

    /// For a kind that fires on time: the hit to report when the key is
    /// due at `now_ms`, marking it reported.
    fn fire_due(_spec: &Self::Spec, _state: &mut Self::State, _now_ms: i64) -> Option<Hit> {
        None
    }
}

/// What the engine lends a kind for one match.
pub struct MatchContext<'a> {
    /// A reusable buffer for writing field values before hashing them.
    pub value_buffer: &'a mut String,
    /// When the rule saw its first event, ms (the start of learning).
    pub first_event_ms: i64,
    /// The indexes of the [`Kind::steps`] the event matched, ascending.
    pub matched_steps: &'a [usize],
}

/// One matching event, by reference: its time and the caller's id for it
/// (the `events` row id in the collector). Events themselves are not kept,
/// so a key's state stays a few dozen bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    /// Event time, ms since the epoch.
    pub at_ms: i64,
    /// The caller's id of the event.
    pub id: i64,
}

/// The table of correlation kinds: each line is the rule-file key (also
/// the name of the kind's module), the
/// variant of [`KindSpec`] and [`GroupState`], the [`Kind`], and the name
/// its state has in snapshots. `$callback` receives the table; the enums
/// here and the rule-file keys in `rulefmt.rs` are made from it.
macro_rules! detection_kinds {
    ($callback:ident) => {
        $callback! {
            /// Fire when `count` matches fall within `window`.
            threshold: Threshold(crate::kind::threshold::Threshold) as "hits",
            /// Fire when `count` distinct values of `field` fall within `window`.
            distinct: Distinct(crate::kind::distinct::Distinct) as "distinct",
            /// Fire when steps match in order within `window`.
            sequence: Sequence(crate::kind::sequence::Sequence) as "sequence",
            /// Fire the first time a value is seen for a key.
            new_value: NewValue(crate::kind::new_value::NewValue) as "seen",
            /// Fire when a key seen before has no match for `window`.
            absence: Absence(crate::kind::absence::Absence) as "last_seen",
        }
    };
}
pub(crate) use detection_kinds;

/// Makes the kinds' modules (each named after its rule-file key),
/// [`KindSpec`] and [`GroupState`] from the table, with the `match`es that
/// dispatch to each kind.
macro_rules! kind_enums {
    ($($(#[doc = $doc:literal])* $key:ident: $variant:ident($kind:ty) as $state:literal,)*) => {
        $(pub mod $key;)*

        /// The correlation kind and its parameters.
        #[derive(Clone, Debug)]
        pub enum KindSpec {
            /// Every match fires.
            Single,
            $(
                $(#[doc = $doc])*
                $variant(<$kind as Kind>::Spec),
            )*
        }

        /// What one group key remembers, by kind; the variants' names are
        /// those of saved snapshots.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum GroupState {
            /// Nothing (single rules keep a key only for its cooldown).
            Empty,
            $(
                $(#[doc = $doc])*
                #[serde(rename = $state)]
                $variant(<$kind as Kind>::State),
            )*
        }

        impl KindSpec {
            /// Every rule-file key of a kind, in table order.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($key)),*];

            /// Every key with its kind's [`Kind::EXAMPLE`], in table order.
            pub const EXAMPLES: &'static [(&'static str, &'static str)] =
                &[$((stringify!($key), <$kind as Kind>::EXAMPLE)),*];

            /// The kind's name as written in rule files.
            pub fn name(&self) -> &'static str {
                match self {
                    KindSpec::Single => "single",
                    $(KindSpec::$variant(_) => stringify!($key),)*
                }
            }

            /// How long a key's state is worth keeping after its last match.
            pub fn retention_ms(&self) -> i64 {
                match self {
                    KindSpec::Single => 0,
                    $(KindSpec::$variant(spec) => <$kind as Kind>::retention_ms(spec),)*
                }
            }

            /// The parameters that give a key's state its meaning.
            pub fn parameters(&self) -> String {
                match self {
                    KindSpec::Single => String::new(),
                    $(KindSpec::$variant(spec) => <$kind as Kind>::parameters(spec),)*
                }
            }

            /// The state of a new key.
            pub fn initial_state(&self, first: Hit) -> GroupState {
                match self {
                    KindSpec::Single => GroupState::Empty,
                    $(KindSpec::$variant(spec) => {
                        GroupState::$variant(<$kind as Kind>::initial_state(spec, first))
                    })*
                }
            }

            /// The kind's own steps, if it has any ([`Kind::steps`]).
            pub fn steps(&self) -> Option<&[(Condition, usize)]> {
                match self {
                    KindSpec::Single => None,
                    $(KindSpec::$variant(spec) => <$kind as Kind>::steps(spec),)*
                }
            }

            /// Whether the kind also fires as time passes.
            pub fn fires_on_time(&self) -> bool {
                match self {
                    KindSpec::Single => false,
                    $(KindSpec::$variant(_) => <$kind as Kind>::FIRES_ON_TIME,)*
                }
            }

            /// Takes one matching event into a key's state; returns the
            /// hits that fired. A state of another kind (only a fresh key:
            /// restored keys whose rule changed kind are left out by the
            /// signature) is started over and does not fire.
            #[inline]
            pub fn on_match(
                &self,
                state: &mut GroupState,
                event: &Event,
                hit: Hit,
                context: &mut MatchContext<'_>,
            ) -> Option<Vec<Hit>> {
                match (self, &mut *state) {
                    (KindSpec::Single, _) => Some(single::on_match(hit)),
                    $(
                        (KindSpec::$variant(spec), GroupState::$variant(kept)) => {
                            <$kind as Kind>::on_match(spec, kept, event, hit, context)
                        }
                    )*
                    (spec, _) => {
                        *state = spec.initial_state(hit);
                        None
                    }
                }
            }

            /// For a kind that fires on time: the hit to report when the
            /// key is due at `now_ms`, marking it reported.
            pub fn fire_due(&self, state: &mut GroupState, now_ms: i64) -> Option<Hit> {
                match (self, state) {
                    $(
                        (KindSpec::$variant(spec), GroupState::$variant(kept)) => {
                            <$kind as Kind>::fire_due(spec, kept, now_ms)
                        }
                    )*
                    _ => None,
                }
            }
        }

        impl GroupState {
            /// The first word of the state's list, if it has one: reading it
            /// brings the list into the cache (see the engine's `prefetch`).
            pub fn first_heap_word(&self) -> Option<i64> {
                match self {
                    GroupState::Empty => None,
                    $(GroupState::$variant(state) => <$kind as Kind>::first_heap_word(state),)*
                }
            }

            /// Heap bytes the state holds, for the memory figure.
            pub fn heap_bytes(&self) -> usize {
                match self {
                    GroupState::Empty => 0,
                    $(GroupState::$variant(state) => <$kind as Kind>::heap_bytes(state),)*
                }
            }
        }
    };
}

// The registration point: one line per kind, in `detection_kinds!` above.
detection_kinds!(kind_enums);

/// Drops hits older than `window_ms` before `now_ms` from the front of an
/// oldest-first list.
pub fn expire<T>(items: &mut Vec<T>, hit_of: impl Fn(&T) -> Hit, now_ms: i64, window_ms: i64) {
    let cutoff = now_ms.saturating_sub(window_ms);
    let stale = items
        .iter()
        .take_while(|item| hit_of(item).at_ms < cutoff)
        .count();
    if stale > 0 {
        items.drain(..stale);
    }
}

/// Appends `item` to a list that never holds more than `most` items,
/// growing it by doubling up to `most`: a handful of reallocations per key
/// instead of one per item (each realloc was a malloc, a copy and a free on
/// the hot path), and never more room than the list can use.
pub fn push_bounded<T>(items: &mut Vec<T>, item: T, most: usize) {
    if items.len() == items.capacity() {
        let wanted = items
            .len()
            .max(1)
            .min(most.saturating_sub(items.len()))
            .max(1);
        items.reserve_exact(wanted);
    }
    items.push(item);
}

/// FNV-1a over bytes: a hash that is the same in every run, so the hashes
/// in a snapshot still mean the same values after a restart.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lists_grow_by_doubling_up_to_their_bound() {
        let mut items = Vec::new();
        let mut capacities = Vec::new();
        for item in 0..12 {
            push_bounded(&mut items, item, 10);
            capacities.push(items.capacity());
        }
        // Reallocations at 1, 2, 4, 8 and 10 items; past the bound (which
        // sequence steps can reach) one at a time.
        assert_eq!(capacities, vec![1, 2, 4, 4, 8, 8, 8, 8, 10, 10, 11, 12]);
        assert_eq!(items, (0..12).collect::<Vec<_>>());
    }

    #[test]
    fn every_kind_in_the_table_is_read_from_its_key() {
        assert_eq!(
            KindSpec::KEYS,
            ["threshold", "distinct", "sequence", "new_value", "absence"]
        );
        for (key, example) in KindSpec::EXAMPLES {
            let text = format!(
                "rules:\n  - id: r\n    title: t\n    severity: low\n    match: {{kind: ssh_login_failed}}\n    {key}: {example}\n"
            );
            let rules = crate::rulefmt::parse(std::path::Path::new("r.yaml"), &text)
                .unwrap_or_else(|problems| panic!("{key}: {problems}"));
            let kind = &rules[0].kind;
            assert_eq!(kind.name(), *key);
            // A new key's state is the kind's own, not that of `single`.
            let first = Hit {
                at_ms: 1_000,
                id: 1,
            };
            let state = kind.initial_state(first);
            assert_ne!(state, GroupState::Empty, "{key}");
        }
    }

    #[test]
    fn states_keep_the_names_saved_snapshots_use() {
        let hit = Hit { at_ms: 5, id: 7 };
        let saved = |state: &GroupState| serde_json::to_string(state).unwrap();
        assert_eq!(saved(&GroupState::Empty), r#""empty""#);
        assert_eq!(
            saved(&GroupState::Threshold(vec![hit])),
            r#"{"hits":[{"at_ms":5,"id":7}]}"#
        );
        assert_eq!(
            saved(&GroupState::Distinct(vec![(3, hit)])),
            r#"{"distinct":[[3,{"at_ms":5,"id":7}]]}"#
        );
        assert_eq!(
            saved(&GroupState::Sequence(vec![vec![hit]])),
            r#"{"sequence":[[{"at_ms":5,"id":7}]]}"#
        );
        assert_eq!(saved(&GroupState::NewValue(vec![9])), r#"{"seen":[9]}"#);
        assert_eq!(
            saved(&GroupState::Absence(absence::LastSeen { hit, fired: true })),
            r#"{"last_seen":{"hit":{"at_ms":5,"id":7},"fired":true}}"#
        );
    }
}
