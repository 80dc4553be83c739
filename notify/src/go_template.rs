//! Go templates as an `alertmanager.yml` uses them: the `templates:` files
//! with their `{{ define "name" }}` blocks, and the email fields (`html`,
//! `text`, `headers.Subject`) that call them. A subset of Go's
//! `text/template`, run over Alertmanager's template data, so that a
//! county's existing files keep working; what is outside the subset is
//! refused when the file loads, at its file and line, never run wrongly.
//!
//! Supported: text; `{{ pipeline }}` with `{{-`/`-}}` trimming and
//! `{{/* comments */}}`; `if`/`else if`/`else`, `range` (with `$v :=` or
//! `$k, $v :=`, and `else`), `with`, `define`, `template "name" pipeline`,
//! `end`; fields `.A.B`, `$`, `$v.A`; string, number and boolean literals;
//! parentheses and `|` pipelines; the functions `toUpper`, `toLower`,
//! `title`, `join`, `safeHtml`, `trimSpace`, `reReplaceAll`, `match`,
//! `len`, `index`, `printf` (`%s`, `%v`, `%d`, `%q`), `eq`, `ne`, `lt`,
//! `le`, `gt`, `ge`, `not`, `and`, `or`. Label sets have `.SortedPairs`
//! (`.Name`, `.Value`), `.Names` and `.Values`; `.Alerts` has `.Firing`
//! and `.Resolved`. Missing fields are empty (Alertmanager runs with
//! `missingkey=zero`). Not supported (refused): methods with arguments
//! (`.StartsAt.Format ...`, `.Labels.Remove ...`), `block`, variable
//! assignment outside `range`, and other functions. Times (`.StartsAt`,
//! `.EndsAt`) are text in the display zone (`2026-12-06 18:30:05 +08:00`).
//!
//! **Architecture Invariant:** rendering never fails and never loops
//! forever: a missing value is empty, `template` calls nest at most
//! [`MAX_DEPTH`] deep, and one rendering runs at most [`MAX_STEPS`] nodes
//! (a template calling itself twice would otherwise double at each level).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::notification::Notification;

/// How deep `template` calls may nest (a template calling itself stops).
pub const MAX_DEPTH: usize = 32;

/// Most nodes one rendering runs; the rest is left out.
pub const MAX_STEPS: usize = 200_000;

/// The functions the subset has.
const FUNCTIONS: &[&str] = &[
    "toUpper",
    "toLower",
    "title",
    "join",
    "safeHtml",
    "trimSpace",
    "reReplaceAll",
    "match",
    "len",
    "index",
    "printf",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "not",
    "and",
    "or",
];

/// A template that cannot be used, at its file and line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct TemplateError {
    /// The file (or the field, for an email field).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub problem: TemplateProblem,
}

/// What is wrong with a template at its line: Go syntax the subset lacks,
/// or a mistake Go would refuse too.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateProblem {
    /// A `{{` without its `}}`.
    #[error("unclosed action")]
    UnclosedAction,
    /// `define` without a quoted name.
    #[error("define needs a quoted name")]
    DefineName,
    /// `template` without a quoted name.
    #[error("template needs a quoted name")]
    TemplateName,
    /// `else` with no block open.
    #[error("else outside a block")]
    ElseOutsideBlock,
    /// `else` in a `define`, at the top, or after another `else`.
    #[error("else without if, range or with")]
    ElseWithoutBlock,
    /// `end` with no block open.
    #[error("end without a block")]
    EndWithoutBlock,
    /// A block still open at the end of the text.
    #[error("{kind} is not closed with end")]
    NotClosed {
        /// The block (`if`, `range`, `with`, `define`).
        kind: &'static str,
    },
    /// `block`, `break` or `continue`.
    #[error("{keyword} is not supported (see docs/notifications.md for the Go template subset)")]
    UnsupportedKeyword {
        /// The keyword.
        keyword: String,
    },
    /// `$x := ...` outside a `range` head.
    #[error("variable assignment is supported in range only")]
    Assignment,
    /// A `(` without its `)`.
    #[error("unclosed parenthesis")]
    UnclosedParenthesis,
    /// A `)` without its `(`.
    #[error("unexpected )")]
    UnexpectedClose,
    /// `:=` or `,` where a value belongs.
    #[error("unexpected := or ,")]
    UnexpectedDeclare,
    /// A function the subset does not have.
    #[error("function {name:?} is not supported (supported: {})", FUNCTIONS.join(", "))]
    UnsupportedFunction {
        /// The function's name.
        name: String,
    },
    /// An empty command (`{{ }}`, `| |`).
    #[error("empty command")]
    EmptyCommand,
    /// A field followed by arguments: a method call.
    #[error(
        "method calls with arguments (such as .StartsAt.Format or .Labels.Remove) are not supported"
    )]
    MethodCall,
    /// `(...).Field`.
    #[error("fields of a parenthesised value are not supported")]
    GroupField,
    /// A `"` string without its closing quote.
    #[error("unterminated string")]
    UnterminatedString,
    /// A backquoted string without its closing backquote.
    #[error("unterminated raw string")]
    UnterminatedRawString,
    /// A number that does not parse.
    #[error("bad number {text:?}")]
    BadNumber {
        /// The number as written.
        text: String,
    },
    /// A character no token starts with.
    #[error("unexpected character {character:?}")]
    UnexpectedCharacter {
        /// The character.
        character: char,
    },
    /// A `template` call naming a template no file defines.
    #[error(
        "template {name:?} is not defined (Alertmanager's own default templates are not included: leave the field unset for countywatch's default message)"
    )]
    NotDefined {
        /// The called name.
        name: String,
    },
}

/// Every `define`d template, and the named bodies of email fields.
#[derive(Clone, Debug, Default)]
pub struct TemplateSet {
    /// By name.
    templates: BTreeMap<String, Vec<Node>>,
    /// Where each `template` call is, to check the names exist.
    calls: Vec<(String, TemplateError)>,
}

#[derive(Clone, Debug)]
enum Node {
    Text(String),
    Action(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    Range {
        variables: Vec<String>,
        pipeline: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With(Pipeline, Vec<Node>, Vec<Node>),
    Template(String, Option<Pipeline>),
}

type Pipeline = Vec<Command>;

#[derive(Clone, Debug)]
struct Command(Vec<Arg>);

#[derive(Clone, Debug)]
enum Arg {
    /// `.A.B` (empty: the dot itself).
    Field(Vec<String>),
    /// `$name.A.B` (`$` alone is the root).
    Variable(String, Vec<String>),
    Literal(Value),
    Function(String),
    Group(Pipeline),
}

/// A block being parsed.
struct Open {
    kind: &'static str,
    nodes: Vec<Node>,
    /// `if`: the branches so far; `range`/`with`: the one head.
    heads: Vec<(Pipeline, Vec<Node>)>,
    variables: Vec<String>,
    name: String,
    in_else: bool,
    line: usize,
}

impl TemplateSet {
    /// Parses a `templates:` file's text: its `define`s join the set;
    /// text outside them is ignored, as Go does.
    pub fn add_file(&mut self, file: &str, text: &str) -> Result<(), TemplateError> {
        self.parse(file, text).map(|_| ())
    }

    /// Parses an email field's template under `name`.
    pub fn add_field(&mut self, name: &str, file: &str, text: &str) -> Result<(), TemplateError> {
        let body = self.parse(file, text)?;
        self.templates.insert(name.to_string(), body);
        Ok(())
    }

    /// Whether `name` is defined.
    pub fn has(&self, name: &str) -> bool {
        self.templates.contains_key(name)
    }

    /// Checks that every `template` call names a defined template.
    pub fn check_calls(&self) -> Result<(), TemplateError> {
        for (name, at) in &self.calls {
            if !self.templates.contains_key(name) {
                return Err(at.clone());
            }
        }
        Ok(())
    }

    /// Renders template `name` for a notification; `html` escapes what
    /// actions print, except through `safeHtml`.
    pub fn render(&self, name: &str, data: &Value, html: bool) -> String {
        let mut out = String::new();
        if let Some(body) = self.templates.get(name) {
            let steps = std::cell::Cell::new(0);
            let mut scope = Scope {
                set: self,
                root: data,
                variables: Vec::new(),
                html,
                steps: &steps,
            };
            scope.run(body, data, &mut out, 0);
        }
        out
    }

    fn parse(&mut self, file: &str, text: &str) -> Result<Vec<Node>, TemplateError> {
        let error = |line: usize, problem: TemplateProblem| TemplateError {
            file: file.to_string(),
            line,
            problem,
        };
        let mut stack: Vec<Open> = vec![open("top", 1)];
        let mut rest = text;
        let mut offset = 0;
        let mut trim_next = false;
        loop {
            let Some(start) = rest.find("{{") else {
                let mut tail = rest.to_string();
                if trim_next {
                    tail = tail.trim_start().to_string();
                }
                push_node(&mut stack, Node::Text(tail));
                break;
            };
            let line = 1 + text[..offset + start].matches('\n').count();
            let after = &rest[start + 2..];
            let trim_before = after.starts_with("- ") || after.starts_with("-\n");
            let Some(end) = after.find("}}") else {
                return Err(error(line, TemplateProblem::UnclosedAction));
            };
            let mut inner = &after[..end];
            let trim_after = inner.ends_with(" -") || inner.ends_with("\n-");
            let mut before = rest[..start].to_string();
            if trim_next {
                before = before.trim_start().to_string();
            }
            if trim_before {
                before = before.trim_end().to_string();
                inner = &inner[1..];
            }
            if trim_after {
                inner = &inner[..inner.len() - 1];
            }
            push_node(&mut stack, Node::Text(before));
            trim_next = trim_after;
            let consumed = start + 2 + end + 2;
            offset += consumed;
            rest = &rest[consumed..];
            let inner = inner.trim();
            if inner.starts_with("/*") {
                continue;
            }
            let tokens = tokenize(inner).map_err(|problem| error(line, problem))?;
            let keyword = match tokens.first() {
                Some(Token::Word(word)) => word.as_str(),
                _ => "",
            };
            match keyword {
                "if" | "with" | "range" => {
                    let mut block = open(
                        match keyword {
                            "if" => "if",
                            "with" => "with",
                            _ => "range",
                        },
                        line,
                    );
                    let mut head = &tokens[1..];
                    if keyword == "range" {
                        let (variables, pipeline) = range_variables(head);
                        block.variables = variables;
                        head = pipeline;
                    }
                    let pipeline = self.pipeline(head, file, line)?;
                    block.heads.push((pipeline, Vec::new()));
                    stack.push(block);
                }
                "define" => {
                    let Some(Token::Str(name)) = tokens.get(1) else {
                        return Err(error(line, TemplateProblem::DefineName));
                    };
                    let mut block = open("define", line);
                    block.name = name.clone();
                    stack.push(block);
                }
                "else" => {
                    let Some(top) = stack.last_mut() else {
                        return Err(error(line, TemplateProblem::ElseOutsideBlock));
                    };
                    if top.kind == "top" || top.kind == "define" || top.in_else {
                        return Err(error(line, TemplateProblem::ElseWithoutBlock));
                    }
                    let nodes = std::mem::take(&mut top.nodes);
                    if let Some(last) = top.heads.last_mut() {
                        last.1 = nodes;
                    }
                    if top.kind == "if"
                        && matches!(tokens.get(1), Some(Token::Word(w)) if w == "if")
                    {
                        let pipeline = self.pipeline(&tokens[2..], file, line)?;
                        if let Some(top) = stack.last_mut() {
                            top.heads.push((pipeline, Vec::new()));
                        }
                    } else {
                        top.in_else = true;
                    }
                }
                "end" => {
                    let Some(mut block) = stack.pop() else {
                        return Err(error(line, TemplateProblem::EndWithoutBlock));
                    };
                    if block.kind == "top" {
                        return Err(error(line, TemplateProblem::EndWithoutBlock));
                    }
                    let nodes = std::mem::take(&mut block.nodes);
                    if block.kind == "define" {
                        self.templates.insert(block.name, nodes);
                        continue;
                    }
                    let (body_heads, otherwise) = if block.in_else {
                        (block.heads, nodes)
                    } else {
                        let mut heads = block.heads;
                        if let Some(last) = heads.last_mut() {
                            last.1 = nodes;
                        }
                        (heads, Vec::new())
                    };
                    let node = match block.kind {
                        "if" => Node::If(body_heads, otherwise),
                        "with" => {
                            let (pipeline, body) =
                                body_heads.into_iter().next().unwrap_or_default();
                            Node::With(pipeline, body, otherwise)
                        }
                        _ => {
                            let (pipeline, body) =
                                body_heads.into_iter().next().unwrap_or_default();
                            Node::Range {
                                variables: block.variables,
                                pipeline,
                                body,
                                otherwise,
                            }
                        }
                    };
                    push_node(&mut stack, node);
                }
                "template" => {
                    let Some(Token::Str(name)) = tokens.get(1) else {
                        return Err(error(line, TemplateProblem::TemplateName));
                    };
                    let pipeline = match tokens.len() > 2 {
                        true => Some(self.pipeline(&tokens[2..], file, line)?),
                        false => None,
                    };
                    let undefined = TemplateProblem::NotDefined { name: name.clone() };
                    self.calls.push((name.clone(), error(line, undefined)));
                    push_node(&mut stack, Node::Template(name.clone(), pipeline));
                }
                "block" | "break" | "continue" => {
                    return Err(error(
                        line,
                        TemplateProblem::UnsupportedKeyword {
                            keyword: keyword.to_string(),
                        },
                    ));
                }
                _ => {
                    if tokens.iter().any(|token| matches!(token, Token::Declare)) {
                        return Err(error(line, TemplateProblem::Assignment));
                    }
                    let pipeline = self.pipeline(&tokens, file, line)?;
                    push_node(&mut stack, Node::Action(pipeline));
                }
            }
        }
        if stack.len() != 1 {
            let line = stack.last().map_or(1, |block| block.line);
            let kind = stack.last().map_or("", |block| block.kind);
            return Err(error(line, TemplateProblem::NotClosed { kind }));
        }
        Ok(stack.pop().map(|block| block.nodes).unwrap_or_default())
    }

    fn pipeline(
        &self,
        tokens: &[Token],
        file: &str,
        line: usize,
    ) -> Result<Pipeline, TemplateError> {
        let error = |problem: TemplateProblem| TemplateError {
            file: file.to_string(),
            line,
            problem,
        };
        let mut pipeline = Vec::new();
        let mut args: Vec<Arg> = Vec::new();
        let mut index = 0;
        while index < tokens.len() {
            match &tokens[index] {
                Token::Pipe => {
                    pipeline.push(command(std::mem::take(&mut args)).map_err(&error)?);
                }
                Token::Open => {
                    let mut depth = 1;
                    let mut close = index + 1;
                    while close < tokens.len() {
                        match tokens[close] {
                            Token::Open => depth += 1,
                            Token::Close => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        close += 1;
                    }
                    if depth != 0 {
                        return Err(error(TemplateProblem::UnclosedParenthesis));
                    }
                    args.push(Arg::Group(self.pipeline(
                        &tokens[index + 1..close],
                        file,
                        line,
                    )?));
                    index = close;
                }
                Token::Close => return Err(error(TemplateProblem::UnexpectedClose)),
                Token::Field(path) => args.push(Arg::Field(path.clone())),
                Token::Variable(name, path) => args.push(Arg::Variable(name.clone(), path.clone())),
                Token::Str(text) => args.push(Arg::Literal(json!(text))),
                Token::Number(number) => args.push(Arg::Literal(json!(number))),
                Token::Word(word) => match word.as_str() {
                    "true" | "false" => args.push(Arg::Literal(json!(word == "true"))),
                    "nil" => args.push(Arg::Literal(Value::Null)),
                    name if FUNCTIONS.contains(&name) => args.push(Arg::Function(name.to_string())),
                    name => {
                        return Err(error(TemplateProblem::UnsupportedFunction {
                            name: name.to_string(),
                        }));
                    }
                },
                Token::Declare | Token::Comma => {
                    return Err(error(TemplateProblem::UnexpectedDeclare));
                }
            }
            index += 1;
        }
        pipeline.push(command(args).map_err(&error)?);
        Ok(pipeline)
    }
}

fn open(kind: &'static str, line: usize) -> Open {
    Open {
        kind,
        nodes: Vec::new(),
        heads: Vec::new(),
        variables: Vec::new(),
        name: String::new(),
        in_else: false,
        line,
    }
}

fn push_node(stack: &mut [Open], node: Node) {
    if let Node::Text(text) = &node
        && text.is_empty()
    {
        return;
    }
    if let Some(top) = stack.last_mut() {
        top.nodes.push(node);
    }
}

/// Checks one command's shape: a field followed by arguments would be a
/// method call, which the subset lacks.
fn command(args: Vec<Arg>) -> Result<Command, TemplateProblem> {
    if args.is_empty() {
        return Err(TemplateProblem::EmptyCommand);
    }
    if args.len() > 1 && !matches!(args[0], Arg::Function(_)) {
        return Err(TemplateProblem::MethodCall);
    }
    Ok(Command(args))
}

/// `$v :=` or `$k, $v :=` at the head of a range.
fn range_variables(tokens: &[Token]) -> (Vec<String>, &[Token]) {
    if let Some(position) = tokens
        .iter()
        .position(|token| matches!(token, Token::Declare))
    {
        let names = tokens[..position]
            .iter()
            .filter_map(|token| match token {
                Token::Variable(name, _) => Some(name.clone()),
                _ => None,
            })
            .collect();
        return (names, &tokens[position + 1..]);
    }
    (Vec::new(), tokens)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Field(Vec<String>),
    Variable(String, Vec<String>),
    Str(String),
    Number(f64),
    Pipe,
    Open,
    Close,
    Declare,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, TemplateProblem> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    let path = |index: &mut usize| -> Vec<String> {
        let mut parts = Vec::new();
        while *index < chars.len() && chars[*index] == '.' {
            *index += 1;
            let start = *index;
            while *index < chars.len() && word_char(chars[*index]) {
                *index += 1;
            }
            if *index > start {
                parts.push(chars[start..*index].iter().collect());
            }
        }
        parts
    };
    while index < chars.len() {
        let c = chars[index];
        match c {
            ' ' | '\t' | '\n' | '\r' => index += 1,
            '|' => {
                tokens.push(Token::Pipe);
                index += 1;
            }
            '(' => {
                tokens.push(Token::Open);
                index += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                index += 1;
                // A field of a parenthesised value, `(index .Alerts 0).Labels`.
                if index < chars.len() && chars[index] == '.' {
                    return Err(TemplateProblem::GroupField);
                }
            }
            ',' => {
                tokens.push(Token::Comma);
                index += 1;
            }
            ':' if chars.get(index + 1) == Some(&'=') => {
                tokens.push(Token::Declare);
                index += 2;
            }
            '.' => tokens.push(Token::Field(path(&mut index))),
            '$' => {
                index += 1;
                let start = index;
                while index < chars.len() && word_char(chars[index]) {
                    index += 1;
                }
                let name: String = chars[start..index].iter().collect();
                tokens.push(Token::Variable(name, path(&mut index)));
            }
            '"' => {
                let mut value = String::new();
                index += 1;
                loop {
                    match chars.get(index) {
                        None => return Err(TemplateProblem::UnterminatedString),
                        Some('"') => break,
                        Some('\\') => {
                            index += 1;
                            match chars.get(index) {
                                Some('n') => value.push('\n'),
                                Some('t') => value.push('\t'),
                                Some(other) => value.push(*other),
                                None => return Err(TemplateProblem::UnterminatedString),
                            }
                        }
                        Some(other) => value.push(*other),
                    }
                    index += 1;
                }
                index += 1;
                tokens.push(Token::Str(value));
            }
            '`' => {
                let start = index + 1;
                let Some(length) = chars[start..].iter().position(|c| *c == '`') else {
                    return Err(TemplateProblem::UnterminatedRawString);
                };
                tokens.push(Token::Str(chars[start..start + length].iter().collect()));
                index = start + length + 1;
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = index;
                index += 1;
                while index < chars.len() && (chars[index].is_ascii_digit() || chars[index] == '.')
                {
                    index += 1;
                }
                let text: String = chars[start..index].iter().collect();
                let number = text
                    .parse::<f64>()
                    .map_err(|_| TemplateProblem::BadNumber { text: text.clone() })?;
                tokens.push(Token::Number(number));
            }
            c if word_char(c) => {
                let start = index;
                while index < chars.len() && word_char(chars[index]) {
                    index += 1;
                }
                tokens.push(Token::Word(chars[start..index].iter().collect()));
            }
            other => return Err(TemplateProblem::UnexpectedCharacter { character: other }),
        }
    }
    Ok(tokens)
}

/// Evaluation state.
struct Scope<'a> {
    set: &'a TemplateSet,
    root: &'a Value,
    variables: Vec<(String, Value)>,
    html: bool,
    /// Nodes run so far in this rendering, against [`MAX_STEPS`].
    steps: &'a std::cell::Cell<usize>,
}

impl Scope<'_> {
    fn run(&mut self, nodes: &[Node], dot: &Value, out: &mut String, depth: usize) {
        for node in nodes {
            self.steps.set(self.steps.get() + 1);
            if self.steps.get() > MAX_STEPS {
                return;
            }
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Action(pipeline) => {
                    let (value, safe) = self.pipeline(pipeline, dot);
                    let text = print(&value);
                    if self.html && !safe {
                        out.push_str(&escape_html(&text));
                    } else {
                        out.push_str(&text);
                    }
                }
                Node::If(branches, otherwise) => {
                    let chosen = branches
                        .iter()
                        .find(|(pipeline, _)| truthy(&self.pipeline(pipeline, dot).0));
                    match chosen {
                        Some((_, body)) => self.run(body, dot, out, depth),
                        None => self.run(otherwise, dot, out, depth),
                    }
                }
                Node::With(pipeline, body, otherwise) => {
                    let value = self.pipeline(pipeline, dot).0;
                    if truthy(&value) {
                        self.run(body, &value, out, depth);
                    } else {
                        self.run(otherwise, dot, out, depth);
                    }
                }
                Node::Range {
                    variables,
                    pipeline,
                    body,
                    otherwise,
                } => {
                    let value = self.pipeline(pipeline, dot).0;
                    let items: Vec<(Value, Value)> = match &value {
                        Value::Array(items) => items
                            .iter()
                            .enumerate()
                            .map(|(index, item)| (json!(index), item.clone()))
                            .collect(),
                        Value::Object(map) => map
                            .iter()
                            .map(|(key, item)| (json!(key), item.clone()))
                            .collect(),
                        _ => Vec::new(),
                    };
                    if items.is_empty() {
                        self.run(otherwise, dot, out, depth);
                    }
                    for (key, item) in items {
                        let kept = self.variables.len();
                        match variables.as_slice() {
                            [value_name] => self.variables.push((value_name.clone(), item.clone())),
                            [key_name, value_name] => {
                                self.variables.push((key_name.clone(), key));
                                self.variables.push((value_name.clone(), item.clone()));
                            }
                            _ => {}
                        }
                        self.run(body, &item, out, depth);
                        self.variables.truncate(kept);
                    }
                }
                Node::Template(name, pipeline) => {
                    if depth >= MAX_DEPTH {
                        continue;
                    }
                    let value = match pipeline {
                        Some(pipeline) => self.pipeline(pipeline, dot).0,
                        None => Value::Null,
                    };
                    if let Some(body) = self.set.templates.get(name) {
                        let mut inner = Scope {
                            set: self.set,
                            root: self.root,
                            variables: Vec::new(),
                            html: self.html,
                            steps: self.steps,
                        };
                        inner.run(body, &value, out, depth + 1);
                    }
                }
            }
        }
    }

    /// Runs a pipeline: each command's result is the last argument of the
    /// next. Returns whether `safeHtml` marked it.
    fn pipeline(&mut self, pipeline: &Pipeline, dot: &Value) -> (Value, bool) {
        let mut previous: Option<Value> = None;
        let mut safe = false;
        for Command(args) in pipeline {
            safe = false;
            let value = match args.first() {
                Some(Arg::Function(name)) => {
                    let mut values: Vec<Value> =
                        args[1..].iter().map(|arg| self.arg(arg, dot)).collect();
                    if let Some(previous) = previous.take() {
                        values.push(previous);
                    }
                    safe = name == "safeHtml";
                    call(name, &values)
                }
                Some(arg) => self.arg(arg, dot),
                None => Value::Null,
            };
            previous = Some(value);
        }
        (previous.unwrap_or(Value::Null), safe)
    }

    fn arg(&mut self, arg: &Arg, dot: &Value) -> Value {
        match arg {
            Arg::Field(path) => walk(dot, path),
            Arg::Variable(name, path) => {
                let base = if name.is_empty() {
                    self.root.clone()
                } else {
                    self.variables
                        .iter()
                        .rev()
                        .find(|(known, _)| known == name)
                        .map(|(_, value)| value.clone())
                        .unwrap_or(Value::Null)
                };
                walk(&base, path)
            }
            Arg::Literal(value) => value.clone(),
            Arg::Function(name) => call(name, &[]),
            Arg::Group(pipeline) => self.pipeline(pipeline, dot).0,
        }
    }
}

/// Follows `.A.B` from `value`, with Alertmanager's methods on label sets
/// and alert lists.
fn walk(value: &Value, path: &[String]) -> Value {
    let mut current = value.clone();
    for name in path {
        current = match (&current, name.as_str()) {
            (Value::Object(map), "SortedPairs") if !map.contains_key("SortedPairs") => {
                Value::Array(
                    map.iter()
                        .map(|(key, item)| json!({"Name": key, "Value": item}))
                        .collect(),
                )
            }
            (Value::Object(map), "Names") if !map.contains_key("Names") => {
                Value::Array(map.keys().map(|key| json!(key)).collect())
            }
            (Value::Object(map), "Values") if !map.contains_key("Values") => {
                Value::Array(map.values().cloned().collect())
            }
            (Value::Object(map), _) => map.get(name).cloned().unwrap_or(Value::Null),
            // `Pairs.Names` and `Pairs.Values` of `.SortedPairs`.
            (Value::Array(items), "Names" | "Values") => {
                let field = if name == "Names" { "Name" } else { "Value" };
                Value::Array(items.iter().map(|item| item[field].clone()).collect())
            }
            (Value::Array(items), "Firing" | "Resolved") => {
                let wanted = if name == "Firing" {
                    "firing"
                } else {
                    "resolved"
                };
                Value::Array(
                    items
                        .iter()
                        .filter(|item| item["Status"] == wanted)
                        .cloned()
                        .collect(),
                )
            }
            _ => Value::Null,
        };
    }
    current
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// As Go prints values (`[a b]` for lists, `map[k:v]` for maps).
fn print(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        Value::Number(number) => match number.as_f64() {
            Some(float) if float.fract() == 0.0 && float.abs() < 1e15 => {
                format!("{}", float as i64)
            }
            _ => number.to_string(),
        },
        Value::Bool(flag) => flag.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(print).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => format!(
            "map[{}]",
            map.iter()
                .map(|(key, item)| format!("{key}:{}", print(item)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn text(value: Option<&Value>) -> String {
    value.map(print).unwrap_or_default()
}

fn compare(left: &Value, right: &Value) -> Option<std::cmp::Ordering> {
    match (left.as_f64(), right.as_f64()) {
        (Some(left), Some(right)) => left.partial_cmp(&right),
        _ => Some(print(left).cmp(&print(right))),
    }
}

fn call(name: &str, args: &[Value]) -> Value {
    use std::cmp::Ordering;
    let first = args.first();
    let second = args.get(1);
    match name {
        "toUpper" => json!(text(first).to_uppercase()),
        "toLower" => json!(text(first).to_lowercase()),
        "title" => json!(title(&text(first))),
        "trimSpace" => json!(text(first).trim()),
        "safeHtml" => json!(text(first)),
        "join" => {
            let separator = text(first);
            let items: Vec<String> = match second {
                Some(Value::Array(items)) => items.iter().map(print).collect(),
                Some(other) => vec![print(other)],
                None => Vec::new(),
            };
            json!(items.join(&separator))
        }
        "reReplaceAll" => {
            let Ok(pattern) = regex::Regex::new(&text(first)) else {
                return json!(text(args.get(2)));
            };
            json!(
                pattern
                    .replace_all(&text(args.get(2)), text(second).as_str())
                    .into_owned()
            )
        }
        "match" => json!(
            regex::Regex::new(&text(first)).is_ok_and(|pattern| pattern.is_match(&text(second)))
        ),
        "len" => json!(match first {
            Some(Value::Array(items)) => items.len(),
            Some(Value::Object(map)) => map.len(),
            Some(Value::String(text)) => text.len(),
            _ => 0,
        }),
        "index" => {
            let mut current = first.cloned().unwrap_or(Value::Null);
            for key in &args[1.min(args.len())..] {
                current = match (&current, key) {
                    (Value::Array(items), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|n| items.get(usize::try_from(n).ok()?).cloned())
                        .unwrap_or(Value::Null),
                    (Value::Object(map), key) => {
                        map.get(&print(key)).cloned().unwrap_or(Value::Null)
                    }
                    _ => Value::Null,
                };
            }
            current
        }
        "printf" => json!(printf(&text(first), &args[1.min(args.len())..])),
        "eq" => json!(args[1.min(args.len())..].iter().any(|other| {
            first.is_some_and(|first| compare(first, other) == Some(Ordering::Equal))
        })),
        "ne" => json!(
            first
                .zip(second)
                .is_some_and(|(a, b)| compare(a, b) != Some(Ordering::Equal))
        ),
        "lt" => json!(
            first
                .zip(second)
                .is_some_and(|(a, b)| compare(a, b) == Some(Ordering::Less))
        ),
        "le" => json!(
            first
                .zip(second)
                .is_some_and(|(a, b)| compare(a, b) != Some(Ordering::Greater))
        ),
        "gt" => json!(
            first
                .zip(second)
                .is_some_and(|(a, b)| compare(a, b) == Some(Ordering::Greater))
        ),
        "ge" => json!(
            first
                .zip(second)
                .is_some_and(|(a, b)| compare(a, b) != Some(Ordering::Less))
        ),
        "not" => json!(!first.is_some_and(truthy)),
        "and" => args
            .iter()
            .find(|value| !truthy(value))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        "or" => args
            .iter()
            .find(|value| truthy(value))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// Go's `strings.Title`: each word's first letter upper-cased.
fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at_start = true;
    for c in text.chars() {
        if at_start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !c.is_alphanumeric();
    }
    out
}

fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&format!("{:?}", text(args.next()))),
            Some(_) => out.push_str(&text(args.next())),
            None => out.push('%'),
        }
    }
    out
}

/// Alertmanager's template data for a notification (`template.Data`).
/// Escapes text for HTML. Both template engines use it; it lives here, the
/// leaf of the two, so that neither imports the other in a circle.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn data(notification: &Notification, display: &crate::display::Display) -> Value {
    let alerts: Vec<Value> = notification
        .alerts
        .iter()
        .map(|alert| {
            json!({
                "Status": alert.status,
                "Labels": alert.labels,
                "Annotations": alert.annotations,
                "StartsAt": display.time(alert.starts_at_ms),
                "EndsAt": alert.ends_at_ms.map(|ms| display.time(ms)).unwrap_or_default(),
                "GeneratorURL": alert.generator_url,
                "Fingerprint": alert.fingerprint,
            })
        })
        .collect();
    let mut data = Map::new();
    data.insert("Receiver".into(), json!(notification.receiver));
    data.insert("Status".into(), json!(notification.status()));
    data.insert("Alerts".into(), Value::Array(alerts));
    data.insert("GroupLabels".into(), json!(notification.group_labels));
    data.insert("CommonLabels".into(), json!(notification.common_labels()));
    data.insert(
        "CommonAnnotations".into(),
        json!(notification.common_annotations()),
    );
    data.insert("ExternalURL".into(), json!(notification.external_url));
    Value::Object(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A templates file in the style of Alertmanager's documentation
    /// (`docs/notification_examples.md`) and of county files.
    const FILE: &str = r#"
{{ define "__subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }}{{ end }}

{{ define "county.text" -}}
{{ range .Alerts -}}
Alert: {{ .Labels.alertname }} - `{{ .Labels.severity }}`
{{- if .Annotations.summary }}
Summary: {{ .Annotations.summary }}
{{- end }}
Details:
{{ range .Labels.SortedPairs }}  • {{ .Name }}: {{ .Value }}
{{ end }}
{{ end }}
{{- end }}

{{ define "county.html" }}<h1>{{ template "__subject" . }}</h1>{{ range $i, $a := .Alerts }}<p>{{ $i }} {{ $a.Labels.instance }} {{ $a.Annotations.description }}</p>{{ else }}none{{ end }}<a href="{{ .ExternalURL }}">{{ "<b>open</b>" | safeHtml }}</a>{{ end }}
"#;

    fn data() -> Value {
        json!({
            "Receiver": "ops",
            "Status": "firing",
            "ExternalURL": "http://collector.test",
            "GroupLabels": {"alertname": "DiskFull", "env": "prod"},
            "CommonLabels": {"alertname": "DiskFull"},
            "CommonAnnotations": {},
            "Alerts": [
                {"Status": "firing", "Labels": {"alertname": "DiskFull", "instance": "web1", "severity": "critical"}, "Annotations": {"summary": "disk <full>", "description": "a & b"}},
                {"Status": "resolved", "Labels": {"alertname": "DiskFull", "instance": "web2", "severity": "warning"}, "Annotations": {}},
            ],
        })
    }

    fn set() -> TemplateSet {
        let mut set = TemplateSet::default();
        set.add_file("county.tmpl", FILE).unwrap();
        set.add_field(
            "subject",
            "headers.Subject",
            r#"{{ template "__subject" . }}"#,
        )
        .unwrap();
        set.add_field("text", "text", r#"{{ template "county.text" . }}"#)
            .unwrap();
        set.add_field("html", "html", r#"{{ template "county.html" . }}"#)
            .unwrap();
        set.check_calls().unwrap();
        set
    }

    #[test]
    fn a_documented_style_templates_file_renders_as_go_would() {
        let set = set();
        assert_eq!(
            set.render("subject", &data(), false),
            "[FIRING:1] DiskFull prod"
        );
        assert_eq!(
            set.render("text", &data(), false),
            "Alert: DiskFull - `critical`\nSummary: disk <full>\nDetails:\n  • alertname: DiskFull\n  • instance: web1\n  • severity: critical\n\nAlert: DiskFull - `warning`\nDetails:\n  • alertname: DiskFull\n  • instance: web2\n  • severity: warning\n\n"
        );
        assert_eq!(
            set.render("html", &data(), true),
            "<h1>[FIRING:1] DiskFull prod</h1><p>0 web1 a &amp; b</p><p>1 web2 </p><a href=\"http://collector.test\"><b>open</b></a>"
        );
    }

    #[test]
    fn functions_and_conditions() {
        let check = |template: &str, expected: &str| {
            let mut set = TemplateSet::default();
            set.add_field("t", "t", template).unwrap();
            assert_eq!(set.render("t", &data(), false), expected, "{template}");
        };
        check(
            r#"{{ .CommonLabels.alertname | toLower | title }}"#,
            "Diskfull",
        );
        check(r#"{{ join ", " .GroupLabels.Names }}"#, "alertname, env");
        check(
            r#"{{ printf "%s has %d" .Receiver (len .Alerts) }}"#,
            "ops has 2",
        );
        check(r#"{{ reReplaceAll "web(\\d)" "host$1" "web7" }}"#, "host7");
        check(
            r#"{{ if and (eq .Status "firing") (gt (len .Alerts.Resolved) 0) }}mixed{{ else if .Receiver }}r{{ else }}none{{ end }}"#,
            "mixed",
        );
        check(
            r#"{{ with .CommonAnnotations.summary }}{{ . }}{{ else }}no summary{{ end }}"#,
            "no summary",
        );
        check(
            r#"{{ index .CommonLabels "alertname" }} {{ $.Receiver }} {{ .Missing.Field }}."#,
            "DiskFull ops .",
        );
        check(
            r#"{{/* a comment */}}{{ range $k, $v := .GroupLabels }}{{ $k }}={{ $v }};{{ end }}"#,
            "alertname=DiskFull;env=prod;",
        );
    }

    #[test]
    fn what_the_subset_lacks_is_refused_at_its_line() {
        for (template, line, says) in [
            ("a\n{{ .StartsAt.Format \"2006\" }}", 2, "method calls"),
            ("\n\n{{ humanizeDuration 5 }}", 3, "humanizeDuration"),
            ("{{ block \"x\" . }}{{ end }}", 1, "block"),
            ("{{ $x := 1 }}", 1, "assignment"),
            ("{{ if .A }}\nnever closed", 1, "not closed"),
            ("{{ end }}", 1, "end without"),
        ] {
            let mut set = TemplateSet::default();
            let error = set.add_file("f.tmpl", template).unwrap_err();
            assert_eq!(error.line, line, "{template}: {error}");
            assert!(
                error.problem.to_string().contains(says),
                "{template}: {error}"
            );
            assert!(error.to_string().starts_with(&format!("f.tmpl:{line}: ")));
        }
        let mut set = TemplateSet::default();
        set.add_field("html", "html", "\n{{ template \"email.default.html\" . }}")
            .unwrap();
        let error = set.check_calls().unwrap_err();
        assert_eq!((error.line, error.file.as_str()), (2, "html"));
    }

    #[test]
    fn a_template_calling_itself_stops() {
        let mut set = TemplateSet::default();
        set.add_file(
            "f",
            r#"{{ define "loop" }}x{{ template "loop" . }}{{ end }}"#,
        )
        .unwrap();
        set.add_field("t", "t", r#"{{ template "loop" . }}"#)
            .unwrap();
        assert_eq!(set.render("t", &Value::Null, false).len(), MAX_DEPTH);
        // Calling itself twice would double at every level: the step
        // budget ends it.
        let mut set = TemplateSet::default();
        set.add_file(
            "f",
            r#"{{ define "twice" }}x{{ template "twice" . }}{{ template "twice" . }}{{ end }}"#,
        )
        .unwrap();
        set.add_field("t", "t", r#"{{ template "twice" . }}"#)
            .unwrap();
        let rendered = set.render("t", &Value::Null, false);
        assert!(rendered.len() <= MAX_STEPS, "{}", rendered.len());
    }
}
