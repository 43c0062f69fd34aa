//! Guards the SAM template (template.yaml) and samconfig.toml against careless
//! edits: the schedule, the runtime, architecture and build method,
//! least-privilege IAM (OpenSearch only when asked for), failure handling
//! (retries, dead-letter queue, alarms), the spool and archive bucket,
//! optional reserved concurrency, logging that never drops the metric record,
//! the metrics' alarms and dashboard, log retention, the stack outputs that
//! docs/deploy.md relies on, and that no samconfig.toml setting can make
//! `sam build` build something other than what `sam deploy` deploys.
//! scripts/check-sam checks the same with SAM CLI's own code, including after
//! `sam deploy --guided` has rewritten samconfig.toml.
//!
//! The YAML is parsed with `serde_norway` (CloudFormation short-form tags such
//! as `!Sub` come back as `Value::Tagged`) and normalised to the long form
//! (`{"Fn::Sub": …}`) as JSON, so either spelling passes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use docker_pulls::metrics::{DIMENSION, METRIC_NAMES, NAMESPACE};
use serde_json::{Map, Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Short-form CloudFormation tag → long-form intrinsic function.
fn normalize(value: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64().expect("a YAML number"))
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(normalize).collect()),
        Y::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    other => panic!("unsupported mapping key {other:?}"),
                };
                object.insert(key, normalize(value));
            }
            Value::Object(object)
        }
        Y::Tagged(tagged) => {
            let name = tagged.tag.to_string();
            let name = name.trim_start_matches('!');
            let inner = normalize(tagged.value);
            match name {
                "Ref" => json!({ "Ref": inner }),
                "Condition" => json!({ "Condition": inner }),
                "GetAtt" => match inner {
                    Value::String(s) => {
                        let (resource, attribute) = s
                            .split_once('.')
                            .unwrap_or_else(|| panic!("!GetAtt {s} has no attribute"));
                        json!({ "Fn::GetAtt": [resource, attribute] })
                    }
                    other => json!({ "Fn::GetAtt": other }),
                },
                other => json!({ format!("Fn::{other}"): inner }),
            }
        }
    }
}

struct Template {
    doc: Value,
}

impl Template {
    fn load() -> Self {
        let path = root().join("template.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let yaml: serde_norway::Value =
            serde_norway::from_str(&text).unwrap_or_else(|e| panic!("parsing template.yaml: {e}"));
        Template {
            doc: normalize(yaml),
        }
    }

    fn resources(&self) -> &Map<String, Value> {
        self.doc["Resources"]
            .as_object()
            .expect("template has Resources")
    }

    fn resource(&self, logical_id: &str) -> &Value {
        self.resources()
            .get(logical_id)
            .unwrap_or_else(|| panic!("no resource {logical_id}"))
    }

    fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> + 'a {
        self.resources()
            .iter()
            .filter(move |(_, r)| r["Type"] == kind)
    }

    /// The one Lambda function: (logical ID, resource).
    fn function(&self) -> (&String, &Value) {
        let functions: Vec<_> = self.of_type("AWS::Serverless::Function").collect();
        assert_eq!(
            functions.len(),
            1,
            "expected exactly one AWS::Serverless::Function"
        );
        functions[0]
    }

    /// A function property, falling back to `Globals.Function`.
    fn function_prop(&self, name: &str) -> &Value {
        let (id, function) = self.function();
        let own = &function["Properties"][name];
        if !own.is_null() {
            return own;
        }
        let global = &self.doc["Globals"]["Function"][name];
        assert!(
            !global.is_null(),
            "{id} has no {name} (neither in Properties nor in Globals.Function)"
        );
        global
    }

    fn parameter(&self, name: &str) -> &Value {
        let parameter = &self.doc["Parameters"][name];
        assert!(parameter.is_object(), "no template parameter {name}");
        parameter
    }

    /// The Default of the parameter that `value` is a `Ref` to.
    fn ref_default(&self, value: &Value, expected_parameter: &str) -> &Value {
        assert_eq!(
            value,
            &json!({ "Ref": expected_parameter }),
            "expected a Ref to the {expected_parameter} parameter"
        );
        &self.parameter(expected_parameter)["Default"]
    }

    /// A parameter's value as CloudFormation passes it to `Ref`: the
    /// override if given, else the Default, as a string.
    fn parameter_value(&self, name: &str, overrides: &[(&str, &str)]) -> String {
        if let Some((_, value)) = overrides.iter().find(|(n, _)| *n == name) {
            return (*value).to_string();
        }
        match &self.parameter(name)["Default"] {
            Value::String(s) => s.clone(),
            Value::Null => panic!("parameter {name} has no Default"),
            other => other.to_string(),
        }
    }

    /// Whether a named condition holds with these parameter values.
    fn condition(&self, name: &str, overrides: &[(&str, &str)]) -> bool {
        let definition = &self.doc["Conditions"][name];
        assert!(!definition.is_null(), "no condition {name}");
        self.truth(definition, overrides)
    }

    /// Evaluates the condition functions CloudFormation allows.
    fn truth(&self, value: &Value, overrides: &[(&str, &str)]) -> bool {
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("not a condition: {value}"));
        let (function, argument) = object.iter().next().expect("a condition function");
        let arguments = || argument.as_array().expect("condition arguments are a list");
        match function.as_str() {
            "Fn::Equals" => {
                let sides = arguments();
                self.resolve(&sides[0], overrides) == self.resolve(&sides[1], overrides)
            }
            "Fn::Not" => !self.truth(&arguments()[0], overrides),
            "Fn::And" => arguments().iter().all(|c| self.truth(c, overrides)),
            "Fn::Or" => arguments().iter().any(|c| self.truth(c, overrides)),
            "Condition" => self.condition(argument.as_str().expect("a name"), overrides),
            other => panic!("unsupported condition function {other}"),
        }
    }

    /// A property value with parameter `Ref`s and `Fn::If` resolved, as a
    /// string; None for `AWS::NoValue` (the property is left out) or null.
    fn resolve(&self, value: &Value, overrides: &[(&str, &str)]) -> Option<String> {
        match value {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Object(o) if o.contains_key("Ref") => match o["Ref"].as_str() {
                Some("AWS::NoValue") => None,
                // Pseudo parameters: given like parameters, us-east-1 by default.
                Some("AWS::Region") => Some(
                    overrides
                        .iter()
                        .find(|(n, _)| *n == "AWS::Region")
                        .map_or("us-east-1", |(_, v)| *v)
                        .to_owned(),
                ),
                Some(name) => Some(self.parameter_value(name, overrides)),
                None => panic!("Ref to a non-string {value}"),
            },
            Value::Object(o) if o.contains_key("Fn::If") => {
                let branches = o["Fn::If"].as_array().expect("Fn::If takes a list");
                let condition = branches[0].as_str().expect("Fn::If names a condition");
                let branch = if self.condition(condition, overrides) {
                    &branches[1]
                } else {
                    &branches[2]
                };
                self.resolve(branch, overrides)
            }
            Value::Object(o) if o.contains_key("Fn::Join") => {
                let args = o["Fn::Join"].as_array().expect("Fn::Join takes a list");
                let parts: Vec<String> = args[1]
                    .as_array()
                    .expect("Fn::Join joins a list")
                    .iter()
                    .filter_map(|v| self.resolve(v, overrides))
                    .collect();
                Some(parts.join(args[0].as_str().expect("a delimiter")))
            }
            // Fn::Select of an Fn::Split: the only list these conditions make.
            Value::Object(o) if o.contains_key("Fn::Select") => {
                let args = o["Fn::Select"].as_array().expect("Fn::Select takes a list");
                let index = args[0].as_u64().expect("an index") as usize;
                let split = args[1]["Fn::Split"]
                    .as_array()
                    .expect("Fn::Select of Fn::Split");
                let text = self.resolve(&split[1], overrides).unwrap_or_default();
                let parts: Vec<&str> = text
                    .split(split[0].as_str().expect("a delimiter"))
                    .collect();
                Some(parts.get(index).expect("Fn::Select in range").to_string())
            }
            other => panic!("cannot resolve {other}"),
        }
    }

    /// `value` as CloudFormation sees it with these parameter values: every
    /// `Fn::If` replaced by its branch, `AWS::NoValue` dropped from lists and
    /// objects (None at the top). Other intrinsics are kept as they are.
    fn resolve_tree(&self, value: &Value, overrides: &[(&str, &str)]) -> Option<Value> {
        match value {
            Value::Object(o) if o.len() == 1 && o.get("Ref") == Some(&json!("AWS::NoValue")) => {
                None
            }
            Value::Object(o) if o.contains_key("Fn::If") => {
                let branches = o["Fn::If"].as_array().expect("Fn::If takes a list");
                let condition = branches[0].as_str().expect("Fn::If names a condition");
                let branch = if self.condition(condition, overrides) {
                    &branches[1]
                } else {
                    &branches[2]
                };
                self.resolve_tree(branch, overrides)
            }
            Value::Object(o) => Some(Value::Object(
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), self.resolve_tree(v, overrides)?)))
                    .collect(),
            )),
            Value::Array(items) => Some(Value::Array(
                items
                    .iter()
                    .filter_map(|v| self.resolve_tree(v, overrides))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }

    /// The identity-policy statements with these parameter values (see
    /// [`Template::identity_statements`]), conditional ones resolved.
    fn identity_statements_with(&self, overrides: &[(&str, &str)]) -> Vec<(String, Value)> {
        self.identity_statements()
            .into_iter()
            .filter(|(_, s)| s.get("Fn::If").is_none())
            .chain(self.conditional_statements(overrides))
            .collect()
    }

    /// The statements given as `Fn::If` in a role's inline policy, resolved.
    fn conditional_statements(&self, overrides: &[(&str, &str)]) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (id, role) in self.of_type("AWS::IAM::Role") {
            for policy in as_list(&role["Properties"]["Policies"]) {
                for statement in as_list(&policy["PolicyDocument"]["Statement"]) {
                    if statement.get("Fn::If").is_none() {
                        continue;
                    }
                    if let Some(resolved) = self.resolve_tree(statement, overrides) {
                        out.push((id.clone(), resolved));
                    }
                }
            }
        }
        out
    }

    /// Every IAM policy statement of an identity-based policy: role inline
    /// policies, AWS::IAM::Policy / ManagedPolicy, and SAM function
    /// `Policies` given as statements. A statement given as `Fn::If` comes as
    /// is; [`Template::all_statements`] lists its branches instead.
    fn identity_statements(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (id, resource) in self.resources() {
            let props = &resource["Properties"];
            let documents: Vec<&Value> = match resource["Type"].as_str().unwrap_or_default() {
                "AWS::IAM::Role" => props["Policies"]
                    .as_array()
                    .map(|ps| ps.iter().map(|p| &p["PolicyDocument"]).collect())
                    .unwrap_or_default(),
                "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => vec![&props["PolicyDocument"]],
                "AWS::Serverless::Function" => match &props["Policies"] {
                    Value::Array(ps) => {
                        ps.iter().filter(|p| p.get("Statement").is_some()).collect()
                    }
                    p @ Value::Object(_) => vec![p],
                    _ => vec![],
                },
                _ => vec![],
            };
            for document in documents {
                for statement in as_list(&document["Statement"]) {
                    out.push((id.clone(), statement.clone()));
                }
            }
        }
        out
    }

    /// Every statement any parameter values can produce: both branches of a
    /// conditional statement (for checks that must hold whatever is chosen).
    fn all_statements(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (id, statement) in self.identity_statements() {
            match statement.get("Fn::If") {
                None => out.push((id, statement)),
                Some(branches) => {
                    for branch in &branches.as_array().expect("Fn::If takes a list")[1..] {
                        if branch != &json!({ "Ref": "AWS::NoValue" }) {
                            out.push((id.clone(), branch.clone()));
                        }
                    }
                }
            }
        }
        out
    }
}

/// A scalar or a list, as a list (IAM's Action/Resource style).
fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Null => vec![],
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

/// The strings a policy value can take: plain strings, `Fn::Sub` templates,
/// both branches of `Fn::If`; other intrinsics (Ref, GetAtt) as JSON text.
fn possible_strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(possible_strings).collect(),
        Value::Object(o) if o.contains_key("Fn::If") => {
            let branches = o["Fn::If"].as_array().expect("Fn::If takes a list");
            branches[1..].iter().flat_map(possible_strings).collect()
        }
        Value::Object(o) if o.contains_key("Fn::Sub") => match &o["Fn::Sub"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(parts) => possible_strings(&parts[0]),
            other => panic!("unexpected Fn::Sub {other}"),
        },
        other => vec![other.to_string()],
    }
}

fn actions(statement: &Value) -> Vec<String> {
    as_list(&statement["Action"])
        .into_iter()
        .map(|a| a.as_str().expect("IAM actions are strings").to_string())
        .collect()
}

const SSM_PARAMETER_ARN: &str =
    "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${SsmPrefix}";

#[test]
fn schedule_runs_every_five_minutes_enabled_with_the_event_as_is() {
    let t = Template::load();
    let events = t.function_prop("Events").as_object().expect("Events map");
    // The run schedule; the daily compaction is the one other schedule
    // (see compaction_runs_daily_after_midnight_with_the_compact_event).
    let schedules: Vec<_> = events
        .iter()
        .filter(|(_, e)| e["Type"] == "Schedule" || e["Type"] == "ScheduleV2")
        .filter(|(_, e)| e["Properties"]["Input"].is_null())
        .map(|(_, e)| e)
        .collect();
    assert_eq!(
        schedules.len(),
        1,
        "expected exactly one run schedule event"
    );
    let props = &schedules[0]["Properties"];

    let expression = if schedules[0]["Type"] == "Schedule" {
        &props["Schedule"]
    } else {
        &props["ScheduleExpression"]
    };
    assert_eq!(
        t.ref_default(expression, "ScheduleExpression"),
        "rate(5 minutes)"
    );

    assert_ne!(props["Enabled"], json!(false), "schedule disabled");
    match &props["State"] {
        Value::Null => {}
        Value::String(s) => assert_eq!(s, "ENABLED"),
        state => assert_eq!(t.ref_default(state, "ScheduleState"), "ENABLED"),
    }

    for key in ["Input", "InputPath", "InputTransformer"] {
        assert!(
            props[key].is_null(),
            "the schedule must pass the Scheduled Event as-is, but sets {key}"
        );
    }
}

/// The daily compaction: its own rule, after the day's last runs, with the
/// `compact` event the function parses, enabled with the run schedule.
#[test]
fn compaction_runs_daily_after_midnight_with_the_compact_event() {
    let t = Template::load();
    let events = t.function_prop("Events").as_object().expect("Events map");
    let compact = &events["Compact"];
    assert_eq!(compact["Type"], "Schedule");
    let props = &compact["Properties"];
    assert_eq!(props["Schedule"], "cron(45 0 * * ? *)", "00:45 UTC daily");
    assert_eq!(
        props["State"],
        json!({ "Ref": "ScheduleState" }),
        "off when the schedule is off"
    );
    let input: Value =
        serde_json::from_str(props["Input"].as_str().expect("an Input string")).expect("JSON");
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("events/compact.json")).expect("events/compact.json"),
    )
    .expect("JSON");
    assert_eq!(input, file, "the rule sends events/compact.json");
    assert_eq!(input, json!({"action": "compact"}));
    assert!(
        props["Name"].is_null(),
        "CloudFormation names it: the stack name plus a suffix may not fit 64 characters"
    );
}

#[test]
fn function_runtime_handler_architecture_and_build() {
    let t = Template::load();
    let (id, function) = t.function();

    assert_eq!(t.function_prop("Runtime"), "provided.al2023");
    assert_eq!(t.function_prop("Handler"), "bootstrap");

    // One architecture, written in the template: `sam build` and `sam deploy`
    // both read this line (issue 15: a parameter let them disagree).
    let architectures = as_list(t.function_prop("Architectures"));
    assert_eq!(architectures.len(), 1, "one architecture");
    assert!(
        ["arm64", "x86_64"].contains(&architectures[0].as_str().unwrap_or_default()),
        "Architectures is arm64 or x86_64 written out, not {}",
        architectures[0]
    );
    assert!(
        t.doc["Parameters"]["Architecture"].is_null(),
        "the architecture is no deploy-time parameter"
    );

    let metadata = &function["Metadata"];
    assert_eq!(
        metadata["BuildMethod"], "rust-cargolambda",
        "{id} must be built with cargo lambda"
    );
    // SAM CLI passes Metadata.BuildProperties.Binary to `cargo lambda build
    // --bin`; a Binary directly under Metadata is silently ignored.
    assert_eq!(
        metadata["BuildProperties"]["Binary"], "docker-pulls",
        "{id}: Metadata.BuildProperties.Binary names the binary to build"
    );
    assert!(
        metadata["Binary"].is_null(),
        "{id}: Metadata.Binary is ignored by SAM CLI; use Metadata.BuildProperties.Binary"
    );

    let memory = t.function_prop("MemorySize").as_u64().expect("MemorySize");
    assert!((128..=10240).contains(&memory), "MemorySize {memory}");
    let timeout = t.function_prop("Timeout").as_u64().expect("Timeout");
    // docs/performance.md ("10,000 repositories and Docker Hub's rate
    // limit"): a rate-limited `details` run uses three one-minute windows
    // and ends at ~130 s, so at least 180 s; and less than the schedule's
    // 5 minutes, so that two runs never overlap and share one Docker Hub
    // rate-limit budget.
    assert!(
        (180..300).contains(&timeout),
        "Timeout {timeout}: at least 180 s (10,000 repositories), under the 5-minute schedule"
    );
    assert_eq!(
        t.parameter_value("ScheduleExpression", &[]),
        "rate(5 minutes)",
        "the Timeout bound above assumes the 5-minute schedule"
    );
}

/// The function properties `sam build` reads: where the code is, how it is
/// built and for which architecture. None may depend on a parameter, or
/// build and deploy (which may read different parameters) could disagree.
const BUILD_PROPERTIES: [&str; 5] = ["CodeUri", "Runtime", "Handler", "Architectures", "Metadata"];

/// The intrinsic functions (`Ref`, `Fn::…`) anywhere inside `value`.
fn intrinsics(value: &Value) -> Vec<String> {
    match value {
        Value::Object(o) => o
            .iter()
            .flat_map(|(k, v)| {
                let own = (k == "Ref" || k.starts_with("Fn::")).then(|| format!("{k}: {v}"));
                own.into_iter().chain(intrinsics(v))
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(intrinsics).collect(),
        _ => vec![],
    }
}

/// The build properties of a template's function that use a parameter.
fn parameterised_build(t: &Template) -> Vec<String> {
    let (_, function) = t.function();
    let mut found = Vec::new();
    for name in BUILD_PROPERTIES {
        let value = if name == "Metadata" {
            &function["Metadata"]
        } else {
            &function["Properties"][name]
        };
        found.extend(
            intrinsics(value)
                .into_iter()
                .map(|i| format!("{name}: {i}")),
        );
        assert!(
            t.doc["Globals"]["Function"][name].is_null(),
            "{name} in Globals"
        );
    }
    found
}

#[test]
fn no_parameter_changes_what_sam_build_builds() {
    let t = Template::load();
    assert_eq!(parameterised_build(&t), Vec::<String>::new());

    // The check itself catches the old template's `Architectures: [!Ref
    // Architecture]`.
    let mut old = Template::load();
    let (id, _) = old.function();
    let id = id.clone();
    old.doc["Resources"][&id]["Properties"]["Architectures"] = json!([{ "Ref": "Architecture" }]);
    assert_eq!(
        parameterised_build(&old),
        [r#"Architectures: Ref: "Architecture""#]
    );
}

/// CargoLambda.toml as section → key → raw value.
fn cargo_lambda_config() -> BTreeMap<String, BTreeMap<String, String>> {
    let path = root().join("CargoLambda.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            current = header.trim_end_matches(']').trim().to_string();
            continue;
        }
        let (key, value) = line.split_once('=').expect("key = value");
        sections
            .entry(current.clone())
            .or_default()
            .insert(key.trim().to_string(), value.trim().to_string());
    }
    sections
}

#[test]
fn an_x86_64_template_builds_x86_64_on_any_host() {
    // SAM CLI runs `cargo lambda build --release --bin docker-pulls`, plus
    // `--arm64` for arm64 and nothing for x86_64 (aws-lambda-builders'
    // rust_cargo actions.py). With neither flag cargo-lambda builds for the
    // build machine, so CargoLambda.toml sets x86_64: `--arm64` still wins
    // (cargo-lambda-build lib.rs: arm64, then x86_64, then --target, then the
    // host), and a `target` there would make `--arm64` an error.
    // scripts/check-sam shows cargo-lambda reading it and checks the built
    // binary's ELF machine.
    let config = cargo_lambda_config();
    let build = config.get("build").expect("CargoLambda.toml has [build]");
    assert_eq!(build.get("x86_64").map(String::as_str), Some("true"));
    for key in ["arm64", "target"] {
        assert!(
            !build.contains_key(key),
            "CargoLambda.toml [build] must not set {key}"
        );
    }
}

#[test]
fn function_environment_and_json_logging() {
    let t = Template::load();
    let variables = &t.function_prop("Environment")["Variables"];
    assert_eq!(
        t.ref_default(&variables["SSM_PREFIX"], "SsmPrefix"),
        "/docker-pulls"
    );
    assert_eq!(
        t.ref_default(&variables["HUB_CONCURRENCY"], "HubConcurrency"),
        &json!(16)
    );
    assert_eq!(
        t.ref_default(&variables["MAX_EVENT_AGE"], "MaxEventAge"),
        &json!(900)
    );
    let bucket_id = spool_bucket_id(&t);
    assert_eq!(
        t.resource(&bucket_id)["Type"],
        "AWS::S3::Bucket",
        "SPOOL_BUCKET names the spool bucket"
    );
    // The archive lives in the same bucket, under archive/ (issue 17).
    assert_eq!(
        variables["ARCHIVE_BUCKET"],
        json!({ "Ref": bucket_id }),
        "ARCHIVE_BUCKET is the spool's bucket"
    );
    // One bucket for spool and archive; the badges have their own
    // (issue 23), so making them public can never expose the history.
    let buckets: BTreeSet<&String> = t.of_type("AWS::S3::Bucket").map(|(id, _)| id).collect();
    let badge_bucket = badge_bucket_id(&t);
    assert_eq!(buckets, BTreeSet::from([&bucket_id, &badge_bucket]));
    assert_ne!(badge_bucket, bucket_id);
    // Pull alerts go to their own topic, not the operators' alarm topic.
    let alert_topic = variables["ALERT_TOPIC_ARN"]["Ref"]
        .as_str()
        .expect("ALERT_TOPIC_ARN is a Ref to a topic");
    assert_eq!(t.resource(alert_topic)["Type"], "AWS::SNS::Topic");
    let alarm_topics: Vec<&String> = t
        .of_type("AWS::CloudWatch::Alarm")
        .flat_map(|(_, a)| as_list(&a["Properties"]["AlarmActions"]))
        .filter_map(|action| action["Ref"].as_str())
        .map(|id| t.resources().get_key_value(id).expect("a resource").0)
        .collect();
    assert!(!alarm_topics.is_empty());
    assert!(alarm_topics.iter().all(|id| id.as_str() != alert_topic));

    let logging = t.function_prop("LoggingConfig");
    assert_eq!(logging["LogFormat"], "JSON");
    // platform.report (duration, memory: the sizing and cost figures) is INFO.
    let system = &logging["SystemLogLevel"];
    assert!(
        system.is_null() || system == "INFO" || system == "DEBUG",
        "SystemLogLevel {system} drops the platform.report lines"
    );
}

/// Lambda's application log levels, least to most severe. With JSON logs
/// Lambda drops a line below ApplicationLogLevel and counts a line without
/// `level` (the EMF metric record) as INFO.
const LAMBDA_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

fn lambda_level_rank(level: &str) -> usize {
    LAMBDA_LEVELS
        .iter()
        .position(|l| *l == level)
        .unwrap_or_else(|| panic!("{level} is no Lambda log level"))
}

#[test]
fn no_log_level_drops_the_metric_record() {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::filter::LevelFilter;

    let t = Template::load();
    let log_level = t.parameter("LogLevel");
    assert_eq!(log_level["Default"], "INFO");
    let allowed: Vec<_> = as_list(&log_level["AllowedValues"])
        .into_iter()
        .map(|v| v.as_str().expect("a level").to_string())
        .collect();
    assert_eq!(allowed, ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]);

    let logging = t.function_prop("LoggingConfig");
    let variables = &t.function_prop("Environment")["Variables"];
    assert!(
        variables["AWS_LAMBDA_LOG_LEVEL"].is_null(),
        "Lambda sets AWS_LAMBDA_LOG_LEVEL from ApplicationLogLevel"
    );
    for level in &allowed {
        let overrides = [("LogLevel", level.as_str())];
        // Lambda's filter lets the un-levelled EMF line (INFO) through...
        let application = t
            .resolve(&logging["ApplicationLogLevel"], &overrides)
            .unwrap_or_else(|| "INFO".to_string());
        assert!(
            lambda_level_rank(&application) <= lambda_level_rank("INFO"),
            "LogLevel={level}: ApplicationLogLevel {application} drops the metric record"
        );
        // ...and the function's own filter takes the parameter as RUST_LOG,
        // in a form tracing's EnvFilter reads as that level.
        let rust_log = t
            .resolve(&variables["RUST_LOG"], &overrides)
            .expect("RUST_LOG is set");
        assert_eq!(&rust_log, level, "RUST_LOG carries LogLevel");
        let filter = EnvFilter::try_new(&rust_log)
            .unwrap_or_else(|e| panic!("RUST_LOG={rust_log} is no EnvFilter: {e}"));
        let expected: LevelFilter = level.parse().expect("a tracing level");
        assert_eq!(
            filter.max_level_hint(),
            Some(expected),
            "RUST_LOG={rust_log}"
        );
    }
    // Whatever the parameter: wide open, so the function alone decides.
    assert_eq!(logging["ApplicationLogLevel"], "TRACE");

    // The record the alarms read carries no `level`, which Lambda counts as
    // INFO: what the check above lets through.
    let record: Value = serde_json::from_str(&docker_pulls::metrics::emf_line(
        "docker-pulls",
        1_764_268_500_000,
        &docker_pulls::counts::RunCounts::default(),
    ))
    .expect("the EMF record is one JSON object");
    assert!(record["_aws"].is_object(), "an EMF record: {record}");
    for key in ["level", "Level", "LEVEL"] {
        assert!(record.get(key).is_none(), "the EMF record has a {key}");
    }
}

#[test]
fn log_group_is_explicit_with_retention() {
    let t = Template::load();
    let (function_id, function) = t.function();
    let logging = t.function_prop("LoggingConfig");
    let group_id = logging["LogGroup"]["Ref"]
        .as_str()
        .expect("LoggingConfig.LogGroup is a Ref to the log group resource");
    let group = t.resource(group_id);
    assert_eq!(group["Type"], "AWS::Logs::LogGroup");

    // /aws/lambda/<FunctionName>
    let name = &group["Properties"]["LogGroupName"]["Fn::Sub"];
    let name = name.as_str().expect("LogGroupName is a !Sub string");
    if name == "/aws/lambda/${AWS::StackName}" {
        assert_eq!(
            function["Properties"]["FunctionName"],
            json!({ "Ref": "AWS::StackName" }),
            "the log group is named after the stack, so the function must be too"
        );
    } else {
        assert_eq!(name, format!("/aws/lambda/${{{function_id}}}"));
    }

    let retention = &group["Properties"]["RetentionInDays"];
    let days = match retention {
        Value::Number(_) => retention,
        other => t.ref_default(other, "LogRetentionInDays"),
    };
    assert_eq!(days, &json!(30));
}

/// The value ReservedConcurrentExecutions takes with these parameter values
/// (template defaults for the rest): None when the property is left out.
fn reserved_concurrency(t: &Template, overrides: &[(&str, &str)]) -> Option<String> {
    let (_, function) = t.function();
    let value = &function["Properties"]["ReservedConcurrentExecutions"];
    assert!(
        t.doc["Globals"]["Function"]["ReservedConcurrentExecutions"].is_null(),
        "no reservation in Globals"
    );
    t.resolve(value, overrides)
}

#[test]
fn default_template_reserves_no_concurrency() {
    // A reservation fails the deploy on accounts with a low concurrency quota,
    // and overlapping runs are harmless (create with deterministic _ids).
    let t = Template::load();
    assert_eq!(t.parameter("ReservedConcurrency")["Default"], "0");
    assert_eq!(reserved_concurrency(&t, &[]), None);
    assert_eq!(
        reserved_concurrency(&t, &[("ReservedConcurrency", "0")]),
        None
    );
}

#[test]
fn reserved_concurrency_parameter_applies_it() {
    let t = Template::load();
    assert_eq!(
        reserved_concurrency(&t, &[("ReservedConcurrency", "1")]),
        Some("1".to_string())
    );
    assert_eq!(
        reserved_concurrency(&t, &[("ReservedConcurrency", "25")]),
        Some("25".to_string())
    );
    let description = t.parameter("ReservedConcurrency")["Description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.contains("409"),
        "the description says why overlapping runs are harmless: {description}"
    );
}

/// The dead-letter queue: the OnFailure destination of the function.
fn dead_letter_queue_id(t: &Template) -> String {
    let config = t.function_prop("EventInvokeConfig");
    let on_failure = &config["DestinationConfig"]["OnFailure"];
    assert_eq!(on_failure["Type"], "SQS");
    let getatt = on_failure["Destination"]["Fn::GetAtt"]
        .as_array()
        .expect("OnFailure Destination is !GetAtt <queue>.Arn");
    assert_eq!(getatt[1], "Arn");
    getatt[0].as_str().unwrap().to_string()
}

#[test]
fn failed_invocations_are_retried_then_dead_lettered() {
    let t = Template::load();
    let config = t.function_prop("EventInvokeConfig");
    let retries = config["MaximumRetryAttempts"]
        .as_u64()
        .expect("MaximumRetryAttempts set");
    assert!(retries <= 2, "MaximumRetryAttempts {retries}");
    let age = config["MaximumEventAgeInSeconds"]
        .as_u64()
        .expect("MaximumEventAgeInSeconds set");
    assert!(
        (60..=21600).contains(&age),
        "MaximumEventAgeInSeconds {age}"
    );

    let queue_id = dead_letter_queue_id(&t);
    let queue = t.resource(&queue_id);
    assert_eq!(queue["Type"], "AWS::SQS::Queue");
    assert_eq!(queue["Properties"]["SqsManagedSseEnabled"], json!(true));
    assert_eq!(
        queue["Properties"]["MessageRetentionPeriod"],
        json!(14 * 24 * 3600)
    );

    // The execution role may send to it.
    let send_allowed = t.all_statements().iter().any(|(_, s)| {
        s["Effect"] == "Allow"
            && actions(s).iter().any(|a| a == "sqs:SendMessage")
            && as_list(&s["Resource"])
                .iter()
                .any(|r| **r == json!({ "Fn::GetAtt": [queue_id, "Arn"] }))
    });
    assert!(
        send_allowed,
        "no sqs:SendMessage on {queue_id} for the role"
    );
}

#[test]
fn iam_is_least_privilege() {
    let t = Template::load();
    let (id, function) = t.function();
    // SAM's generated role carries AWSLambdaBasicExecutionRole (logs on "*").
    assert!(
        !function["Properties"]["Role"].is_null(),
        "{id} should use the template's own narrowly scoped role"
    );
    for (_, role) in t.of_type("AWS::IAM::Role") {
        assert!(
            role["Properties"]["ManagedPolicyArns"].is_null(),
            "managed policies are broader than needed"
        );
    }

    let statements = t.all_statements();
    assert!(!statements.is_empty());
    // Actions that accept no narrower resource.
    const UNSCOPED: &[&str] = &[
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "cloudwatch:PutMetricData",
    ];
    for (owner, statement) in &statements {
        if statement["Effect"] != "Allow" {
            continue;
        }
        for action in actions(statement) {
            assert!(
                action != "*" && !action.ends_with(":*"),
                "{owner}: wildcard action {action}"
            );
        }
        let resources = possible_strings(&statement["Resource"]);
        assert!(!resources.is_empty(), "{owner}: statement without Resource");
        if resources.iter().any(|r| r == "*") {
            for action in actions(statement) {
                assert!(
                    UNSCOPED.contains(&action.as_str()),
                    "{owner}: {action} on Resource \"*\""
                );
            }
        }
    }

    // Resource policies (the queue policy): no Allow on "*".
    for (owner, resource) in t.resources() {
        let document = &resource["Properties"]["PolicyDocument"];
        if resource["Type"] == "AWS::IAM::Policy" || document.is_null() {
            continue;
        }
        for statement in as_list(&document["Statement"]) {
            if statement["Effect"] == "Allow" {
                assert!(
                    !possible_strings(&statement["Resource"]).contains(&"*".to_string()),
                    "{owner}: Allow on Resource \"*\""
                );
                assert!(
                    statement["Principal"] != "*" || !statement["Condition"].is_null(),
                    "{owner}: Allow to any principal without a condition"
                );
            }
        }
    }
}

#[test]
fn ssm_read_is_scoped_to_the_prefix() {
    let t = Template::load();
    let expected = BTreeSet::from([
        SSM_PARAMETER_ARN.to_string(),
        format!("{SSM_PARAMETER_ARN}/*"),
    ]);
    // Changed rule (issue 22): GetParameters and GetParameter were allowed
    // too; the function never calls them.
    let allowed_actions = ["ssm:GetParametersByPath"];
    let mut saw_by_path = false;
    for (owner, statement) in t.all_statements() {
        let acts = actions(&statement);
        if !acts.iter().any(|a| a.starts_with("ssm:")) {
            continue;
        }
        assert_eq!(statement["Effect"], "Allow");
        for action in &acts {
            assert!(
                allowed_actions.contains(&action.as_str()),
                "{owner}: unexpected action {action} next to the SSM read"
            );
        }
        saw_by_path |= acts.iter().any(|a| a == "ssm:GetParametersByPath");
        let resources: BTreeSet<_> = possible_strings(&statement["Resource"])
            .into_iter()
            .collect();
        assert_eq!(resources, expected, "{owner}: SSM resources");
    }
    assert!(saw_by_path, "no statement allows ssm:GetParametersByPath");
}

#[test]
fn kms_decrypt_only_via_ssm() {
    let t = Template::load();
    let mut found = false;
    for (owner, statement) in t.all_statements() {
        let acts = actions(&statement);
        if !acts.iter().any(|a| a.starts_with("kms:")) {
            continue;
        }
        found = true;
        assert_eq!(acts, ["kms:Decrypt"], "{owner}: only kms:Decrypt");
        assert_eq!(
            statement["Condition"]["StringEquals"]["kms:ViaService"],
            json!({ "Fn::Sub": "ssm.${AWS::Region}.${AWS::URLSuffix}" }),
            "{owner}: kms:Decrypt must be limited to SSM, in every partition (aws-cn: amazonaws.com.cn)"
        );
        for resource in possible_strings(&statement["Resource"]) {
            assert_ne!(resource, "*", "{owner}: kms:Decrypt on every key");
        }
    }
    assert!(found, "no kms:Decrypt statement for SecureStrings");
    let kms_key = t.parameter("KmsKeyArn");
    assert_eq!(kms_key["Default"], "", "KmsKeyArn is optional");
}

#[test]
fn alarms_on_errors_and_dead_letters_with_optional_email() {
    let t = Template::load();
    let (function_id, _) = t.function();
    let queue_id = dead_letter_queue_id(&t);
    let alarms: Vec<_> = t
        .of_type("AWS::CloudWatch::Alarm")
        .map(|(_, a)| a)
        .collect();

    let find = |namespace: &str, metric: &str| {
        alarms
            .iter()
            .find(|a| {
                a["Properties"]["Namespace"] == namespace && a["Properties"]["MetricName"] == metric
            })
            .unwrap_or_else(|| panic!("no alarm on {namespace} {metric}"))
            .get("Properties")
            .unwrap()
    };

    let errors = find("AWS/Lambda", "Errors");
    assert_eq!(
        errors["Dimensions"],
        json!([{ "Name": "FunctionName", "Value": { "Ref": function_id } }])
    );
    let dead_letters = find("AWS/SQS", "ApproximateNumberOfMessagesVisible");
    assert_eq!(
        dead_letters["Dimensions"],
        json!([{ "Name": "QueueName", "Value": { "Fn::GetAtt": [queue_id, "QueueName"] } }])
    );

    // Besides the maintainers' pull alert topic (issue 23), one alarm topic.
    let alert_topic = t.function_prop("Environment")["Variables"]["ALERT_TOPIC_ARN"]["Ref"].clone();
    let topics: Vec<_> = t
        .of_type("AWS::SNS::Topic")
        .map(|(id, _)| id)
        .filter(|id| alert_topic != json!(id))
        .collect();
    assert_eq!(topics.len(), 1, "one alarm topic");
    let topic_ref = json!({ "Ref": topics[0] });
    for alarm in [errors, dead_letters] {
        assert!(
            as_list(&alarm["AlarmActions"]).contains(&&topic_ref),
            "alarm does not notify the topic"
        );
    }

    assert_eq!(t.parameter("AlarmEmail")["Default"], "");
    let subscriptions: Vec<_> = t
        .of_type("AWS::SNS::Subscription")
        .map(|(_, s)| s)
        .filter(|s| s["Properties"]["TopicArn"] == topic_ref)
        .collect();
    assert_eq!(subscriptions.len(), 1, "one e-mail subscription");
    let subscription = subscriptions[0];
    assert_eq!(subscription["Properties"]["Protocol"], "email");
    assert_eq!(subscription["Properties"]["TopicArn"], topic_ref);
    assert_eq!(
        subscription["Properties"]["Endpoint"],
        json!({ "Ref": "AlarmEmail" })
    );
    let condition = subscription["Condition"]
        .as_str()
        .expect("the subscription is conditional");
    let definition = t.doc["Conditions"][condition].to_string();
    assert!(
        definition.contains(r#"{"Ref":"AlarmEmail"}"#),
        "condition {condition} does not test AlarmEmail: {definition}"
    );
}

#[test]
fn outputs_name_the_function_queue_and_log_group() {
    let t = Template::load();
    let (function_id, _) = t.function();
    let queue_id = dead_letter_queue_id(&t);
    let group_id = t.function_prop("LoggingConfig")["LogGroup"]["Ref"]
        .as_str()
        .unwrap()
        .to_string();
    let outputs = &t.doc["Outputs"];
    let expected = [
        ("FunctionName", json!({ "Ref": function_id })),
        ("FunctionArn", json!({ "Fn::GetAtt": [function_id, "Arn"] })),
        ("DeadLetterQueueUrl", json!({ "Ref": queue_id })),
        ("LogGroupName", json!({ "Ref": group_id })),
    ];
    for (name, value) in expected {
        assert_eq!(outputs[name]["Value"], value, "output {name}");
    }
}

#[test]
fn samconfig_has_deploy_defaults() {
    let path = root().join("samconfig.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for expected in [
        "version = 0.1",
        r#"stack_name = "docker-pulls""#,
        r#"capabilities = "CAPABILITY_IAM""#,
        "resolve_s3 = true",
        "confirm_changeset = true",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "samconfig.toml lacks `{expected}`"
        );
    }
}

#[test]
fn sample_events_are_json() {
    let dir = root().join("events");
    if !dir.is_dir() {
        return;
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("reading events/")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    for file in &files {
        parse_json(file);
    }
}

fn parse_json(path: &Path) {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if let Err(e) = serde_json::from_str::<Value>(&text) {
        panic!("{} is not JSON: {e}", path.display());
    }
}

/// The spool bucket: what the function's SPOOL_BUCKET refers to.
fn spool_bucket_id(t: &Template) -> String {
    let variables = &t.function_prop("Environment")["Variables"];
    variables["SPOOL_BUCKET"]["Ref"]
        .as_str()
        .expect("SPOOL_BUCKET is a Ref to the spool bucket")
        .to_string()
}

#[test]
fn spool_bucket_is_encrypted_private_and_tls_only() {
    let t = Template::load();
    let bucket_id = spool_bucket_id(&t);
    let bucket = t.resource(&bucket_id);
    assert_eq!(bucket["Type"], "AWS::S3::Bucket");
    let props = &bucket["Properties"];

    let encryption = as_list(&props["BucketEncryption"]["ServerSideEncryptionConfiguration"]);
    assert_eq!(encryption.len(), 1, "one default encryption rule");
    let algorithm = &encryption[0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"];
    assert!(
        ["AES256", "aws:kms", "aws:kms:dsse"].contains(&algorithm.as_str().unwrap_or_default()),
        "objects are encrypted at rest: SSEAlgorithm {algorithm}"
    );

    let block = &props["PublicAccessBlockConfiguration"];
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[setting], json!(true), "{setting} must be on");
    }

    // Spooled and archived documents may exist nowhere else: deleting the
    // stack keeps them.
    assert_eq!(bucket["DeletionPolicy"], "Retain");
    assert_eq!(bucket["UpdateReplacePolicy"], "Retain");

    // The bucket policy refuses every request not made over TLS, to the
    // bucket and every object (spool/ and archive/ alike), and grants nothing.
    let policies: Vec<_> = t
        .of_type("AWS::S3::BucketPolicy")
        .filter(|(_, p)| p["Properties"]["Bucket"] == json!({ "Ref": bucket_id }))
        .collect();
    assert_eq!(policies.len(), 1, "one bucket policy on {bucket_id}");
    let (policy_id, policy) = policies[0];
    // The retained bucket keeps its TLS-only policy too (issue 15).
    assert_eq!(policy["DeletionPolicy"], "Retain", "{policy_id}");
    assert_eq!(policy["UpdateReplacePolicy"], "Retain", "{policy_id}");
    let statements = as_list(&policy["Properties"]["PolicyDocument"]["Statement"]);
    assert!(
        statements.iter().all(|s| s["Effect"] == "Deny"),
        "the bucket policy only denies (the role grants access)"
    );
    let bucket_arn = json!({ "Fn::GetAtt": [bucket_id, "Arn"] });
    let objects_arn = json!({ "Fn::Sub": format!("${{{bucket_id}.Arn}}/*") });
    let tls_only = statements.iter().any(|s| {
        s["Principal"] == "*"
            && (s["Action"] == "s3:*" || s["Action"] == json!(["s3:*"]))
            && as_list(&s["Resource"]).contains(&&bucket_arn)
            && as_list(&s["Resource"]).contains(&&objects_arn)
            && s["Condition"] == json!({ "Bool": { "aws:SecureTransport": "false" } })
    });
    assert!(
        tls_only,
        "no Deny of s3:* on the bucket and its objects when aws:SecureTransport is false: {statements:?}"
    );
}

/// The bucket's lifecycle rules with these parameter values.
fn lifecycle_rules(t: &Template, overrides: &[(&str, &str)]) -> Vec<Value> {
    let bucket_id = spool_bucket_id(t);
    let rules = &t.resource(&bucket_id)["Properties"]["LifecycleConfiguration"]["Rules"];
    let rules = t.resolve_tree(rules, overrides).unwrap_or_default();
    as_list(&rules).into_iter().cloned().collect()
}

/// The enabled expiration rules: (prefix, days as CloudFormation gets them).
fn expirations(t: &Template, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    lifecycle_rules(t, overrides)
        .iter()
        .filter(|r| r["Status"] == "Enabled" && !r["ExpirationInDays"].is_null())
        .map(|r| {
            assert!(
                r["Filter"].is_null() && r["TagFilters"].is_null(),
                "rules filter by Prefix alone: {r}"
            );
            let prefix = r["Prefix"].as_str().unwrap_or_else(|| {
                panic!("an expiration rule without Prefix covers the archive: {r}")
            });
            let days = t
                .resolve(&r["ExpirationInDays"], overrides)
                .expect("ExpirationInDays");
            (prefix.to_string(), days)
        })
        .collect()
}

#[test]
fn spool_objects_expire_after_spool_retention_days() {
    let t = Template::load();
    // Exactly spool/ (spool/rejected/ included), never archive/.
    assert_eq!(
        expirations(&t, &[]),
        [("spool/".to_string(), "90".to_string())]
    );
    let rules = lifecycle_rules(&t, &[]);
    let spool = rules.iter().find(|r| r["Prefix"] == "spool/").unwrap();
    assert_eq!(
        t.ref_default(&spool["ExpirationInDays"], "SpoolRetentionDays"),
        &json!(90)
    );

    let description = t.parameter("SpoolRetentionDays")["Description"]
        .as_str()
        .unwrap_or_default();
    for phrase in ["outage", "spool/rejected/"] {
        assert!(
            description.contains(phrase),
            "SpoolRetentionDays's description must mention {phrase}: {description}"
        );
    }
}

#[test]
fn the_archive_is_kept_forever_unless_archive_retention_days_is_set() {
    let t = Template::load();
    let parameter = t.parameter("ArchiveRetentionDays");
    assert_eq!(parameter["Type"], "Number");
    assert_eq!(
        parameter["Default"],
        json!(0),
        "0 keeps the archive forever"
    );
    assert_eq!(parameter["MinValue"], json!(0));

    for overrides in [
        vec![],
        vec![("ArchiveRetentionDays", "0")],
        vec![("SpoolRetentionDays", "1")],
    ] {
        let rules = expirations(&t, &overrides);
        assert!(
            rules.iter().all(|(prefix, _)| prefix == "spool/"),
            "{overrides:?}: only spool/ expires: {rules:?}"
        );
        for (prefix, _) in &rules {
            assert!(!"archive/year=2026/x".starts_with(prefix.as_str()));
        }
    }
    let spool_days = t.parameter_value("SpoolRetentionDays", &[]);
    assert_eq!(
        expirations(&t, &[("ArchiveRetentionDays", "365")]),
        [
            ("spool/".to_string(), spool_days),
            ("archive/".to_string(), "365".to_string())
        ]
    );
}

/// Issue 21, item 6: the history survives `aws s3 rm --recursive` on its
/// prefix and the deletion of the stack. The archive's bucket is versioned
/// and retained; the prefixes that churn (spool/, archive-pending/,
/// parquet-due/) shed noncurrent versions after a week, archive/'s are
/// kept unless ArchiveRetentionDays asks otherwise.
#[test]
fn the_archive_bucket_is_versioned_retained_and_only_churn_versions_expire() {
    let t = Template::load();
    let variables = &t.function_prop("Environment")["Variables"];
    let archive_id = variables["ARCHIVE_BUCKET"]["Ref"]
        .as_str()
        .expect("ARCHIVE_BUCKET is a Ref to a bucket of the stack");
    let bucket = t.resource(archive_id);
    assert_eq!(bucket["Type"], "AWS::S3::Bucket");
    assert_eq!(bucket["DeletionPolicy"], "Retain", "kept with the stack");
    assert_eq!(bucket["UpdateReplacePolicy"], "Retain", "kept on replace");
    assert_eq!(
        bucket["Properties"]["VersioningConfiguration"]["Status"], "Enabled",
        "a deleted archive object can be brought back"
    );

    for overrides in [vec![], vec![("ArchiveRetentionDays", "365")]] {
        let rules = lifecycle_rules(&t, &overrides);
        let noncurrent: BTreeMap<String, Value> = rules
            .iter()
            .filter(|r| r["Status"] == "Enabled")
            .filter_map(|r| {
                let days = &r["NoncurrentVersionExpiration"]["NoncurrentDays"];
                (!days.is_null()).then(|| {
                    let prefix = r["Prefix"]
                        .as_str()
                        .unwrap_or_else(|| panic!("a noncurrent rule without Prefix: {r}"));
                    (prefix.to_owned(), days.clone())
                })
            })
            .collect();
        for prefix in ["spool/", "archive-pending/", "parquet-due/"] {
            assert_eq!(
                noncurrent.get(prefix),
                Some(&json!(7)),
                "{overrides:?}: {prefix}"
            );
        }
        // archive-pending/ copies wait however long the archive needs.
        let pending = rules
            .iter()
            .find(|r| r["Prefix"] == "archive-pending/")
            .expect("pending rule");
        assert!(pending["ExpirationInDays"].is_null(), "{pending}");
        // Every noncurrent rule's prefix is disjoint from archive/, except
        // the archive's own retention rule when asked for.
        let archive_noncurrent = noncurrent.get("archive/");
        if overrides.is_empty() {
            assert_eq!(archive_noncurrent, None, "archive/ versions are kept");
        } else {
            assert_eq!(archive_noncurrent, Some(&json!(30)));
        }
        for prefix in noncurrent.keys().filter(|p| p.as_str() != "archive/") {
            assert!(
                !"archive/year=2026/month=01/day=01/x.ndjson.gz".starts_with(prefix.as_str()),
                "{prefix} covers the archive"
            );
        }
    }
}

/// No template comment and no document suggests `aws s3 rb --force` (or
/// `--recursive` removal) on the bucket that holds the history.
#[test]
fn nothing_suggests_deleting_the_history_bucket_by_force() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = vec![format!("{root}/template.yaml"), format!("{root}/README.md")];
    for entry in std::fs::read_dir(format!("{root}/docs")).expect("docs/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("md") {
            files.push(path.display().to_string());
        }
    }
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for (number, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            assert!(
                !(lower.contains("s3 rb") || lower.contains("rb s3://")),
                "{file}:{}: suggests deleting the bucket: {line}",
                number + 1
            );
        }
    }
}

#[test]
fn function_may_use_only_the_spool_and_archive_prefixes() {
    let t = Template::load();
    let bucket_id = spool_bucket_id(&t);
    let bucket_arn = json!({ "Fn::GetAtt": [bucket_id, "Arn"] });
    // The spool and archive bucket's statements (the badge bucket's are
    // checked in badge_bucket_role_statements_and_the_alert_topic_only).
    let s3: Vec<_> = t
        .all_statements()
        .into_iter()
        .filter(|(_, s)| actions(s).iter().any(|a| a.starts_with("s3:")))
        .map(|(_, s)| s)
        .filter(|s| {
            s["Resource"]
                .to_string()
                .contains(&format!("\"{bucket_id}"))
                || s["Resource"]
                    .to_string()
                    .contains(&format!("{{{bucket_id}."))
        })
        .collect();
    assert_eq!(
        s3.len(),
        8,
        "list and objects, for spool/, archive/, archive-pending/ and parquet/ (with the parquet-due/ markers): {s3:?}"
    );

    let mut listed = BTreeSet::new();
    let mut objects = BTreeMap::new();
    for statement in &s3 {
        assert_eq!(statement["Effect"], "Allow");
        if actions(statement) == ["s3:ListBucket"] {
            assert_eq!(
                statement["Resource"], bucket_arn,
                "ListBucket on the bucket only"
            );
            let condition = statement["Condition"]
                .as_object()
                .expect("ListBucket has a condition");
            assert_eq!(condition.len(), 1, "one condition operator: {condition:?}");
            let prefixes: BTreeSet<_> = as_list(&condition["StringLike"]["s3:prefix"])
                .into_iter()
                .map(|p| p.as_str().expect("a prefix string").to_string())
                .collect();
            listed.insert(prefixes.into_iter().collect::<Vec<_>>());
        } else {
            assert!(statement["Condition"].is_null());
            for resource in as_list(&statement["Resource"]) {
                let resource = resource["Fn::Sub"]
                    .as_str()
                    .unwrap_or_else(|| panic!("object actions on a !Sub prefix: {statement}"))
                    .to_string();
                let granted: BTreeSet<_> = actions(statement).into_iter().collect();
                assert!(
                    objects.insert(resource.clone(), granted).is_none(),
                    "one statement for {resource}"
                );
            }
        }
    }
    assert_eq!(
        listed,
        BTreeSet::from([
            vec!["spool/".to_string(), "spool/*".to_string()],
            vec!["archive/".to_string(), "archive/*".to_string()],
            vec![
                "archive-pending/".to_string(),
                "archive-pending/*".to_string()
            ],
            vec!["parquet-due/".to_string(), "parquet/*".to_string()],
        ]),
        "listing is limited to spool/, archive/, archive-pending/, parquet/ and parquet-due/"
    );
    let set =
        |actions: &[&str]| -> BTreeSet<String> { actions.iter().map(|a| a.to_string()).collect() };
    assert_eq!(
        objects,
        BTreeMap::from([
            (
                format!("${{{bucket_id}.Arn}}/spool/*"),
                set(&["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
            ),
            // Write every run's documents, read them to replay; no delete.
            (
                format!("${{{bucket_id}.Arn}}/archive/*"),
                set(&["s3:GetObject", "s3:PutObject"])
            ),
            // Pending copies of failed archive writes: written, read back
            // and deleted once they are in archive/.
            (
                format!("${{{bucket_id}.Arn}}/archive-pending/*"),
                set(&["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
            ),
            // A day's Parquet file replaces the day's older one (the raw
            // objects stay); a day's mark is removed once it is compacted.
            (
                format!("${{{bucket_id}.Arn}}/parquet/*"),
                set(&["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
            ),
            (
                format!("${{{bucket_id}.Arn}}/parquet-due/*"),
                set(&["s3:GetObject", "s3:PutObject", "s3:DeleteObject"])
            ),
        ]),
        "object actions"
    );

    let outputs = &t.doc["Outputs"];
    assert_eq!(
        outputs["SpoolBucketName"]["Value"],
        json!({ "Ref": bucket_id }),
        "the bucket's name is an output"
    );
    let description = outputs["SpoolBucketName"]["Description"]
        .as_str()
        .unwrap_or_default();
    assert!(
        description.contains("spool/") && description.contains("archive/"),
        "SpoolBucketName says it holds both prefixes: {description}"
    );
    assert_eq!(
        outputs["ArchiveLocation"]["Value"],
        json!({ "Fn::Sub": format!("s3://${{{bucket_id}}}/archive/") })
    );
}

/// The OpenSearch statements (es: or aoss: actions) with these parameters.
fn opensearch_statements(t: &Template, overrides: &[(&str, &str)]) -> Vec<Value> {
    t.identity_statements_with(overrides)
        .into_iter()
        .map(|(_, s)| s)
        .filter(|s| {
            actions(s)
                .iter()
                .any(|a| a.starts_with("es:") || a.starts_with("aoss:"))
        })
        .collect()
}

const DOMAIN_ARN: &str = "arn:aws:es:eu-west-1:123456789012:domain/pulls";
const COLLECTION_ARN: &str = "arn:aws:aoss:eu-west-1:123456789012:collection/a1b2c3d4e5f6g7h8i9j0";

#[test]
fn default_template_grants_no_opensearch_permission() {
    let t = Template::load();
    for name in ["OpenSearchDomainArn", "OpenSearchCollectionArn"] {
        let parameter = t.parameter(name);
        assert_eq!(parameter["Default"], "", "{name} is optional");
        assert!(
            parameter["AllowedPattern"]
                .as_str()
                .is_some_and(|p| p.starts_with("^$|^arn:aws")),
            "{name}: empty or an ARN"
        );
        assert!(parameter["ConstraintDescription"].is_string(), "{name}");
    }
    assert_eq!(opensearch_statements(&t, &[]), Vec::<Value>::new());
    // No other statement names es: or aoss: either, whatever the parameters.
    for (_, statement) in t.all_statements() {
        if statement
            .get("Sid")
            .and_then(Value::as_str)
            .is_some_and(|s| s.contains("OpenSearch"))
        {
            continue;
        }
        for action in actions(&statement) {
            assert!(
                !action.starts_with("es:") && !action.starts_with("aoss:"),
                "{action} outside the OpenSearch statements"
            );
        }
    }
}

/// Changed rule (issue 22; this test expected es:ESHttpGet/Head/Post/Put on
/// `${OpenSearchDomainArn}/*`): only the verbs and paths the function sends
/// on a domain, `POST /_bulk` and `GET`/`PUT /_index_template/<prefix>`.
/// tests/sigv4.rs checks these pairs against the requests actually made.
#[test]
fn an_opensearch_domain_arn_grants_only_the_requests_the_function_makes() {
    let t = Template::load();
    let statements = opensearch_statements(&t, &[("OpenSearchDomainArn", DOMAIN_ARN)]);
    let mut granted = BTreeSet::new();
    for statement in &statements {
        assert_eq!(statement["Effect"], "Allow");
        assert!(statement["Condition"].is_null());
        let resource = statement["Resource"]["Fn::Sub"]
            .as_str()
            .unwrap_or_else(|| panic!("a path of the domain: {statement}"));
        for action in actions(statement) {
            granted.insert((action, resource.to_owned()));
        }
    }
    let expected: BTreeSet<(String, String)> = [
        ("es:ESHttpPost", "${OpenSearchDomainArn}/_bulk"),
        ("es:ESHttpGet", "${OpenSearchDomainArn}/_index_template/*"),
        ("es:ESHttpPut", "${OpenSearchDomainArn}/_index_template/*"),
    ]
    .map(|(a, r)| (a.to_owned(), r.to_owned()))
    .into();
    assert_eq!(granted, expected);
}

/// An ARN in another region than the stack's cannot be signed for by the
/// function's region and is almost always a mistake: the deploy fails on a
/// resource whose name says so, unless AllowOpenSearchInAnotherRegion is "true".
#[test]
fn an_opensearch_arn_in_another_region_is_refused_at_deploy_unless_allowed() {
    let t = Template::load();
    let refusal = "OpenSearchArnIsInAnotherRegionSetAllowOpenSearchInAnotherRegion";
    let resource = t.resource(refusal);
    assert_eq!(resource["Type"], "AWS::CloudFormation::WaitCondition");
    assert_eq!(resource["Condition"], "RefuseOpenSearchInAnotherRegion");
    assert_eq!(resource["Properties"]["Count"], 1, "never signalled: fails");
    let refused =
        |overrides: &[(&str, &str)]| t.condition("RefuseOpenSearchInAnotherRegion", overrides);
    // DOMAIN_ARN and COLLECTION_ARN are in eu-west-1.
    for (name, arn) in [
        ("OpenSearchDomainArn", DOMAIN_ARN),
        ("OpenSearchCollectionArn", COLLECTION_ARN),
    ] {
        assert!(
            !refused(&[(name, arn), ("AWS::Region", "eu-west-1")]),
            "{name}"
        );
        assert!(
            refused(&[(name, arn), ("AWS::Region", "us-east-1")]),
            "{name}"
        );
        assert!(
            !refused(&[
                (name, arn),
                ("AWS::Region", "us-east-1"),
                ("AllowOpenSearchInAnotherRegion", "true")
            ]),
            "{name}"
        );
        let gov = arn
            .replace(":aws:", ":aws-us-gov:")
            .replace("eu-west-1", "us-gov-west-1");
        assert!(
            !refused(&[(name, &gov), ("AWS::Region", "us-gov-west-1")]),
            "{gov}"
        );
    }
    // No ARN at all: nothing to refuse, in any region.
    assert!(!refused(&[]));
    assert!(!refused(&[("AWS::Region", "ap-south-1")]));
    assert_eq!(
        t.parameter("AllowOpenSearchInAnotherRegion")["Default"],
        "false"
    );
}

#[test]
fn an_opensearch_collection_arn_grants_api_access_to_that_collection_only() {
    let t = Template::load();
    let statements = opensearch_statements(&t, &[("OpenSearchCollectionArn", COLLECTION_ARN)]);
    assert_eq!(statements.len(), 1, "{statements:?}");
    let statement = &statements[0];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(actions(statement), ["aoss:APIAccessAll"]);
    assert_eq!(
        statement["Resource"],
        json!({ "Ref": "OpenSearchCollectionArn" })
    );

    let both = opensearch_statements(
        &t,
        &[
            ("OpenSearchDomainArn", DOMAIN_ARN),
            ("OpenSearchCollectionArn", COLLECTION_ARN),
        ],
    );
    assert_eq!(both.len(), 3);
}

#[test]
fn every_parameter_is_in_one_console_group() {
    let t = Template::load();
    let groups = as_list(&t.doc["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]);
    let mut grouped = Vec::new();
    for group in groups {
        for name in as_list(&group["Parameters"]) {
            grouped.push(name.as_str().expect("a parameter name").to_string());
        }
    }
    let mut sorted = grouped.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), grouped.len(), "a parameter in two groups");
    let all: Vec<_> = t.doc["Parameters"]
        .as_object()
        .expect("Parameters")
        .keys()
        .cloned()
        .collect();
    let all: BTreeSet<_> = all.into_iter().collect();
    assert_eq!(sorted.into_iter().collect::<BTreeSet<_>>(), all);
}

#[test]
fn schedule_rule_is_named_within_eventbridge_limits() {
    // EventBridge rule names: 1–64 characters of [.-_A-Za-z0-9]. The rule
    // carries the stack's name, as the function does (Lambda: 64 as well),
    // so every stack name the function accepts fits.
    let t = Template::load();
    let (_, function) = t.function();
    let events = t.function_prop("Events").as_object().unwrap();
    let schedule = &events["Schedule"];
    let name = &schedule["Properties"]["Name"];
    assert_eq!(name, &json!({ "Ref": "AWS::StackName" }));
    assert_eq!(
        function["Properties"]["FunctionName"],
        json!({ "Ref": "AWS::StackName" }),
        "the function's 64-character limit is what bounds the stack name"
    );

    // The dead-letter queue admits exactly this rule.
    let policy = t
        .of_type("AWS::SQS::QueuePolicy")
        .next()
        .expect("the dead-letter queue policy")
        .1;
    let source_arns: Vec<_> = as_list(&policy["Properties"]["PolicyDocument"]["Statement"])
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .map(|s| s["Condition"]["ArnEquals"]["aws:SourceArn"].clone())
        .collect();
    assert_eq!(
        source_arns,
        [
            json!({ "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:rule/${AWS::StackName}" })
        ]
    );

    let stack_name = sam_parameters(&samconfig(), "deploy")["stack_name"]
        .as_str()
        .expect("a stack name")
        .to_string();
    assert!(
        (1..=64).contains(&stack_name.len()),
        "stack_name {stack_name:?}"
    );
}

/// The custom-metric alarms: (logical ID, properties).
fn alarm_on<'a>(t: &'a Template, metric: &str) -> (&'a String, &'a Value) {
    let found: Vec<_> = t
        .of_type("AWS::CloudWatch::Alarm")
        .filter(|(_, a)| a["Properties"]["MetricName"] == metric)
        .collect();
    assert_eq!(found.len(), 1, "one alarm on {metric}");
    (found[0].0, &found[0].1["Properties"])
}

fn function_dimension(t: &Template) -> Value {
    let (function_id, _) = t.function();
    json!([{ "Name": DIMENSION, "Value": { "Ref": function_id } }])
}

#[test]
fn spool_backlog_alarm_fires_after_fifteen_minutes_of_waiting_documents() {
    let t = Template::load();
    let (id, alarm) = alarm_on(&t, "SpoolBacklog");
    assert_eq!(alarm["Namespace"], NAMESPACE);
    assert_eq!(alarm["Dimensions"], function_dimension(&t));
    assert_eq!(alarm["Statistic"], "Maximum");
    assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
    assert_eq!(alarm["Threshold"], json!(0));
    let period = alarm["Period"].as_u64().expect("Period");
    let evaluations = alarm["EvaluationPeriods"]
        .as_u64()
        .expect("EvaluationPeriods");
    let datapoints = alarm["DatapointsToAlarm"].as_u64().unwrap_or(evaluations);
    assert_eq!((period, evaluations, datapoints), (300, 3, 3), "{id}");
    assert_eq!(alarm["TreatMissingData"], "notBreaching");
    assert!(
        t.resource(id)["Condition"].is_null(),
        "{id} exists whatever the parameters"
    );
}

#[test]
fn nothing_indexed_alarm_covers_thirty_minutes_while_the_schedule_runs() {
    let t = Template::load();
    let found: Vec<_> = t
        .of_type("AWS::CloudWatch::Alarm")
        .filter(|(_, a)| {
            as_list(&a["Properties"]["Metrics"])
                .iter()
                .any(|m| m["MetricStat"]["Metric"]["MetricName"] == "Indexed")
        })
        .collect();
    assert_eq!(found.len(), 1, "one alarm on documents indexed");
    let (id, resource) = found[0];
    let alarm = &resource["Properties"];

    // Documents delivered: Indexed plus the spool's Drained and the 409s.
    let queries = as_list(&alarm["Metrics"]);
    let mut stat_ids = Vec::new();
    let mut stat_names = BTreeSet::new();
    for query in &queries {
        let stat = &query["MetricStat"];
        if stat.is_null() {
            continue;
        }
        let metric = &stat["Metric"];
        assert_eq!(metric["Namespace"], NAMESPACE, "{id}");
        assert_eq!(metric["Dimensions"], function_dimension(&t), "{id}");
        assert_eq!(stat["Stat"], "Sum", "{id}");
        assert_eq!(stat["Period"], json!(300), "{id}");
        assert_eq!(
            query["ReturnData"],
            json!(false),
            "{id}: inputs are not returned"
        );
        stat_ids.push(query["Id"].as_str().unwrap().to_string());
        stat_names.insert(metric["MetricName"].as_str().unwrap().to_string());
    }
    let expected: BTreeSet<_> = ["Indexed", "Drained", "AlreadyIndexed"]
        .map(String::from)
        .into();
    assert_eq!(stat_names, expected, "{id}");
    let returned: Vec<_> = queries
        .iter()
        .filter(|q| q["ReturnData"] != json!(false))
        .collect();
    assert_eq!(returned.len(), 1, "{id} alarms on one expression");
    let expression = returned[0]["Expression"].as_str().expect("an expression");
    let mut terms: Vec<_> = expression.split('+').map(str::trim).collect();
    terms.sort_unstable();
    stat_ids.sort_unstable();
    assert_eq!(terms, stat_ids, "{id}: the sum of its inputs");

    assert_eq!(alarm["ComparisonOperator"], "LessThanThreshold");
    assert_eq!(alarm["Threshold"], json!(1));
    let evaluations = alarm["EvaluationPeriods"]
        .as_u64()
        .expect("EvaluationPeriods");
    let datapoints = alarm["DatapointsToAlarm"].as_u64().unwrap_or(evaluations);
    assert_eq!(datapoints, evaluations, "{id}: every period empty");
    assert_eq!(300 * evaluations, 30 * 60, "{id}: 30 minutes");
    assert_eq!(
        alarm["TreatMissingData"], "breaching",
        "{id}: no run at all is as bad as nothing indexed"
    );

    let condition = resource["Condition"]
        .as_str()
        .expect("the alarm exists only while the schedule is enabled");
    assert!(t.condition(condition, &[]), "default: schedule enabled");
    assert!(t.condition(condition, &[("ScheduleState", "ENABLED")]));
    assert!(!t.condition(condition, &[("ScheduleState", "DISABLED")]));
}

#[test]
fn rejected_documents_alarm_fires_on_the_first_one() {
    let t = Template::load();
    let (_, alarm) = alarm_on(&t, "Rejected");
    assert_eq!(alarm["Namespace"], NAMESPACE);
    assert_eq!(alarm["Dimensions"], function_dimension(&t));
    assert_eq!(alarm["Statistic"], "Sum");
    assert_eq!(alarm["ComparisonOperator"], "GreaterThanOrEqualToThreshold");
    assert_eq!(alarm["Threshold"], json!(1));
    assert_eq!(alarm["TreatMissingData"], "notBreaching");
}

#[test]
fn archive_failed_alarm_fires_on_the_first_failed_write() {
    let t = Template::load();
    let (id, alarm) = alarm_on(&t, "ArchiveFailed");
    assert!(METRIC_NAMES.contains(&"ArchiveFailed"));
    assert_eq!(alarm["Namespace"], NAMESPACE);
    assert_eq!(alarm["Dimensions"], function_dimension(&t));
    assert_eq!(alarm["Statistic"], "Sum");
    assert_eq!(alarm["Period"], json!(300));
    assert_eq!(alarm["EvaluationPeriods"], json!(1));
    assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
    assert_eq!(alarm["Threshold"], json!(0));
    assert_eq!(
        alarm["TreatMissingData"], "notBreaching",
        "{id}: no run, no failed write"
    );
    let description = possible_strings(&alarm["AlarmDescription"]).concat();
    for phrase in ["indexed or spooled", "archive/", "s3:PutObject"] {
        assert!(
            description.contains(phrase),
            "{id}: the description says what to do ({phrase}): {description}"
        );
    }
}

/// `Fn::Sub` text with every `${…}` replaced by `fill(name)`.
fn substitute(text: &str, fill: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .unwrap_or_else(|| panic!("unclosed ${{ in {text}"));
        out.push_str(&fill(&rest[start + 2..start + end]));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn every_alarm_notifies_the_topic_and_says_what_to_do() {
    let t = Template::load();
    let topic = t.of_type("AWS::SNS::Topic").next().expect("a topic").0;
    let topic_ref = json!({ "Ref": topic });
    let alarms: Vec<_> = t.of_type("AWS::CloudWatch::Alarm").collect();
    assert!(
        alarms.len() >= 5,
        "errors, dead letters, backlog, nothing indexed, rejected"
    );
    for (id, alarm) in alarms {
        let props = &alarm["Properties"];
        for key in ["AlarmActions", "OKActions"] {
            assert!(
                as_list(&props[key]).contains(&&topic_ref),
                "{id}: {key} does not notify {topic}"
            );
        }
        // CloudWatch caps descriptions at 1024 characters; fill every
        // substitution with a 64-character worst case (stack names are at
        // most 64, bucket names 63).
        let description = match &props["AlarmDescription"] {
            Value::String(s) => s.clone(),
            other => possible_strings(other).concat(),
        };
        let longest = substitute(&description, |_| "x".repeat(64));
        assert!(
            (40..=1024).contains(&longest.len()),
            "{id}: AlarmDescription of {} characters",
            longest.len()
        );
        // Custom metrics are the ones the EMF record emits.
        if props["Namespace"] == NAMESPACE {
            let name = props["MetricName"].as_str().unwrap();
            assert!(METRIC_NAMES.contains(&name), "{id}: unknown metric {name}");
        }
        for query in as_list(&props["Metrics"]) {
            let metric = &query["MetricStat"]["Metric"];
            if metric["Namespace"] == NAMESPACE {
                let name = metric["MetricName"].as_str().unwrap();
                assert!(METRIC_NAMES.contains(&name), "{id}: unknown metric {name}");
            }
        }
    }
}

#[test]
fn dashboard_shows_every_run_metric_of_this_function() {
    let t = Template::load();
    let (function_id, _) = t.function();
    let dashboards: Vec<_> = t.of_type("AWS::CloudWatch::Dashboard").collect();
    assert_eq!(dashboards.len(), 1, "one dashboard");
    let (id, dashboard) = dashboards[0];
    let body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        .as_str()
        .expect("DashboardBody is a !Sub string");
    let body = substitute(body, |name| match name {
        "AWS::Region" => "eu-west-1".to_string(),
        n if n == function_id => "my-stack".to_string(),
        other => panic!("{id}: unexpected ${{{other}}} in the dashboard body"),
    });
    let body: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{id}: body is not JSON: {e}"));

    let widgets = body["widgets"].as_array().expect("widgets");
    let mut shown = BTreeSet::new();
    for widget in widgets {
        assert_eq!(widget["type"], "metric", "{id}: {widget}");
        let props = &widget["properties"];
        assert_eq!(props["region"], "eu-west-1", "{id}: the stack's region");
        let rows = props["metrics"].as_array().expect("metrics");
        assert!(!rows.is_empty());
        for row in rows {
            let row = row.as_array().expect("a metric row");
            assert!(
                row.len() == 4 || (row.len() == 5 && row[4].is_object()),
                "{id}: [namespace, name, dimension, value, options?]: {row:?}"
            );
            assert_eq!(row[0], NAMESPACE, "{id}");
            let name = row[1].as_str().expect("a metric name");
            assert!(METRIC_NAMES.contains(&name), "{id}: unknown metric {name}");
            assert_eq!(row[2], DIMENSION, "{id}");
            assert_eq!(row[3], "my-stack", "{id}: this function's metrics");
            shown.insert(name);
        }
    }
    let all: BTreeSet<_> = METRIC_NAMES.into_iter().collect();
    assert_eq!(shown, all, "{id} shows every metric of the run");
}

/// One samconfig.toml section: key → value (strings unquoted, `true` as a
/// JSON bool, arrays of strings as JSON arrays).
type Section = BTreeMap<String, Value>;

/// A TOML string at the start of `text` (basic, with `\"` and `\\`
/// escapes, or literal): the string and the rest of the text.
fn toml_string(text: &str) -> (String, &str) {
    if let Some(literal) = text.strip_prefix('\'') {
        let end = literal
            .find('\'')
            .unwrap_or_else(|| panic!("unterminated literal string: {text}"));
        return (literal[..end].to_string(), &literal[end + 1..]);
    }
    let quoted = text
        .strip_prefix('"')
        .unwrap_or_else(|| panic!("not a string: {text}"));
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    loop {
        match chars.next() {
            Some((_, '\\')) => out.push(chars.next().expect("an escaped character").1),
            Some((i, '"')) => return (out, &quoted[i + 1..]),
            Some((_, c)) => out.push(c),
            None => panic!("unterminated string: {text}"),
        }
    }
}

/// samconfig.toml as section → key → value. Only the TOML SAM configuration
/// files use: `[a.b.c]` headers, `key = value` lines, strings, bools and
/// numbers, (multi-line) arrays of strings, comments.
fn parse_samconfig(text: &str) -> BTreeMap<String, Section> {
    let mut sections: BTreeMap<String, Section> = BTreeMap::new();
    let mut current = String::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            current = header.trim_end_matches(']').trim().to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("samconfig.toml: not `key = value`: {line}"));
        let value = value.trim();
        let value = if value.starts_with('"') || value.starts_with('\'') {
            Value::String(toml_string(value).0)
        } else if let Some(items) = value.strip_prefix('[') {
            // The array's text up to its closing bracket, across lines.
            let mut text = items.to_string();
            while !text.trim_end().ends_with(']') {
                let next = lines.next().expect("samconfig.toml: unterminated array");
                if !next.starts_with('#') {
                    text.push_str(next);
                }
            }
            let mut rest = text.trim_end().trim_end_matches(']').trim();
            let mut items = Vec::new();
            while !rest.is_empty() {
                let (item, after) = toml_string(rest);
                items.push(Value::String(item));
                rest = after.trim_start().trim_start_matches(',').trim_start();
            }
            Value::Array(items)
        } else {
            serde_json::from_str(value)
                .unwrap_or_else(|e| panic!("samconfig.toml: {key} = {value}: {e}"))
        };
        sections
            .entry(current.clone())
            .or_default()
            .insert(key.trim().to_string(), value);
    }
    sections
}

fn samconfig() -> BTreeMap<String, Section> {
    let path = root().join("samconfig.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_samconfig(&text)
}

/// What `sam <command>` reads from samconfig.toml: SAM CLI's
/// `SamConfig.get_all` takes [default.global.parameters] and lets the
/// command's own section replace it key by key.
fn sam_parameters(config: &BTreeMap<String, Section>, command: &str) -> Section {
    let mut merged = config
        .get("default.global.parameters")
        .cloned()
        .unwrap_or_default();
    if let Some(own) = config.get(&format!("default.{command}.parameters")) {
        merged.extend(own.clone());
    }
    merged
}

/// `Key="value with spaces" Other=x` → pairs, as SAM CLI reads
/// parameter_overrides.
fn parameter_overrides(text: &str) -> BTreeMap<String, String> {
    let mut pairs = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return pairs;
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        assert_eq!(
            chars.next(),
            Some('='),
            "parameter_overrides: {key} has no ="
        );
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().expect("an escaped character")),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => panic!("parameter_overrides: unterminated value of {key}"),
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        pairs.insert(key, value);
    }
}

/// The parameter overrides `sam <command>` passes to CloudFormation.
fn overrides_for(config: &BTreeMap<String, Section>, command: &str) -> BTreeMap<String, String> {
    match sam_parameters(config, command).get("parameter_overrides") {
        None => BTreeMap::new(),
        Some(Value::String(text)) => parameter_overrides(text),
        Some(other) => panic!("parameter_overrides is a string, not {other}"),
    }
}

#[test]
fn samconfig_leaves_the_parameters_to_the_template_and_the_guided_deploy() {
    // `sam deploy --guided` writes a full parameter_overrides line into
    // [default.deploy.parameters], defaults or not (SAM CLI's
    // GuidedConfig.save_config; its de-duplication only drops a line equal,
    // as a string, to the global one). A global line would then be read by
    // `sam build` and `sam sync` and not by `sam deploy`. So there is none:
    // the template's defaults are the defaults, and no parameter changes the
    // build (no_parameter_changes_what_sam_build_builds). scripts/check-sam
    // runs the guided save itself on a copy.
    let config = samconfig();
    for section in [
        "default.global.parameters",
        "default.build.parameters",
        "default.deploy.parameters",
    ] {
        assert!(
            config
                .get(section)
                .is_none_or(|s| !s.contains_key("parameter_overrides")),
            "samconfig.toml: no parameter_overrides in [{section}]"
        );
    }
    for command in ["build", "deploy", "sync"] {
        let parameters = sam_parameters(&config, command);
        for key in ["template_file", "build_dir", "base_dir"] {
            assert!(
                !parameters.contains_key(key),
                "sam {command} reads {key}: build and deploy could use different templates"
            );
        }
    }
}

#[test]
fn sam_sync_deploys_its_own_paused_stack_and_ignores_build_output() {
    let t = Template::load();
    let config = samconfig();
    let sync = sam_parameters(&config, "sync");
    let deploy = sam_parameters(&config, "deploy");
    // sam sync is for development: never the stack `sam deploy` made (after a
    // guided deploy that may be any name; the -dev suffix keeps it apart
    // from the default), and no second schedule next to it.
    assert_eq!(sync["stack_name"], "docker-pulls-dev");
    assert_ne!(sync["stack_name"], deploy["stack_name"]);
    let overrides = overrides_for(&config, "sync");
    assert_eq!(
        overrides,
        BTreeMap::from([("ScheduleState".to_string(), "DISABLED".to_string())])
    );
    for (name, value) in &overrides {
        let allowed = as_list(&t.parameter(name)["AllowedValues"]);
        assert!(allowed.contains(&&json!(value)), "{name}={value}");
    }

    // With `watch`, cargo's own output under target/ must not retrigger a
    // sync (SAM CLI ignores only .aws-sam and node_modules by itself).
    // scripts/check-sam feeds these to SAM CLI's watcher.
    if sync.get("watch") == Some(&json!(true)) {
        let (function_id, _) = t.function();
        let excludes: Vec<_> = as_list(sync.get("watch_exclude").unwrap_or(&Value::Null))
            .into_iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect();
        for expected in ["/target(/|$)", r"\.log$"] {
            assert!(
                excludes.contains(&format!("{function_id}={expected}")),
                "sam sync --watch must ignore {expected}: {excludes:?}"
            );
        }
    }
}

#[test]
fn samconfig_has_deploy_defaults_as_sam_reads_them() {
    let config = samconfig();
    let deploy = sam_parameters(&config, "deploy");
    assert_eq!(deploy["stack_name"], "docker-pulls");
    assert_eq!(deploy["capabilities"], "CAPABILITY_IAM");
    assert_eq!(deploy["resolve_s3"], json!(true));
    assert_eq!(deploy["confirm_changeset"], json!(true));
    assert_eq!(
        sam_parameters(&config, "validate")["lint"],
        json!(true),
        "sam validate lints"
    );
    // The parser reads what SAM CLI writes: a guided save's deploy section.
    let guided = parse_samconfig(
        r#"
        [default.deploy.parameters]
        stack_name = "pulls-eu"
        parameter_overrides = "SsmPrefix=\"/docker-pulls\" KmsKeyArn=\"\" LogLevel=\"DEBUG\""
        image_repositories = []
        watch_exclude = [
            'F=/target(/|$)',
            "F=\\.log$",
        ]
        "#,
    );
    assert_eq!(
        overrides_for(&guided, "deploy")["LogLevel"],
        "DEBUG".to_string()
    );
    assert_eq!(overrides_for(&guided, "deploy")["KmsKeyArn"], "");
    let section = &guided["default.deploy.parameters"];
    assert_eq!(section["image_repositories"], json!([]));
    assert_eq!(
        section["watch_exclude"],
        json!(["F=/target(/|$)", "F=\\.log$"])
    );
}

/// The services CloudFormation calls to create each resource type the
/// template declares (SAM's function expands to a function, its role, its
/// schedule rule and its invoke config).
fn deploy_services(kind: &str) -> Vec<&'static str> {
    match kind {
        "AWS::Serverless::Function" => vec!["lambda", "iam", "events"],
        "AWS::CloudWatch::Alarm" | "AWS::CloudWatch::Dashboard" => vec!["cloudwatch"],
        "AWS::IAM::Role" => vec!["iam"],
        "AWS::Logs::LogGroup" => vec!["logs"],
        "AWS::S3::Bucket" | "AWS::S3::BucketPolicy" => vec!["s3"],
        "AWS::SNS::Topic" | "AWS::SNS::Subscription" | "AWS::SNS::TopicPolicy" => vec!["sns"],
        "AWS::SQS::Queue" | "AWS::SQS::QueuePolicy" => vec!["sqs"],
        "AWS::Events::Rule" => vec!["events"],
        "AWS::Lambda::Permission" | "AWS::Lambda::EventInvokeConfig" => vec!["lambda"],
        // The deploy-time refusal of an OpenSearch ARN in another region.
        "AWS::CloudFormation::WaitCondition" | "AWS::CloudFormation::WaitConditionHandle" => {
            vec!["cloudformation"]
        }
        other => panic!(
            "template.yaml declares {other}: add what deploying it takes to docs/deployer-policy.json and here"
        ),
    }
}

#[test]
fn the_documented_deployer_policy_covers_every_resource_the_template_creates() {
    let path = root().join("docs/deployer-policy.json");
    let text = std::fs::read_to_string(&path).expect("docs/deployer-policy.json");
    let policy: Value = serde_json::from_str(&text).expect("the deployer policy is JSON");
    let granted: BTreeSet<String> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .inspect(|s| assert_eq!(s["Effect"], "Allow", "{s}"))
        .flat_map(actions)
        .collect();
    let template = Template::load();
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    for resource in template.resources().values() {
        let kind = resource["Type"].as_str().expect("Type");
        needed.extend(deploy_services(kind));
    }
    for service in &needed {
        assert!(
            granted
                .iter()
                .any(|a| a.starts_with(&format!("{service}:"))),
            "docs/deployer-policy.json grants nothing on {service}, which the template needs"
        );
    }
    // Creating the role the function runs as means passing it, and SAM's
    // transform and change sets are how `sam deploy` works.
    for action in [
        "iam:PassRole",
        "iam:CreateRole",
        "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet",
        "lambda:CreateFunction",
        "ssm:PutParameter",
    ] {
        assert!(
            granted.contains(action),
            "docs/deployer-policy.json lacks {action}"
        );
    }
    let docs = std::fs::read_to_string(root().join("docs/deploy.md")).expect("deploy.md");
    assert!(
        docs.contains("deployer-policy.json"),
        "docs/deploy.md shows the deployer policy"
    );
}

fn badge_bucket_id(t: &Template) -> String {
    let variables = &t.function_prop("Environment")["Variables"];
    variables["BADGE_BUCKET"]["Ref"]
        .as_str()
        .expect("BADGE_BUCKET is a Ref to the badge bucket")
        .to_string()
}

#[test]
fn the_badge_bucket_is_private_unless_public_badges_is_true() {
    let t = Template::load();
    let id = badge_bucket_id(&t);
    let bucket = t.resource(&id);
    assert_eq!(bucket["Type"], "AWS::S3::Bucket");
    let props = |overrides: &[(&str, &str)]| {
        t.resolve_tree(&bucket["Properties"], overrides)
            .expect("properties")
    };
    let policy_statements = |overrides: &[(&str, &str)]| -> Vec<Value> {
        let policies: Vec<_> = t
            .of_type("AWS::S3::BucketPolicy")
            .filter(|(_, p)| p["Properties"]["Bucket"] == json!({ "Ref": id }))
            .collect();
        assert_eq!(policies.len(), 1, "one policy on {id}");
        let document = t
            .resolve_tree(&policies[0].1["Properties"]["PolicyDocument"], overrides)
            .expect("document");
        as_list(&document["Statement"])
            .into_iter()
            .cloned()
            .collect()
    };
    assert_eq!(t.parameter("PublicBadges")["Default"], "false");

    // Default: every public access block on, no CORS, the policy only denies.
    let private = props(&[]);
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            t.resolve(&private["PublicAccessBlockConfiguration"][setting], &[]),
            Some("true".into()),
            "{setting}"
        );
    }
    assert!(private.get("CorsConfiguration").is_none());
    assert!(policy_statements(&[]).iter().all(|s| s["Effect"] == "Deny"));

    // PublicBadges=true: anyone may GET badges/ over HTTPS, nothing else.
    let on = [("PublicBadges", "true")];
    let public = props(&on);
    let block = &public["PublicAccessBlockConfiguration"];
    assert_eq!(block["BlockPublicAcls"], json!(true), "ACLs stay blocked");
    assert_eq!(block["IgnorePublicAcls"], json!(true));
    assert_eq!(block["BlockPublicPolicy"], json!(false));
    assert_eq!(block["RestrictPublicBuckets"], json!(false));
    let allows: Vec<Value> = policy_statements(&on)
        .into_iter()
        .filter(|s| s["Effect"] == "Allow")
        .collect();
    assert_eq!(allows.len(), 1, "{allows:?}");
    assert_eq!(allows[0]["Principal"], "*");
    assert_eq!(actions(&allows[0]), ["s3:GetObject"]);
    assert_eq!(
        allows[0]["Resource"],
        json!({ "Fn::Sub": format!("${{{id}.Arn}}/badges/*") }),
        "badges/ only: never alerts/"
    );
    assert_eq!(
        allows[0]["Condition"],
        json!({ "Bool": { "aws:SecureTransport": "true" } })
    );
    let cors = as_list(&public["CorsConfiguration"]["CorsRules"]);
    assert_eq!(cors.len(), 1);
    assert_eq!(cors[0]["AllowedMethods"], json!(["GET", "HEAD"]));
    assert_eq!(cors[0]["AllowedOrigins"], json!(["*"]));

    // The spool and archive bucket is private whatever PublicBadges says.
    let spool = t.resource(&spool_bucket_id(&t));
    let spool_props = t
        .resolve_tree(&spool["Properties"], &on)
        .expect("properties");
    for setting in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(
            spool_props["PublicAccessBlockConfiguration"][setting],
            json!(true)
        );
    }
}

#[test]
fn badge_bucket_role_statements_and_the_alert_topic_only() {
    let t = Template::load();
    let badge = badge_bucket_id(&t);
    let spool = spool_bucket_id(&t);
    let variables = &t.function_prop("Environment")["Variables"];
    let topic = variables["ALERT_TOPIC_ARN"]["Ref"].as_str().expect("a Ref");
    let statements = t.all_statements();
    // sns:Publish on the alert topic and nothing else.
    let sns: Vec<&Value> = statements
        .iter()
        .map(|(_, s)| s)
        .filter(|s| actions(s).iter().any(|a| a.starts_with("sns:")))
        .collect();
    assert_eq!(sns.len(), 1, "{sns:?}");
    assert_eq!(actions(sns[0]), ["sns:Publish"]);
    assert_eq!(sns[0]["Resource"], json!({ "Ref": topic }));
    // On the badge bucket: list (so a missing object is a 404), and get and
    // put under badges/ and alerts/; no delete.
    let on_badges: Vec<&Value> = statements
        .iter()
        .map(|(_, s)| s)
        .filter(|s| actions(s).iter().any(|a| a.starts_with("s3:")))
        .filter(|s| s["Resource"].to_string().contains(&badge))
        .collect();
    assert_eq!(on_badges.len(), 2, "{on_badges:?}");
    for statement in on_badges {
        assert!(!statement["Resource"].to_string().contains(&spool));
        match actions(statement).as_slice() {
            [list] if list == "s3:ListBucket" => {
                assert_eq!(
                    statement["Resource"],
                    json!({ "Fn::GetAtt": [badge, "Arn"] })
                );
            }
            _ => {
                let granted: BTreeSet<String> = actions(statement).into_iter().collect();
                assert_eq!(
                    granted,
                    BTreeSet::from(["s3:GetObject".to_string(), "s3:PutObject".to_string()])
                );
                assert_eq!(
                    statement["Resource"],
                    json!([
                        { "Fn::Sub": format!("${{{badge}.Arn}}/badges/*") },
                        { "Fn::Sub": format!("${{{badge}.Arn}}/alerts/*") },
                    ])
                );
            }
        }
    }
    // An optional e-mail subscription to the alert topic.
    let subscriptions: Vec<_> = t
        .of_type("AWS::SNS::Subscription")
        .filter(|(_, s)| s["Properties"]["TopicArn"] == json!({ "Ref": topic }))
        .collect();
    assert_eq!(subscriptions.len(), 1);
    let (_, subscription) = subscriptions[0];
    assert_eq!(
        subscription["Properties"]["Endpoint"],
        json!({ "Ref": "AlertEmail" })
    );
    let condition = subscription["Condition"].as_str().expect("conditional");
    assert!(!t.condition(condition, &[]));
    assert!(t.condition(condition, &[("AlertEmail", "me@example.com")]));
}
