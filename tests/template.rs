//! Guards the SAM template (template.yaml) and samconfig.toml against careless
//! edits: the schedule, the runtime and build method, least-privilege IAM,
//! failure handling (retries, dead-letter queue, alarms), no overlapping runs,
//! log retention and the stack outputs that docs/deploy.md relies on.
//!
//! The YAML is parsed with `serde_norway` (CloudFormation short-form tags such
//! as `!Sub` come back as `Value::Tagged`) and normalised to the long form
//! (`{"Fn::Sub": …}`) as JSON, so either spelling passes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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
    if !metadata["Binary"].is_null() {
        assert_eq!(metadata["Binary"], "docker-pulls");
    }

    let memory = t.function_prop("MemorySize").as_u64().expect("MemorySize");
    assert!((128..=10240).contains(&memory), "MemorySize {memory}");
    let timeout = t.function_prop("Timeout").as_u64().expect("Timeout");
    assert!((1..=900).contains(&timeout), "Timeout {timeout}");
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

#[test]
fn runs_never_overlap() {
    let t = Template::load();
    assert_eq!(t.function_prop("ReservedConcurrentExecutions"), &json!(1));
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
