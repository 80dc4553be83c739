//! Evaluation must never panic: random expressions built from PromQL's
//! pieces, and random byte strings, go through the parser and evaluator
//! over a store with awkward data (NaN, infinities, stale markers, gaps,
//! counter resets). Errors are fine; panics are not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use countywatch_labels::labels::Labels;
use countywatch_rules::promql::{Evaluator, parse_expr};
use countywatch_rules::storage::{Storage, stale_marker};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SELECTORS: &[&str] = &[
    "m",
    "m{a=\"1\"}",
    "m{a!=\"1\"}",
    "m{a=~\"1|2\"}",
    "m{a!~\".*\"}",
    "{__name__=~\"m|n\"}",
    "n",
    "le_bucket",
    "nothing",
    "m offset 1m",
    "m @ 100",
    "m offset -30s",
    "m offset 292y",
    "m @ 9999999999",
    "m @ -9999999999",
    "m offset -292y",
];
const RANGES: &[&str] = &[
    "[1m]",
    "[5m]",
    "[30s]",
    "[10m] offset 2m",
    "[2m:30s]",
    "[5m:]",
    "[292y]",
    // Bare-number durations the parser once panicked on (fuzzing found it).
    "[1e40]",
    "[30]",
    "[1y:1ms]",
    "[5m] @ 100",
    "[1m:1m] offset 292y",
];
const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "resets",
    "changes",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "present_over_time",
    "absent_over_time",
];
const INSTANT_FUNCTIONS: &[&str] = &[
    "abs",
    "ceil",
    "floor",
    "round",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sgn",
    "sort",
    "sort_desc",
    "absent",
    "timestamp",
    "hour",
    "minute",
    "month",
    "year",
    "day_of_week",
    "days_in_month",
    "day_of_month",
];
const AGGREGATIONS: &[&str] = &[
    "sum", "avg", "min", "max", "count", "stddev", "stdvar", "group",
];
const OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "> bool", "== bool", "and",
    "or", "unless", "atan2",
];
const MODIFIERS: &[&str] = &[
    "",
    " on(a)",
    " ignoring(a)",
    " on(a) group_left",
    " on(a) group_right(b)",
    " ignoring(b) group_left(a)",
    " on()",
];

fn vector(random: &mut Random, depth: u32) -> String {
    if depth == 0 {
        return random.pick(SELECTORS).to_string();
    }
    match random.below(12) {
        0 => format!(
            "{}({}{})",
            random.pick(RANGE_FUNCTIONS),
            random.pick(SELECTORS),
            random.pick(RANGES)
        ),
        1 => format!(
            "{}({})",
            random.pick(INSTANT_FUNCTIONS),
            vector(random, depth - 1)
        ),
        2 => format!(
            "{} by (a) ({})",
            random.pick(AGGREGATIONS),
            vector(random, depth - 1)
        ),
        3 => format!(
            "{} without (b) ({})",
            random.pick(AGGREGATIONS),
            vector(random, depth - 1)
        ),
        4 => format!(
            "({}) {}{} ({})",
            vector(random, depth - 1),
            random.pick(OPERATORS),
            random.pick(MODIFIERS),
            vector(random, depth - 1)
        ),
        5 => format!(
            "{} {} {}",
            vector(random, depth - 1),
            random.pick(OPERATORS),
            scalar(random)
        ),
        6 => format!(
            "{}({}, {})",
            random.pick(&["topk", "bottomk", "quantile"]),
            scalar(random),
            vector(random, depth - 1)
        ),
        7 => format!(
            "histogram_quantile({}, {})",
            scalar(random),
            vector(random, depth - 1)
        ),
        8 => format!(
            "label_replace({}, \"{}\", \"$1-$2\", \"a\", \"{}\")",
            vector(random, depth - 1),
            random.pick(&["dst", "a", "__name__", "9bad"]),
            random.pick(&["(.*)", "(", "x(.)y", ""])
        ),
        9 => format!(
            "clamp({}, {}, {})",
            vector(random, depth - 1),
            scalar(random),
            scalar(random)
        ),
        10 => format!(
            "predict_linear({}{}, {})",
            random.pick(SELECTORS),
            random.pick(RANGES),
            scalar(random)
        ),
        _ => format!(
            "count_values(\"{}\", {})",
            random.pick(&["v", "a", "", "1x"]),
            vector(random, depth - 1)
        ),
    }
}

fn scalar(random: &mut Random) -> String {
    random
        .pick(&[
            "0",
            "1",
            "-1",
            "0.5",
            "2",
            "1e308",
            "Inf",
            "-Inf",
            "NaN",
            "time()",
            "scalar(m)",
            "1/0",
            "100000000000000000000",
        ])
        .to_string()
}

fn awkward_store() -> Storage {
    let mut storage = Storage::default();
    let values = [
        1.0,
        f64::NAN,
        5.0,
        2.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        stale_marker(),
        0.0,
        -3.0,
        1e308,
    ];
    for (index, a) in ["1", "2", "3"].iter().enumerate() {
        for (name, b) in [("m", "x"), ("n", "y"), ("m", "z")] {
            let labels = Labels::from_pairs([("__name__", name), ("a", a), ("b", b)]);
            for step in 0..40_i64 {
                if (step + index as i64) % 7 == 3 {
                    continue;
                }
                let value = values[(step as usize * 7 + index) % values.len()];
                let _ = storage.append(&labels, step * 15_000, value);
            }
        }
    }
    for le in ["0.1", "1", "+Inf", "bad", "NaN", "-1"] {
        let labels = Labels::from_pairs([("__name__", "le_bucket"), ("le", le), ("a", "1")]);
        for step in 0..40_i64 {
            let _ = storage.append(&labels, step * 15_000, step as f64);
        }
    }
    storage
}

#[test]
fn random_expressions_never_panic() {
    let storage = awkward_store();
    let evaluator = Evaluator::new(&storage);
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut evaluated = 0;
    for _ in 0..4000 {
        let depth = 1 + random.below(3) as u32;
        let text = vector(&mut random, depth);
        if let Ok(expr) = parse_expr(&text) {
            for t in [0, 61_000, 300_000, 600_000] {
                let _ = evaluator.instant(&expr, t);
            }
            evaluated += 1;
        }
    }
    // Most generated expressions are valid PromQL; the rest are parse errors.
    assert!(evaluated > 2000, "only {evaluated} parsed");
}

#[test]
fn random_text_never_panics() {
    let storage = awkward_store();
    let evaluator = Evaluator::new(&storage);
    let mut random = Random(12345);
    let alphabet: Vec<char> = "m{}()[]\"=~!,.:+-*/^%<> 0123456789abyxon@_$|\\\nsumrate"
        .chars()
        .collect();
    for _ in 0..20_000 {
        let length = random.below(24) as usize;
        let text: String = (0..length)
            .map(|_| alphabet[random.below(alphabet.len() as u64) as usize])
            .collect();
        if let Ok(expr) = parse_expr(&text) {
            let _ = evaluator.instant(&expr, 300_000);
        }
    }
}
