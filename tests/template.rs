//! Guards the SAM template (template.yaml) and samconfig.toml against careless
//! edits: the schedule, the runtime and build method, least-privilege IAM,
//! failure handling (retries, dead-letter queue, alarms), the spool bucket,
//! optional reserved concurrency, the metrics' alarms and dashboard, log
//! retention, the stack outputs that docs/deploy.md relies on, and that
//! `sam build` and `sam deploy` read the same Architecture.
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
            other => panic!("cannot resolve {other}"),
        }
    }

    /// Every IAM policy statement of an identity-based policy: role inline
    /// policies, AWS::IAM::Policy / ManagedPolicy, and SAM function
    /// `Policies` given as statements.
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
    let schedules: Vec<_> = events
        .values()
        .filter(|e| e["Type"] == "Schedule" || e["Type"] == "ScheduleV2")
        .collect();
    assert_eq!(schedules.len(), 1, "expected exactly one schedule event");
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

#[test]
fn function_runtime_handler_architecture_and_build() {
    let t = Template::load();
    let (id, function) = t.function();

    assert_eq!(t.function_prop("Runtime"), "provided.al2023");
    assert_eq!(t.function_prop("Handler"), "bootstrap");

    let architectures = as_list(t.function_prop("Architectures"));
    assert_eq!(architectures.len(), 1, "one architecture");
    assert_eq!(t.ref_default(architectures[0], "Architecture"), "arm64");
    let allowed: BTreeSet<_> = as_list(&t.parameter("Architecture")["AllowedValues"])
        .into_iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        allowed,
        BTreeSet::from(["arm64".to_string(), "x86_64".to_string()])
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
    // limit"): 10,000 repositories in `details` mode at the default
    // HubConcurrency and 150 ms Hub latency need ~97 s plus the listing, so
    // at least 180 s; and less than the schedule's 5 minutes, so that two
    // runs never overlap and share one Docker Hub rate-limit budget.
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

    let logging = t.function_prop("LoggingConfig");
    assert_eq!(logging["LogFormat"], "JSON");
    // platform.report (duration, memory: the sizing and cost figures) is INFO.
    let system = &logging["SystemLogLevel"];
    assert!(
        system.is_null() || system == "INFO" || system == "DEBUG",
        "SystemLogLevel {system} drops the platform.report lines"
    );
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
    let send_allowed = t.identity_statements().iter().any(|(_, s)| {
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

    let statements = t.identity_statements();
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
    let allowed_actions = [
        "ssm:GetParametersByPath",
        "ssm:GetParameters",
        "ssm:GetParameter",
    ];
    let mut saw_by_path = false;
    for (owner, statement) in t.identity_statements() {
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
    for (owner, statement) in t.identity_statements() {
        let acts = actions(&statement);
        if !acts.iter().any(|a| a.starts_with("kms:")) {
            continue;
        }
        found = true;
        assert_eq!(acts, ["kms:Decrypt"], "{owner}: only kms:Decrypt");
        assert_eq!(
            statement["Condition"]["StringEquals"]["kms:ViaService"],
            json!({ "Fn::Sub": "ssm.${AWS::Region}.amazonaws.com" }),
            "{owner}: kms:Decrypt must be limited to SSM"
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

    let topics: Vec<_> = t.of_type("AWS::SNS::Topic").map(|(id, _)| id).collect();
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

    // Spooled documents may exist nowhere else: deleting the stack keeps them.
    assert_eq!(bucket["DeletionPolicy"], "Retain");
    assert_eq!(bucket["UpdateReplacePolicy"], "Retain");

    // The bucket policy refuses every request not made over TLS, and grants nothing.
    let policies: Vec<_> = t
        .of_type("AWS::S3::BucketPolicy")
        .filter(|(_, p)| p["Properties"]["Bucket"] == json!({ "Ref": bucket_id }))
        .collect();
    assert_eq!(policies.len(), 1, "one bucket policy on {bucket_id}");
    let statements = as_list(&policies[0].1["Properties"]["PolicyDocument"]["Statement"]);
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

#[test]
fn spool_objects_expire_after_spool_retention_days() {
    let t = Template::load();
    let bucket_id = spool_bucket_id(&t);
    let rules = as_list(&t.resource(&bucket_id)["Properties"]["LifecycleConfiguration"]["Rules"]);
    let expiring: Vec<_> = rules
        .iter()
        .filter(|r| r["Status"] == "Enabled" && !r["ExpirationInDays"].is_null())
        .collect();
    assert_eq!(expiring.len(), 1, "one expiration rule: {rules:?}");
    let rule = expiring[0];
    assert_eq!(
        t.ref_default(&rule["ExpirationInDays"], "SpoolRetentionDays"),
        &json!(90)
    );
    // It covers spool/ and so spool/rejected/ (no prefix at all would too).
    let prefix = rule["Prefix"].as_str().unwrap_or_default();
    assert!(
        "spool/rejected/x".starts_with(prefix) && "spool/x".starts_with(prefix),
        "the expiration rule's prefix {prefix:?} must cover spool/ and spool/rejected/"
    );
    assert!(
        rule["Filter"].is_null() && rule["TagFilters"].is_null(),
        "no filter that would exempt spool objects"
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
fn function_may_list_read_write_and_delete_only_the_spool_prefix() {
    let t = Template::load();
    let bucket_id = spool_bucket_id(&t);
    let s3: Vec<_> = t
        .identity_statements()
        .into_iter()
        .filter(|(_, s)| actions(s).iter().any(|a| a.starts_with("s3:")))
        .collect();
    assert_eq!(
        s3.len(),
        2,
        "exactly the list and the object statements: {s3:?}"
    );

    let list = s3
        .iter()
        .map(|(_, s)| s)
        .find(|s| actions(s) == ["s3:ListBucket"])
        .expect("a statement allowing s3:ListBucket alone");
    assert_eq!(list["Effect"], "Allow");
    assert_eq!(
        list["Resource"],
        json!({ "Fn::GetAtt": [bucket_id, "Arn"] }),
        "ListBucket on the spool bucket only"
    );
    let condition = list["Condition"]
        .as_object()
        .expect("ListBucket has a condition");
    assert_eq!(condition.len(), 1, "one condition operator: {condition:?}");
    let prefixes: BTreeSet<_> = as_list(&condition["StringLike"]["s3:prefix"])
        .into_iter()
        .map(|p| p.as_str().expect("a prefix string"))
        .collect();
    assert_eq!(
        prefixes,
        BTreeSet::from(["spool/", "spool/*"]),
        "listing is limited to the spool/ prefix"
    );

    let objects = s3
        .iter()
        .map(|(_, s)| s)
        .find(|s| actions(s) != ["s3:ListBucket"])
        .unwrap();
    assert_eq!(objects["Effect"], "Allow");
    let granted: BTreeSet<_> = actions(objects).into_iter().collect();
    let expected: BTreeSet<_> = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
        .map(String::from)
        .into();
    assert_eq!(granted, expected, "object actions");
    assert_eq!(
        objects["Resource"],
        json!({ "Fn::Sub": format!("${{{bucket_id}.Arn}}/spool/*") }),
        "object actions on spool/* only"
    );
    assert!(objects["Condition"].is_null());

    assert_eq!(
        t.doc["Outputs"]["SpoolBucketName"]["Value"],
        json!({ "Ref": bucket_id }),
        "the bucket's name is an output"
    );
}

#[test]
fn schedule_rule_is_named_within_eventbridge_limits() {
    // EventBridge rule names: 1–64 characters of [.-_A-Za-z0-9]. The rule
    // carries the stack's name, as the function does (Lambda: 64 as well),
    // so every stack name the function accepts fits.
    let t = Template::load();
    let (_, function) = t.function();
    let events = t.function_prop("Events").as_object().unwrap();
    let schedule = events.values().find(|e| e["Type"] == "Schedule").unwrap();
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

    let stack_name = sam_parameters(&samconfig(), "deploy")["stack_name"].clone();
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

/// samconfig.toml as section → key → value (strings unquoted). Only the TOML
/// SAM configuration files use: `[a.b.c]` headers, `key = value` lines,
/// basic strings with `\"` and `\\` escapes, comments.
fn parse_samconfig(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
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
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("samconfig.toml: not `key = value`: {line}"));
        let value = value.trim();
        let value = if let Some(quoted) = value.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.chars();
            loop {
                match chars.next() {
                    Some('\\') => out.push(chars.next().expect("an escaped character")),
                    Some('"') => break,
                    Some(c) => out.push(c),
                    None => panic!("samconfig.toml: unterminated string: {line}"),
                }
            }
            out
        } else {
            value.to_string()
        };
        sections
            .entry(current.clone())
            .or_default()
            .insert(key.trim().to_string(), value);
    }
    sections
}

fn samconfig() -> BTreeMap<String, BTreeMap<String, String>> {
    let path = root().join("samconfig.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    parse_samconfig(&text)
}

/// What `sam <command>` reads from samconfig.toml: SAM CLI's
/// `SamConfig.get_all` takes [default.global.parameters] and lets the
/// command's own section replace it key by key.
fn sam_parameters(
    config: &BTreeMap<String, BTreeMap<String, String>>,
    command: &str,
) -> BTreeMap<String, String> {
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

fn architecture_for(
    config: &BTreeMap<String, BTreeMap<String, String>>,
    command: &str,
) -> Option<String> {
    let parameters = sam_parameters(config, command);
    let overrides = parameter_overrides(parameters.get("parameter_overrides")?);
    overrides.get("Architecture").cloned()
}

#[test]
fn sam_build_and_sam_deploy_read_the_same_architecture() {
    let config = samconfig();
    let build = architecture_for(&config, "build");
    let deploy = architecture_for(&config, "deploy");
    let sync = architecture_for(&config, "sync");
    assert!(
        build.is_some(),
        "sam build reads no Architecture from samconfig.toml"
    );
    assert_eq!(
        build, deploy,
        "sam build and sam deploy must build and deploy one architecture"
    );
    assert_eq!(build, sync, "sam sync too");
}

#[test]
fn the_architecture_check_catches_a_deploy_only_choice() {
    // The layout `sam deploy --guided` writes: parameters in the deploy
    // section only, which `sam build` never reads.
    let guided = parse_samconfig(
        r#"
        version = 0.1
        [default.global.parameters]
        stack_name = "docker-pulls"
        [default.deploy.parameters]
        parameter_overrides = "Architecture=\"x86_64\" ScheduleExpression=\"rate(5 minutes)\""
        "#,
    );
    assert_eq!(architecture_for(&guided, "build"), None);
    assert_eq!(
        architecture_for(&guided, "deploy").as_deref(),
        Some("x86_64")
    );

    // A command's own parameter_overrides replaces the global one whole.
    let shadowed = parse_samconfig(
        r#"
        [default.global.parameters]
        parameter_overrides = "Architecture=\"arm64\""
        [default.deploy.parameters]
        parameter_overrides = "Architecture=\"x86_64\""
        "#,
    );
    assert_eq!(
        architecture_for(&shadowed, "build").as_deref(),
        Some("arm64")
    );
    assert_eq!(
        architecture_for(&shadowed, "deploy").as_deref(),
        Some("x86_64")
    );
}

#[test]
fn samconfig_parameters_are_the_templates_defaults() {
    let t = Template::load();
    let parameters = sam_parameters(&samconfig(), "deploy");
    let overrides = parameter_overrides(
        parameters
            .get("parameter_overrides")
            .expect("parameter_overrides"),
    );
    assert!(overrides.contains_key("Architecture"));
    for (name, value) in &overrides {
        assert_eq!(
            &t.parameter_value(name, &[]),
            value,
            "samconfig.toml's {name} differs from the template's Default"
        );
    }
}
