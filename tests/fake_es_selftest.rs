//! Self-tests of the fake Elasticsearch and of the ingest-pipeline engine.
//!
//! The integration tests are only as good as the fake they run against, so
//! these pin its behaviour to the documented wire shapes in
//! `tests/fixtures/elasticsearch/` (the team's shared fixtures) and to
//! Elasticsearch's own rules.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fake_es::{FakeEs, apply_filter_path};
use support::ingest::{IngestFailure, run_pipeline};

const NDJSON: &str = "application/x-ndjson";

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/elasticsearch/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

/// The `docker-hub-pulls` pipeline exactly as the seed article installs it
/// (the JSON block under its `PUT /_ingest/pipeline/docker-hub-pulls`).
fn seed_pipeline() -> Value {
    fixture("seed-pipeline.json")
}

fn trimmed_doc(name: &str) -> Value {
    json!({
        "@timestamp": "2026-11-27T18:35:00Z",
        "http": {"docker_hub": {
            "namespace": "library", "name": name,
            "pull_count": 2244658322u64, "star_count": 3321, "collaborator_count": 0
        }}
    })
}

fn create_line(id: &str, doc: &Value) -> String {
    format!("{}\n{}\n", json!({"create": {"_id": id}}), doc)
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn send(
    es: &FakeEs,
    method: reqwest::Method,
    path_and_query: &str,
    content_type: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut request =
        reqwest::Client::new().request(method, format!("{}{path_and_query}", es.url()));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.expect("the fake answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("a body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("the fake answers JSON")
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn bulk(es: &FakeEs, path_and_query: &str, body: &str) -> Answer {
    send(
        es,
        reqwest::Method::POST,
        path_and_query,
        Some(NDJSON),
        Some(body),
    )
    .await
}

// ---------------------------------------------------------------------------
// filter_path, as a pure function
// ---------------------------------------------------------------------------

#[test]
fn filter_path_items_error_drops_successful_items_and_loses_positions() {
    let response = fixture("bulk-mixed-errors.json");
    let filtered = apply_filter_path(&response, "items.*.error");
    let items = filtered["items"].as_array().expect("items kept");
    // Five items in, four out: the successful "a" vanished entirely, so the
    // first remaining error belongs to the second item sent.
    assert_eq!(items.len(), 4);
    assert_eq!(
        items[0],
        json!({"create": {"error": response["items"][1]["create"]["error"]}})
    );
    assert_eq!(filtered.as_object().unwrap().len(), 1, "{filtered}");

    let with_errors = apply_filter_path(&response, "errors,items.*.error");
    assert_eq!(with_errors["errors"], json!(true));
    assert_eq!(with_errors["items"].as_array().unwrap().len(), 4);
}

#[test]
fn filter_path_wildcards_depth_and_exclusions() {
    let response = fixture("bulk-mixed-errors.json");

    // A wildcard inside a field name.
    let partial = apply_filter_path(&response, "items.*.err*.type");
    assert_eq!(
        partial["items"][0],
        json!({"create": {"error": {"type": "version_conflict_engine_exception"}}})
    );

    // `**` at any depth, including fields of array elements.
    let statuses = apply_filter_path(&response, "**.status");
    let statuses: Vec<&Value> = statuses["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["create"]["status"])
        .collect();
    assert_eq!(
        statuses,
        [
            &json!(201),
            &json!(409),
            &json!(429),
            &json!(400),
            &json!(400)
        ]
    );

    // Exclusions remove what they match and keep the rest.
    let excluded = apply_filter_path(&response, "-took,-items.*._shards,-items.*.error");
    assert!(excluded.get("took").is_none());
    assert_eq!(excluded["errors"], json!(true));
    assert_eq!(excluded["items"].as_array().unwrap().len(), 5);
    assert!(excluded["items"][0]["create"].get("_shards").is_none());
    assert_eq!(excluded["items"][0]["create"]["_seq_no"], json!(1));
    assert!(excluded["items"][1]["create"].get("error").is_none());

    // Includes first, then excludes.
    let both = apply_filter_path(&response, "items.*.error,-items.*.error.reason");
    assert_eq!(
        both["items"][0]["create"]["error"]["index"],
        json!("docker-pulls-2026")
    );
    assert!(both["items"][0]["create"]["error"].get("reason").is_none());

    // No match at all is an empty object; a path into a scalar matches nothing.
    assert_eq!(apply_filter_path(&response, "nothing.here"), json!({}));
    assert_eq!(apply_filter_path(&response, "took.value"), json!({}));
    // A matched field is kept whole, even an empty object.
    assert_eq!(
        apply_filter_path(&json!({"a": {}, "b": 1}), "a"),
        json!({"a": {}})
    );
    // Objects emptied by an include disappear, as do array elements.
    assert_eq!(
        apply_filter_path(&json!({"a": [{"x": 1}, {"y": 2}, 3]}), "a.y"),
        json!({"a": [{"y": 2}]})
    );
    // Whitespace around expressions is ignored; several paths combine.
    assert_eq!(
        apply_filter_path(&json!({"a": 1, "b": 2, "c": 3}), " a , c "),
        json!({"a": 1, "c": 3})
    );
}

// ---------------------------------------------------------------------------
// Bulk wire shapes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn successful_create_has_the_documented_item_shape() {
    let es = FakeEs::start().await;
    let id = "library/httpd@2026-11-27T18:35:00Z";
    let answer = bulk(
        &es,
        "/docker-pulls-2026/_bulk",
        &create_line(id, &trimmed_doc("httpd")),
    )
    .await;
    assert_eq!(answer.status, 200);
    let expected = fixture("bulk-all-created.json");
    assert_eq!(answer.body["errors"], expected["errors"]);
    assert!(answer.body["took"].is_u64());
    assert_eq!(answer.body["items"], expected["items"]);
    assert_eq!(
        answer.headers["x-elastic-product"].to_str().unwrap(),
        "Elasticsearch"
    );
    assert_eq!(
        es.documents("docker-pulls-2026"),
        [(id.to_owned(), trimmed_doc("httpd"))]
    );
}

#[tokio::test]
async fn filter_path_through_the_server_reproduces_the_fixture() {
    let es = FakeEs::start().await;
    es.fail_item(
        "c",
        1,
        429,
        "es_rejected_execution_exception",
        "rejected execution",
    );
    let answer = bulk(
        &es,
        "/docker-pulls-2026/_bulk?filter_path=errors,items.*.status,items.*.error",
        &create_line("c", &trimmed_doc("httpd")),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, fixture("bulk-filter-path-items-error.json"));
    assert!(es.documents("docker-pulls-2026").is_empty());

    // With a successful item before it, `items.*.error` loses its position.
    es.fail_item(
        "c",
        1,
        429,
        "es_rejected_execution_exception",
        "rejected execution",
    );
    let body = create_line("a", &trimmed_doc("a")) + &create_line("c", &trimmed_doc("c"));
    let answer = bulk(
        &es,
        "/docker-pulls-2026/_bulk?filter_path=items.*.error",
        &body,
    )
    .await;
    assert_eq!(
        answer.body,
        json!({"items": [{"create": {"error": {
            "type": "es_rejected_execution_exception", "reason": "rejected execution"
        }}}]})
    );
    assert_eq!(es.documents("docker-pulls-2026").len(), 1);
}

#[tokio::test]
async fn missing_final_newline_is_refused_with_the_documented_body() {
    let es = FakeEs::start().await;
    let body = create_line("a", &trimmed_doc("a"));
    let answer = bulk(&es, "/docker-pulls-2026/_bulk", body.trim_end()).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body, fixture("error-bulk-no-newline.json"));
    assert!(es.all_documents().is_empty());
}

#[tokio::test]
async fn duplicate_create_is_a_409_and_leaves_the_document_alone() {
    let es = FakeEs::start().await;
    let first = bulk(
        &es,
        "/docker-pulls-2026/_bulk",
        &create_line("b", &trimmed_doc("b")),
    )
    .await;
    assert_eq!(first.body["items"][0]["create"]["status"], json!(201));

    let changed = json!({"changed": true});
    let second = bulk(&es, "/docker-pulls-2026/_bulk", &create_line("b", &changed)).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body["errors"], json!(true));
    let item = &second.body["items"][0]["create"];
    let documented = &fixture("bulk-mixed-errors.json")["items"][1]["create"];
    assert_eq!(item["status"], json!(409));
    assert_eq!(item["_id"], json!("b"));
    assert_eq!(item["error"]["type"], documented["error"]["type"]);
    assert_eq!(item["error"]["reason"], documented["error"]["reason"]);
    assert_eq!(item["error"]["shard"], json!("0"));
    assert_eq!(item["error"]["index"], json!("docker-pulls-2026"));
    assert!(item["error"]["index_uuid"].is_string());
    assert_eq!(
        es.document("docker-pulls-2026", "b"),
        Some(trimmed_doc("b"))
    );

    // `index` overwrites instead, bumping the version.
    let body = format!("{}\n{changed}\n", json!({"index": {"_id": "b"}}));
    let third = bulk(&es, "/docker-pulls-2026/_bulk", &body).await;
    let item = &third.body["items"][0]["index"];
    assert_eq!(
        (item["status"].clone(), item["result"].clone()),
        (json!(200), json!("updated"))
    );
    assert_eq!(item["_version"], json!(2));
    assert_eq!(es.document("docker-pulls-2026", "b"), Some(changed));
}

#[tokio::test]
async fn request_level_errors_match_elasticsearch() {
    let es = FakeEs::start().await;
    let doc = trimmed_doc("x");

    let unknown_action = format!("{}\n{doc}\n", json!({"upsert": {"_id": "x"}}));
    let answer = bulk(&es, "/i/_bulk", &unknown_action).await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body["error"]["type"],
        json!("illegal_argument_exception")
    );
    assert_eq!(
        answer.body["error"]["reason"],
        json!(
            "Malformed action/metadata line [1], expected one of [create, delete, index, update] but found [upsert]"
        )
    );
    assert_eq!(answer.body["status"], json!(400));

    let second_action_unknown = create_line("a", &doc) + &format!("{}\n", json!({"frob": {}}));
    let answer = bulk(&es, "/i/_bulk", &second_action_unknown).await;
    assert_eq!(
        answer.body["error"]["reason"],
        json!(
            "Malformed action/metadata line [3], expected one of [create, delete, index, update] but found [frob]"
        )
    );

    let unknown_param = format!(
        "{}\n{doc}\n",
        json!({"create": {"_id": "x", "_type": "_doc"}})
    );
    let answer = bulk(&es, "/i/_bulk", &unknown_param).await;
    assert_eq!(
        answer.body["error"]["reason"],
        json!("Action/metadata line [1] contains an unknown parameter [_type]")
    );

    let answer = bulk(&es, "/i/_bulk", "{not json\n{}\n").await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body["error"]["type"],
        json!("x_content_parse_exception")
    );

    let answer = bulk(&es, "/i/_bulk", "\n").await;
    assert_eq!(
        answer.body["error"]["reason"],
        json!("Validation Failed: 1: no requests added;")
    );

    let answer = bulk(&es, "/_bulk", &create_line("x", &doc)).await;
    assert_eq!(
        answer.body["error"]["reason"],
        json!("Validation Failed: 1: index is missing;")
    );

    let answer = bulk(&es, "/i/_bulk?pipelines=x", &create_line("x", &doc)).await;
    assert_eq!(
        answer.body["error"]["reason"],
        json!("request [/i/_bulk] contains unrecognized parameter: [pipelines]")
    );

    let answer = send(&es, reqwest::Method::GET, "/_bulk", None, None).await;
    assert_eq!(answer.status, 405);

    // Nothing above stored anything.
    assert!(es.all_documents().is_empty());
    assert_eq!(es.bulk_request_count(), 8);
}

#[tokio::test]
async fn content_type_is_checked_like_elasticsearch() {
    let es = FakeEs::start().await;
    let body = create_line("a", &trimmed_doc("a"));

    let answer = send(
        &es,
        reqwest::Method::POST,
        "/i/_bulk",
        Some("text/plain"),
        Some(&body),
    )
    .await;
    assert_eq!(answer.status, 406);
    assert_eq!(
        answer.body,
        json!({"error": "Content-Type header [text/plain] is not supported", "status": 406})
    );
    let answer = send(&es, reqwest::Method::POST, "/i/_bulk", None, Some(&body)).await;
    assert_eq!(answer.status, 406);

    let compat9 = "application/vnd.elasticsearch+x-ndjson; compatible-with=9";
    let answer = send(
        &es,
        reqwest::Method::POST,
        "/i/_bulk",
        Some(compat9),
        Some(&body),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body["error"]["type"],
        json!("media_type_header_exception")
    );
    assert!(es.all_documents().is_empty());

    for accepted in [
        "application/json",
        "application/json; charset=UTF-8",
        "application/x-ndjson",
        "application/vnd.elasticsearch+x-ndjson; compatible-with=8",
    ] {
        let answer = send(
            &es,
            reqwest::Method::POST,
            "/i/_bulk",
            Some(accepted),
            Some(&body),
        )
        .await;
        assert_eq!(answer.status, 200, "{accepted}");
    }
    assert_eq!(es.documents("i").len(), 1);
}

#[tokio::test]
async fn index_names_are_validated_per_item() {
    let es = FakeEs::start().await;
    let answer = bulk(
        &es,
        "/Docker-Pulls-2026/_bulk",
        &create_line("a", &trimmed_doc("a")),
    )
    .await;
    assert_eq!(answer.status, 200);
    let item = &answer.body["items"][0]["create"];
    assert_eq!(item["status"], json!(400));
    assert_eq!(item["error"]["type"], json!("invalid_index_name_exception"));
    assert_eq!(
        item["error"]["reason"],
        json!("Invalid index name [Docker-Pulls-2026], must be lowercase")
    );
    assert!(es.indices().is_empty());
}

// ---------------------------------------------------------------------------
// Security
// ---------------------------------------------------------------------------

#[tokio::test]
async fn api_key_authentication() {
    let es = FakeEs::start().await;
    // base64("key-id:secret")
    let encoded = "a2V5LWlkOnNlY3JldA==";
    es.require_api_key(encoded);
    let body = create_line("a", &trimmed_doc("a"));
    let client = reqwest::Client::new();
    let post = |auth: Option<&str>| {
        let mut request = client
            .post(format!("{}/i/_bulk", es.url()))
            .header("content-type", NDJSON)
            .body(body.clone());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };

    let refused = post(Some("ApiKey not-a-key!")).await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let challenges: Vec<&str> = refused
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        challenges,
        ["Basic realm=\"security\", charset=\"UTF-8\"", "ApiKey"]
    );
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused, fixture("error-401.json"));

    let missing: Value = post(None).await.unwrap().json().await.unwrap();
    assert_eq!(
        missing["error"]["reason"],
        json!("missing authentication credentials for REST request [/i/_bulk]")
    );
    assert_eq!(missing["status"], json!(401));

    // Same id, wrong secret: base64("key-id:wrong").
    let wrong: Value = post(Some("ApiKey a2V5LWlkOndyb25n"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        wrong["error"]["root_cause"][0]["additional_unsuccessful_credentials"],
        json!("API key: invalid credentials for API key [key-id]")
    );
    assert!(es.all_documents().is_empty());

    let accepted = post(Some(&format!("ApiKey {encoded}"))).await.unwrap();
    assert_eq!(accepted.status().as_u16(), 200);
    assert_eq!(es.documents("i").len(), 1);
    assert_eq!(es.bulk_request_count(), 4);
    assert_eq!(
        es.bulk_requests()[3].header("Authorization"),
        Some(format!("ApiKey {encoded}").as_str())
    );
}

#[tokio::test]
async fn basic_authentication_and_forbidden_mode() {
    let es = FakeEs::start().await;
    es.require_basic("elastic", "changeme");
    let client = reqwest::Client::new();
    let get =
        |user: &str, password: &str| client.get(es.url()).basic_auth(user, Some(password)).send();
    let ok = get("elastic", "changeme").await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let info: Value = ok.json().await.unwrap();
    assert_eq!(info["version"]["number"], json!("8.15.0"));

    let refused = get("elastic", "nope").await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(
        refused["error"]["reason"],
        json!("unable to authenticate user [elastic] for REST request [/]")
    );

    es.forbid();
    let denied = client
        .post(format!("{}/i/_bulk", es.url()))
        .basic_auth("elastic", Some("changeme"))
        .header("content-type", NDJSON)
        .body(create_line("a", &trimmed_doc("a")))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 403);
    let denied: Value = denied.json().await.unwrap();
    assert_eq!(denied["error"]["type"], json!("security_exception"));
    assert!(
        denied["error"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("action [indices:data/write/bulk] is unauthorized for user [elastic]"),
        "{denied}"
    );
    assert!(es.all_documents().is_empty());
}

#[tokio::test]
async fn forbidden_api_key_names_the_key_id() {
    let es = FakeEs::start().await;
    es.require_api_key("a2V5LWlkOnNlY3JldA==");
    es.forbid();
    let denied = reqwest::Client::new()
        .post(format!("{}/i/_bulk", es.url()))
        .header("authorization", "ApiKey a2V5LWlkOnNlY3JldA==")
        .header("content-type", NDJSON)
        .body(create_line("a", &trimmed_doc("a")))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 403);
    let denied: Value = denied.json().await.unwrap();
    assert!(
        denied["error"]["reason"].as_str().unwrap().starts_with(
            "action [indices:data/write/bulk] is unauthorized for API key id [key-id]"
        ),
        "{denied}"
    );
}

// ---------------------------------------------------------------------------
// Pipelines during bulk
// ---------------------------------------------------------------------------

#[tokio::test]
async fn seed_pipeline_fails_each_trimmed_item_and_stores_nothing() {
    let es = FakeEs::start().await;
    es.put_pipeline("docker-hub-pulls", seed_pipeline());
    let body = create_line("a", &trimmed_doc("a")) + &create_line("b", &trimmed_doc("b"));
    let answer = bulk(
        &es,
        "/docker-pulls-2026/_bulk?pipeline=docker-hub-pulls",
        &body,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["errors"], json!(true));
    let documented = &fixture("bulk-mixed-errors.json")["items"][4]["create"];
    for (n, id) in ["a", "b"].iter().enumerate() {
        let item = &answer.body["items"][n]["create"];
        assert_eq!(item["_id"], json!(id));
        assert_eq!(item["status"], documented["status"]);
        assert_eq!(item["error"], documented["error"]);
    }
    assert!(es.all_documents().is_empty());

    // Re-sent without the pipeline (or with `_none`), they are indexed unchanged.
    let answer = bulk(&es, "/docker-pulls-2026/_bulk?pipeline=_none", &body).await;
    assert_eq!(answer.body["errors"], json!(false));
    assert_eq!(
        es.document("docker-pulls-2026", "a"),
        Some(trimmed_doc("a"))
    );
}

/// A Metricbeat `http` module event as the seed article shows it.
fn metricbeat_event(name: &str) -> Value {
    let mut raw = trimmed_doc(name);
    raw["ecs"] = json!({"version": "1.6.0"});
    raw["agent"] = json!({"type": "metricbeat"});
    raw["host"] = json!({"name": "h"});
    raw["event"] = json!({"module": "http"});
    raw["service"] = json!({"type": "http"});
    raw["metricset"] = json!({"name": "json"});
    let hub = raw["http"]["docker_hub"].as_object_mut().unwrap();
    for (field, value) in [
        ("permissions", json!({"read": true})),
        ("last_updated", json!("2021-01-12T13:42:29.184204Z")),
        ("user", json!("library")),
        ("is_private", json!(false)),
        ("is_automated", json!(false)),
        ("is_migrated", json!(false)),
        ("can_edit", json!(false)),
        ("description", json!("The Apache HTTP Server Project")),
        ("repository_type", json!("image")),
        ("status", json!(1)),
        ("full_description", json!("# Quick reference")),
        ("has_starred", json!(false)),
    ] {
        hub.insert(field.to_owned(), value);
    }
    raw
}

#[tokio::test]
async fn seed_pipeline_trims_an_untrimmed_metricbeat_document() {
    let es = FakeEs::start().await;
    es.put_pipeline("docker-hub-pulls", seed_pipeline());
    let answer = bulk(
        &es,
        "/p/_bulk?pipeline=docker-hub-pulls",
        &create_line("a", &metricbeat_event("httpd")),
    )
    .await;
    assert_eq!(answer.body["items"][0]["create"]["status"], json!(201));
    assert!(answer.body["ingest_took"].is_u64());
    assert_eq!(es.document("p", "a"), Some(trimmed_doc("httpd")));

    // The seed's second processor stops at the first missing field (its
    // `ignore_failure` only hides that), so later fields survive.
    let mut partial = metricbeat_event("httpd");
    partial["http"]["docker_hub"]
        .as_object_mut()
        .unwrap()
        .remove("last_updated");
    bulk(
        &es,
        "/p/_bulk?pipeline=docker-hub-pulls",
        &create_line("b", &partial),
    )
    .await;
    let stored = es.document("p", "b").unwrap();
    assert!(stored["http"]["docker_hub"].get("permissions").is_none());
    assert_eq!(stored["http"]["docker_hub"]["user"], json!("library"));
}

#[tokio::test]
async fn missing_pipeline_fails_each_item_with_400() {
    let es = FakeEs::start().await;
    let body = format!(
        "{}{}\n{}\n",
        create_line("a", &trimmed_doc("a")),
        json!({"create": {"_id": "b", "pipeline": "per-item"}}),
        trimmed_doc("b")
    );
    let answer = bulk(
        &es,
        "/docker-pulls-2026/_bulk?pipeline=docker-hub-pulls",
        &body,
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body["items"][0]["create"],
        json!({
            "_index": "docker-pulls-2026", "_id": "a", "status": 400,
            "error": {"type": "illegal_argument_exception",
                      "reason": "pipeline with id [docker-hub-pulls] does not exist"}
        })
    );
    // The action line's pipeline wins over the URL's.
    assert_eq!(
        answer.body["items"][1]["create"]["error"]["reason"],
        json!("pipeline with id [per-item] does not exist")
    );
    assert!(es.all_documents().is_empty());
}

#[tokio::test]
async fn index_template_default_pipeline_applies_when_none_is_requested() {
    let es = FakeEs::start().await;
    es.put_pipeline(
        "tag",
        json!({"processors": [{"set": {"field": "tagged", "value": "{{http.docker_hub.name}}"}}]}),
    );
    es.put_index_template(
        "t",
        json!({"index_patterns": ["tagged-*"], "template": {"settings": {"index.default_pipeline": "tag"}}}),
    );
    bulk(
        &es,
        "/tagged-1/_bulk",
        &create_line("a", &trimmed_doc("httpd")),
    )
    .await;
    assert_eq!(
        es.document("tagged-1", "a").unwrap()["tagged"],
        json!("httpd")
    );
}

// ---------------------------------------------------------------------------
// Mappings from index templates
// ---------------------------------------------------------------------------

fn counts_template() -> Value {
    json!({
        "index_patterns": ["docker-pulls-*"],
        "priority": 200,
        "template": {"mappings": {
            "dynamic": "strict",
            "properties": {
                "@timestamp": {"type": "date"},
                "http": {"properties": {"docker_hub": {"properties": {
                    "namespace": {"type": "keyword"},
                    "name": {"type": "keyword"},
                    "pull_count": {"type": "long"},
                    "star_count": {"type": "long"},
                    "collaborator_count": {"type": "long"}
                }}}}
            }
        }}
    })
}

#[tokio::test]
async fn mappings_reject_bad_values_and_unknown_fields() {
    let es = FakeEs::start().await;
    es.put_index_template("docker-pulls", counts_template());

    let mut not_a_number = trimmed_doc("a");
    not_a_number["http"]["docker_hub"]["pull_count"] = json!("lots");
    let mut extra_field = trimmed_doc("b");
    extra_field["http"]["docker_hub"]["user"] = json!("library");
    let mut bad_date = trimmed_doc("c");
    bad_date["@timestamp"] = json!("yesterday");
    let mut fractional = trimmed_doc("d");
    fractional["http"]["docker_hub"]["star_count"] = json!(1.5);
    let body = create_line("a", &not_a_number)
        + &create_line("b", &extra_field)
        + &create_line("c", &bad_date)
        + &create_line("d", &fractional)
        + &create_line("ok", &trimmed_doc("ok"));
    let answer = bulk(&es, "/docker-pulls-2026/_bulk", &body).await;
    let items = answer.body["items"].as_array().unwrap();
    let error = |n: usize| items[n]["create"]["error"].clone();
    assert_eq!(error(0)["type"], json!("document_parsing_exception"));
    assert!(
        error(0)["reason"]
            .as_str()
            .unwrap()
            .starts_with("failed to parse field [http.docker_hub.pull_count] of type [long]"),
        "{}",
        error(0)
    );
    assert_eq!(error(1)["type"], json!("strict_dynamic_mapping_exception"));
    assert_eq!(
        error(1)["reason"],
        json!(
            "mapping set to strict, dynamic introduction of [user] within [http.docker_hub] is not allowed"
        )
    );
    assert!(
        error(2)["reason"]
            .as_str()
            .unwrap()
            .contains("of type [date]")
    );
    // Elasticsearch coerces 1.5 into a long by default (and keeps 1.5 in _source).
    assert_eq!(items[3]["create"]["status"], json!(201));
    assert_eq!(items[4]["create"]["status"], json!(201));
    let ids: Vec<String> = es
        .documents("docker-pulls-2026")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["d", "ok"]);

    // With coercion off, the fraction is refused.
    let es = FakeEs::start().await;
    es.put_index_template("docker-pulls", counts_template());
    es.disable_coercion();
    let answer = bulk(
        &es,
        "/docker-pulls-2026/_bulk",
        &create_line("d", &fractional),
    )
    .await;
    assert_eq!(answer.body["items"][0]["create"]["status"], json!(400));
}

// ---------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn scripted_bulk_failures_are_consumed_in_order() {
    let es = FakeEs::start().await;
    let busy = json!({"error": {"type": "es_rejected_execution_exception", "reason": "busy"}, "status": 429});
    es.fail_next_bulk(429, busy.clone());
    es.fail_next_bulk(503, json!({"error": "unavailable", "status": 503}));
    es.fail_next_bulk_raw(502, "text/html", "<html>Bad Gateway</html>");
    let body = create_line("a", &trimmed_doc("a"));

    let first = bulk(&es, "/i/_bulk", &body).await;
    assert_eq!((first.status, first.body), (429, busy));
    let second = bulk(&es, "/i/_bulk", &body).await;
    assert_eq!(second.status, 503);
    let third = reqwest::Client::new()
        .post(format!("{}/i/_bulk", es.url()))
        .header("content-type", NDJSON)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(third.status().as_u16(), 502);
    assert_eq!(third.text().await.unwrap(), "<html>Bad Gateway</html>");
    assert!(es.all_documents().is_empty());

    let fourth = bulk(&es, "/i/_bulk", &body).await;
    assert_eq!(fourth.status, 200);
    assert_eq!(es.documents("i").len(), 1);
    assert_eq!(es.bulk_request_count(), 4);
}

#[tokio::test]
async fn item_failures_last_the_requested_number_of_attempts() {
    let es = FakeEs::start().await;
    es.fail_item(
        "a",
        2,
        429,
        "es_rejected_execution_exception",
        "rejected execution",
    );
    let body = create_line("a", &trimmed_doc("a")) + &create_line("b", &trimmed_doc("b"));
    for _ in 0..2 {
        let answer = bulk(&es, "/i/_bulk", &body).await;
        assert_eq!(answer.body["errors"], json!(true));
        assert_eq!(answer.body["items"][0]["create"]["status"], json!(429));
        assert_eq!(
            answer.body["items"][0]["create"]["error"],
            json!({"type": "es_rejected_execution_exception", "reason": "rejected execution"})
        );
    }
    let third = bulk(&es, "/i/_bulk", &create_line("a", &trimmed_doc("a"))).await;
    assert_eq!(third.body["errors"], json!(false));
    let ids: Vec<String> = es.documents("i").into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["b", "a"]);
}

#[tokio::test]
async fn dropped_connection_after_storing_then_retry_is_a_409() {
    let es = FakeEs::start().await;
    es.drop_connection_after_bulk_next(1);
    let body = create_line("a", &trimmed_doc("a"));
    let client = reqwest::Client::new();
    let post = || {
        client
            .post(format!("{}/i/_bulk", es.url()))
            .header("content-type", NDJSON)
            .body(body.clone())
            .send()
    };
    let dropped = post().await;
    assert!(
        dropped.is_err(),
        "the client must see an error, not {dropped:?}"
    );
    assert_eq!(es.documents("i").len(), 1, "the document was stored anyway");

    let retried: Value = post()
        .await
        .expect("the next request is answered")
        .json()
        .await
        .unwrap();
    assert_eq!(retried["items"][0]["create"]["status"], json!(409));
    assert_eq!(es.documents("i").len(), 1);
    assert_eq!(es.bulk_request_count(), 2);
}

#[tokio::test]
async fn truncated_answer_reports_fewer_items_and_stores_only_those() {
    let es = FakeEs::start().await;
    es.truncate_items_next();
    let body: String = ["a", "b", "c", "d"]
        .iter()
        .map(|id| create_line(id, &trimmed_doc(id)))
        .collect();
    let answer = bulk(&es, "/i/_bulk", &body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["errors"], json!(true));
    assert_eq!(answer.body["items"].as_array().unwrap().len(), 2);
    let ids: Vec<String> = es.documents("i").into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["a", "b"]);

    // Only once.
    let answer = bulk(&es, "/i/_bulk", &body).await;
    assert_eq!(answer.body["items"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn delayed_answer_times_out_the_client_but_stores_the_document() {
    let es = FakeEs::start().await;
    es.delay_responses(Duration::from_millis(500));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let result = client
        .post(format!("{}/i/_bulk", es.url()))
        .header("content-type", NDJSON)
        .body(create_line("a", &trimmed_doc("a")))
        .send()
        .await;
    assert!(result.is_err_and(|e| e.is_timeout()));
    assert_eq!(es.documents("i").len(), 1);
}

// ---------------------------------------------------------------------------
// Other endpoints and inspection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn pipeline_and_template_endpoints() {
    let es = FakeEs::start().await;
    let pipeline = seed_pipeline();
    let put = send(
        &es,
        reqwest::Method::PUT,
        "/_ingest/pipeline/docker-hub-pulls",
        Some("application/json"),
        Some(&pipeline.to_string()),
    )
    .await;
    assert_eq!((put.status, put.body), (200, json!({"acknowledged": true})));
    let got = send(
        &es,
        reqwest::Method::GET,
        "/_ingest/pipeline/docker-hub-pulls",
        None,
        None,
    )
    .await;
    assert_eq!(got.body, json!({"docker-hub-pulls": pipeline}));
    let missing = send(
        &es,
        reqwest::Method::GET,
        "/_ingest/pipeline/nope",
        None,
        None,
    )
    .await;
    assert_eq!((missing.status, missing.body), (404, json!({})));

    let invalid = send(
        &es,
        reqwest::Method::PUT,
        "/_ingest/pipeline/bad",
        Some("application/json"),
        Some(r#"{"processors":[{"frobnicate":{}}]}"#),
    )
    .await;
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.body["error"]["type"], json!("parse_exception"));
    assert_eq!(
        invalid.body["error"]["reason"],
        json!("No processor type exists with name [frobnicate]")
    );
    assert!(es.pipeline("bad").is_none());

    let deleted = send(
        &es,
        reqwest::Method::DELETE,
        "/_ingest/pipeline/docker-hub-pulls",
        None,
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    assert!(es.pipeline("docker-hub-pulls").is_none());

    let template = counts_template();
    let put = send(
        &es,
        reqwest::Method::PUT,
        "/_index_template/docker-pulls",
        Some("application/json"),
        Some(&template.to_string()),
    )
    .await;
    assert_eq!(put.status, 200);
    let got = send(
        &es,
        reqwest::Method::GET,
        "/_index_template/docker-pulls",
        None,
        None,
    )
    .await;
    assert_eq!(
        got.body,
        json!({"index_templates": [{"name": "docker-pulls", "index_template": template}]})
    );
    assert_eq!(es.index_template("docker-pulls"), Some(template));
    let missing = send(
        &es,
        reqwest::Method::GET,
        "/_index_template/nope",
        None,
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body["error"]["type"],
        json!("resource_not_found_exception")
    );
    let head = send(
        &es,
        reqwest::Method::HEAD,
        "/_index_template/nope",
        None,
        None,
    )
    .await;
    assert_eq!(head.status, 404);
}

#[tokio::test]
async fn search_count_and_recorded_requests() {
    let es = FakeEs::start().await;
    let body = create_line("a", &trimmed_doc("a")) + &create_line("b", &trimmed_doc("b"));
    bulk(&es, "/docker-pulls-2026/_bulk?refresh=wait_for", &body).await;

    let search = send(
        &es,
        reqwest::Method::GET,
        "/docker-pulls-*/_search",
        None,
        None,
    )
    .await;
    assert_eq!(search.body["hits"]["total"]["value"], json!(2));
    assert_eq!(search.body["hits"]["hits"][1]["_source"], trimmed_doc("b"));
    let count = send(
        &es,
        reqwest::Method::GET,
        "/docker-pulls-2026/_count",
        None,
        None,
    )
    .await;
    assert_eq!(count.body["count"], json!(2));
    let missing = send(&es, reqwest::Method::GET, "/nope/_search", None, None).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body["error"]["type"],
        json!("index_not_found_exception")
    );
    let doc = send(
        &es,
        reqwest::Method::GET,
        "/docker-pulls-2026/_doc/a",
        None,
        None,
    )
    .await;
    assert_eq!(doc.body["_source"], trimmed_doc("a"));

    let requests = es.requests();
    assert_eq!(requests.len(), 5);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/docker-pulls-2026/_bulk");
    assert_eq!(first.query, "refresh=wait_for");
    assert_eq!(first.query_param("refresh").as_deref(), Some("wait_for"));
    assert_eq!(first.header("Content-Type"), Some(NDJSON));
    assert_eq!(first.body, body.as_bytes());
    assert_eq!(first.ndjson().len(), 4);
    assert_eq!(
        es.all_documents(),
        [
            (
                "docker-pulls-2026".to_owned(),
                "a".to_owned(),
                trimmed_doc("a")
            ),
            (
                "docker-pulls-2026".to_owned(),
                "b".to_owned(),
                trimmed_doc("b")
            ),
        ]
    );
}

#[tokio::test]
async fn explicit_index_creation_uses_its_mappings_and_deletion_resets() {
    let es = FakeEs::start().await;
    let mappings = json!({"mappings": {"properties": {"n": {"type": "integer"}}}});
    let created = send(
        &es,
        reqwest::Method::PUT,
        "/made",
        Some("application/json"),
        Some(&mappings.to_string()),
    )
    .await;
    assert_eq!(created.body["acknowledged"], json!(true));
    let again = send(&es, reqwest::Method::PUT, "/made", None, None).await;
    assert_eq!(
        again.body["error"]["type"],
        json!("resource_already_exists_exception")
    );

    let body =
        create_line("big", &json!({"n": 3_000_000_000u64})) + &create_line("ok", &json!({"n": 3}));
    let answer = bulk(&es, "/made/_bulk", &body).await;
    assert_eq!(answer.body["items"][0]["create"]["status"], json!(400));
    assert_eq!(answer.body["items"][1]["create"]["status"], json!(201));

    let deleted = send(&es, reqwest::Method::DELETE, "/made", None, None).await;
    assert_eq!(deleted.status, 200);
    assert!(es.indices().is_empty());
    let head = send(&es, reqwest::Method::HEAD, "/made", None, None).await;
    assert_eq!(head.status, 404);
}

// ---------------------------------------------------------------------------
// The ingest engine on its own
// ---------------------------------------------------------------------------

fn failure(error_type: &str, reason: &str) -> IngestFailure {
    IngestFailure {
        error_type: error_type.to_owned(),
        reason: reason.to_owned(),
        caused_by: None,
    }
}

#[test]
fn remove_fails_on_missing_fields_like_elasticsearch() {
    let mut doc = trimmed_doc("httpd");
    let result = run_pipeline(&seed_pipeline(), &mut doc);
    assert_eq!(
        result,
        Err(failure(
            "illegal_argument_exception",
            "field [ecs] not present as part of path [ecs]"
        ))
    );

    let nested = json!({"processors": [{"remove": {"field": "http.hub.user"}}]});
    assert_eq!(
        run_pipeline(&nested, &mut trimmed_doc("x")),
        Err(failure(
            "illegal_argument_exception",
            "field [hub] not present as part of path [http.hub.user]"
        ))
    );

    let through_a_string = json!({"processors": [{"remove": {"field": "http.docker_hub.name.x"}}]});
    assert_eq!(
        run_pipeline(&through_a_string, &mut trimmed_doc("x")),
        Err(failure(
            "illegal_argument_exception",
            "cannot remove [x] from object of type [java.lang.String] as part of path [http.docker_hub.name.x]"
        ))
    );

    // Fields removed before the failing one stay removed (no rollback).
    let mut doc = json!({"a": 1, "b": 2});
    let partial = json!({"processors": [{"remove": {"field": ["a", "missing", "b"]}}]});
    assert!(run_pipeline(&partial, &mut doc).is_err());
    assert_eq!(doc, json!({"b": 2}));
}

#[test]
fn remove_options() {
    let mut doc = trimmed_doc("x");
    let tolerant = json!({"processors": [
        {"remove": {"field": ["ecs", "agent", "http.docker_hub.user"], "ignore_missing": true}},
        {"remove": {"field": "ecs", "ignore_failure": true}}
    ]});
    assert_eq!(run_pipeline(&tolerant, &mut doc), Ok(()));
    assert_eq!(doc, trimmed_doc("x"));

    let mut doc = json!({"keep": {"me": 1, "not": 2}, "drop": 3, "keeper": 4});
    let keep = json!({"processors": [{"remove": {"keep": "keep.me"}}]});
    assert_eq!(run_pipeline(&keep, &mut doc), Ok(()));
    assert_eq!(doc, json!({"keep": {"me": 1}}));

    let mut doc = json!({"list": [1, 2, 3]});
    let by_index = json!({"processors": [{"remove": {"field": "list.1"}}]});
    assert_eq!(run_pipeline(&by_index, &mut doc), Ok(()));
    assert_eq!(doc, json!({"list": [1, 3]}));

    let both = json!({"processors": [{"remove": {"field": "a", "keep": "b"}}]});
    assert_eq!(
        run_pipeline(&both, &mut json!({})),
        Err(failure(
            "parse_exception",
            "[keep] and [field] cannot both be used in the same processor"
        ))
    );
    let typo = json!({"processors": [{"remove": {"field": "a", "ignore_mising": true}}]});
    assert_eq!(
        run_pipeline(&typo, &mut json!({})),
        Err(failure(
            "parse_exception",
            "processor [remove] doesn't support one or more provided configuration parameters [ignore_mising]"
        ))
    );
}

#[test]
fn failure_handlers_follow_compound_processor_semantics() {
    // A processor's own on_failure handles it, then the pipeline continues.
    let processor_level = json!({"processors": [
        {"remove": {"field": "ecs", "tag": "t1",
                    "on_failure": [{"set": {"field": "why", "value": "{{ _ingest.on_failure_message }} ({{_ingest.on_failure_processor_type}}/{{_ingest.on_failure_processor_tag}})"}}]}},
        {"set": {"field": "after", "value": true}}
    ]});
    let mut doc = json!({});
    assert_eq!(run_pipeline(&processor_level, &mut doc), Ok(()));
    assert_eq!(
        doc,
        json!({"why": "field [ecs] not present as part of path [ecs] (remove/t1)", "after": true})
    );

    // The pipeline's on_failure replaces the remaining processors.
    let pipeline_level = json!({
        "processors": [{"remove": {"field": "ecs"}}, {"set": {"field": "after", "value": true}}],
        "on_failure": [{"set": {"field": "failed", "value": true}}]
    });
    let mut doc = json!({});
    assert_eq!(run_pipeline(&pipeline_level, &mut doc), Ok(()));
    assert_eq!(doc, json!({"failed": true}));

    // A failing handler fails the document.
    let failing_handler = json!({
        "processors": [{"remove": {"field": "ecs"}}],
        "on_failure": [{"fail": {"message": "gave up on {{http.docker_hub.name}}"}}]
    });
    assert_eq!(
        run_pipeline(&failing_handler, &mut trimmed_doc("httpd")),
        Err(failure("fail_processor_exception", "gave up on httpd"))
    );
}

#[test]
fn conditions_set_and_rename() {
    let conditional = json!({"processors": [
        {"remove": {"field": "ecs", "if": "ctx.ecs != null"}},
        {"remove": {"field": "agent", "if": "ctx.containsKey('agent') && ctx.agent?.type == 'metricbeat'"}},
        {"set": {"field": "http.docker_hub.source", "value": "hub", "if": "ctx.http?.docker_hub?.pull_count != null && ctx.http.docker_hub.pull_count > 10"}}
    ]});
    let mut doc = trimmed_doc("x");
    assert_eq!(run_pipeline(&conditional, &mut doc), Ok(()));
    let mut expected = trimmed_doc("x");
    expected["http"]["docker_hub"]["source"] = json!("hub");
    assert_eq!(doc, expected);

    let mut with_agent = json!({"agent": {"type": "metricbeat"}, "ecs": {}});
    assert_eq!(run_pipeline(&conditional, &mut with_agent), Ok(()));
    assert_eq!(with_agent, json!({}));

    let unsupported =
        json!({"processors": [{"remove": {"field": "a", "if": "ctx.a instanceof Map"}}]});
    let result = run_pipeline(&unsupported, &mut json!({}));
    assert_eq!(result.unwrap_err().error_type, "script_exception");

    // As in Painless, `.` on null and `null > 10` are runtime errors.
    for condition in ["ctx.a.b == 1", "ctx.a?.b > 10"] {
        let pipeline = json!({"processors": [{"remove": {"field": "a", "if": condition}}]});
        let result = run_pipeline(&pipeline, &mut json!({}));
        assert_eq!(
            result.unwrap_err().error_type,
            "script_exception",
            "{condition}"
        );
    }

    let rename = json!({"processors": [
        {"rename": {"field": "http.docker_hub.name", "target_field": "repo"}},
        {"set": {"field": "repo", "value": "other", "override": false}},
        {"set": {"field": "copied", "copy_from": "repo"}}
    ]});
    let mut doc = trimmed_doc("httpd");
    assert_eq!(run_pipeline(&rename, &mut doc), Ok(()));
    assert_eq!(doc["repo"], json!("httpd"));
    assert_eq!(doc["copied"], json!("httpd"));
    assert!(doc["http"]["docker_hub"].get("name").is_none());

    let missing = json!({"processors": [{"rename": {"field": "nope", "target_field": "x"}}]});
    assert_eq!(
        run_pipeline(&missing, &mut json!({})),
        Err(failure(
            "illegal_argument_exception",
            "field [nope] doesn't exist"
        ))
    );
}

#[test]
fn unknown_and_unimplemented_processors_are_refused() {
    let unknown = json!({"processors": [{"frobnicate": {}}]});
    assert_eq!(
        run_pipeline(&unknown, &mut json!({})),
        Err(failure(
            "parse_exception",
            "No processor type exists with name [frobnicate]"
        ))
    );
    let unimplemented = json!({"processors": [{"lowercase": {"field": "a"}}]});
    let refused = run_pipeline(&unimplemented, &mut json!({"a": "B"})).unwrap_err();
    assert_eq!(refused.error_type, "parse_exception");
    assert!(
        refused.reason.contains("not implemented by the fake"),
        "{refused}"
    );

    let no_processors = json!({"description": "x"});
    assert_eq!(
        run_pipeline(&no_processors, &mut json!({})),
        Err(failure(
            "parse_exception",
            "[processors] required property is missing"
        ))
    );
}

// ---------------------------------------------------------------------------
// Per-item refusals: privileges, automatic index creation, ingest failures
// ---------------------------------------------------------------------------

/// `ApiKey` for id `key-id` (base64 of `key-id:secret`).
const API_KEY: &str = "a2V5LWlkOnNlY3JldA==";

/// A bulk request sent with an `Authorization` header.
async fn bulk_as(es: &FakeEs, authorization: &str, path_and_query: &str, body: &str) -> Answer {
    let response = reqwest::Client::new()
        .post(format!("{}{path_and_query}", es.url()))
        .header("authorization", authorization)
        .header("content-type", NDJSON)
        .body(body.to_owned())
        .send()
        .await
        .expect("the fake answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.expect("the fake answers JSON");
    Answer {
        status,
        headers,
        body,
    }
}

fn create_in(index: &str, id: &str, doc: &Value) -> String {
    format!(
        "{}\n{}\n",
        json!({"create": {"_index": index, "_id": id}}),
        doc
    )
}

/// The `n`th item of a bulk answer, whole.
fn item_of(answer: &Answer, n: usize) -> Value {
    answer.body["items"][n].clone()
}

#[tokio::test]
async fn denied_index_writes_fail_each_item_with_a_403_naming_the_privileges() {
    let es = FakeEs::start().await;
    es.require_api_key(API_KEY);
    es.require_basic("elastic", "changeme");
    es.deny_index_writes("docker-pulls-*");
    let body = create_in("docker-pulls-2026", "a", &trimmed_doc("a"))
        + &create_in("other-2026", "b", &trimmed_doc("b"));

    let answer = bulk_as(&es, &format!("ApiKey {API_KEY}"), "/_bulk", &body).await;
    assert_eq!(
        answer.status, 200,
        "a per-item refusal is not a request failure"
    );
    assert_eq!(answer.body["errors"], json!(true));
    assert_eq!(
        item_of(&answer, 0),
        json!({"create": {
            "_index": "docker-pulls-2026",
            "_id": "a",
            "status": 403,
            "error": {
                "type": "security_exception",
                "reason": "action [indices:data/write/bulk[s]] is unauthorized for API key id [key-id] of user [fake-es-user] on indices [docker-pulls-2026], this action is granted by the index privileges [create_doc,create,index,write,all]"
            }
        }})
    );
    assert_eq!(answer.body["items"][1]["create"]["status"], json!(201));
    assert_eq!(es.documents("docker-pulls-2026"), Vec::new());
    assert_eq!(es.documents("other-2026").len(), 1);

    // A user is described with its roles instead of a key id.
    let basic = format!("Basic {}", "ZWxhc3RpYzpjaGFuZ2VtZQ==");
    let answer = bulk_as(&es, &basic, "/_bulk", &body).await;
    assert_eq!(
        answer.body["items"][0]["create"]["error"]["reason"],
        json!(
            "action [indices:data/write/bulk[s]] is unauthorized for user [elastic] with effective roles [fake_es_role] on indices [docker-pulls-2026], this action is granted by the index privileges [create_doc,create,index,write,all]"
        )
    );

    es.allow_index_writes();
    let answer = bulk_as(&es, &format!("ApiKey {API_KEY}"), "/_bulk", &body).await;
    assert_eq!(answer.body["items"][0]["create"]["status"], json!(201));
    assert_eq!(
        answer.body["items"][1]["create"]["status"],
        json!(409),
        "the other index kept its document"
    );
    assert_eq!(
        es.document("docker-pulls-2026", "a"),
        Some(trimmed_doc("a"))
    );
}

#[tokio::test]
async fn denied_index_creation_refuses_missing_indices_only() {
    let es = FakeEs::start().await;
    es.require_api_key(API_KEY);
    es.create_index("docker-pulls-2025");
    es.deny_index_creation();
    let body = create_in("docker-pulls-2026", "a", &trimmed_doc("a"))
        + &create_in("docker-pulls-2025", "b", &trimmed_doc("b"));

    let answer = bulk_as(&es, &format!("ApiKey {API_KEY}"), "/_bulk", &body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["errors"], json!(true));
    assert_eq!(
        item_of(&answer, 0),
        json!({"create": {
            "_index": "docker-pulls-2026",
            "_id": "a",
            "status": 403,
            "error": {
                "type": "security_exception",
                "reason": "action [indices:admin/auto_create] is unauthorized for API key id [key-id] of user [fake-es-user] on indices [docker-pulls-2026], this action is granted by the index privileges [auto_configure,create_index,manage,all]"
            }
        }})
    );
    assert_eq!(answer.body["items"][1]["create"]["status"], json!(201));
    assert_eq!(es.indices(), ["docker-pulls-2025"], "nothing was created");

    // Explicit creation is refused too, naming its own action.
    let created = reqwest::Client::new()
        .put(format!("{}/docker-pulls-2026", es.url()))
        .header("authorization", format!("ApiKey {API_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 403);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        created["error"]["reason"],
        json!(
            "action [indices:admin/create] is unauthorized for API key id [key-id] of user [fake-es-user] on indices [docker-pulls-2026], this action is granted by the index privileges [create_index,manage,all]"
        )
    );

    // The privilege check comes before `action.auto_create_index` (8.x).
    es.disable_auto_create_index();
    let answer = bulk_as(&es, &format!("ApiKey {API_KEY}"), "/_bulk", &body).await;
    assert_eq!(answer.body["items"][0]["create"]["status"], json!(403));

    es.allow_index_creation();
    es.set_auto_create_index("true");
    let answer = bulk_as(&es, &format!("ApiKey {API_KEY}"), "/_bulk", &body).await;
    assert_eq!(answer.body["items"][0]["create"]["status"], json!(201));
}

#[tokio::test]
async fn auto_create_index_false_fails_items_for_missing_indices_with_a_404() {
    let es = FakeEs::start().await;
    es.disable_auto_create_index();
    let body = create_line("a", &trimmed_doc("a"));

    let answer = bulk(&es, "/docker-pulls-2026/_bulk", &body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        json!({
            "took": answer.body["took"],
            "errors": true,
            "items": [{"create": {
                "_index": "docker-pulls-2026",
                "_id": "a",
                "status": 404,
                "error": {
                    "type": "index_not_found_exception",
                    "reason": "no such index [docker-pulls-2026] and [action.auto_create_index] is [false]",
                    "index_uuid": "_na_",
                    "index": "docker-pulls-2026"
                }
            }}]
        })
    );
    assert!(es.indices().is_empty());

    // An index created explicitly takes documents.
    let created = send(&es, reqwest::Method::PUT, "/docker-pulls-2026", None, None).await;
    assert_eq!(created.status, 200);
    let answer = bulk(&es, "/docker-pulls-2026/_bulk", &body).await;
    assert_eq!(answer.body["items"][0]["create"]["status"], json!(201));

    // Pattern lists: the first matching pattern decides.
    let body = create_in("docker-pulls-2027", "b", &trimmed_doc("b"));
    es.set_auto_create_index("+other-*,-docker-*");
    let answer = bulk(&es, "/_bulk", &body).await;
    assert_eq!(
        answer.body["items"][0]["create"]["error"]["reason"],
        json!(
            "no such index [docker-pulls-2027] and [action.auto_create_index] contains [-docker-*] which forbids automatic creation of the index"
        )
    );
    es.set_auto_create_index("other-*");
    let answer = bulk(&es, "/_bulk", &body).await;
    assert_eq!(
        answer.body["items"][0]["create"]["error"]["reason"],
        json!(
            "no such index [docker-pulls-2027] and [action.auto_create_index] ([other-*]) doesn't match"
        )
    );

    // A matching template's `allow_auto_create` overrides the setting.
    es.put_index_template(
        "pulls",
        json!({"index_patterns": ["docker-pulls-*"], "allow_auto_create": false}),
    );
    es.set_auto_create_index("true");
    let answer = bulk(&es, "/_bulk", &body).await;
    assert_eq!(
        answer.body["items"][0]["create"]["error"],
        json!({
            "type": "index_not_found_exception",
            "reason": "no such index [composable template [docker-pulls-*] forbids index auto creation]",
            "index_uuid": "_na_",
            "index": "composable template [docker-pulls-*] forbids index auto creation"
        })
    );
    es.put_index_template(
        "pulls",
        json!({"index_patterns": ["docker-pulls-*"], "allow_auto_create": true}),
    );
    es.disable_auto_create_index();
    let answer = bulk(&es, "/_bulk", &body).await;
    assert_eq!(answer.body["items"][0]["create"]["status"], json!(201));
}

/// A pipeline whose only processor fails on every document in the way named.
fn failing_pipeline(kind: &str) -> Value {
    match kind {
        "fail" => {
            json!({"processors": [{"fail": {"message": "no {{http.docker_hub.name}}", "tag": "stop"}}]})
        }
        "script" => {
            json!({"processors": [{"set": {"field": "x", "value": 1, "if": "ctx.missing.field == 1"}}]})
        }
        _ => seed_pipeline(),
    }
}

#[tokio::test]
async fn ingest_failures_carry_the_processors_own_error_and_status() {
    let es = FakeEs::start().await;
    let mut errors = Vec::new();
    for kind in ["remove", "fail", "script"] {
        es.put_pipeline(kind, failing_pipeline(kind));
        let answer = bulk(
            &es,
            &format!("/docker-pulls-2026/_bulk?pipeline={kind}"),
            &create_line(kind, &trimmed_doc("httpd")),
        )
        .await;
        assert_eq!(answer.status, 200);
        let item = &answer.body["items"][0]["create"];
        errors.push((item["status"].clone(), item["error"].clone()));
    }
    assert_eq!(
        errors,
        [
            (
                json!(400),
                json!({"type": "illegal_argument_exception", "reason": "field [ecs] not present as part of path [ecs]"})
            ),
            // `FailProcessorException` is a plain RuntimeException: 500.
            (
                json!(500),
                json!({"type": "fail_processor_exception", "reason": "no httpd"})
            ),
            (
                json!(400),
                json!({"type": "script_exception", "reason": "runtime error",
                       "caused_by": {"type": "null_pointer_exception", "reason": "cannot access [field] on null"}})
            ),
        ]
    );
    assert!(es.all_documents().is_empty());
}

#[tokio::test]
async fn ingest_failures_as_500_wrap_the_cause_like_elasticsearch_7_4() {
    let es = FakeEs::start().await;
    es.ingest_failures_as_500();
    let mut errors = Vec::new();
    for kind in ["remove", "fail", "script"] {
        es.put_pipeline(kind, failing_pipeline(kind));
        let answer = bulk(
            &es,
            &format!("/docker-pulls-2026/_bulk?pipeline={kind}"),
            &create_line(kind, &trimmed_doc("httpd")),
        )
        .await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body["errors"], json!(true));
        let item = &answer.body["items"][0]["create"];
        assert_eq!(item["status"], json!(500), "{kind}");
        errors.push(item["error"].clone());
    }
    assert_eq!(
        errors[0],
        json!({
            "type": "exception",
            "reason": "java.lang.IllegalArgumentException: java.lang.IllegalArgumentException: field [ecs] not present as part of path [ecs]",
            "caused_by": {
                "type": "illegal_argument_exception",
                "reason": "java.lang.IllegalArgumentException: field [ecs] not present as part of path [ecs]",
                "caused_by": {
                    "type": "illegal_argument_exception",
                    "reason": "field [ecs] not present as part of path [ecs]"
                }
            },
            "header": {"processor_type": "remove"}
        })
    );
    assert_eq!(
        errors[1],
        json!({
            "type": "exception",
            "reason": "java.lang.IllegalArgumentException: org.elasticsearch.ingest.common.FailProcessorException: no httpd",
            "caused_by": {
                "type": "illegal_argument_exception",
                "reason": "org.elasticsearch.ingest.common.FailProcessorException: no httpd",
                "caused_by": {"type": "fail_processor_exception", "reason": "no httpd"}
            },
            "header": {"processor_type": "fail", "processor_tag": "stop"}
        })
    );
    assert_eq!(
        errors[2],
        json!({
            "type": "exception",
            "reason": "java.lang.IllegalArgumentException: ScriptException[runtime error]; nested: NullPointerException[cannot access [field] on null];",
            "caused_by": {
                "type": "illegal_argument_exception",
                "reason": "ScriptException[runtime error]; nested: NullPointerException[cannot access [field] on null];",
                "caused_by": {
                    "type": "script_exception",
                    "reason": "runtime error",
                    "caused_by": {"type": "null_pointer_exception", "reason": "cannot access [field] on null"}
                }
            },
            "header": {"processor_type": "set"}
        })
    );

    // A missing pipeline is not a processor failure: still 400.
    let answer = bulk(
        &es,
        "/docker-pulls-2026/_bulk?pipeline=nope",
        &create_line("n", &trimmed_doc("n")),
    )
    .await;
    assert_eq!(answer.body["items"][0]["create"]["status"], json!(400));

    // The cause survives a `filter_path` that asks for it, four levels down.
    let answer = bulk(
        &es,
        "/docker-pulls-2026/_bulk?pipeline=remove&filter_path=errors,items.*.status,items.*.error.type,items.*.error.caused_by.type,items.*.error.caused_by.caused_by.reason",
        &create_line("f", &trimmed_doc("f")),
    )
    .await;
    assert_eq!(
        answer.body,
        json!({
            "errors": true,
            "items": [{"create": {
                "status": 500,
                "error": {
                    "type": "exception",
                    "caused_by": {
                        "type": "illegal_argument_exception",
                        "caused_by": {"reason": "field [ecs] not present as part of path [ecs]"}
                    }
                }
            }}]
        })
    );
}

#[test]
fn filter_path_keeps_caused_by_four_levels_down_and_drops_items_without_it() {
    let response = json!({
        "took": 3,
        "errors": true,
        "items": [
            {"create": {"_index": "i", "_id": "a", "status": 201, "result": "created"}},
            {"create": {"_index": "i", "_id": "b", "status": 400, "error": {
                "type": "document_parsing_exception", "reason": "failed to parse field [n]",
                "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"x\""}}}},
            {"create": {"_index": "i", "_id": "c", "status": 403, "error": {
                "type": "security_exception", "reason": "denied"}}}
        ]
    });
    assert_eq!(
        apply_filter_path(
            &response,
            "items.*.error.caused_by.type,items.*.error.caused_by.reason"
        ),
        json!({"items": [{"create": {"error": {"caused_by": {
            "type": "illegal_argument_exception", "reason": "For input string: \"x\""}}}}]})
    );
    assert_eq!(
        apply_filter_path(
            &response,
            "items.*._id,items.*.error.reason,items.*.error.caused_by.reason"
        ),
        json!({"items": [
            {"create": {"_id": "a"}},
            {"create": {"_id": "b", "error": {"reason": "failed to parse field [n]",
                "caused_by": {"reason": "For input string: \"x\""}}}},
            {"create": {"_id": "c", "error": {"reason": "denied"}}}
        ]})
    );
    assert_eq!(
        apply_filter_path(&response, "**.caused_by.type"),
        json!({"items": [{"create": {"error": {"caused_by": {"type": "illegal_argument_exception"}}}}]})
    );
}

#[tokio::test]
async fn mapping_failures_carry_the_number_parsers_cause() {
    let es = FakeEs::start().await;
    es.put_index_template(
        "pulls",
        json!({"index_patterns": ["docker-pulls-*"], "template": {"mappings": {"properties": {
            "n": {"type": "long"}, "i": {"type": "integer"}}}}}),
    );
    let body = create_line("a", &json!({"n": "abc"})) + &create_line("b", &json!({"i": "x1"}));
    let answer = bulk(&es, "/docker-pulls-2026/_bulk", &body).await;
    let error = |n: usize| answer.body["items"][n]["create"]["error"].clone();
    assert_eq!(
        error(0)["caused_by"],
        json!({"type": "illegal_argument_exception", "reason": "For input string: \"abc\""})
    );
    assert_eq!(error(0)["type"], json!("document_parsing_exception"));
    assert_eq!(
        error(1)["caused_by"],
        json!({"type": "number_format_exception", "reason": "For input string: \"x1\""})
    );
}

#[tokio::test]
async fn a_pipeline_refused_for_its_script_says_why_in_caused_by() {
    let es = FakeEs::start().await;
    let answer = send(
        &es,
        reqwest::Method::PUT,
        "/_ingest/pipeline/p",
        Some("application/json"),
        Some(r#"{"processors":[{"set":{"field":"a","value":1,"if":"ctx.a instanceof Map"}}]}"#),
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["error"]["type"], json!("script_exception"));
    assert_eq!(answer.body["error"]["reason"], json!("compile error"));
    assert_eq!(
        answer.body["error"]["caused_by"]["type"],
        json!("illegal_argument_exception")
    );
    assert_eq!(
        answer.body["error"]["root_cause"],
        json!([{"type": "script_exception", "reason": "compile error"}]),
        "root causes are rendered without their cause"
    );
}

/// The AWS-echo mode answers as an IAM-only Amazon OpenSearch Service
/// domain answers Basic or ApiKey: 403 and the whole header echoed after
/// `Authorization=` (tests/secrets.rs and tests/e2e/secrets_e2e.py rely on it).
#[tokio::test]
async fn the_aws_echo_mode_refuses_with_the_authorization_header_in_the_message() {
    let es = FakeEs::start().await;
    es.echo_like_aws();
    for header in [
        "Basic d3JpdGVyOnB3LXNlY3JldA==",
        "ApiKey a2V5LWlkOnNlY3JldA==",
    ] {
        let response = reqwest::Client::new()
            .post(format!("{}/_bulk", es.url()))
            .header("authorization", header)
            .header("content-type", NDJSON)
            .body(create_line("a", &trimmed_doc("httpd")))
            .send()
            .await
            .expect("the fake answers");
        assert_eq!(response.status().as_u16(), 403);
        let body: Value = response.json().await.expect("JSON");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("Authorization header requires 'Credential' parameter.")
                && message.ends_with(&format!("Authorization={header}")),
            "{message}"
        );
    }
    assert!(es.documents("docker-pulls-2026").is_empty());
}
