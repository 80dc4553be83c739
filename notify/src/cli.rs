//! The command-line side of notifications: `silence add|list|expire`
//! (written straight to `notify.db`; the running collector notices within
//! a second) and `notify test`, which sends a test notification through
//! every integration of a receiver, bypassing the outbox, and reports each
//! result so an operator can check SMTP settings before an incident; and
//! `notify routes test|show`, printing exactly what `amtool config routes
//! test|show` prints for the same configuration.

use std::path::Path;

use countywatch_config::config_file::Problems;

use crate::alert::{LabelSet, rfc3339};
use crate::config::NotifyConfig;
use crate::db::Db;
use crate::matcher::{MatchType, Matcher};
use crate::notification::{Kind, Notification};
use crate::route_tree::Route;
use crate::silence::{SilenceState, SilenceStore};
use countywatch_daemon::clock::now_ms;

/// `silence add`: prints the new silence's id.
pub fn silence_add(
    data_dir: &Path,
    matchers: &[String],
    duration: &str,
    author: &str,
    comment: &str,
) -> anyhow::Result<()> {
    let duration = countywatch_config::duration::parse(duration)?;
    let mut parsed = Vec::new();
    for text in matchers {
        parsed.extend(crate::matcher::parse_list(text).map_err(anyhow::Error::msg)?);
    }
    let store = SilenceStore::open(Db::open(data_dir)?)?;
    let now = now_ms();
    let ends = now.saturating_add(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2));
    let id = store.add(parsed, now, ends, author, comment, now)?;
    println!("{id}");
    Ok(())
}

/// `silence list`: unexpired silences, or all with `all`.
pub fn silence_list(data_dir: &Path, all: bool) -> anyhow::Result<()> {
    let store = SilenceStore::open(Db::open(data_dir)?)?;
    let now = now_ms();
    println!(
        "{:<36} {:<8} {:<24} {:<24} {:<12} {:<40} COMMENT",
        "ID", "STATE", "STARTS", "ENDS", "AUTHOR", "MATCHERS"
    );
    for silence in store.list() {
        let state = silence.state(now);
        if !all && state == SilenceState::Expired {
            continue;
        }
        let matchers: Vec<String> = silence.matchers.iter().map(Matcher::to_string).collect();
        println!(
            "{:<36} {:<8} {:<24} {:<24} {:<12} {:<40} {}",
            silence.id,
            state.as_str(),
            rfc3339(silence.starts_at_ms),
            rfc3339(silence.ends_at_ms),
            silence.created_by,
            matchers.join(","),
            silence.comment
        );
    }
    Ok(())
}

/// `silence expire ID`.
pub fn silence_expire(data_dir: &Path, id: &str) -> anyhow::Result<()> {
    let store = SilenceStore::open(Db::open(data_dir)?)?;
    if store.expire(id, now_ms())? {
        println!("expired {id}");
        Ok(())
    } else {
        anyhow::bail!("no unexpired silence with id {id:?}")
    }
}

/// `notify test --receiver NAME`: one test notification per integration.
pub async fn notify_test(config: &NotifyConfig, receiver: &str) -> anyhow::Result<()> {
    let receivers = config.build_receivers()?;
    let Some(integrations) = receivers.get(receiver) else {
        anyhow::bail!(
            "no receiver named {receiver:?}; configured: {}",
            receivers.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    };
    if integrations.is_empty() {
        anyhow::bail!("receiver {receiver:?} has no integrations");
    }
    let notification = Notification::synthetic(
        Kind::Test,
        receiver,
        &[("alertname", "CountywatchTest"), ("severity", "none")],
        &[(
            "summary",
            "A test notification from countywatch-collector notify test: if you read this, the receiver works",
        )],
        &config.external_url,
        now_ms(),
    );
    let mut failures = 0;
    for (index, integration) in integrations.iter().enumerate() {
        match integration.send(&notification).await {
            Ok(()) => println!("{receiver}/{index} ({}): sent", integration.kind()),
            Err(error) => {
                failures += 1;
                let retry = if error.retryable() {
                    "temporary"
                } else {
                    "permanent"
                };
                println!(
                    "{receiver}/{index} ({}): failed ({retry}): {error}",
                    integration.kind()
                );
            }
        }
    }
    if failures > 0 {
        anyhow::bail!("{failures} of {} integrations failed", integrations.len());
    }
    Ok(())
}

/// Loads and validates an `alertmanager.yml` as the notification
/// configuration, for `notify routes --alertmanager-config` (the collector
/// reads its own config file's `notify:` itself).
pub fn load_alertmanager_routes(path: &Path) -> Result<NotifyConfig, Problems> {
    let mut notify = NotifyConfig {
        alertmanager_config: Some(countywatch_config::config_file::unspanned(
            path.to_path_buf(),
        )),
        ..NotifyConfig::default()
    };
    notify.apply_alertmanager_file(path)?;
    let mut problems = Problems::new(path);
    notify.validate(&mut problems);
    problems.into_result()?;
    Ok(notify)
}

/// Parses label arguments as amtool does: each one `name=value` or
/// `name="value"` in Alertmanager's matcher syntax, equality only.
pub fn parse_label_arguments(arguments: &[String]) -> anyhow::Result<LabelSet> {
    let mut labels = LabelSet::new();
    for argument in arguments {
        let matcher = Matcher::parse(argument)
            .map_err(|problem| anyhow::anyhow!("Failed to parse labels: {problem}"))?;
        if matcher.kind != MatchType::Equal {
            anyhow::bail!("Failed to parse labels: labels must be specified as key=value pairs");
        }
        labels.insert(matcher.name, matcher.value);
    }
    Ok(labels)
}

/// `notify routes test`: the text `amtool config routes test` prints (the
/// matching tree first with `tree`), and whether the receivers equal
/// `verify` when given.
pub fn routes_test(
    route: &Route,
    labels: &LabelSet,
    tree: bool,
    verify: Option<&str>,
) -> (String, bool) {
    let mut out = String::new();
    if tree {
        let mut node = TreeNode::default();
        matching_tree(route, labels, &mut node);
        out.push_str("Matching routes:\n");
        out.push_str(&render_tree(&node));
        out.push_str("\n\n");
    }
    let receivers: Vec<&str> = route
        .matching(labels)
        .iter()
        .map(|route| route.receiver.as_str())
        .collect();
    let slug = receivers.join(",");
    out.push_str(&slug);
    out.push('\n');
    let verified = verify.is_none_or(|expected| expected.is_empty() || expected == slug);
    if !verified {
        out.push_str("WARNING: Expected receivers did not match resolved receivers.\n");
    }
    (out, verified)
}

/// `notify routes show`: the text `amtool config routes show` prints.
pub fn routes_show(route: &Route) -> String {
    let mut node = TreeNode::default();
    whole_tree(route, &mut node);
    format!("Routing tree:\n{}\n", render_tree(&node))
}

/// One line of a printed tree and its children.
#[derive(Default)]
struct TreeNode {
    /// The text of the line.
    text: String,
    /// The lines below it.
    children: Vec<TreeNode>,
}

/// A route as amtool names it: its sorted matchers, or `default-route`.
fn route_slug(route: &Route, show_continue: bool, show_receiver: bool) -> String {
    let mut slug = if route.matchers().is_empty() {
        "default-route".to_string()
    } else {
        crate::matcher::list_to_string(route.matchers())
    };
    if show_continue && route.continues() {
        slug.push_str("  continue: true");
    }
    if show_receiver {
        slug.push_str("  receiver: ");
        slug.push_str(&route.receiver);
    }
    slug
}

fn whole_tree(route: &Route, parent: &mut TreeNode) {
    let mut node = TreeNode {
        text: route_slug(route, true, true),
        children: Vec::new(),
    };
    for child in route.children() {
        whole_tree(child, &mut node);
    }
    parent.children.push(node);
}

fn matching_tree(route: &Route, labels: &LabelSet, parent: &mut TreeNode) {
    let mut node = TreeNode::default();
    let mut last = true;
    for child in route.children() {
        if crate::matcher::all_match(child.matchers(), labels) {
            matching_tree(child, labels, &mut node);
            last = false;
            if !child.continues() {
                break;
            }
        }
    }
    node.text = route_slug(route, false, last);
    parent.children.push(node);
}

/// Draws the tree as amtool's tree printer does, under a `.` root.
fn render_tree(root: &TreeNode) -> String {
    fn draw(node: &TreeNode, prefix: &str, out: &mut String) {
        for (index, child) in node.children.iter().enumerate() {
            let last = index + 1 == node.children.len();
            out.push_str(prefix);
            out.push_str(if last { "└── " } else { "├── " });
            out.push_str(&child.text);
            out.push('\n');
            // amtool's tree printer indents under a continuing branch with
            // two no-break spaces and a space.
            let deeper = format!("{prefix}{}", if last { "    " } else { "│\u{a0}\u{a0} " });
            draw(child, &deeper, out);
        }
    }
    let mut out = ".\n".to_string();
    draw(root, "", &mut out);
    out
}
