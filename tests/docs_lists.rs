//! The lists in README.md and docs/ checked against the code and the
//! template, both ways: a name the code defines and the docs leave out
//! fails, and so does a name the docs list that the code does not define.
//! The code side is read from the code itself (its source, its tables, the
//! template), so drift on either side fails here. Every repository path and
//! relative link the docs name must exist, anchors included.
//!
//! Each test's failure lists every missing name, with where it is missing.

use docker_pulls::counts::RunCounts;
use docker_pulls::metrics::METRIC_NAMES;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// A Rust file without its `#[cfg(test)]` module and without comments:
/// what the code reads, not what its tests or doc comments mention.
fn code(path: &str) -> String {
    let text = read(path);
    // The tests module only (a `#[cfg(test)]` helper method stays code).
    let text = text
        .split("\n#[cfg(test)]\nmod ")
        .next()
        .unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every file of `dir` ending in `.rs`, as repository paths.
fn rust_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("listing {dir}: {e}"))
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".rs"))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    files.sort();
    files
}

/// The string literals of `source` (plain `"…"` ones, escapes kept).
fn literals(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = source.chars().peekable();
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        // A char literal '"' is not the start of a string.
        if c == '"' && previous != '\'' {
            let mut literal = String::new();
            let mut escaped = false;
            for c in chars.by_ref() {
                match c {
                    '"' if !escaped => break,
                    '\\' if !escaped => escaped = true,
                    _ => {
                        escaped = false;
                        literal.push(c);
                    }
                }
            }
            out.push(literal);
            previous = '"';
        } else {
            previous = c;
        }
    }
    out
}

/// The literals that follow `call` directly, as in `get("images")`.
fn literal_arguments(source: &str, call: &str) -> Vec<String> {
    source
        .match_indices(call)
        .filter_map(|(at, _)| {
            let rest = &source[at + call.len()..];
            let rest = rest.trim_start().strip_prefix('"')?;
            rest.find('"').map(|end| rest[..end].to_owned())
        })
        .collect()
}

fn is_env_name(text: &str) -> bool {
    text.len() >= 4
        && text.contains('_')
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

// ---------------------------------------------------------------- markdown

/// A markdown file's lines outside fenced code blocks, with line numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut out = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m && trimmed.trim_end() == m => fence = None,
            (None, None) => out.push((number + 1, line)),
            _ => {}
        }
    }
    out
}

/// The heading level and text of a markdown line, if it is one.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.chars().take_while(|&c| c == '#').count();
    let text = line.get(level..)?;
    ((1..=6).contains(&level) && text.starts_with(' ')).then(|| (level, text.trim()))
}

/// The prose lines of the section whose heading starts with `title`, up to
/// the next heading of the same or a higher level.
fn section<'a>(file: &str, text: &'a str, title: &str) -> Vec<&'a str> {
    let lines = prose(text);
    let start = lines
        .iter()
        .position(|(_, line)| heading(line).is_some_and(|(_, t)| t.starts_with(title)))
        .unwrap_or_else(|| panic!("{file} has no section headed {title:?}"));
    let level = heading(lines[start].1).map_or(1, |(level, _)| level);
    lines[start + 1..]
        .iter()
        .take_while(|(_, line)| heading(line).is_none_or(|(l, _)| l > level))
        .map(|(_, line)| *line)
        .collect()
}

/// The backticked spans of `text`.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The first cells of the section's first table, below its header.
fn first_column<'a>(file: &str, lines: &[&'a str], title: &str) -> Vec<&'a str> {
    let rows: Vec<&str> = lines
        .iter()
        .skip_while(|line| !line.trim_start().starts_with('|'))
        .take_while(|line| line.trim_start().starts_with('|'))
        .copied()
        .collect();
    assert!(rows.len() > 2, "{file}, section {title:?}: no table found");
    rows[2..]
        .iter()
        .map(|row| {
            // Cells split on `|` outside backticks (`es\|aoss` stays one).
            let row = row.trim().trim_start_matches('|');
            let mut in_code = false;
            let mut end = row.len();
            let mut previous = ' ';
            for (at, c) in row.char_indices() {
                match c {
                    '`' => in_code = !in_code,
                    '|' if !in_code && previous != '\\' => {
                        end = at;
                        break;
                    }
                    _ => {}
                }
                previous = c;
            }
            row[..end].trim()
        })
        .collect()
}

/// The backticked names in a table's first column, each span's first word.
fn names_in_first_column(file: &str, text: &str, title: &str) -> BTreeSet<String> {
    let lines = section(file, text, title);
    first_column(file, &lines, title)
        .into_iter()
        .flat_map(code_spans)
        .filter_map(|span| span.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// What a test found missing, reported all at once when it ends.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    /// Records every name that one side has and the other lacks.
    fn same(
        &mut self,
        what: &str,
        code_side: &str,
        code: &BTreeSet<String>,
        doc_side: &str,
        doc: &BTreeSet<String>,
    ) {
        for name in code.difference(doc) {
            self.0.push(format!(
                "  {what}: `{name}`: in {code_side}, missing from {doc_side}"
            ));
        }
        for name in doc.difference(code) {
            self.0.push(format!(
                "  {what}: `{name}`: in {doc_side}, not in {code_side}"
            ));
        }
    }

    fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    /// Fails with every problem recorded.
    fn check(self, what: &str) {
        assert!(self.0.is_empty(), "{what}:\n{}", self.0.join("\n"));
    }
}

// ---------------------------------------------------------------- the lists

/// Names the function reads from its environment, from the source files
/// that read it. Lambda sets the runtime's own variables; the docs need not.
fn function_environment() -> BTreeSet<String> {
    const SET_BY_LAMBDA: [&str; 2] = ["AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_FUNCTION_NAME"];
    let mut files = vec![
        "src/main.rs".to_owned(),
        "src/wiring.rs".to_owned(),
        "src/tls.rs".to_owned(),
    ];
    files.extend(rust_files("src/config"));
    files
        .iter()
        .flat_map(|file| literals(&code(file)))
        .filter(|literal| is_env_name(literal) && !SET_BY_LAMBDA.contains(&literal.as_str()))
        .collect()
}

/// The variables only local mode reads (credentials instead of SSM).
fn cli_environment() -> BTreeSet<String> {
    rust_files("src/cli")
        .iter()
        .flat_map(|file| literals(&code(file)))
        .filter(|literal| is_env_name(literal))
        .collect()
}

/// The AWS SDK's variables and the Lambda runtime logger's: documented
/// as a class (the `AWS_REGION, …` row), not one by one.
fn read_by_a_dependency(name: &str) -> bool {
    name.starts_with("AWS_") || name == "RUST_LOG"
}

#[test]
fn the_environment_table_lists_every_variable_the_function_reads() {
    let mut problems = Problems::default();
    // The AWS SDK's own variables (src/main.rs also reads the secret key
    // and session token, to keep them out of logs) are one row of the
    // table, `AWS_REGION, …`: present, and not listed one by one.
    let code: BTreeSet<String> = function_environment()
        .into_iter()
        .filter(|name| !read_by_a_dependency(name))
        .collect();
    let text = read("docs/configuration.md");
    let doc: BTreeSet<String> =
        names_in_first_column("docs/configuration.md", &text, "Environment")
            .into_iter()
            .filter(|name| is_env_name(name))
            .collect();
    assert!(
        doc.iter().any(|name| name.starts_with("AWS_")),
        "docs/configuration.md's Environment table has no row for the AWS SDK's variables (AWS_REGION, …)"
    );
    let doc_ours = doc
        .iter()
        .filter(|name| !read_by_a_dependency(name))
        .cloned()
        .collect();
    problems.same(
        "environment variables",
        "the code (src/main.rs, src/wiring.rs, src/tls.rs, src/config/)",
        &code,
        "docs/configuration.md's Environment table",
        &doc_ours,
    );
    problems.check("lists in the docs differ from the code");
}

#[test]
fn local_mode_names_every_variable_it_reads_and_reads_every_one_it_names() {
    let cli = cli_environment();
    let function = function_environment();
    let usage = docker_pulls::cli::USAGE;
    let local = read("docs/local.md");
    let local_names: BTreeSet<String> = prose(&local)
        .iter()
        .flat_map(|(_, line)| code_spans(line))
        .filter(|span| is_env_name(span))
        .map(str::to_owned)
        .collect();
    let mut problems = Vec::new();
    for name in &cli {
        if !local_names.contains(name) {
            problems.push(format!(
                "  `{name}`: read by src/cli/, missing from docs/local.md"
            ));
        }
        if !usage.contains(name.as_str()) {
            problems.push(format!(
                "  `{name}`: read by src/cli/, missing from USAGE (src/cli/mod.rs)"
            ));
        }
    }
    for name in &local_names {
        if !cli.contains(name) && !function.contains(name) && !read_by_a_dependency(name) {
            problems.push(format!(
                "  `{name}`: named in docs/local.md, read by neither src/cli/ nor the function"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "local-mode environment variables differ:\n{}",
        problems.join("\n")
    );
}

/// The SSM parameters src/config/ reads: the names it passes to `get`,
/// `raw` and `full_name` (`get("elasticsearch/url")`) or compares a key
/// with, any other `group/name` literal of a group those calls name (the
/// credential lists), and `X/*` for a prefix it reads every parameter under
/// (`starts_with("images/")`).
fn ssm_parameters() -> BTreeSet<String> {
    let is_part = |part: &str| {
        !part.is_empty()
            && part.starts_with(|c: char| c.is_ascii_lowercase())
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let is_name = |name: &str| {
        let parts: Vec<&str> = name.split('/').collect();
        parts.len() <= 2 && parts.iter().all(|part| is_part(part))
    };
    let mut names = BTreeSet::new();
    let sources: Vec<String> = rust_files("src/config").iter().map(|f| code(f)).collect();
    for source in &sources {
        for call in ["get(", "raw(", "full_name(", "key == "] {
            names.extend(
                literal_arguments(source, call)
                    .into_iter()
                    .filter(|name| is_name(name)),
            );
        }
        for prefix in literal_arguments(source, "starts_with(") {
            if let Some(group) = prefix.strip_suffix('/')
                && is_part(group)
            {
                names.insert(format!("{group}/*"));
            }
        }
    }
    let groups: BTreeSet<String> = names
        .iter()
        .filter_map(|name| name.split_once('/').map(|(group, _)| group.to_owned()))
        .collect();
    for source in &sources {
        for literal in literals(source) {
            if let Some((group, _)) = literal.split_once('/')
                && groups.contains(group)
                && is_name(&literal)
            {
                names.insert(literal);
            }
        }
    }
    names
}

/// A parameter name as the docs write it: `images/<any name>` is `images/*`.
fn ssm_name(span: &str) -> Option<String> {
    let name = match span.find("/<") {
        Some(at) if span.ends_with('>') => format!("{}/*", &span[..at]),
        _ => span.to_owned(),
    };
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_/*".contains(c));
    valid.then_some(name)
}

fn ssm_names_in_first_column(file: &str, title: &str) -> BTreeSet<String> {
    let text = read(file);
    let lines = section(file, &text, title);
    first_column(file, &lines, title)
        .into_iter()
        .flat_map(code_spans)
        .filter_map(ssm_name)
        .collect()
}

#[test]
fn the_ssm_tables_list_every_parameter_the_code_reads() {
    let mut problems = Problems::default();
    let code = ssm_parameters();
    assert!(
        code.contains("elasticsearch/url") && code.contains("images"),
        "the parameter scan found too little: {code:?}"
    );
    for (file, title) in [
        ("docs/configuration.md", "SSM parameters"),
        ("README.md", "SSM parameters"),
    ] {
        let doc = ssm_names_in_first_column(file, title);
        problems.same(
            "SSM parameters",
            "src/config/",
            &code,
            &format!("{file}'s {title:?} table"),
            &doc,
        );
    }
    problems.check("lists in the docs differ from the code");
}

/// The flags `parse_args` accepts (`Long("es-url")`, `Short('h')`) and
/// its subcommands (`command == "replay"`).
fn cli_flags() -> (BTreeSet<String>, BTreeSet<String>) {
    let source = code("src/cli/mod.rs");
    let flags = literal_arguments(&source, "Long(")
        .into_iter()
        .map(|flag| format!("--{flag}"))
        .chain(
            source
                .match_indices("Short('")
                .filter_map(|(at, _)| source[at + 7..].chars().next())
                .map(|c| format!("-{c}")),
        )
        .collect();
    let commands = literal_arguments(&source, "command == ")
        .into_iter()
        .collect();
    (flags, commands)
}

/// `--flag`s and `-h` in `text`.
fn flags_in(text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        let is_flag = |body: &str| {
            body.starts_with(|c: char| c.is_ascii_lowercase())
                && body.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        };
        if let Some(body) = word.strip_prefix("--") {
            if is_flag(body) {
                flags.insert(word.to_owned());
            }
        } else if let Some(body) = word.strip_prefix('-')
            && body.len() == 1
            && is_flag(body)
        {
            flags.insert(word.to_owned());
        }
    }
    flags
}

#[test]
fn usage_and_the_flags_table_list_every_flag_and_command_parse_args_takes() {
    let mut problems = Problems::default();
    let (flags, commands) = cli_flags();
    assert!(
        flags.contains("--es-url"),
        "the flag scan found too little: {flags:?}"
    );
    let usage = docker_pulls::cli::USAGE;
    problems.same(
        "CLI flags",
        "parse_args (src/cli/mod.rs)",
        &flags,
        "USAGE",
        &flags_in(usage),
    );
    let local = read("docs/local.md");
    let table: BTreeSet<String> = {
        let lines = section("docs/local.md", &local, "One run");
        let lines: Vec<&str> = lines
            .iter()
            .skip_while(|line| !line.starts_with("| flag"))
            .copied()
            .collect();
        first_column("docs/local.md", &lines, "One run")
            .into_iter()
            .flat_map(code_spans)
            .flat_map(flags_in)
            .collect()
    };
    problems.same(
        "CLI flags",
        "parse_args (src/cli/mod.rs)",
        &flags,
        "docs/local.md's flags table",
        &table,
    );
    for command in &commands {
        let in_usage = [
            format!("docker-pulls {command}"),
            format!("docker-pulls [{command}]"),
        ];
        if !in_usage.iter().any(|text| usage.contains(text.as_str())) {
            problems.push(format!(
                "  CLI commands: `{command}`: in parse_args, missing from USAGE"
            ));
        }
        if !local.contains(&format!("`{command}`")) && !local.contains(&format!("-- {command}")) {
            problems.push(format!(
                "  CLI commands: `{command}`: in parse_args, missing from docs/local.md"
            ));
        }
    }
    problems.check("lists in the docs differ from the code");
}

/// The event fields `Request::from_event` and `ReplayRequest::from_event`
/// read, and the `action` values they accept.
fn event_fields() -> (BTreeSet<String>, BTreeSet<String>) {
    let event = code("src/event.rs");
    let replay = code("src/replay.rs");
    let fields = literal_arguments(&event, "object.get(")
        .into_iter()
        .chain(literal_arguments(&replay, "text("))
        .collect();
    let actions = literal_arguments(&event, "action == ")
        .into_iter()
        .collect();
    (fields, actions)
}

#[test]
fn the_events_table_lists_every_field_and_action_an_event_may_carry() {
    let mut problems = Problems::default();
    let (fields, actions) = event_fields();
    assert!(
        fields.contains("dry_run"),
        "the field scan found too little: {fields:?}"
    );
    let local = read("docs/local.md");
    let lines = section("docs/local.md", &local, "The events");
    let lines: Vec<&str> = lines
        .iter()
        .skip_while(|line| !line.starts_with("| field"))
        .copied()
        .collect();
    let rows = first_column("docs/local.md", &lines, "The events");
    let doc: BTreeSet<String> = rows
        .iter()
        .flat_map(|cell| code_spans(cell))
        .map(str::to_owned)
        .collect();
    problems.same(
        "event fields",
        "src/event.rs and src/replay.rs",
        &fields,
        "docs/local.md's event fields table (section \"The events\", | field |)",
        &doc,
    );
    let action_row = lines
        .iter()
        .find(|line| line.starts_with("| `action`"))
        .expect("docs/local.md's event fields table has an `action` row");
    let doc_actions: BTreeSet<String> = code_spans(action_row)
        .into_iter()
        .filter_map(|span| span.strip_prefix('"')?.strip_suffix('"'))
        .map(str::to_owned)
        .collect();
    problems.same(
        "event actions",
        "src/event.rs",
        &actions,
        "the `action` row of docs/local.md's event fields table (as \"value\")",
        &doc_actions,
    );
    problems.check("lists in the docs differ from the code");
}

/// The serialized fields of `pub struct NAME` in `path`, but for a
/// `#[serde(flatten)]` one (its fields are listed on their own) and
/// `#[serde(skip)]` ones.
fn struct_fields(path: &str, name: &str) -> BTreeSet<String> {
    let source = code(path);
    let body = source
        .split(&format!("pub struct {name} {{"))
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .unwrap_or_else(|| panic!("{path} defines no pub struct {name}"));
    let mut fields = BTreeSet::new();
    let mut skip = false;
    for line in body.lines().map(str::trim) {
        if line.starts_with("#[serde(flatten)]") || line.starts_with("#[serde(skip)]") {
            skip = true;
        } else if let Some(field) = line.strip_prefix("pub ") {
            if !skip {
                fields.insert(
                    field
                        .split(':')
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_owned(),
                );
            }
            skip = false;
        }
    }
    fields
}

/// The summary's fields: the counters as serialized, and the fields of
/// `Summary` (src/run.rs) besides the flattened counters.
fn summary_fields() -> BTreeSet<String> {
    let counts = serde_json::to_value(RunCounts::default()).expect("counters serialize");
    let mut fields: BTreeSet<String> = counts
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect();
    fields.extend(struct_fields("src/run.rs", "Summary"));
    fields
}

#[test]
fn the_summary_table_lists_every_field_a_run_returns() {
    let mut problems = Problems::default();
    let code = summary_fields();
    assert!(
        code.contains("indexed") && code.contains("index"),
        "{code:?}"
    );
    let text = read("docs/operations.md");
    let doc = names_in_first_column("docs/operations.md", &text, "What a run returns");
    problems.same(
        "summary fields",
        "RunCounts (src/counts.rs) and Summary (src/run.rs)",
        &code,
        "docs/operations.md's \"What a run returns\" table",
        &doc,
    );
    problems.check("lists in the docs differ from the code");
}

fn template() -> serde_norway::Value {
    serde_norway::from_str(&read("template.yaml")).expect("template.yaml parses")
}

fn keys(value: &serde_norway::Value) -> impl Iterator<Item = String> + '_ {
    value
        .as_mapping()
        .into_iter()
        .flat_map(|mapping| mapping.keys())
        .filter_map(|key| key.as_str().map(str::to_owned))
}

#[test]
fn the_replay_summary_table_lists_every_field_a_replay_returns() {
    let mut problems = Problems::default();
    let code = struct_fields("src/replay.rs", "ReplaySummary");
    assert!(code.contains("cursor"), "{code:?}");
    let text = read("docs/operations.md");
    let lines = section("docs/operations.md", &text, "Replay");
    let lines: Vec<&str> = lines
        .iter()
        .skip_while(|line| !line.starts_with("| field"))
        .copied()
        .collect();
    let doc = first_column("docs/operations.md", &lines, "Replay")
        .into_iter()
        .flat_map(code_spans)
        .map(str::to_owned)
        .collect();
    problems.same(
        "replay summary fields",
        "ReplaySummary (src/replay.rs)",
        &code,
        "docs/operations.md's \"Replay\" field table",
        &doc,
    );
    problems.check("lists in the docs differ from the code");
}

#[test]
fn development_md_lists_every_test_file() {
    let mut problems = Problems::default();
    let code: BTreeSet<String> = rust_files("tests").into_iter().collect();
    let text = read("docs/development.md");
    let lines = section("docs/development.md", &text, "Tests");
    let lines: Vec<&str> = lines
        .iter()
        .skip_while(|line| !line.starts_with("| test file"))
        .copied()
        .collect();
    let doc = first_column("docs/development.md", &lines, "Tests")
        .into_iter()
        .flat_map(code_spans)
        .filter(|span| span.ends_with(".rs"))
        .map(str::to_owned)
        .collect();
    problems.same(
        "test files",
        "tests/*.rs",
        &code,
        "docs/development.md's test file table",
        &doc,
    );
    problems.check("lists in the docs differ from the code");
}

#[test]
fn the_metrics_table_and_the_alarm_list_match_the_code_and_the_template() {
    let mut problems = Problems::default();
    let text = read("docs/operations.md");
    let code: BTreeSet<String> = METRIC_NAMES.iter().map(|name| (*name).to_owned()).collect();
    let doc = names_in_first_column("docs/operations.md", &text, "Alarms and metrics");
    problems.same(
        "EMF metrics",
        "METRIC_NAMES (src/counts.rs run_counts!)",
        &code,
        "docs/operations.md's metrics table",
        &doc,
    );

    let template = template();
    let alarms: BTreeSet<String> = keys(&template["Resources"])
        .filter(|id| {
            template["Resources"][id.as_str()]["Type"].as_str() == Some("AWS::CloudWatch::Alarm")
        })
        .map(|id| id.strip_suffix("Alarm").unwrap_or(&id).to_owned())
        .collect();
    assert!(
        !alarms.is_empty(),
        "template.yaml has no AWS::CloudWatch::Alarm"
    );
    // The list's items: `- **SpoolBacklog**: …` for SpoolBacklogAlarm.
    let listed: BTreeSet<String> = section("docs/operations.md", &text, "Alarms and metrics")
        .iter()
        .filter_map(|line| line.strip_prefix("- **")?.split("**").next())
        .map(str::to_owned)
        .collect();
    problems.same(
        "alarms (logical ID without `Alarm`)",
        "template.yaml's AWS::CloudWatch::Alarm resources",
        &alarms,
        "docs/operations.md's alarm list (`- **Name**`)",
        &listed,
    );
    problems.check("lists in the docs differ from the code");
}

#[test]
fn deploy_md_lists_every_template_parameter_and_output() {
    let mut problems = Problems::default();
    let template = template();
    let text = read("docs/deploy.md");
    for (key, title) in [("Parameters", "Parameters"), ("Outputs", "Outputs")] {
        let code: BTreeSet<String> = keys(&template[key]).collect();
        assert!(!code.is_empty(), "template.yaml has no {key}");
        let doc = names_in_first_column("docs/deploy.md", &text, title);
        problems.same(
            &format!("template {key}"),
            &format!("template.yaml's {key}"),
            &code,
            &format!("docs/deploy.md's {title:?} table"),
            &doc,
        );
    }
    problems.check("lists in the docs differ from the code");
}

// ---------------------------------------------------------------- paths and links

const MARKDOWN: [&str; 1] = ["README.md"];

fn markdown_files() -> Vec<String> {
    let mut files: Vec<String> = MARKDOWN.iter().map(|f| (*f).to_owned()).collect();
    let mut docs: Vec<String> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok())
        .map(|e| format!("docs/{}", e.file_name().to_string_lossy()))
        .filter(|name| name.ends_with(".md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// GitHub's anchor for a heading: lowercase, punctuation dropped, spaces
/// to hyphens; a repeated one gets `-1`, `-2`, ….
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, line) in prose(text) {
        let Some((_, title)) = heading(line) else {
            continue;
        };
        let slug: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while seen.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        seen.insert(candidate);
    }
    for (at, _) in text
        .match_indices("<a id=\"")
        .chain(text.match_indices("<a name=\""))
    {
        let rest = &text[at..];
        let start = rest.find('"').map_or(0, |i| i + 1);
        if let Some(end) = rest[start..].find('"') {
            seen.insert(rest[start..start + end].to_owned());
        }
    }
    seen
}

/// The targets of `[text](target)` links in `line`, outside code spans.
fn link_targets(line: &str) -> Vec<String> {
    let outside_code: String = line
        .split('`')
        .enumerate()
        .map(|(i, part)| if i % 2 == 0 { part } else { "" })
        .collect::<Vec<_>>()
        .join("``");
    outside_code
        .match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &outside_code[at + 2..];
            let end = rest.find(')')?;
            Some(
                rest[..end]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

/// The top-level entries of the repository a path in the docs may start
/// with (what git tracks; build output and tool caches are not named).
fn top_level() -> BTreeSet<String> {
    // What git tracks: build output (target/, .aws-sam/, .venv/) comes and
    // goes, and must not decide which words are paths.
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .expect("git ls-files");
    assert!(listed.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&listed.stdout)
        .split('\0')
        .filter_map(|path| path.split('/').next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Words of prose and of code spans that name a repository path:
/// `src/hub/mod.rs`, `scripts/test`, `template.yaml`.
fn named_paths(line: &str, top: &BTreeSet<String>, ssm: &BTreeSet<String>) -> Vec<String> {
    line.split(|c: char| c.is_whitespace() || "`()[],;\"'".contains(c))
        .map(|word| word.trim_end_matches(['.', ':']))
        .filter(|word| !word.contains("://") && !word.starts_with('/'))
        .filter(|word| {
            let first = word.split('/').next().unwrap_or_default();
            top.contains(first) && (word.contains('/') || first.contains('.'))
        })
        // `elasticsearch/url` is a parameter, not the directory.
        .filter(|word| ssm_name(word).is_none_or(|name| !ssm.contains(&name)))
        .filter(|word| !word.contains(['<', '…', '$', '{', '=']))
        .map(|word| word.split('#').next().unwrap_or_default().to_owned())
        .collect()
}

/// Whether `path` exists, a `*` in its last part matching any name.
fn exists(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    match name {
        Some(name) if name.contains('*') => {
            let (head, tail) = name.split_once('*').unwrap_or_default();
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::read_dir(dir).is_ok_and(|entries| {
                entries.filter_map(|e| e.ok()).any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(head) && n.ends_with(tail)
                })
            })
        }
        _ => path.exists(),
    }
}

#[test]
fn every_path_and_link_the_docs_name_exists() {
    let top = top_level();
    let ssm = ssm_parameters();
    let mut problems = Vec::new();
    for file in markdown_files() {
        let text = read(&file);
        let dir = Path::new(&file)
            .parent()
            .unwrap_or(Path::new(""))
            .to_path_buf();
        for (number, line) in prose(&text) {
            for target in link_targets(line) {
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, anchor) = match target.split_once('#') {
                    Some((path, anchor)) => (path, Some(anchor)),
                    None => (target.as_str(), None),
                };
                let linked = if path.is_empty() {
                    PathBuf::from(&file)
                } else {
                    dir.join(path)
                };
                if !root().join(&linked).exists() {
                    problems.push(format!(
                        "  {file}:{number}: link `{target}`: no file {}",
                        linked.display()
                    ));
                    continue;
                }
                if let Some(anchor) = anchor
                    && linked.extension().is_some_and(|e| e == "md")
                {
                    let linked_text =
                        std::fs::read_to_string(root().join(&linked)).unwrap_or_default();
                    if !anchors(&linked_text).contains(anchor) {
                        problems.push(format!(
                            "  {file}:{number}: link `{target}`: {} has no heading with anchor #{anchor}",
                            linked.display()
                        ));
                    }
                }
            }
            for path in named_paths(line, &top, &ssm) {
                if !exists(&root().join(&path)) {
                    problems.push(format!(
                        "  {file}:{number}: `{path}` does not exist in the repository"
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "paths and links in README.md and docs/ that lead nowhere:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_markdown_helpers_read_what_github_shows() {
    let text = "# A\n\n```sh\n# not a heading\n```\n\n## Signing with the function's role (`elasticsearch/aws_auth`)\n\n| name | x |\n|---|---|\n| `a`, `b/<c>` | `d` |\n| `es\\|aoss` | e |\n\n## A\n";
    let found = anchors(text);
    assert!(
        // GitHub drops the `/`, keeps the `_`.
        found.contains("signing-with-the-functions-role-elasticsearchaws_auth"),
        "{found:?}"
    );
    assert!(
        found.contains("a") && found.contains("a-1") && !found.contains("not-a-heading"),
        "{found:?}"
    );
    let lines = section("t", text, "Signing");
    assert_eq!(
        first_column("t", &lines, "Signing"),
        ["`a`, `b/<c>`", "`es\\|aoss`"]
    );
    assert_eq!(ssm_name("b/<c>").as_deref(), Some("b/*"));
    assert_eq!(
        literals(r#"get("x/y") == '"' ; "A_B\"C""#),
        ["x/y", "A_B\"C"]
    );
    assert_eq!(link_targets("see [x](a.md#b) and `[y](z)`"), ["a.md#b"]);
    assert_eq!(
        flags_in("--es-url URL, -h, --help; not-a-flag --X"),
        ["--es-url", "--help", "-h"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    );
}
