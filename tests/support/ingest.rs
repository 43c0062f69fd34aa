//! Ingest pipelines, executed the way Elasticsearch documents and implements
//! them, so tests can prove what a pipeline does to an already trimmed
//! document without a real cluster.
//!
//! Why this exists: the seed article's `docker-hub-pulls` pipeline starts with
//! a `remove` processor that has no `ignore_missing`, so on a document that
//! arrives trimmed it *fails* (`field [ecs] not present as part of path
//! [ecs]`). The Lambda must cope with that (re-send without the pipeline), and
//! our own pipeline must not fail. Both claims are only worth something if the
//! fake applies the same rules as Elasticsearch, so this module follows the
//! Elasticsearch sources (`IngestDocument`, `CompoundProcessor`,
//! `ConfigurationUtils`, the `remove`/`set`/`rename`/`fail` processors) down
//! to their error messages:
//!
//! - configuration is validated first, like `PUT _ingest/pipeline` does:
//!   unknown keys, missing required properties and unknown processor types
//!   are `parse_exception`s;
//! - field paths are the "classic" dotted paths into objects, with numeric
//!   segments indexing arrays and the `_source.` / `_ingest.` prefixes;
//! - processors mutate the document in place and nothing is rolled back when
//!   a later processor fails;
//! - `ignore_failure` wins over `on_failure`; a processor's `on_failure`
//!   handlers run and the pipeline then continues; the pipeline's
//!   `on_failure` handlers run instead of the remaining processors; the
//!   `_ingest.on_failure_*` metadata is visible to those handlers;
//! - `if` conditions are evaluated with a small Painless subset (field access
//!   with `.`, `?.` and `['x']`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `!`, `&&`,
//!   `||`, literals, and `containsKey`, `isEmpty`, `size`, `contains`,
//!   `startsWith`, `endsWith`, `equals`). Anything else is refused when the
//!   pipeline is compiled, so a test never silently runs a processor that the
//!   real cluster would have skipped.
//!
//! Real processors the fake does not implement are refused at compile time
//! with a message that says so, rather than being skipped.

use std::fmt;

use serde_json::{Map, Value};

/// Why a pipeline failed on a document: the `type`, `reason` and (for
/// exceptions that have one) `caused_by` Elasticsearch puts in the bulk
/// item's `error` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestFailure {
    pub error_type: String,
    pub reason: String,
    /// The nested cause, rendered by Elasticsearch as `caused_by` (a script
    /// error's underlying Java exception, for instance).
    pub caused_by: Option<Box<IngestFailure>>,
}

impl IngestFailure {
    fn new(error_type: &str, reason: impl Into<String>) -> Self {
        Self {
            error_type: error_type.to_owned(),
            reason: reason.into(),
            caused_by: None,
        }
    }

    fn caused_by(mut self, cause: IngestFailure) -> Self {
        self.caused_by = Some(Box::new(cause));
        self
    }

    /// `IllegalArgumentException`, what `IngestDocument` throws for paths.
    fn illegal_argument(reason: impl Into<String>) -> Self {
        Self::new("illegal_argument_exception", reason)
    }

    /// `ElasticsearchParseException`, what pipeline configuration errors are.
    fn parse(reason: impl Into<String>) -> Self {
        Self::new("parse_exception", reason)
    }

    /// The innermost cause (this failure when it has none).
    pub fn root_cause(&self) -> &IngestFailure {
        let mut failure = self;
        while let Some(cause) = &failure.caused_by {
            failure = cause;
        }
        failure
    }

    /// The bulk item status Elasticsearch 7.5+ gives this failure:
    /// `IngestProcessorException` is unwrapped (elastic/elasticsearch#48810)
    /// and `ExceptionsHelper.status` looks at the cause. An
    /// `IllegalArgumentException`, a `ScriptException` and a parse error are
    /// 400; the `fail` processor's `FailProcessorException` is a plain
    /// `RuntimeException` and `GeneralScriptException` keeps the default, so
    /// both are 500.
    pub fn status(&self) -> u16 {
        match self.error_type.as_str() {
            "fail_processor_exception" | "general_script_exception" => 500,
            _ => 400,
        }
    }

    /// The `error` object as Elasticsearch renders it: `type`, `reason`, then
    /// `caused_by` when there is a cause.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("type".to_owned(), Value::String(self.error_type.clone()));
        object.insert("reason".to_owned(), Value::String(self.reason.clone()));
        if let Some(cause) = &self.caused_by {
            object.insert("caused_by".to_owned(), cause.to_json());
        }
        Value::Object(object)
    }

    /// Java's `toString()` of the exception this failure stands for, as
    /// Elasticsearch 7.0–7.4 embedded it in the reasons of the wrappers it
    /// put around processor failures: `Class: message` for a plain Java
    /// exception, `ExceptionsHelper.detailedMessage` for an Elasticsearch one.
    pub fn java_to_string(&self) -> String {
        match self.error_type.as_str() {
            "script_exception" | "general_script_exception" | "parse_exception" => {
                let mut text = String::new();
                let mut next = Some(self);
                while let Some(failure) = next {
                    if !text.is_empty() {
                        text.push_str("nested: ");
                    }
                    text.push_str(&format!(
                        "{}[{}]; ",
                        java_simple_name(&failure.error_type),
                        failure.reason
                    ));
                    next = failure.caused_by.as_deref();
                }
                let text = text.trim_end().to_owned();
                if self.caused_by.is_some() {
                    text
                } else {
                    text.trim_end_matches(';').to_owned()
                }
            }
            other => format!("{}: {}", java_class_name(other), self.reason),
        }
    }
}

/// The simple Java class name of an exception type (`null_pointer_exception`
/// is `NullPointerException`); Elasticsearch drops the `Elasticsearch` prefix
/// when it names its own exceptions, so `parse_exception` gets it back.
fn java_simple_name(error_type: &str) -> String {
    if error_type == "parse_exception" {
        return "ElasticsearchParseException".to_owned();
    }
    error_type
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect::<String>()
            })
        })
        .collect()
}

/// The fully qualified class name `Throwable.toString()` prints.
fn java_class_name(error_type: &str) -> String {
    let simple = java_simple_name(error_type);
    match error_type {
        "fail_processor_exception" => format!("org.elasticsearch.ingest.common.{simple}"),
        _ => format!("java.lang.{simple}"),
    }
}

impl fmt::Display for IngestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.reason)?;
        if let Some(cause) = &self.caused_by {
            write!(f, " (caused by {cause})")?;
        }
        Ok(())
    }
}

impl std::error::Error for IngestFailure {}

/// A pipeline failure with the processor that raised it: what Elasticsearch
/// records in the `processor_type` / `processor_tag` headers of the
/// exception it wraps the failure in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineFailure {
    pub failure: IngestFailure,
    /// `None` when the pipeline failed before any processor ran (it did not
    /// compile, or the source is not an object).
    pub processor_type: Option<String>,
    pub processor_tag: Option<String>,
}

/// Runs `pipeline` (the body of `PUT _ingest/pipeline/<id>`) on `doc` (a
/// document's `_source`), changing `doc` in place.
///
/// On failure `doc` keeps whatever the processors before the failing one did,
/// exactly as an Elasticsearch ingest document would; the caller (like
/// Elasticsearch) must then not index it.
pub fn run_pipeline(pipeline: &Value, doc: &mut Value) -> Result<(), IngestFailure> {
    run_pipeline_traced(pipeline, doc).map_err(|failed| failed.failure)
}

/// [`run_pipeline`], also saying which processor failed (the innermost one:
/// a failing `on_failure` handler rather than the processor it handled, as
/// `CompoundProcessor.newCompoundProcessorException` keeps the first
/// `processor_type` header it sees).
pub fn run_pipeline_traced(pipeline: &Value, doc: &mut Value) -> Result<(), PipelineFailure> {
    let untraced = |failure| PipelineFailure {
        failure,
        processor_type: None,
        processor_tag: None,
    };
    let compiled = Pipeline::compile("_simulate_pipeline", pipeline).map_err(untraced)?;
    if !doc.is_object() {
        return Err(untraced(IngestFailure::illegal_argument(format!(
            "the document source must be an object, not [{}]",
            java_type(doc)
        ))));
    }
    let mut ingest = Map::new();
    ingest.insert("timestamp".to_owned(), Value::String(now_rfc3339()));
    let mut ctx = Ctx {
        source: doc,
        ingest: Value::Object(ingest),
        pipeline_id: "_simulate_pipeline",
        failed_processor: None,
    };
    run_compound(&compiled.processors, &compiled.on_failure, false, &mut ctx).map_err(|failure| {
        let (processor_type, processor_tag) = match ctx.failed_processor.take() {
            Some((kind, tag)) => (Some(kind.to_owned()), tag),
            None => (None, None),
        };
        PipelineFailure {
            failure,
            processor_type,
            processor_tag,
        }
    })
}

/// Validates a pipeline definition the way `PUT _ingest/pipeline/<id>` does,
/// so the fake can answer 400 instead of storing something unusable.
pub fn validate_pipeline(id: &str, pipeline: &Value) -> Result<(), IngestFailure> {
    Pipeline::compile(id, pipeline).map(|_| ())
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Compilation
// ---------------------------------------------------------------------------

struct Pipeline {
    processors: Vec<Processor>,
    on_failure: Vec<Processor>,
}

struct Processor {
    kind: Kind,
    tag: Option<String>,
    condition: Option<Expr>,
    ignore_failure: bool,
    on_failure: Vec<Processor>,
}

enum Kind {
    Remove {
        fields: Vec<String>,
        keep: Vec<String>,
        ignore_missing: bool,
    },
    Set {
        field: String,
        value: Option<Value>,
        copy_from: Option<String>,
        override_existing: bool,
        ignore_empty_value: bool,
    },
    Rename {
        field: String,
        target_field: String,
        ignore_missing: bool,
        override_existing: bool,
    },
    Fail {
        message: String,
    },
    /// A `script` processor whose Painless source is one the fake has a Rust
    /// model of (see [`MODELLED_SCRIPTS`]).
    ModelledScript {
        model: ScriptModel,
    },
}

/// Painless scripts the fake can run, each by a Rust model of what it does,
/// matched on the exact source text: editing the script in
/// elasticsearch/pipeline.json makes the fake refuse it until the model is
/// updated too. Nothing here checks the Painless itself; `_simulate` on a
/// real cluster does (README.md, "Seeing the data in Kibana").
const MODELLED_SCRIPTS: &[(&str, ScriptModel)] = &[(COUNTS_TO_LONG_SOURCE, counts_to_long)];

/// What a modelled script does to the document's source.
type ScriptModel = fn(&mut Value);

/// The source of our pipeline's `docker-pulls-counts-to-long` script.
const COUNTS_TO_LONG_SOURCE: &str = "def http = ctx.get('http'); if (http instanceof Map) { def hub = http.get('docker_hub'); if (hub instanceof Map) { for (def f : ['pull_count', 'star_count', 'collaborator_count']) { def v = hub.get(f); if (v instanceof Double || v instanceof Float) { hub.put(f, Math.round(((Number) v).doubleValue())); } } } }";

/// The model of `docker-pulls-counts-to-long`: a float count becomes the
/// nearest integer (`Math.round`); integers and absent fields are untouched.
fn counts_to_long(source: &mut Value) {
    let Some(hub) = source
        .pointer_mut("/http/docker_hub")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for field in ["pull_count", "star_count", "collaborator_count"] {
        if let Some(count) = hub
            .get(field)
            .filter(|v| v.is_f64())
            .and_then(Value::as_f64)
        {
            hub.insert(field.to_owned(), Value::from(count.round() as i64));
        }
    }
}

impl Kind {
    fn type_name(&self) -> &'static str {
        match self {
            Kind::Remove { .. } => "remove",
            Kind::Set { .. } => "set",
            Kind::Rename { .. } => "rename",
            Kind::Fail { .. } => "fail",
            Kind::ModelledScript { .. } => "script",
        }
    }
}

/// Processor types that exist in Elasticsearch 8 but that this fake does not
/// execute: naming one is a test-setup problem, not an unknown type.
const REAL_BUT_UNIMPLEMENTED: &[&str] = &[
    "append",
    "attachment",
    "bytes",
    "circle",
    "community_id",
    "convert",
    "csv",
    "date",
    "date_index_name",
    "dissect",
    "dot_expander",
    "drop",
    "enrich",
    "fingerprint",
    "foreach",
    "geo_grid",
    "geoip",
    "grok",
    "gsub",
    "html_strip",
    "inference",
    "join",
    "json",
    "kv",
    "lowercase",
    "network_direction",
    "pipeline",
    "redact",
    "registered_domain",
    "reroute",
    "script",
    "set_security_user",
    "sort",
    "split",
    "terminate",
    "trim",
    "uppercase",
    "uri_parts",
    "urldecode",
    "user_agent",
];

impl Pipeline {
    fn compile(id: &str, definition: &Value) -> Result<Self, IngestFailure> {
        let Some(object) = definition.as_object() else {
            return Err(IngestFailure::parse(format!(
                "pipeline [{id}] definition must be an object, not [{}]",
                java_type(definition)
            )));
        };
        let mut config = object.clone();
        for key in ["description", "version", "_meta", "deprecated"] {
            config.remove(key);
        }
        let processors = match config.remove("processors") {
            None | Some(Value::Null) => {
                return Err(IngestFailure::parse(
                    "[processors] required property is missing",
                ));
            }
            Some(value) => compile_list("processors", &value)?,
        };
        let on_failure = match config.remove("on_failure") {
            None | Some(Value::Null) => Vec::new(),
            Some(value) => {
                let list = compile_list("on_failure", &value)?;
                if list.is_empty() {
                    return Err(IngestFailure::parse(format!(
                        "pipeline [{id}] cannot have an empty on_failure option defined"
                    )));
                }
                list
            }
        };
        if !config.is_empty() {
            return Err(IngestFailure::parse(format!(
                "pipeline [{id}] doesn't support one or more provided configuration parameters {}",
                java_list(config.keys())
            )));
        }
        Ok(Self {
            processors,
            on_failure,
        })
    }
}

/// `[a, b]`, the way Java prints a collection in Elasticsearch messages.
fn java_list<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let items: Vec<&str> = items.map(String::as_str).collect();
    format!("[{}]", items.join(", "))
}

fn compile_list(property: &str, value: &Value) -> Result<Vec<Processor>, IngestFailure> {
    let Some(entries) = value.as_array() else {
        return Err(IngestFailure::parse(format!(
            "[{property}] property isn't a list, but of type [{}]",
            java_type(value)
        )));
    };
    let mut processors = Vec::new();
    for entry in entries {
        let Some(entry) = entry.as_object() else {
            return Err(IngestFailure::parse(format!(
                "[{property}] property isn't a list of objects, found [{}]",
                java_type(entry)
            )));
        };
        // Like `ConfigurationUtils.readProcessorConfigs`: every key of an
        // entry is one processor.
        for (processor_type, config) in entry {
            processors.push(compile_processor(processor_type, config)?);
        }
    }
    Ok(processors)
}

fn compile_processor(processor_type: &str, config: &Value) -> Result<Processor, IngestFailure> {
    let modelled_script = (processor_type == "script")
        .then(|| config.get("source").and_then(Value::as_str))
        .flatten()
        .and_then(|source| MODELLED_SCRIPTS.iter().find(|(s, _)| *s == source))
        .map(|(_, model)| *model);
    if modelled_script.is_none() && REAL_BUT_UNIMPLEMENTED.contains(&processor_type) {
        return Err(IngestFailure::parse(format!(
            "processor [{processor_type}] exists in Elasticsearch but is not implemented by the fake (tests/support/ingest.rs)"
        )));
    }
    if modelled_script.is_none() && !matches!(processor_type, "remove" | "set" | "rename" | "fail")
    {
        return Err(IngestFailure::parse(format!(
            "No processor type exists with name [{processor_type}]"
        )));
    }
    let Some(object) = config.as_object() else {
        return Err(IngestFailure::parse(format!(
            "processor [{processor_type}] config must be an object, not [{}]",
            java_type(config)
        )));
    };
    let mut config = Config {
        map: object.clone(),
    };
    // The properties every processor has, read by `ConfigurationUtils.readProcessor`.
    config.map.remove("description");
    let tag = config.optional_string("tag")?;
    let condition = match config.map.remove("if") {
        None | Some(Value::Null) => None,
        Some(Value::String(source)) => Some(compile_condition(&source)?),
        Some(Value::Object(mut script)) => {
            if let Some(lang) = script.remove("lang")
                && lang != "painless"
            {
                return Err(IngestFailure::parse(format!(
                    "[if] script lang [{}] is not supported by the fake",
                    lang.as_str().unwrap_or_default()
                )));
            }
            script.remove("params");
            match script.remove("source") {
                Some(Value::String(source)) if script.is_empty() => {
                    Some(compile_condition(&source)?)
                }
                _ => {
                    return Err(IngestFailure::parse(
                        "[if] must be a string or a script object with [source]",
                    ));
                }
            }
        }
        Some(other) => {
            return Err(IngestFailure::parse(format!(
                "[if] property isn't a string or a script, but of type [{}]",
                java_type(&other)
            )));
        }
    };
    let ignore_failure = config.bool("ignore_failure", false)?;
    let on_failure = match config.map.remove("on_failure") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => {
            let list = compile_list("on_failure", &value)?;
            if list.is_empty() {
                return Err(IngestFailure::parse(
                    "[on_failure] processors list cannot be empty",
                ));
            }
            list
        }
    };

    let kind = match processor_type {
        "remove" => {
            let fields = config.string_or_list("field")?;
            let keep = config.string_or_list("keep")?;
            if fields.is_empty() && keep.is_empty() {
                return Err(IngestFailure::parse("[keep] or [field] must be specified"));
            }
            if !fields.is_empty() && !keep.is_empty() {
                return Err(IngestFailure::parse(
                    "[keep] and [field] cannot both be used in the same processor",
                ));
            }
            Kind::Remove {
                fields,
                keep,
                ignore_missing: config.bool("ignore_missing", false)?,
            }
        }
        "set" => {
            let field = config.required_string("field")?;
            let copy_from = config.optional_string("copy_from")?;
            let value = config.map.remove("value").filter(|v| !v.is_null());
            match (&copy_from, &value) {
                (None, None) => {
                    return Err(IngestFailure::parse("[value] required property is missing"));
                }
                (Some(_), Some(_)) => {
                    return Err(IngestFailure::parse(
                        "[copy_from] cannot set `copy_from` while also setting `value`",
                    ));
                }
                _ => {}
            }
            Kind::Set {
                field,
                value,
                copy_from,
                override_existing: config.bool("override", true)?,
                ignore_empty_value: config.bool("ignore_empty_value", false)?,
            }
        }
        "rename" => Kind::Rename {
            field: config.required_string("field")?,
            target_field: config.required_string("target_field")?,
            ignore_missing: config.bool("ignore_missing", false)?,
            override_existing: config.bool("override", false)?,
        },
        "fail" => Kind::Fail {
            message: config.required_string("message")?,
        },
        "script" => {
            config.map.remove("source");
            if let Some(lang) = config.optional_string("lang")?
                && lang != "painless"
            {
                return Err(IngestFailure::parse(format!(
                    "script lang [{lang}] is not supported by the fake"
                )));
            }
            Kind::ModelledScript {
                model: modelled_script.expect("checked above"),
            }
        }
        _ => unreachable!("checked above"),
    };
    if !config.map.is_empty() {
        return Err(IngestFailure::parse(format!(
            "processor [{processor_type}] doesn't support one or more provided configuration parameters {}",
            java_list(config.map.keys())
        )));
    }
    Ok(Processor {
        kind,
        tag,
        condition,
        ignore_failure,
        on_failure,
    })
}

/// A processor's configuration map, consumed property by property so that
/// whatever is left over can be reported as unsupported, like Elasticsearch.
struct Config {
    map: Map<String, Value>,
}

impl Config {
    fn optional_string(&mut self, name: &str) -> Result<Option<String>, IngestFailure> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(IngestFailure::parse(format!(
                "[{name}] property isn't a string, but of type [{}]",
                java_type(&other)
            ))),
        }
    }

    fn required_string(&mut self, name: &str) -> Result<String, IngestFailure> {
        self.optional_string(name)?
            .ok_or_else(|| IngestFailure::parse(format!("[{name}] required property is missing")))
    }

    fn bool(&mut self, name: &str, default: bool) -> Result<bool, IngestFailure> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(b),
            Some(other) => Err(IngestFailure::parse(format!(
                "[{name}] property isn't a boolean, but of type [{}]",
                java_type(&other)
            ))),
        }
    }

    fn string_or_list(&mut self, name: &str) -> Result<Vec<String>, IngestFailure> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s]),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s),
                    other => Err(IngestFailure::parse(format!(
                        "[{name}] list item isn't a string, but of type [{}]",
                        java_type(&other)
                    ))),
                })
                .collect(),
            Some(other) => Err(IngestFailure::parse(format!(
                "[{name}] property isn't a string or a list of strings, but of type [{}]",
                java_type(&other)
            ))),
        }
    }
}

/// The Java class Elasticsearch names in its messages for a parsed JSON value.
fn java_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "java.lang.Boolean",
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                if i32::try_from(i).is_ok() {
                    "java.lang.Integer"
                } else {
                    "java.lang.Long"
                }
            } else if n.is_u64() {
                "java.math.BigInteger"
            } else {
                "java.lang.Double"
            }
        }
        Value::String(_) => "java.lang.String",
        Value::Array(_) => "java.util.ArrayList",
        Value::Object(_) => "java.util.HashMap",
    }
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

/// The ingest document: the source being changed plus the `_ingest` metadata
/// (`timestamp`, and the `on_failure_*` keys while a handler runs).
struct Ctx<'a> {
    source: &'a mut Value,
    ingest: Value,
    pipeline_id: &'a str,
    /// The type and tag of the processor whose own work failed last.
    failed_processor: Option<(&'static str, Option<String>)>,
}

/// `CompoundProcessor.execute`: run in order; a failure is ignored, handed to
/// the `on_failure` handlers (which end this compound), or propagated.
fn run_compound(
    processors: &[Processor],
    on_failure: &[Processor],
    ignore_failure: bool,
    ctx: &mut Ctx<'_>,
) -> Result<(), IngestFailure> {
    for processor in processors {
        let Err(failure) = run_processor(processor, ctx) else {
            continue;
        };
        if ignore_failure {
            continue;
        }
        if on_failure.is_empty() {
            return Err(failure);
        }
        return run_on_failure(on_failure, &failure, processor, ctx);
    }
    Ok(())
}

fn run_on_failure(
    handlers: &[Processor],
    failure: &IngestFailure,
    failed: &Processor,
    ctx: &mut Ctx<'_>,
) -> Result<(), IngestFailure> {
    const KEYS: [&str; 4] = [
        "on_failure_message",
        "on_failure_processor_type",
        "on_failure_processor_tag",
        "on_failure_pipeline",
    ];
    let values = [
        // `cause.getRootCause().getMessage()`: the innermost cause's.
        Value::String(failure.root_cause().reason.clone()),
        Value::String(failed.kind.type_name().to_owned()),
        failed.tag.clone().map_or(Value::Null, Value::String),
        Value::String(ctx.pipeline_id.to_owned()),
    ];
    let ingest = ctx
        .ingest
        .as_object_mut()
        .expect("ingest metadata is an object");
    let previous: Vec<Option<Value>> = KEYS
        .iter()
        .zip(values)
        .map(|(key, value)| ingest.insert((*key).to_owned(), value))
        .collect();
    let result = run_compound(handlers, &[], false, ctx);
    // Restore, like `CompoundProcessor.removeFailureMetadata`, so nested
    // handlers see their own failure and the outer one sees its own again.
    let ingest = ctx
        .ingest
        .as_object_mut()
        .expect("ingest metadata is an object");
    for (key, old) in KEYS.iter().zip(previous) {
        match old {
            Some(old) => ingest.insert((*key).to_owned(), old),
            None => ingest.remove(*key),
        };
    }
    result
}

/// One configured processor: the condition and the failure handling wrap the
/// processor itself, as `ConfigurationUtils.readProcessor` builds them.
fn run_processor(processor: &Processor, ctx: &mut Ctx<'_>) -> Result<(), IngestFailure> {
    let own_work = |ctx: &mut Ctx<'_>| -> Result<(), IngestFailure> {
        if let Some(condition) = &processor.condition {
            match condition.eval(ctx.source)? {
                Value::Bool(true) => {}
                Value::Bool(false) => return Ok(()),
                other => {
                    return Err(script_runtime_error(
                        "class_cast_exception",
                        format!("condition returned [{}], not a boolean", java_type(&other)),
                    ));
                }
            }
        }
        execute(&processor.kind, ctx)
    };
    let run = |ctx: &mut Ctx<'_>| -> Result<(), IngestFailure> {
        own_work(ctx).inspect_err(|_| {
            ctx.failed_processor = Some((processor.kind.type_name(), processor.tag.clone()));
        })
    };
    if processor.ignore_failure || !processor.on_failure.is_empty() {
        match run(ctx) {
            Ok(()) => Ok(()),
            Err(_) if processor.ignore_failure => Ok(()),
            Err(failure) => run_on_failure(&processor.on_failure, &failure, processor, ctx),
        }
    } else {
        run(ctx)
    }
}

fn execute(kind: &Kind, ctx: &mut Ctx<'_>) -> Result<(), IngestFailure> {
    match kind {
        Kind::Remove {
            fields,
            keep,
            ignore_missing,
        } => {
            if keep.is_empty() {
                for field in fields {
                    let path = render(field, ctx)?;
                    if *ignore_missing {
                        if has_field(ctx, &path, false)? {
                            remove_field(ctx, &path)?;
                        }
                    } else {
                        remove_field(ctx, &path)?;
                    }
                }
            } else {
                let keep: Vec<String> = keep
                    .iter()
                    .map(|k| render(k, ctx))
                    .collect::<Result<_, _>>()?;
                let mut all = Vec::new();
                all_fields(ctx.source, "", &mut all);
                for field in all {
                    let kept = keep.iter().any(|k| {
                        field == *k
                            || k.starts_with(&format!("{field}."))
                            || field.starts_with(&format!("{k}."))
                    });
                    if !kept && has_field(ctx, &field, false)? {
                        remove_field(ctx, &field)?;
                    }
                }
            }
            Ok(())
        }
        Kind::Set {
            field,
            value,
            copy_from,
            override_existing,
            ignore_empty_value,
        } => {
            let path = render(field, ctx)?;
            let proceed = *override_existing
                || !has_field(ctx, &path, false)?
                || get_field(ctx, &path)?.is_null();
            if !proceed {
                return Ok(());
            }
            let new_value = if let Some(from) = copy_from {
                match get_field(ctx, from) {
                    Ok(v) => v,
                    Err(_) if *ignore_empty_value => Value::Null,
                    Err(e) => return Err(e),
                }
            } else {
                resolve_value(value.as_ref().expect("validated at compile time"), ctx)?
            };
            let empty = new_value.is_null() || new_value.as_str() == Some("");
            let templated = copy_from.is_some() || value.as_ref().is_some_and(Value::is_string);
            if *ignore_empty_value && templated && empty {
                return Ok(());
            }
            set_field(ctx, &path, new_value)
        }
        Kind::Rename {
            field,
            target_field,
            ignore_missing,
            override_existing,
        } => {
            let from = render(field, ctx)?;
            let to = render(target_field, ctx)?;
            if !has_field(ctx, &from, true)? {
                if *ignore_missing {
                    return Ok(());
                }
                return Err(IngestFailure::illegal_argument(format!(
                    "field [{from}] doesn't exist"
                )));
            }
            if !override_existing && has_field(ctx, &to, true)? {
                return Err(IngestFailure::illegal_argument(format!(
                    "field [{to}] already exists"
                )));
            }
            let value = get_field(ctx, &from)?;
            remove_field(ctx, &from)?;
            if let Err(e) = set_field(ctx, &to, value.clone()) {
                set_field(ctx, &from, value)?;
                return Err(e);
            }
            Ok(())
        }
        Kind::Fail { message } => Err(IngestFailure::new(
            "fail_processor_exception",
            render(message, ctx)?,
        )),
        Kind::ModelledScript { model } => {
            model(ctx.source);
            Ok(())
        }
    }
}

/// Every field path of an object, parents before children
/// (`IngestDocument.getAllFields`); arrays are leaves.
fn all_fields(value: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.push(path.clone());
            all_fields(child, &path, out);
        }
    }
}

/// A `set` value: strings are Mustache templates, containers are resolved
/// recursively, everything else is taken as is (`ValueSource.wrap`).
fn resolve_value(value: &Value, ctx: &Ctx<'_>) -> Result<Value, IngestFailure> {
    Ok(match value {
        Value::String(template) => Value::String(render(template, ctx)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| resolve_value(item, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((render(k, ctx)?, resolve_value(v, ctx)?)))
                .collect::<Result<_, IngestFailure>>()?,
        ),
        other => other.clone(),
    })
}

/// Renders `{{name}}` / `{{{name}}}` Mustache variables against the document
/// and the `_ingest` metadata. Sections and partials are not supported and
/// fail loudly rather than render something Elasticsearch would not.
fn render(template: &str, ctx: &Ctx<'_>) -> Result<String, IngestFailure> {
    if !template.contains("{{") {
        return Ok(template.to_owned());
    }
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        let (open, close) = if after.starts_with("{{{") {
            ("{{{", "}}}")
        } else {
            ("{{", "}}")
        };
        let inner = &after[open.len()..];
        let Some(end) = inner.find(close) else {
            return Err(IngestFailure::new(
                "general_script_exception",
                format!("Failed to compile inline script [{template}] using lang [mustache]"),
            ));
        };
        let name = inner[..end].trim();
        if name.starts_with(['#', '^', '/', '>', '!', '&', '=']) {
            return Err(IngestFailure::parse(format!(
                "the fake only renders plain Mustache variables, not [{name}] in [{template}]"
            )));
        }
        let (root, rest_of_name) = if let Some(stripped) = name.strip_prefix("_ingest.") {
            (&ctx.ingest, stripped)
        } else if let Some(stripped) = name.strip_prefix("_source.") {
            (&*ctx.source, stripped)
        } else {
            (&*ctx.source, name)
        };
        let mut current = Some(root);
        for part in rest_of_name.split('.') {
            current = current.and_then(|v| match v {
                Value::Object(map) => map.get(part),
                Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            });
        }
        match current {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => out.push_str(s),
            Some(other) => out.push_str(&other.to_string()),
        }
        rest = &inner[end + close.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

// ---------------------------------------------------------------------------
// Field paths (IngestDocument, classic access pattern)
// ---------------------------------------------------------------------------

mod errors {
    pub fn not_present(path: &str, key: &str) -> String {
        format!("field [{key}] not present as part of path [{path}]")
    }

    pub fn cannot_resolve(path: &str, key: &str, parent: Option<&str>) -> String {
        match parent {
            None => format!("cannot resolve [{key}] from null as part of path [{path}]"),
            Some(t) => {
                format!("cannot resolve [{key}] from object of type [{t}] as part of path [{path}]")
            }
        }
    }

    pub fn cannot_remove(path: &str, key: &str, parent: Option<&str>) -> String {
        match parent {
            None => format!("cannot remove [{key}] from null as part of path [{path}]"),
            Some(t) => {
                format!("cannot remove [{key}] from object of type [{t}] as part of path [{path}]")
            }
        }
    }

    pub fn cannot_set(path: &str, key: &str, parent: Option<&str>) -> String {
        match parent {
            None => format!("cannot set [{key}] with null parent as part of path [{path}]"),
            Some(t) => format!(
                "cannot set [{key}] with parent object of type [{t}] as part of path [{path}]"
            ),
        }
    }

    pub fn out_of_bounds(path: &str, index: i32, len: usize) -> String {
        format!("[{index}] is out of bounds for array with length [{len}] as part of path [{path}]")
    }

    pub fn not_integer(path: &str, key: &str) -> String {
        format!("[{key}] is not an integer, cannot be used as an index as part of path [{path}]")
    }
}

/// A parsed field path: whether it addresses `_ingest` metadata, and its
/// dot-separated elements (Java's `String.split`, trailing empties dropped).
fn parse_path(path: &str) -> Result<(bool, Vec<&str>), IngestFailure> {
    if path.is_empty() {
        return Err(IngestFailure::illegal_argument(
            "path cannot be null nor empty",
        ));
    }
    let (ingest, rest) = if let Some(rest) = path.strip_prefix("_ingest.") {
        (true, rest)
    } else if let Some(rest) = path.strip_prefix("_source.") {
        (false, rest)
    } else {
        (false, path)
    };
    let mut elements: Vec<&str> = rest.split('.').collect();
    while elements.len() > 1 && elements.last() == Some(&"") {
        elements.pop();
    }
    if elements.iter().all(|e| e.is_empty()) {
        return Err(IngestFailure::illegal_argument(format!(
            "path [{path}] is not valid"
        )));
    }
    Ok((ingest, elements))
}

/// `Integer.parseInt`: optional sign, ASCII digits, 32-bit range.
fn parse_java_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn root_mut<'a>(ctx: &'a mut Ctx<'_>, ingest: bool) -> &'a mut Value {
    if ingest { &mut ctx.ingest } else { ctx.source }
}

fn root<'a>(ctx: &'a Ctx<'_>, ingest: bool) -> &'a Value {
    if ingest { &ctx.ingest } else { ctx.source }
}

/// `IngestDocument.resolve`: walks every element, failing like Elasticsearch.
fn resolve<'v>(mut current: &'v Value, elements: &[&str], path: &str) -> Result<&'v Value, String> {
    for element in elements {
        current = match current {
            Value::Null => return Err(errors::cannot_resolve(path, element, None)),
            Value::Object(map) => map
                .get(*element)
                .ok_or_else(|| errors::not_present(path, element))?,
            Value::Array(items) => {
                let index =
                    parse_java_int(element).ok_or_else(|| errors::not_integer(path, element))?;
                usize::try_from(index)
                    .ok()
                    .and_then(|i| items.get(i))
                    .ok_or_else(|| errors::out_of_bounds(path, index, items.len()))?
            }
            other => {
                return Err(errors::cannot_resolve(
                    path,
                    element,
                    Some(java_type(other)),
                ));
            }
        };
    }
    Ok(current)
}

fn resolve_mut<'v>(
    mut current: &'v mut Value,
    elements: &[&str],
    path: &str,
) -> Result<&'v mut Value, String> {
    for element in elements {
        current = match current {
            Value::Null => return Err(errors::cannot_resolve(path, element, None)),
            Value::Object(map) => map
                .get_mut(*element)
                .ok_or_else(|| errors::not_present(path, element))?,
            Value::Array(items) => {
                let index =
                    parse_java_int(element).ok_or_else(|| errors::not_integer(path, element))?;
                let len = items.len();
                usize::try_from(index)
                    .ok()
                    .and_then(|i| items.get_mut(i))
                    .ok_or_else(|| errors::out_of_bounds(path, index, len))?
            }
            other => {
                return Err(errors::cannot_resolve(
                    path,
                    element,
                    Some(java_type(other)),
                ));
            }
        };
    }
    Ok(current)
}

/// `IngestDocument.hasField(path, failOutOfRange)`.
fn has_field(ctx: &Ctx<'_>, path: &str, fail_out_of_range: bool) -> Result<bool, IngestFailure> {
    let (ingest, elements) = parse_path(path)?;
    let (leaf, containers) = elements.split_last().expect("at least one element");
    let mut current = root(ctx, ingest);
    for element in containers {
        current = match current {
            Value::Object(map) => match map.get(*element) {
                Some(v) => v,
                None => return Ok(false),
            },
            Value::Array(items) => {
                let Some(index) = parse_java_int(element) else {
                    return Ok(false);
                };
                match usize::try_from(index).ok().and_then(|i| items.get(i)) {
                    Some(v) => v,
                    None if fail_out_of_range => {
                        return Err(IngestFailure::illegal_argument(errors::out_of_bounds(
                            path,
                            index,
                            items.len(),
                        )));
                    }
                    None => return Ok(false),
                }
            }
            _ => return Ok(false),
        };
    }
    Ok(match current {
        Value::Object(map) => map.contains_key(*leaf),
        Value::Array(items) => match parse_java_int(leaf) {
            None => false,
            Some(index) => {
                let found = usize::try_from(index).is_ok_and(|i| i < items.len());
                if !found && fail_out_of_range {
                    return Err(IngestFailure::illegal_argument(errors::out_of_bounds(
                        path,
                        index,
                        items.len(),
                    )));
                }
                found
            }
        },
        _ => false,
    })
}

/// `IngestDocument.getFieldValue(path, Object.class)`.
fn get_field(ctx: &Ctx<'_>, path: &str) -> Result<Value, IngestFailure> {
    let (ingest, elements) = parse_path(path)?;
    resolve(root(ctx, ingest), &elements, path)
        .cloned()
        .map_err(IngestFailure::illegal_argument)
}

/// `IngestDocument.removeField(path)`, without `ignoreMissing`.
fn remove_field(ctx: &mut Ctx<'_>, path: &str) -> Result<(), IngestFailure> {
    let (ingest, elements) = parse_path(path)?;
    let (leaf, containers) = elements.split_last().expect("at least one element");
    let parent = resolve_mut(root_mut(ctx, ingest), containers, path)
        .map_err(IngestFailure::illegal_argument)?;
    match parent {
        Value::Null => Err(IngestFailure::illegal_argument(errors::cannot_remove(
            path, leaf, None,
        ))),
        Value::Object(map) => match map.remove(*leaf) {
            Some(_) => Ok(()),
            None => Err(IngestFailure::illegal_argument(errors::not_present(
                path, leaf,
            ))),
        },
        Value::Array(items) => {
            let index = parse_java_int(leaf)
                .ok_or_else(|| IngestFailure::illegal_argument(errors::not_integer(path, leaf)))?;
            match usize::try_from(index).ok().filter(|i| *i < items.len()) {
                Some(i) => {
                    items.remove(i);
                    Ok(())
                }
                None => Err(IngestFailure::illegal_argument(errors::out_of_bounds(
                    path,
                    index,
                    items.len(),
                ))),
            }
        }
        other => Err(IngestFailure::illegal_argument(errors::cannot_remove(
            path,
            leaf,
            Some(java_type(other)),
        ))),
    }
}

/// `IngestDocument.setFieldValue(path, value)`: missing objects on the way
/// are created, anything else in the way is an error.
fn set_field(ctx: &mut Ctx<'_>, path: &str, value: Value) -> Result<(), IngestFailure> {
    let (ingest, elements) = parse_path(path)?;
    let (leaf, containers) = elements.split_last().expect("at least one element");
    let mut current = root_mut(ctx, ingest);
    for element in containers {
        current = match current {
            Value::Null => {
                return Err(IngestFailure::illegal_argument(errors::cannot_resolve(
                    path, element, None,
                )));
            }
            Value::Object(map) => map
                .entry((*element).to_owned())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => {
                let index = parse_java_int(element).ok_or_else(|| {
                    IngestFailure::illegal_argument(errors::not_integer(path, element))
                })?;
                let len = items.len();
                usize::try_from(index)
                    .ok()
                    .and_then(|i| items.get_mut(i))
                    .ok_or_else(|| {
                        IngestFailure::illegal_argument(errors::out_of_bounds(path, index, len))
                    })?
            }
            other => {
                return Err(IngestFailure::illegal_argument(errors::cannot_resolve(
                    path,
                    element,
                    Some(java_type(other)),
                )));
            }
        };
    }
    match current {
        Value::Null => Err(IngestFailure::illegal_argument(errors::cannot_set(
            path, leaf, None,
        ))),
        Value::Object(map) => {
            map.insert((*leaf).to_owned(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = parse_java_int(leaf)
                .ok_or_else(|| IngestFailure::illegal_argument(errors::not_integer(path, leaf)))?;
            let len = items.len();
            match usize::try_from(index).ok().and_then(|i| items.get_mut(i)) {
                Some(slot) => {
                    *slot = value;
                    Ok(())
                }
                None => Err(IngestFailure::illegal_argument(errors::out_of_bounds(
                    path, index, len,
                ))),
            }
        }
        other => Err(IngestFailure::illegal_argument(errors::cannot_set(
            path,
            leaf,
            Some(java_type(other)),
        ))),
    }
}

// ---------------------------------------------------------------------------
// `if` conditions: a Painless subset
// ---------------------------------------------------------------------------

/// A Painless runtime failure: `script_exception` / `runtime error` with the
/// Java exception underneath as `caused_by`, as Elasticsearch renders it.
/// (Elasticsearch also adds `script_stack`, `script`, `lang` and `position`;
/// the fake leaves those out.)
fn script_runtime_error(cause_type: &str, detail: String) -> IngestFailure {
    IngestFailure::new("script_exception", "runtime error")
        .caused_by(IngestFailure::new(cause_type, detail))
}

fn compile_condition(source: &str) -> Result<Expr, IngestFailure> {
    let tokens = tokenize(source).map_err(|detail| compile_error(source, &detail))?;
    let mut parser = Parser { tokens, pos: 0 };
    let expr = parser
        .or()
        .map_err(|detail| compile_error(source, &detail))?;
    if parser.pos != parser.tokens.len() {
        return Err(compile_error(source, "unexpected trailing input"));
    }
    Ok(expr)
}

fn compile_error(source: &str, detail: &str) -> IngestFailure {
    IngestFailure::new("script_exception", "compile error").caused_by(IngestFailure::illegal_argument(format!(
        "[{source}]: {detail} (the fake supports only a Painless subset, see tests/support/ingest.rs)"
    )))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Num(f64),
    Dot,
    SafeDot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Not,
    And,
    Or,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn tokenize(source: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (token, width) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('?', Some('.')) => (Token::SafeDot, 2),
            ('.', _) => (Token::Dot, 1),
            ('[', _) => (Token::LBracket, 1),
            (']', _) => (Token::RBracket, 1),
            ('(', _) => (Token::LParen, 1),
            (')', _) => (Token::RParen, 1),
            (',', _) => (Token::Comma, 1),
            ('&', Some('&')) => (Token::And, 2),
            ('|', Some('|')) => (Token::Or, 2),
            ('=', Some('=')) => (Token::Eq, 2),
            ('!', Some('=')) => (Token::Ne, 2),
            ('!', _) => (Token::Not, 1),
            ('<', Some('=')) => (Token::Le, 2),
            ('<', _) => (Token::Lt, 1),
            ('>', Some('=')) => (Token::Ge, 2),
            ('>', _) => (Token::Gt, 1),
            ('\'' | '"', _) => {
                let quote = c;
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err("unterminated string".to_owned()),
                        Some('\\') => {
                            let escaped = chars.get(j + 1).ok_or("unterminated string")?;
                            s.push(*escaped);
                            j += 2;
                        }
                        Some(ch) if *ch == quote => break,
                        Some(ch) => {
                            s.push(*ch);
                            j += 1;
                        }
                    }
                }
                (Token::Str(s), j + 1 - i)
            }
            (c, _) if c.is_ascii_digit() => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| format!("bad number [{text}]"))?;
                (Token::Num(n), j - i)
            }
            (c, _) if c.is_alphabetic() || c == '_' || c == '@' => {
                let mut j = i;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || chars[j] == '_' || chars[j] == '@')
                {
                    j += 1;
                }
                (Token::Ident(chars[i..j].iter().collect()), j - i)
            }
            (c, _) => return Err(format!("unexpected character [{c}]")),
        };
        tokens.push(token);
        i += width;
    }
    Ok(tokens)
}

#[derive(Debug, Clone)]
enum Expr {
    Ctx,
    Literal(Value),
    Field {
        target: Box<Expr>,
        name: Box<Expr>,
        null_safe: bool,
    },
    Call {
        target: Box<Expr>,
        method: String,
        args: Vec<Expr>,
        null_safe: bool,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Token, Box<Expr>, Box<Expr>),
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.eat(&Token::Or) {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.eat(&Token::And) {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.eat(&Token::Not) {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.compare()
    }

    fn compare(&mut self) -> Result<Expr, String> {
        let left = self.postfix()?;
        match self.peek().cloned() {
            Some(op @ (Token::Eq | Token::Ne | Token::Lt | Token::Le | Token::Gt | Token::Ge)) => {
                self.pos += 1;
                let right = self.postfix()?;
                Ok(Expr::Compare(op, Box::new(left), Box::new(right)))
            }
            _ => Ok(left),
        }
    }

    fn postfix(&mut self) -> Result<Expr, String> {
        let mut expr = self.primary()?;
        loop {
            let null_safe = match self.peek() {
                Some(Token::Dot) => false,
                Some(Token::SafeDot) => true,
                Some(Token::LBracket) => {
                    self.pos += 1;
                    let name = self.or()?;
                    if !self.eat(&Token::RBracket) {
                        return Err("expected ]".to_owned());
                    }
                    expr = Expr::Field {
                        target: Box::new(expr),
                        name: Box::new(name),
                        null_safe: false,
                    };
                    continue;
                }
                _ => return Ok(expr),
            };
            self.pos += 1;
            let Some(Token::Ident(name)) = self.peek().cloned() else {
                return Err("expected a field or method name".to_owned());
            };
            self.pos += 1;
            if self.eat(&Token::LParen) {
                let mut args = Vec::new();
                if !self.eat(&Token::RParen) {
                    loop {
                        args.push(self.or()?);
                        if self.eat(&Token::RParen) {
                            break;
                        }
                        if !self.eat(&Token::Comma) {
                            return Err("expected , or )".to_owned());
                        }
                    }
                }
                const METHODS: &[&str] = &[
                    "containsKey",
                    "isEmpty",
                    "size",
                    "contains",
                    "startsWith",
                    "endsWith",
                    "equals",
                ];
                if !METHODS.contains(&name.as_str()) {
                    return Err(format!("method [{name}] is not supported"));
                }
                expr = Expr::Call {
                    target: Box::new(expr),
                    method: name,
                    args,
                    null_safe,
                };
            } else {
                expr = Expr::Field {
                    target: Box::new(expr),
                    name: Box::new(Expr::Literal(Value::String(name))),
                    null_safe,
                };
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self.peek().cloned().ok_or("unexpected end of condition")?;
        self.pos += 1;
        Ok(match token {
            Token::Ident(name) => match name.as_str() {
                "ctx" => Expr::Ctx,
                "null" => Expr::Literal(Value::Null),
                "true" => Expr::Literal(Value::Bool(true)),
                "false" => Expr::Literal(Value::Bool(false)),
                other => return Err(format!("unknown identifier [{other}]")),
            },
            Token::Str(s) => Expr::Literal(Value::String(s)),
            Token::Num(n) => Expr::Literal(
                serde_json::Number::from_f64(n)
                    .map(Value::Number)
                    .unwrap_or(Value::Null),
            ),
            Token::LParen => {
                let inner = self.or()?;
                if !self.eat(&Token::RParen) {
                    return Err("expected )".to_owned());
                }
                inner
            }
            other => return Err(format!("unexpected token {other:?}")),
        })
    }
}

impl Expr {
    fn eval(&self, ctx: &Value) -> Result<Value, IngestFailure> {
        match self {
            Expr::Ctx => Ok(ctx.clone()),
            Expr::Literal(v) => Ok(v.clone()),
            Expr::Not(inner) => Ok(Value::Bool(!as_bool(&inner.eval(ctx)?)?)),
            Expr::And(a, b) => Ok(Value::Bool(
                as_bool(&a.eval(ctx)?)? && as_bool(&b.eval(ctx)?)?,
            )),
            Expr::Or(a, b) => Ok(Value::Bool(
                as_bool(&a.eval(ctx)?)? || as_bool(&b.eval(ctx)?)?,
            )),
            Expr::Compare(op, a, b) => {
                let (a, b) = (a.eval(ctx)?, b.eval(ctx)?);
                let result = match op {
                    Token::Eq => painless_eq(&a, &b),
                    Token::Ne => !painless_eq(&a, &b),
                    _ => {
                        let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                            return Err(script_runtime_error(
                                "class_cast_exception",
                                format!(
                                    "cannot compare [{}] and [{}]",
                                    java_type(&a),
                                    java_type(&b)
                                ),
                            ));
                        };
                        match op {
                            Token::Lt => x < y,
                            Token::Le => x <= y,
                            Token::Gt => x > y,
                            _ => x >= y,
                        }
                    }
                };
                Ok(Value::Bool(result))
            }
            Expr::Field {
                target,
                name,
                null_safe,
            } => {
                let target = target.eval(ctx)?;
                let name = name.eval(ctx)?;
                match (&target, &name) {
                    (Value::Null, _) if *null_safe => Ok(Value::Null),
                    (Value::Null, _) => Err(script_runtime_error(
                        "null_pointer_exception",
                        format!("cannot access [{}] on null", display(&name)),
                    )),
                    (Value::Object(map), Value::String(key)) => {
                        Ok(map.get(key).cloned().unwrap_or(Value::Null))
                    }
                    (Value::Array(items), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| items.get(usize::try_from(i).ok()?))
                        .cloned()
                        .ok_or_else(|| {
                            script_runtime_error(
                                "index_out_of_bounds_exception",
                                "index out of bounds".to_owned(),
                            )
                        }),
                    _ => Err(script_runtime_error(
                        "illegal_argument_exception",
                        format!(
                            "dynamic getter [{}, {}] not found",
                            java_type(&target),
                            display(&name)
                        ),
                    )),
                }
            }
            Expr::Call {
                target,
                method,
                args,
                null_safe,
            } => {
                let target = target.eval(ctx)?;
                let args: Vec<Value> =
                    args.iter().map(|a| a.eval(ctx)).collect::<Result<_, _>>()?;
                if target.is_null() {
                    return if *null_safe {
                        Ok(Value::Null)
                    } else {
                        Err(script_runtime_error(
                            "null_pointer_exception",
                            format!("cannot invoke [{method}] on null"),
                        ))
                    };
                }
                call(&target, method, &args)
            }
        }
    }
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn as_bool(value: &Value) -> Result<bool, IngestFailure> {
    value.as_bool().ok_or_else(|| {
        script_runtime_error(
            "class_cast_exception",
            format!("cannot cast [{}] to [boolean]", java_type(value)),
        )
    })
}

/// `==` on `def` values: numbers compare by value whatever their width.
fn painless_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn call(target: &Value, method: &str, args: &[Value]) -> Result<Value, IngestFailure> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::Null);
    let unsupported = || {
        script_runtime_error(
            "illegal_argument_exception",
            format!(
                "dynamic method [{}, {method}/{}] not found",
                java_type(target),
                args.len()
            ),
        )
    };
    let result = match (target, method) {
        (Value::Object(map), "containsKey") => {
            Value::Bool(arg(0).as_str().is_some_and(|k| map.contains_key(k)))
        }
        (Value::Object(map), "isEmpty") => Value::Bool(map.is_empty()),
        (Value::Object(map), "size") => Value::from(map.len()),
        (Value::Array(items), "isEmpty") => Value::Bool(items.is_empty()),
        (Value::Array(items), "size") => Value::from(items.len()),
        (Value::Array(items), "contains") => {
            let needle = arg(0);
            Value::Bool(items.iter().any(|i| painless_eq(i, &needle)))
        }
        (Value::String(s), "isEmpty") => Value::Bool(s.is_empty()),
        (Value::String(s), "contains") => {
            Value::Bool(arg(0).as_str().is_some_and(|n| s.contains(n)))
        }
        (Value::String(s), "startsWith") => {
            Value::Bool(arg(0).as_str().is_some_and(|n| s.starts_with(n)))
        }
        (Value::String(s), "endsWith") => {
            Value::Bool(arg(0).as_str().is_some_and(|n| s.ends_with(n)))
        }
        (_, "equals") => Value::Bool(painless_eq(target, &arg(0))),
        _ => return Err(unsupported()),
    };
    Ok(result)
}
