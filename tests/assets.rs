//! The Elasticsearch and Kibana assets that ship next to the function:
//! `elasticsearch/pipeline.json`, `elasticsearch/index-template.json` and
//! `kibana/docker-pulls.ndjson`. No Elasticsearch or Kibana runs here, so the
//! pipeline goes through the fake ingest implementation in `support::ingest`
//! and the saved objects are checked for the structure Kibana 8.x imports.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};
use support::ingest::run_pipeline;

const PIPELINE: &str = include_str!("../elasticsearch/pipeline.json");
const TEMPLATE: &str = include_str!("../elasticsearch/index-template.json");
const SAVED_OBJECTS: &str = include_str!("../kibana/docker-pulls.ndjson");

/// The `docker-hub-pulls` pipeline as the 2021 article installs it
/// (`PUT /_ingest/pipeline/docker-hub-pulls`), copied verbatim.
const SEED_PIPELINE: &str = include_str!("fixtures/elasticsearch/seed-pipeline.json");

/// The article's `_simulate` document for `library/httpd`, as Metricbeat
/// 7.10 sent it (note the float pull count).
const SEED_HTTPD: &str = r##"{
  "@timestamp": "2021-01-15T10:07:40.660Z",
  "@metadata": {
    "beat": "metricbeat",
    "type": "_doc",
    "version": "7.10.1"
  },
  "metricset": {
    "name": "json",
    "period": 60000
  },
  "service": {
    "type": "http",
    "address": "https://hub.docker.com/v2/repositories/library/httpd"
  },
  "http": {
    "docker_hub": {
      "can_edit": false,
      "repository_type": "image",
      "description": "The Apache HTTP Server Project",
      "pull_count": 2.244658322e+09,
      "has_starred": false,
      "collaborator_count": 0,
      "namespace": "library",
      "is_private": false,
      "name": "httpd",
      "full_description": "# Quick reference\n\n-\t**Maintained by**:  ... software contained within.",
      "last_updated": "2021-01-12T13:42:29.184204Z",
      "status": 1,
      "is_migrated": false,
      "permissions": {
        "read": true,
        "write": false,
        "admin": false
      },
      "is_automated": false,
      "star_count": 3321,
      "user": "library"
    }
  },
  "agent": {
    "name": "e8de185fde59",
    "type": "metricbeat",
    "version": "7.10.1",
    "hostname": "e8de185fde59",
    "ephemeral_id": "a8187f55-fd07-4c78-a35d-0bed3fd07f5c",
    "id": "526252d2-8bee-4700-9c54-9b34dbe77666"
  },
  "ecs": {
    "version": "1.6.0"
  },
  "host": {
    "name": "e8de185fde59"
  },
  "event": {
    "duration": 909992043,
    "dataset": "http.docker_hub",
    "module": "http"
  }
}"##;

/// The article's `_simulate` document for `radoondas/netatmobeat`.
const SEED_NETATMOBEAT: &str = r#"{
  "@timestamp": "2021-01-15T10:07:45.755Z",
  "@metadata": {
    "beat": "metricbeat",
    "type": "_doc",
    "version": "7.10.1"
  },
  "service": {
    "type": "http",
    "address": "https://hub.docker.com/v2/repositories/radoondas/netatmobeat"
  },
  "event": {
    "dataset": "http.docker_hub",
    "module": "http",
    "duration": 670773253
  },
  "metricset": {
    "name": "json",
    "period": 60000
  },
  "http": {
    "docker_hub": {
      "user": "radoondas",
      "has_starred": false,
      "namespace": "radoondas",
      "can_edit": false,
      "collaborator_count": 0,
      "full_description": "Netatmobeat\nhttps://github.com/radoondas/netatmobeat",
      "description": "https://github.com/radoondas/netatmobeat",
      "star_count": 0,
      "last_updated": "2020-04-30T14:19:23.613112Z",
      "repository_type": "image",
      "is_migrated": false,
      "pull_count": 159,
      "name": "netatmobeat",
      "is_private": false,
      "is_automated": false,
      "status": 1,
      "permissions": {
        "write": false,
        "admin": false,
        "read": true
      }
    }
  },
  "ecs": {
    "version": "1.6.0"
  },
  "host": {
    "name": "e8de185fde59"
  },
  "agent": {
    "hostname": "e8de185fde59",
    "ephemeral_id": "a8187f55-fd07-4c78-a35d-0bed3fd07f5c",
    "id": "526252d2-8bee-4700-9c54-9b34dbe77666",
    "name": "e8de185fde59",
    "type": "metricbeat",
    "version": "7.10.1"
  }
}"#;

/// `fixtures/dockerhub/library-httpd-current-fields.json`: today's repository
/// body, with the fields Docker Hub added after 2021 (embedded by the fake Hub).
use support::fake_hub::fixtures::LIBRARY_HTTPD_CURRENT as HUB_CURRENT_FIELDS;

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("valid JSON")
}

fn pipeline() -> Value {
    parse(PIPELINE)
}

fn template() -> Value {
    parse(TEMPLATE)
}

/// The contract's document: exactly these fields, counts as JSON integers.
fn contract_doc(timestamp: &str, namespace: &str, name: &str, pulls: u64, stars: u64) -> Value {
    json!({
        "@timestamp": timestamp,
        "http": {"docker_hub": {
            "namespace": namespace,
            "name": name,
            "pull_count": pulls,
            "star_count": stars,
            "collaborator_count": 0
        }}
    })
}

/// The tag of our pipeline's only `script` processor.
const COUNTS_SCRIPT_TAG: &str = "docker-pulls-counts-to-long";

/// Runs our pipeline through the fake's ingest engine and fails the test
/// with the ingest error if any. The engine runs the one Painless script by
/// a Rust model matched on its exact source (see `MODELLED_SCRIPTS` in
/// tests/support/ingest.rs); `_simulate` on a real cluster checks the
/// Painless itself (docs/elasticsearch-kibana.md).
fn ingest(mut doc: Value) -> Value {
    if let Err(failure) = run_pipeline(&pipeline(), &mut doc) {
        panic!(
            "pipeline failed: [{}] {}",
            failure.error_type, failure.reason
        );
    }
    doc
}

/// Every leaf of a document, as dotted path -> value.
fn leaves(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(child, &path, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), value.clone());
        }
    }
}

/// The mapping's `properties`, flattened to dotted path -> field type.
fn mapped_fields(properties: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
    for (key, field) in properties.as_object().expect("properties is an object") {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let Some(children) = field.get("properties") {
            mapped_fields(children, &path, out);
        } else {
            let kind = field["type"].as_str().expect("leaf field has a type");
            out.insert(path, kind.to_string());
        }
    }
}

fn template_fields() -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    mapped_fields(
        &template()["template"]["mappings"]["properties"],
        "",
        &mut fields,
    );
    fields
}

// ---------------------------------------------------------------- pipeline

#[test]
fn pipeline_trims_seed_httpd_document_to_the_contract_with_integer_counts() {
    let out = ingest(parse(SEED_HTTPD));
    assert_eq!(
        out,
        contract_doc(
            "2021-01-15T10:07:40.660Z",
            "library",
            "httpd",
            2244658322,
            3321
        )
    );
    // `assert_eq!` on Values already tells 2244658322 from 2.244658322e9,
    // but say it outright: the float Metricbeat sent must land as an integer.
    let pulls = &out["http"]["docker_hub"]["pull_count"];
    assert!(pulls.is_u64(), "pull_count is still {pulls:?}");
}

#[test]
fn pipeline_trims_seed_netatmobeat_document_to_the_contract() {
    let out = ingest(parse(SEED_NETATMOBEAT));
    assert_eq!(
        out,
        contract_doc(
            "2021-01-15T10:07:45.755Z",
            "radoondas",
            "netatmobeat",
            159,
            0
        )
    );
}

#[test]
fn pipeline_passes_a_trimmed_document_through_unchanged() {
    let doc = contract_doc("2026-11-27T18:35:00Z", "library", "httpd", 2244658322, 3321);
    assert_eq!(ingest(doc.clone()), doc);
    // And again on its own output: running it twice changes nothing.
    assert_eq!(ingest(ingest(doc.clone())), doc);
}

#[test]
fn pipeline_strips_the_fields_docker_hub_added_since_2021() {
    let expected = contract_doc("2026-11-27T18:35:00Z", "library", "httpd", 4871203345, 4812);

    // Today's body behind a Metricbeat envelope...
    let mut beat = parse(SEED_HTTPD);
    beat["@timestamp"] = json!("2026-11-27T18:35:00Z");
    beat["http"]["docker_hub"] = parse(HUB_CURRENT_FIELDS);
    assert_eq!(ingest(beat), expected);

    // ...and without one (an untrimmed document from any other sender).
    let bare = json!({
        "@timestamp": "2026-11-27T18:35:00Z",
        "http": {"docker_hub": parse(HUB_CURRENT_FIELDS)}
    });
    assert_eq!(ingest(bare), expected);
}

#[test]
fn pipeline_removes_every_non_contract_field_of_the_2021_and_current_bodies() {
    // The explicit lists must name every field either body carries, so that
    // nothing depends on `remove.keep` (Elasticsearch 8.x only).
    let contract: BTreeSet<&str> = [
        "namespace",
        "name",
        "pull_count",
        "star_count",
        "collaborator_count",
    ]
    .into_iter()
    .collect();
    let removed: BTreeSet<String> = pipeline()["processors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.get("remove"))
        .flat_map(|r| r["field"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    for body in [HUB_CURRENT_FIELDS, SEED_HTTPD, SEED_NETATMOBEAT] {
        let body = parse(body);
        let hub = body
            .pointer("/http/docker_hub")
            .cloned()
            .unwrap_or(body.clone());
        for key in hub.as_object().unwrap().keys() {
            if !contract.contains(key.as_str()) {
                let path = format!("http.docker_hub.{key}");
                assert!(removed.contains(&path), "{path} is not removed");
            }
        }
    }
    for key in parse(SEED_HTTPD).as_object().unwrap().keys() {
        if key != "@timestamp" && key != "http" {
            assert!(removed.contains(key), "top-level {key} is not removed");
        }
    }
}

#[test]
fn pipeline_never_hides_failures_and_installs_on_7_10() {
    let pipeline = pipeline();
    let top: BTreeSet<&str> = pipeline
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // Elasticsearch before 7.15 and OpenSearch reject any other top-level key
    // (`_meta` included) with "doesn't support one or more provided
    // configuration parameters".
    let allowed: BTreeSet<&str> = ["description", "version", "processors"]
        .into_iter()
        .collect();
    assert!(top.is_subset(&allowed), "top-level keys {top:?}");
    assert!(pipeline["version"].is_u64(), "version is an integer");
    assert!(
        pipeline["description"]
            .as_str()
            .unwrap()
            .starts_with("docker-pulls:"),
        "description names the project"
    );

    let processors = pipeline["processors"].as_array().unwrap();
    assert!(!processors.is_empty());
    for processor in processors {
        let (kind, config) = processor
            .as_object()
            .unwrap()
            .iter()
            .next()
            .expect("one processor per entry");
        assert_eq!(processor.as_object().unwrap().len(), 1);
        assert_ne!(config.get("ignore_failure"), Some(&json!(true)), "{kind}");
        assert!(config.get("on_failure").is_none(), "{kind} has on_failure");
        match kind.as_str() {
            // Processors that read a field: they must skip a missing one.
            "remove" | "convert" | "rename" | "set" | "gsub" | "lowercase" | "trim" => {
                assert_eq!(
                    config.get("ignore_missing"),
                    Some(&json!(true)),
                    "{kind} without ignore_missing: true"
                );
                assert!(config.get("keep").is_none(), "remove.keep needs 8.x");
            }
            // `script` takes no ignore_missing (Elasticsearch rejects unknown
            // options); it must be null-safe itself, which the trimmed-document
            // test exercises.
            "script" => {
                assert_eq!(config["lang"], "painless");
                assert!(config.get("ignore_missing").is_none());
                let source = config["source"].as_str().unwrap();
                assert!(
                    source.contains("instanceof Map"),
                    "script guards absent objects"
                );
                assert_eq!(config["tag"], COUNTS_SCRIPT_TAG);
                // Only floats are touched, and only the three counts.
                assert!(source.contains("v instanceof Double || v instanceof Float"));
                for field in ["'pull_count'", "'star_count'", "'collaborator_count'"] {
                    assert!(source.contains(field), "{field}");
                }
            }
            other => panic!("unexpected processor {other}: review its failure modes"),
        }
    }
}

#[test]
fn seed_pipeline_fails_on_a_trimmed_document() {
    // Why the function re-sends failed items without the pipeline: the 2021
    // definition's first remove has no ignore_missing.
    let mut doc = contract_doc("2026-11-27T18:35:00Z", "library", "httpd", 2244658322, 3321);
    let failure = run_pipeline(&parse(SEED_PIPELINE), &mut doc)
        .expect_err("the seed pipeline fails on a trimmed document");
    assert_eq!(failure.error_type, "illegal_argument_exception");
    assert_eq!(
        failure.reason,
        "field [ecs] not present as part of path [ecs]"
    );
}

#[test]
fn seed_pipeline_still_handles_its_own_documents() {
    // The same fake, on the input the seed was written for, succeeds: the
    // failure above is the pipeline's, not the fake's. It also keeps the float
    // count, which our pipeline fixes.
    let mut doc = parse(SEED_HTTPD);
    if let Err(failure) = run_pipeline(&parse(SEED_PIPELINE), &mut doc) {
        panic!("seed pipeline on a seed document: {}", failure.reason);
    }
    assert!(doc.get("ecs").is_none());
    assert!(doc["http"]["docker_hub"]["pull_count"].is_f64());
}

// ---------------------------------------------------------- index template

#[test]
fn index_template_maps_every_contract_field_with_its_type() {
    let doc = contract_doc("2026-11-27T18:35:00Z", "library", "httpd", 1, 1);
    let mut doc_fields = BTreeMap::new();
    leaves(&doc, "", &mut doc_fields);

    let expected: BTreeMap<String, String> = [
        ("@timestamp", "date"),
        ("http.docker_hub.namespace", "keyword"),
        ("http.docker_hub.name", "keyword"),
        ("http.docker_hub.pull_count", "long"),
        ("http.docker_hub.star_count", "long"),
        ("http.docker_hub.collaborator_count", "long"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();

    assert_eq!(
        doc_fields.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the contract document's fields"
    );
    assert_eq!(template_fields(), expected);
}

#[test]
fn index_template_is_portable_and_wins_over_builtins() {
    let template = template();
    assert_eq!(template["index_patterns"], json!(["docker-pulls-*"]));
    assert!(template["priority"].as_u64().unwrap() > 200);
    assert!(template["version"].is_u64());
    assert_eq!(template["_meta"]["project"], "docker-pulls");
    // No data streams: they need 7.9+ with an @timestamp-only write model and
    // OpenSearch differs; plain yearly indices work everywhere.
    assert!(template.get("data_stream").is_none());
    assert!(template.get("composed_of").is_none());

    let settings = &template["template"]["settings"];
    assert_eq!(settings["index.number_of_shards"], 1);
    assert_eq!(settings["index.auto_expand_replicas"], "0-1");
    assert!(settings.get("index.number_of_replicas").is_none());

    // dynamic: false keeps unexpected fields out of the mapping without
    // rejecting the document.
    assert_eq!(template["template"]["mappings"]["dynamic"], json!(false));
}

// --------------------------------------------------------- saved objects

fn saved_objects() -> Vec<Value> {
    SAVED_OBJECTS
        .lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("line {} is not one JSON object: {e}", n + 1))
        })
        .collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, id: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["type"] == kind && o["id"] == id)
        .unwrap_or_else(|| panic!("no {kind} {id}"))
}

fn data_view(objects: &[Value]) -> &Value {
    object(objects, "index-pattern", "docker-pulls")
}

fn runtime_fields(objects: &[Value]) -> BTreeMap<String, Value> {
    let map = data_view(objects)["attributes"]["runtimeFieldMap"]
        .as_str()
        .expect("runtimeFieldMap is a JSON string");
    serde_json::from_str(map).expect("runtimeFieldMap parses")
}

fn lens_objects(objects: &[Value]) -> Vec<&Value> {
    objects.iter().filter(|o| o["type"] == "lens").collect()
}

/// The form-based layers of a Lens object: layer id -> layer.
fn lens_layers(lens: &Value) -> &serde_json::Map<String, Value> {
    lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"]
        .as_object()
        .expect("formBased layers")
}

/// Every field name a Lens datasource state reads, wherever it appears
/// (columns, a custom ranking's orderAgg, last_value's sort field, multi-terms).
fn lens_fields(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("sourceField" | "sortField", Value::String(field)) => {
                        out.insert(field.clone());
                    }
                    ("secondaryFields", Value::Array(fields)) => {
                        out.extend(fields.iter().filter_map(|f| f.as_str().map(str::to_string)));
                    }
                    _ => lens_fields(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| lens_fields(item, out)),
        _ => {}
    }
}

#[test]
fn saved_objects_file_is_importable_ndjson() {
    assert!(SAVED_OBJECTS.ends_with('\n'), "ends with a newline");
    assert!(!SAVED_OBJECTS.ends_with("\n\n"), "no trailing blank line");
    let objects = saved_objects();
    let mut seen = BTreeSet::new();
    for object in &objects {
        assert!(object.is_object());
        let id = object["id"].as_str().expect("id");
        let kind = object["type"].as_str().expect("type");
        assert!(object["attributes"].is_object(), "{kind} {id} attributes");
        assert!(object["references"].is_array(), "{kind} {id} references");
        assert_eq!(object["coreMigrationVersion"], "8.8.0", "{kind} {id}");
        assert!(
            object["typeMigrationVersion"]
                .as_str()
                .unwrap()
                .starts_with("8."),
            "{kind} {id} typeMigrationVersion"
        );
        assert!(
            seen.insert((kind.to_string(), id.to_string())),
            "duplicate {kind} {id}"
        );
    }
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["index-pattern", "lens", "lens", "lens", "lens", "dashboard"]
    );
}

#[test]
fn every_reference_resolves_inside_the_file() {
    let objects = saved_objects();
    for object in &objects {
        for reference in object["references"].as_array().unwrap() {
            let kind = reference["type"].as_str().unwrap();
            let id = reference["id"].as_str().unwrap();
            assert!(reference["name"].is_string());
            assert!(
                objects.iter().any(|o| o["type"] == kind && o["id"] == id),
                "{} {} refers to missing {kind} {id}",
                object["type"],
                object["id"]
            );
        }
    }
}

#[test]
fn data_view_matches_the_index_template() {
    let objects = saved_objects();
    let attributes = &data_view(&objects)["attributes"];
    assert_eq!(attributes["title"], "docker-pulls-*");
    assert_eq!(attributes["timeFieldName"], "@timestamp");
    assert_eq!(template()["index_patterns"][0], attributes["title"]);
    for key in [
        "fieldAttrs",
        "fieldFormatMap",
        "fields",
        "runtimeFieldMap",
        "sourceFilters",
    ] {
        let text = attributes[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} is a string"));
        serde_json::from_str::<Value>(text).unwrap_or_else(|e| panic!("{key}: {e}"));
    }
}

#[test]
fn repository_runtime_field_combines_namespace_and_name() {
    let objects = saved_objects();
    let runtime = runtime_fields(&objects);
    let repository = &runtime["repository"];
    assert_eq!(repository["type"], "keyword");
    let source = repository["script"]["source"].as_str().unwrap();
    let mapped = template_fields();
    for field in ["http.docker_hub.namespace", "http.docker_hub.name"] {
        assert_eq!(mapped[field], "keyword", "{field} has doc values to read");
        // Guarded: an index of the pattern without the field must not fail
        // the whole search.
        assert!(
            source.contains(&format!("doc.containsKey('{field}')")),
            "{source}"
        );
        assert!(source.contains(&format!("doc['{field}']")), "{source}");
    }
    assert!(
        source.contains("emit(ns.value + '/' + nm.value)"),
        "{source}"
    );
}

#[test]
fn lens_panels_read_only_mapped_or_runtime_fields() {
    let objects = saved_objects();
    let mapped = template_fields();
    let runtime = runtime_fields(&objects);
    for lens in lens_objects(&objects) {
        let mut fields = BTreeSet::new();
        lens_fields(
            &lens["attributes"]["state"]["datasourceStates"],
            &mut fields,
        );
        assert!(!fields.is_empty());
        for field in fields {
            assert!(
                field == "___records___"
                    || mapped.contains_key(&field)
                    || runtime.contains_key(&field),
                "{} reads {field}, which is neither mapped nor a runtime field",
                lens["id"]
            );
        }
    }
}

/// `dockerhub/namespace_counts = listing` makes documents without
/// `collaborator_count`: no panel may depend on it, and the runtime field
/// must read only fields every document has.
#[test]
fn listing_mode_documents_without_collaborator_count_fill_every_panel() {
    let objects = saved_objects();
    for lens in lens_objects(&objects) {
        let mut fields = BTreeSet::new();
        lens_fields(
            &lens["attributes"]["state"]["datasourceStates"],
            &mut fields,
        );
        assert!(
            !fields.contains("http.docker_hub.collaborator_count"),
            "{} reads collaborator_count, which listing-mode documents lack",
            lens["id"]
        );
    }
    for (name, field) in runtime_fields(&objects) {
        let script = field.to_string();
        assert!(
            !script.contains("collaborator_count"),
            "runtime field {name} reads collaborator_count"
        );
    }
    // The mapping has it (details mode), and a mapping field may be absent.
    assert_eq!(
        template_fields()
            .get("http.docker_hub.collaborator_count")
            .map(String::as_str),
        Some("long")
    );
}

#[test]
fn lens_layers_reference_the_data_view_and_their_columns_exist() {
    let objects = saved_objects();
    for lens in lens_objects(&objects) {
        let id = lens["id"].as_str().unwrap();
        let layers = lens_layers(lens);
        assert!(!layers.is_empty(), "{id} has a layer");
        let reference_names: BTreeSet<String> = lens["references"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["type"], "index-pattern", "{id}");
                assert_eq!(r["id"], "docker-pulls", "{id}");
                r["name"].as_str().unwrap().to_string()
            })
            .collect();
        let layer_names: BTreeSet<String> = layers
            .keys()
            .map(|layer| format!("indexpattern-datasource-layer-{layer}"))
            .collect();
        assert_eq!(
            reference_names, layer_names,
            "{id}: one reference per layer"
        );

        for (layer_id, layer) in layers {
            let columns = layer["columns"].as_object().unwrap();
            let order: BTreeSet<&str> = layer["columnOrder"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let ids: BTreeSet<&str> = columns.keys().map(String::as_str).collect();
            assert_eq!(
                order, ids,
                "{id}/{layer_id}: columnOrder lists every column"
            );
            for (column_id, column) in columns {
                for reference in column["references"].as_array().into_iter().flatten() {
                    let target = reference.as_str().unwrap();
                    assert!(
                        columns.contains_key(target),
                        "{id}: {column_id} -> {target}"
                    );
                }
                if let Some(order_by) = column.pointer("/params/orderBy") {
                    match order_by["type"].as_str().unwrap() {
                        "column" => {
                            let target = order_by["columnId"].as_str().unwrap();
                            let target_column = &columns[target];
                            assert!(!target_column["isBucketed"].as_bool().unwrap());
                            // Lens cannot rank by a column another one references.
                            assert!(
                                !columns.values().any(|c| c["references"]
                                    .as_array()
                                    .is_some_and(|r| r.contains(&json!(target)))),
                                "{id}: ranks by referenced column {target}"
                            );
                        }
                        "custom" => assert!(column["params"]["orderAgg"].is_object(), "{id}"),
                        _ => {}
                    }
                }
            }

            // Every accessor of the visualization is a column of this layer.
            let vis = &lens["attributes"]["state"]["visualization"];
            let mut accessors = Vec::new();
            for vis_layer in vis["layers"].as_array().into_iter().flatten() {
                if vis_layer["layerId"] == json!(layer_id) {
                    accessors.extend(vis_layer["accessors"].as_array().unwrap().iter().cloned());
                    accessors.push(vis_layer["xAccessor"].clone());
                    if let Some(split) = vis_layer.get("splitAccessor") {
                        accessors.push(split.clone());
                    }
                }
            }
            if vis["layerId"] == json!(layer_id) {
                for column in vis["columns"].as_array().unwrap() {
                    accessors.push(column["columnId"].clone());
                }
            }
            assert!(
                !accessors.is_empty(),
                "{id}: visualization uses layer {layer_id}"
            );
            for accessor in accessors {
                let accessor = accessor.as_str().unwrap();
                assert!(columns.contains_key(accessor), "{id}: accessor {accessor}");
            }
        }
    }
}

#[test]
fn repositories_are_split_by_namespace_and_name_never_name_alone() {
    // The 2021 dashboard bucketed on the name only, merging acme/app and
    // other/app. Every breakdown here goes through the runtime field
    // `repository` (namespace/name), or lists both fields as multi-terms.
    let objects = saved_objects();
    for lens in lens_objects(&objects) {
        let id = lens["id"].as_str().unwrap();
        let mut breakdowns = 0;
        for layer in lens_layers(lens).values() {
            for column in layer["columns"].as_object().unwrap().values() {
                if column["operationType"] != "terms" {
                    continue;
                }
                breakdowns += 1;
                let mut fields = vec![column["sourceField"].as_str().unwrap().to_string()];
                for field in column
                    .pointer("/params/secondaryFields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    fields.push(field.as_str().unwrap().to_string());
                }
                let by_runtime = fields == ["repository"];
                let by_both = fields.contains(&"http.docker_hub.namespace".to_string())
                    && fields.contains(&"http.docker_hub.name".to_string());
                assert!(by_runtime || by_both, "{id} splits by {fields:?}");
            }
        }
        assert_eq!(breakdowns, 1, "{id}: one repository breakdown");
    }
}

#[test]
fn pulls_gained_panel_is_the_difference_of_max_pull_count_over_time() {
    let objects = saved_objects();
    let lens = object(&objects, "lens", "docker-pulls-pulls-gained");
    let layer = lens_layers(lens).values().next().unwrap();
    let columns = layer["columns"].as_object().unwrap();
    let differences: Vec<&Value> = columns
        .values()
        .filter(|c| c["operationType"] == "differences")
        .collect();
    assert_eq!(differences.len(), 1);
    let input = &columns[differences[0]["references"][0].as_str().unwrap()];
    assert_eq!(input["operationType"], "max");
    assert_eq!(input["sourceField"], "http.docker_hub.pull_count");
    let histogram = columns
        .values()
        .find(|c| c["operationType"] == "date_histogram")
        .expect("over a date histogram");
    assert_eq!(histogram["sourceField"], "@timestamp");
    // Empty buckets would turn every following difference into a gap when
    // the function runs less often than the chart's interval.
    assert_eq!(histogram["params"]["includeEmptyRows"], false);
}

#[test]
fn latest_totals_table_shows_last_values_per_repository() {
    let objects = saved_objects();
    let lens = object(&objects, "lens", "docker-pulls-latest-totals");
    assert_eq!(lens["attributes"]["visualizationType"], "lnsDatatable");
    let layer = lens_layers(lens).values().next().unwrap();
    let last_values: BTreeSet<&str> = layer["columns"]
        .as_object()
        .unwrap()
        .values()
        .filter(|c| c["operationType"] == "last_value")
        .map(|c| {
            assert_eq!(c["params"]["sortField"], "@timestamp");
            c["sourceField"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        last_values,
        ["http.docker_hub.pull_count", "http.docker_hub.star_count"]
            .into_iter()
            .collect()
    );
}

#[test]
fn dashboard_panels_reference_the_lens_objects() {
    let objects = saved_objects();
    let dashboard = object(&objects, "dashboard", "docker-pulls-overview");
    let attributes = &dashboard["attributes"];
    assert_eq!(attributes["title"], "[docker-pulls] Overview");
    let panels: Vec<Value> =
        serde_json::from_str(attributes["panelsJSON"].as_str().unwrap()).expect("panelsJSON");
    serde_json::from_str::<Value>(attributes["optionsJSON"].as_str().unwrap())
        .expect("optionsJSON");
    serde_json::from_str::<Value>(
        attributes["kibanaSavedObjectMeta"]["searchSourceJSON"]
            .as_str()
            .unwrap(),
    )
    .expect("searchSourceJSON");

    let references = dashboard["references"].as_array().unwrap();
    assert_eq!(panels.len(), references.len());
    let mut shown = BTreeSet::new();
    for panel in &panels {
        let index = panel["panelIndex"].as_str().unwrap();
        assert_eq!(panel["gridData"]["i"], index);
        assert_eq!(panel["type"], "lens");
        assert!(panel["version"].as_str().unwrap().starts_with("8."));
        // Kibana 8.x: the panel names `panel_<panelIndex>` and the dashboard's
        // reference is prefixed with the panel index.
        let ref_name = panel["panelRefName"].as_str().unwrap();
        assert_eq!(ref_name, format!("panel_{index}"));
        let reference = references
            .iter()
            .find(|r| r["name"] == format!("{index}:{ref_name}"))
            .unwrap_or_else(|| panic!("no reference for panel {index}"));
        assert_eq!(reference["type"], "lens");
        shown.insert(reference["id"].as_str().unwrap());
        let grid = &panel["gridData"];
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 48);
    }
    let all_lens: BTreeSet<&str> = lens_objects(&objects)
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, all_lens, "every Lens object is on the dashboard");
}
