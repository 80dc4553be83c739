//! Templates: a small mustache subset, the default templates in English
//! and Simplified Chinese, and the data a template sees.
//!
//! Syntax: `{{name}}` (dotted paths, HTML-escaped in HTML templates),
//! `{{{name}}}` (never escaped), `{{#name}}...{{/name}}` (repeat for each
//! item of a list, or render once when the value is a true, non-empty
//! value), `{{^name}}...{{/name}}` (render when false or empty). Names are
//! looked up from the innermost section outwards; `.` is the current item.
//! Mustache rather than Go templates because operators can read it without
//! learning a language, and it cannot loop forever or call functions.
//!
//! The data: `status` (`firing`/`resolved`), `status_upper`, `status_zh`,
//! `receiver`, `kind`, `group` (the group's labels as `a=b, c=d`),
//! `subject`, `alert_count`, `firing_count`, `resolved_count`,
//! `more_alerts` (alerts beyond the first [`MAX_LISTED`], not listed),
//! `external_url`, `common_labels.NAME`, `common_annotations.NAME`, and
//! `alerts`, each with `status`, `name`, `labels.NAME`, `labels_text`,
//! `annotations.NAME`, `summary`, `description`, `response` (what an
//! active response did, in the template's language), `value`, `starts_at`,
//! `ends_at`, `url` (the alert on the collector's page), `generator_url`,
//! `fingerprint`.

use std::path::PathBuf;

use countywatch_config::config_file::{Problems, Spanned};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::display::Language;
use crate::notification::Notification;

/// Alerts listed in one message; the rest are counted in `more_alerts`,
/// so that a storm cannot make a message too large to deliver.
pub const MAX_LISTED: usize = 30;

/// Templates that replace the defaults. Each is inline text or `{file: PATH}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplateOverrides {
    /// Email subject, bot message title.
    pub subject: Option<TemplateSource>,
    /// Plain-text email body.
    pub text: Option<TemplateSource>,
    /// HTML email body.
    pub html: Option<TemplateSource>,
    /// Markdown message of chat bots.
    pub markdown: Option<TemplateSource>,
    /// Go templates from an `alertmanager.yml` (its `templates:` files and
    /// an email's `html`, `text` and `headers.Subject`): the parts named
    /// `subject`, `text` and `html` in the set replace the defaults. Not a
    /// key of the collector's file.
    #[serde(skip)]
    pub go: Option<std::sync::Arc<crate::go_template::TemplateSet>>,
}

/// A template given inline or read from a file at start.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum TemplateSource {
    /// The template text itself.
    Inline(String),
    /// A file holding the template.
    File {
        /// The file's path.
        file: PathBuf,
    },
}

/// Why a template cannot be used: the operator fixes the text or the file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateLoadError {
    /// An inline template does not parse.
    #[error("template: {0}")]
    Inline(#[source] TemplateSyntaxError),
    /// A template file cannot be read.
    #[error("cannot read template {}: {source}", file.display())]
    Read {
        /// The configured file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A template file does not parse.
    #[error("template {}: {source}", file.display())]
    Parse {
        /// The configured file.
        file: PathBuf,
        /// What is wrong, and where.
        source: TemplateSyntaxError,
    },
    /// A built-in default does not parse: a bug, caught by the tests.
    #[error(transparent)]
    Default(TemplateSyntaxError),
}

/// What is wrong with a template's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateSyntaxError {
    /// A `{{{` without its `}}}`.
    #[error("unclosed {{{{{{ tag")]
    UnclosedTriple,
    /// A `{{` without its `}}`.
    #[error("unclosed {{{{ tag")]
    UnclosedDouble,
    /// A `{{/name}}` with no section open.
    #[error("unbalanced section")]
    Unbalanced,
    /// A `{{/name}}` closing another section.
    #[error("section {{{{/{closing}}}}} closes {{{{#{open}}}}}")]
    WrongClose {
        /// The name the tag closes.
        closing: String,
        /// The section open there.
        open: String,
    },
    /// A section still open at the end.
    #[error("section {{{{#{open}}}}} is not closed")]
    NotClosed {
        /// The section.
        open: String,
    },
}

/// Adds a problem at `at` for every override that does not parse or whose
/// file cannot be read.
pub fn check_overrides<T>(templates: &TemplateOverrides, at: &Spanned<T>, problems: &mut Problems) {
    for source in [
        &templates.subject,
        &templates.text,
        &templates.html,
        &templates.markdown,
    ]
    .into_iter()
    .flatten()
    {
        if let Err(error) = Template::load(source) {
            problems.at(at, error.to_string());
        }
    }
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    /// The parsed nodes.
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    Text(String),
    Variable {
        path: String,
        escape: bool,
    },
    Section {
        path: String,
        inverted: bool,
        children: Vec<Node>,
    },
}

/// How variables are escaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Plain text, markdown, subjects: nothing escaped.
    None,
    /// HTML: `& < > "` escaped unless written `{{{name}}}`.
    Html,
}

impl Template {
    /// Parses template text.
    pub fn parse(text: &str) -> Result<Template, TemplateSyntaxError> {
        let mut stack: Vec<(String, bool, Vec<Node>)> = vec![(String::new(), false, Vec::new())];
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                push(&mut stack, Node::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let (tag, raw, consumed) = if let Some(inner) = after.strip_prefix('{') {
                let end = inner
                    .find("}}}")
                    .ok_or(TemplateSyntaxError::UnclosedTriple)?;
                (&inner[..end], true, 3 + end + 3)
            } else {
                let end = after
                    .find("}}")
                    .ok_or(TemplateSyntaxError::UnclosedDouble)?;
                (&after[..end], false, 2 + end + 2)
            };
            let tag = tag.trim();
            if let Some(path) = tag.strip_prefix('#').or_else(|| tag.strip_prefix('^')) {
                stack.push((path.trim().to_string(), tag.starts_with('^'), Vec::new()));
            } else if let Some(path) = tag.strip_prefix('/') {
                let (open, inverted, children) =
                    stack.pop().ok_or(TemplateSyntaxError::Unbalanced)?;
                if stack.is_empty() || open != path.trim() {
                    return Err(TemplateSyntaxError::WrongClose {
                        closing: path.trim().to_string(),
                        open,
                    });
                }
                push(
                    &mut stack,
                    Node::Section {
                        path: open,
                        inverted,
                        children,
                    },
                );
            } else if tag.starts_with('!') {
                // A comment.
            } else {
                push(
                    &mut stack,
                    Node::Variable {
                        path: tag.to_string(),
                        escape: !raw,
                    },
                );
            }
            rest = &rest[start + consumed..];
        }
        if !rest.is_empty() {
            push(&mut stack, Node::Text(rest.to_string()));
        }
        if stack.len() != 1 {
            return Err(TemplateSyntaxError::NotClosed {
                open: stack.last().map_or("", |s| s.0.as_str()).to_string(),
            });
        }
        let nodes = stack.pop().map(|(_, _, nodes)| nodes).unwrap_or_default();
        Ok(Template { nodes })
    }

    /// Reads a template given inline or as a file.
    pub fn load(source: &TemplateSource) -> Result<Template, TemplateLoadError> {
        match source {
            TemplateSource::Inline(text) => {
                Template::parse(text).map_err(TemplateLoadError::Inline)
            }
            TemplateSource::File { file } => {
                let text =
                    std::fs::read_to_string(file).map_err(|source| TemplateLoadError::Read {
                        file: file.clone(),
                        source,
                    })?;
                Template::parse(&text).map_err(|source| TemplateLoadError::Parse {
                    file: file.clone(),
                    source,
                })
            }
        }
    }

    /// Renders with the data.
    pub fn render(&self, data: &Value, escape: Escape) -> String {
        let mut out = String::new();
        let mut stack = vec![data];
        render_nodes(&self.nodes, &mut stack, escape, &mut out);
        out
    }
}

fn push(stack: &mut [(String, bool, Vec<Node>)], node: Node) {
    if let Some((_, _, nodes)) = stack.last_mut() {
        nodes.push(node);
    }
}

fn lookup<'a>(stack: &[&'a Value], path: &str) -> Option<&'a Value> {
    if path == "." {
        return stack.last().copied();
    }
    let mut parts = path.split('.');
    let first = parts.next()?;
    let mut value = stack.iter().rev().find_map(|scope| scope.get(first))?;
    for part in parts {
        value = value.get(part)?;
    }
    Some(value)
}

fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Number(number)) => number.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::Object(_)) => true,
    }
}

fn render_nodes(nodes: &[Node], stack: &mut Vec<&Value>, escape: Escape, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Variable {
                path,
                escape: escaped,
            } => {
                let text = match lookup(stack, path) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(other) => other.to_string(),
                };
                if *escaped && escape == Escape::Html {
                    out.push_str(&crate::go_template::escape_html(&text));
                } else {
                    out.push_str(&text);
                }
            }
            Node::Section {
                path,
                inverted,
                children,
            } => {
                let value = lookup(stack, path);
                if *inverted {
                    if !truthy(value) {
                        render_nodes(children, stack, escape, out);
                    }
                    continue;
                }
                match value {
                    Some(Value::Array(items)) => {
                        for item in items {
                            stack.push(item);
                            render_nodes(children, stack, escape, out);
                            stack.pop();
                        }
                    }
                    Some(value) if truthy(Some(value)) => {
                        stack.push(value);
                        render_nodes(children, stack, escape, out);
                        stack.pop();
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The data templates see for a notification.
pub fn data(
    notification: &Notification,
    language: Language,
    display: &crate::display::Display,
) -> Value {
    let status = notification.status();
    let firing_count = notification
        .alerts
        .iter()
        .filter(|alert| alert.firing())
        .count();
    // Without group labels (a route without group_by), the labels the
    // alerts share say more than nothing.
    let common_labels = notification.common_labels();
    let shown = if notification.group_labels.is_empty() {
        &common_labels
    } else {
        &notification.group_labels
    };
    let group = shown
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join(", ");
    let status_zh = match (notification.kind, status) {
        (crate::notification::Kind::Test, _) => "测试",
        (_, "firing") => "告警",
        _ => "已恢复",
    };
    let alerts: Vec<Value> = notification
        .alerts
        .iter()
        .take(MAX_LISTED)
        .map(|alert| {
            let labels_text = alert
                .labels
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join(", ");
            json!({
                "status": alert.status,
                "status_zh": if alert.firing() { "告警" } else { "已恢复" },
                "name": alert.labels.get("alertname").cloned().unwrap_or_default(),
                "labels": alert.labels,
                "labels_text": labels_text,
                "annotations": alert.annotations,
                "summary": alert.annotations.get("summary").cloned().unwrap_or_default(),
                "description": alert.annotations.get("description").cloned().unwrap_or_default(),
                // What an active response did (`active_response::annotate`).
                "response": alert.annotations.get(match language {
                    Language::Zh => "response_zh",
                    Language::En => "response",
                }).cloned().unwrap_or_default(),
                "value": alert.value.clone().unwrap_or_default(),
                "starts_at": display.time(alert.starts_at_ms),
                "ends_at": alert.ends_at_ms.map(|ms| display.time(ms)).unwrap_or_default(),
                "url": notification.alert_url(alert),
                "generator_url": alert.generator_url,
                "fingerprint": alert.fingerprint,
            })
        })
        .collect();
    let mut data = Map::new();
    let subject_status = match language {
        Language::En => status.to_ascii_uppercase(),
        Language::Zh => status_zh.to_string(),
    };
    let subject = match language {
        Language::En => format!("[{subject_status}:{}] {group}", notification.alerts.len()),
        Language::Zh => format!("【{subject_status}:{}】{group}", notification.alerts.len()),
    };
    data.insert("status".into(), json!(status));
    data.insert("status_upper".into(), json!(status.to_ascii_uppercase()));
    data.insert("status_zh".into(), json!(status_zh));
    data.insert("receiver".into(), json!(notification.receiver));
    data.insert("kind".into(), json!(notification.kind));
    data.insert("group".into(), json!(group));
    data.insert("subject".into(), json!(subject));
    data.insert("alert_count".into(), json!(notification.alerts.len()));
    data.insert("firing_count".into(), json!(firing_count));
    data.insert(
        "resolved_count".into(),
        json!(notification.alerts.len() - firing_count),
    );
    data.insert(
        "more_alerts".into(),
        json!(notification.alerts.len().saturating_sub(MAX_LISTED)),
    );
    data.insert("external_url".into(), json!(notification.external_url));
    data.insert("common_labels".into(), json!(common_labels));
    data.insert(
        "common_annotations".into(),
        json!(notification.common_annotations()),
    );
    data.insert("alerts".into(), Value::Array(alerts));
    Value::Object(data)
}

const SUBJECT: &str = "{{subject}}";

const TEXT_EN: &str = "{{status_upper}}: {{alert_count}} alert(s), {{firing_count}} firing, {{resolved_count}} resolved\nGroup: {{group}}\n\n{{#alerts}}[{{status}}] {{name}}\n  Labels: {{labels_text}}\n{{#summary}}  Summary: {{summary}}\n{{/summary}}{{#response}}  Response: {{response}}\n{{/response}}{{#description}}  Description: {{description}}\n{{/description}}{{#value}}  Value: {{value}}\n{{/value}}  Started: {{starts_at}}\n{{#ends_at}}  Ended: {{ends_at}}\n{{/ends_at}}  Details: {{url}}\n\n{{/alerts}}{{#more_alerts}}... and {{more_alerts}} more alert(s).\n{{/more_alerts}}-- \ncountywatch\n";

const TEXT_ZH: &str = "{{status_zh}}：共 {{alert_count}} 条，告警中 {{firing_count}} 条，已恢复 {{resolved_count}} 条\n分组：{{group}}\n\n{{#alerts}}【{{status_zh}}】{{name}}\n  标签：{{labels_text}}\n{{#summary}}  摘要：{{summary}}\n{{/summary}}{{#response}}  响应：{{response}}\n{{/response}}{{#description}}  描述：{{description}}\n{{/description}}{{#value}}  数值：{{value}}\n{{/value}}  开始时间：{{starts_at}}\n{{#ends_at}}  结束时间：{{ends_at}}\n{{/ends_at}}  详情：{{url}}\n\n{{/alerts}}{{#more_alerts}}……另有 {{more_alerts}} 条告警未列出。\n{{/more_alerts}}-- \ncountywatch 县级监控\n";

const HTML_EN: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>{{subject}}</title></head><body><h2>{{subject}}</h2><p>{{alert_count}} alert(s): {{firing_count}} firing, {{resolved_count}} resolved.</p><table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>Status</th><th>Alert</th><th>Labels</th><th>Summary</th><th>Value</th><th>Started</th><th>Ended</th></tr>{{#alerts}}<tr><td>{{status}}</td><td><a href=\"{{url}}\">{{name}}</a></td><td>{{labels_text}}</td><td>{{summary}}{{#response}}<br>{{response}}{{/response}}</td><td>{{value}}</td><td>{{starts_at}}</td><td>{{ends_at}}</td></tr>{{/alerts}}</table>{{#more_alerts}}<p>... and {{more_alerts}} more alert(s).</p>{{/more_alerts}}<p>countywatch</p></body></html>\n";

const HTML_ZH: &str = "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>{{subject}}</title></head><body><h2>{{subject}}</h2><p>共 {{alert_count}} 条：告警中 {{firing_count}} 条，已恢复 {{resolved_count}} 条。</p><table border=\"1\" cellpadding=\"4\" cellspacing=\"0\"><tr><th>状态</th><th>告警</th><th>标签</th><th>摘要</th><th>数值</th><th>开始时间</th><th>结束时间</th></tr>{{#alerts}}<tr><td>{{status_zh}}</td><td><a href=\"{{url}}\">{{name}}</a></td><td>{{labels_text}}</td><td>{{summary}}{{#response}}<br>{{response}}{{/response}}</td><td>{{value}}</td><td>{{starts_at}}</td><td>{{ends_at}}</td></tr>{{/alerts}}</table>{{#more_alerts}}<p>……另有 {{more_alerts}} 条告警未列出。</p>{{/more_alerts}}<p>countywatch 县级监控</p></body></html>\n";

const MARKDOWN_EN: &str = "### {{subject}}\n\n{{#alerts}}- **[{{status}}] {{name}}** {{labels_text}}{{#summary}}\n  {{summary}}{{/summary}}{{#response}}\n  {{response}}{{/response}}{{#value}} (value {{value}}){{/value}}\n  started {{starts_at}}{{#ends_at}}, ended {{ends_at}}{{/ends_at}} [details]({{url}})\n{{/alerts}}{{#more_alerts}}\n... and {{more_alerts}} more alert(s).\n{{/more_alerts}}";

const MARKDOWN_ZH: &str = "### {{subject}}\n\n{{#alerts}}- **【{{status_zh}}】{{name}}** {{labels_text}}{{#summary}}\n  {{summary}}{{/summary}}{{#response}}\n  {{response}}{{/response}}{{#value}}（数值 {{value}}）{{/value}}\n  开始 {{starts_at}}{{#ends_at}}，结束 {{ends_at}}{{/ends_at}} [详情]({{url}})\n{{/alerts}}{{#more_alerts}}\n……另有 {{more_alerts}} 条告警未列出。\n{{/more_alerts}}";

/// What every integration's templates default to.
#[derive(Clone, Debug)]
pub struct TemplateDefaults {
    /// The language of the default templates (`notify.language`, else
    /// `display.language`).
    pub language: Language,
    /// The zone times are written in (`display:`).
    pub display: crate::display::Display,
}

/// The four templates of one integration.
#[derive(Clone, Debug)]
pub struct Templates {
    /// Language of the defaults and of the data's `subject`.
    language: Language,
    /// The zone `starts_at` and `ends_at` are written in.
    display: crate::display::Display,
    /// Email subject and bot title.
    subject: Template,
    /// Plain-text email body.
    text: Template,
    /// HTML email body.
    html: Template,
    /// Bot markdown.
    markdown: Template,
    /// Go templates replacing the parts they name (`alertmanager.yml`).
    go: Option<std::sync::Arc<crate::go_template::TemplateSet>>,
}

/// A rendered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// One line, no newline.
    pub subject: String,
    /// Plain text.
    pub text: String,
    /// HTML.
    pub html: String,
    /// Markdown.
    pub markdown: String,
}

impl Templates {
    /// The defaults in `language`, replaced by `overrides` where given.
    pub fn new(
        language: Language,
        overrides: &TemplateOverrides,
        display: &crate::display::Display,
    ) -> Result<Templates, TemplateLoadError> {
        let (text, html, markdown) = match language {
            Language::En => (TEXT_EN, HTML_EN, MARKDOWN_EN),
            Language::Zh => (TEXT_ZH, HTML_ZH, MARKDOWN_ZH),
        };
        let pick = |source: &Option<TemplateSource>, default: &str| match source {
            Some(source) => Template::load(source),
            None => Template::parse(default).map_err(TemplateLoadError::Default),
        };
        Ok(Templates {
            language,
            display: display.clone(),
            subject: pick(&overrides.subject, SUBJECT)?,
            text: pick(&overrides.text, text)?,
            html: pick(&overrides.html, html)?,
            markdown: pick(&overrides.markdown, markdown)?,
            go: overrides.go.clone(),
        })
    }

    /// Renders every part for a notification.
    pub fn render(&self, notification: &Notification) -> Rendered {
        let data = data(notification, self.language, &self.display);
        let go_data = self
            .go
            .as_ref()
            .map(|_| crate::go_template::data(notification, &self.display));
        let part = |name: &str, template: &Template, escape: Escape| match (&self.go, &go_data) {
            (Some(set), Some(go_data)) if set.has(name) => {
                set.render(name, go_data, escape == Escape::Html)
            }
            _ => template.render(&data, escape),
        };
        let subject = part("subject", &self.subject, Escape::None);
        Rendered {
            // A header line must not break: newlines become spaces.
            subject: subject.replace(['\r', '\n'], " ").trim().to_string(),
            text: part("text", &self.text, Escape::None),
            html: part("html", &self.html, Escape::Html),
            markdown: self.markdown.render(&data, Escape::None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, labels};
    use crate::notification::{AlertSnapshot, Kind};

    fn check(template: &str, data: Value, expected: &str) {
        let parsed = Template::parse(template).unwrap();
        assert_eq!(parsed.render(&data, Escape::Html), expected, "{template}");
    }

    #[test]
    fn mustache_subset() {
        check("a {{x}} b", json!({"x": "<1>"}), "a &lt;1&gt; b");
        check("{{{x}}}", json!({"x": "<1>"}), "<1>");
        check(
            "{{#xs}}[{{name}}]{{/xs}}",
            json!({"xs": [{"name": "a"}, {"name": "b"}]}),
            "[a][b]",
        );
        check("{{#xs}}{{.}},{{/xs}}", json!({"xs": ["a", "b"]}), "a,b,");
        check(
            "{{#flag}}yes{{/flag}}{{^flag}}no{{/flag}}",
            json!({"flag": false}),
            "no",
        );
        check(
            "{{#o}}{{a.b}}{{top}}{{/o}}",
            json!({"o": {"a": {"b": 1}}, "top": "t"}),
            "1t",
        );
        check("{{missing}}{{! comment }}", json!({}), "");
        for bad in ["{{#a}}", "{{/a}}", "{{#a}}{{/b}}", "{{x"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    fn notification() -> Notification {
        let mut alert = Alert::firing(labels([("alertname", "磁盘将满"), ("instance", "web1")]), 0);
        alert
            .annotations
            .insert("summary".into(), "/var 剩余 3%".into());
        alert.value = Some("0.03".into());
        Notification {
            kind: Kind::Alerts,
            receiver: "ops".into(),
            group_key: "0:{}".into(),
            group_labels: labels([("alertname", "磁盘将满")]),
            alerts: vec![AlertSnapshot::of(&alert, 1)],
            external_url: "http://collector:9780".into(),
            created_ms: 1,
            lease_ms: None,
        }
    }

    #[test]
    fn default_templates_in_both_languages() {
        let en = Templates::new(
            Language::En,
            &TemplateOverrides::default(),
            &crate::display::Display::default(),
        )
        .unwrap();
        let rendered = en.render(&notification());
        assert_eq!(rendered.subject, "[FIRING:1] alertname=磁盘将满");
        assert!(
            rendered.text.contains("Summary: /var 剩余 3%"),
            "{}",
            rendered.text
        );
        assert!(
            rendered
                .text
                .contains("Details: http://collector:9780/alerts/"),
            "{}",
            rendered.text
        );
        assert!(rendered.html.contains("<td>0.03</td>"), "{}", rendered.html);
        let zh = Templates::new(
            Language::Zh,
            &TemplateOverrides::default(),
            &crate::display::Display::default(),
        )
        .unwrap();
        let rendered = zh.render(&notification());
        assert_eq!(rendered.subject, "【告警:1】alertname=磁盘将满");
        assert!(
            rendered.text.contains("摘要：/var 剩余 3%"),
            "{}",
            rendered.text
        );
        assert!(
            rendered.markdown.contains("**【告警】磁盘将满**"),
            "{}",
            rendered.markdown
        );
    }

    #[test]
    fn user_templates_from_files_and_inline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("subject.tmpl");
        std::fs::write(
            &path,
            "{{#alerts}}{{labels.instance}} {{/alerts}}{{common_labels.alertname}}",
        )
        .unwrap();
        let overrides = TemplateOverrides {
            subject: Some(TemplateSource::File { file: path }),
            markdown: Some(TemplateSource::Inline(
                "**{{status}}** {{alert_count}}".into(),
            )),
            ..TemplateOverrides::default()
        };
        let rendered = Templates::new(
            Language::En,
            &overrides,
            &crate::display::Display::default(),
        )
        .unwrap()
        .render(&notification());
        assert_eq!(rendered.subject, "web1 磁盘将满");
        assert_eq!(rendered.markdown, "**firing** 1");
        let missing = TemplateSource::File {
            file: dir.path().join("missing"),
        };
        let error = Template::load(&missing).unwrap_err();
        assert!(matches!(error, TemplateLoadError::Read { .. }), "{error}");
        assert!(error.to_string().starts_with("cannot read template"));
    }

    #[test]
    fn long_groups_are_truncated() {
        let mut many = notification();
        let alert = many.alerts[0].clone();
        many.alerts = vec![alert; MAX_LISTED + 5];
        let en = Templates::new(
            Language::En,
            &TemplateOverrides::default(),
            &crate::display::Display::default(),
        )
        .unwrap();
        let rendered = en.render(&many);
        assert!(
            rendered.text.contains("... and 5 more alert(s)."),
            "{}",
            rendered.text
        );
        assert_eq!(rendered.text.matches("Labels:").count(), MAX_LISTED);
    }
}
