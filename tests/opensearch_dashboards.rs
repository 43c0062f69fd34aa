//! `opensearch-dashboards/docker-pulls.ndjson`: the OpenSearch Dashboards
//! twin of `kibana/docker-pulls.ndjson`. No OpenSearch Dashboards runs here,
//! so every object is checked against rules read out of OpenSearch
//! Dashboards' own source (opensearch-project/OpenSearch-Dashboards, `main`
//! with package.json at 3.6.0; the migration lists were the same in every
//! older revision of those files that was read). Each rule names the file it
//! comes from, relative to that repository.
//!
//! `violations` collects every broken rule of a set of objects; the shipped
//! file must have none, and the `*_is_refused` tests break a copy on purpose
//! to show that each rule does bite.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

const SAVED_OBJECTS: &str = include_str!("../opensearch-dashboards/docker-pulls.ndjson");
const SAVED_OBJECTS_PATH: &str = "opensearch-dashboards/docker-pulls.ndjson";
const KIBANA_SAVED_OBJECTS: &str = include_str!("../kibana/docker-pulls.ndjson");
const TEMPLATE: &str = include_str!("../elasticsearch/index-template.json");
const GUIDE: &str = include_str!("../docs/elasticsearch-kibana.md");
const README: &str = include_str!("../README.md");

const NAMESPACE: &str = "http.docker_hub.namespace";
const NAME: &str = "http.docker_hub.name";
const PULLS: &str = "http.docker_hub.pull_count";
const STARS: &str = "http.docker_hub.star_count";

/// The name a visualization's search source gives its index pattern reference.
/// src/plugins/data/common/search/search_source/extract_references.ts
const INDEX_REF: &str = "kibanaSavedObjectMeta.searchSourceJSON.index";

// ------------------------------------------------------------------ the rules

/// The latest migration of each type we ship.
/// src/plugins/data/server/saved_objects/index_pattern_migrations.ts ('6.5.0', '7.6.0'),
/// src/plugins/visualizations/server/saved_objects/visualization_migrations.ts (… '7.10.0'),
/// src/plugins/dashboard/server/saved_objects/dashboard_migrations.ts (… '7.9.3').
/// All three types are `importableAndExportable: true` (index_patterns.ts,
/// visualization.ts, dashboard.ts under the same folders); any other type is
/// refused as `unsupported_type`
/// (src/core/server/saved_objects/import/collect_saved_objects.ts).
const LATEST_MIGRATION: [(&str, &str); 3] = [
    ("index-pattern", "7.6.0"),
    ("visualization", "7.10.0"),
    ("dashboard", "7.9.3"),
];

/// Aggregation types the data plugin registers.
/// src/plugins/data/common/search/aggs/metrics/metric_agg_types.ts
const METRIC_AGGS: [&str; 21] = [
    "avg",
    "cardinality",
    "avg_bucket",
    "max_bucket",
    "min_bucket",
    "sum_bucket",
    "count",
    "cumulative_sum",
    "derivative",
    "geo_bounds",
    "geo_centroid",
    "median",
    "min",
    "max",
    "moving_avg",
    "serial_diff",
    "sum",
    "top_hits",
    "percentiles",
    "percentile_ranks",
    "std_dev",
];
/// src/plugins/data/common/search/aggs/buckets/bucket_agg_types.ts
const BUCKET_AGGS: [&str; 11] = [
    "filter",
    "filters",
    "histogram",
    "ip_range",
    "date_range",
    "range",
    "terms",
    "significant_terms",
    "geohash_grid",
    "geotile_grid",
    "date_histogram",
];

/// Parent pipeline aggregations: they need a date histogram (or histogram) as
/// the last bucket aggregation, and their `customMetric` may not be one of
/// these. src/plugins/data/common/search/aggs/metrics/lib/parent_pipeline_agg_helper.ts
/// (metricAggFilter), src/plugins/vis_default_editor/public/components/agg.tsx
/// ("Last bucket aggregation must be \"Date Histogram\" or \"Histogram\" …").
const PARENT_PIPELINE_AGGS: [&str; 4] =
    ["derivative", "cumulative_sum", "moving_avg", "serial_diff"];
const NOT_A_CUSTOM_METRIC: [&str; 7] = [
    "top_hits",
    "percentiles",
    "percentile_ranks",
    "median",
    "std_dev",
    "geo_bounds",
    "geo_centroid",
];

/// Metrics a terms aggregation may not be ordered by.
/// src/plugins/data/common/search/aggs/buckets/terms.ts (termsAggFilter)
const NOT_A_TERMS_ORDER: [&str; 12] = [
    "top_hits",
    "percentiles",
    "median",
    "std_dev",
    "derivative",
    "moving_avg",
    "serial_diff",
    "cumulative_sum",
    "avg_bucket",
    "max_bucket",
    "min_bucket",
    "sum_bucket",
];

/// One editor schema of a vis type: its agg group, and how many aggs it takes.
struct Schema {
    name: &'static str,
    metrics: bool,
    min: usize,
    max: usize,
}

const POINT_SERIES_SCHEMAS: [Schema; 5] = [
    Schema {
        name: "metric",
        metrics: true,
        min: 1,
        max: usize::MAX,
    },
    Schema {
        name: "radius",
        metrics: true,
        min: 0,
        max: 1,
    },
    Schema {
        name: "segment",
        metrics: false,
        min: 0,
        max: 1,
    },
    Schema {
        name: "group",
        metrics: false,
        min: 0,
        max: 3,
    },
    Schema {
        name: "split",
        metrics: false,
        min: 0,
        max: 1,
    },
];
const TABLE_SCHEMAS: [Schema; 3] = [
    Schema {
        name: "metric",
        metrics: true,
        min: 1,
        max: usize::MAX,
    },
    Schema {
        name: "bucket",
        metrics: false,
        min: 0,
        max: usize::MAX,
    },
    Schema {
        name: "split",
        metrics: false,
        min: 0,
        max: 1,
    },
];

/// The vis types this file may use, with their editor schemas. `line` and
/// `histogram`: src/plugins/vis_type_vislib/public/line.ts and histogram.ts,
/// registered by src/plugins/vis_type_vislib/public/plugin.ts; `table`:
/// src/plugins/vis_type_table/public/table_vis_type.ts. (Lens is Kibana's and
/// does not exist in OpenSearch Dashboards.)
fn schemas_of(vis_type: &str) -> Option<&'static [Schema]> {
    match vis_type {
        "line" | "histogram" => Some(&POINT_SERIES_SCHEMAS),
        "table" => Some(&TABLE_SCHEMAS),
        _ => None,
    }
}

/// OpenSearch Dashboards field types of the mapping types the index template
/// uses. src/plugins/data/common/osd_field_types/osd_field_types_factory.ts
fn osd_type(es_type: &str) -> &'static str {
    match es_type {
        "keyword" | "text" => "string",
        "long" | "integer" | "short" | "byte" | "double" | "float" => "number",
        "date" => "date",
        _ => "unknown",
    }
}

/// Field types each aggregation accepts for its `field` (and `sortField`).
/// terms.ts (number, boolean, date, ip, string), date_histogram.ts (date),
/// metrics/max.ts and min.ts (number, date), metrics/top_hit.ts (any but
/// histogram; sortField: number, date, ip, string).
fn accepted_field_types(agg_type: &str, param: &str) -> &'static [&'static str] {
    match (agg_type, param) {
        ("terms", "field") => &["number", "boolean", "date", "ip", "string"],
        ("date_histogram", "field") => &["date"],
        ("max" | "min", "field") => &["number", "date"],
        ("avg" | "sum", "field") => &["number"],
        ("top_hits", "field") => &["number", "boolean", "date", "ip", "string", "geo_point"],
        ("top_hits", "sortField") => &["number", "date", "ip", "string"],
        _ => &[],
    }
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
        .collect()
}

fn objects() -> Vec<Value> {
    parse_lines(SAVED_OBJECTS)
}

fn template_fields() -> BTreeMap<String, String> {
    fn walk(properties: &Value, prefix: &str, out: &mut BTreeMap<String, String>) {
        for (name, spec) in properties.as_object().expect("properties") {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(inner) = spec.get("properties") {
                walk(inner, &path, out);
            } else {
                out.insert(path, spec["type"].as_str().expect("type").to_string());
            }
        }
    }
    let template: Value = serde_json::from_str(TEMPLATE).expect("index template");
    let mut out = BTreeMap::new();
    walk(
        &template["template"]["mappings"]["properties"],
        "",
        &mut out,
    );
    out
}

fn version(text: &str) -> Option<(u64, u64, u64)> {
    let core = text.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let v = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(v)
}

/// A JSON-encoded attribute (`visState`, `panelsJSON`, `fields`, …) as JSON.
fn json_attribute(object: &Value, path: &str) -> Result<Value, String> {
    let pointer = format!("/attributes/{}", path.replace('.', "/"));
    let text = object
        .pointer(&pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!(
                "{} {}: `{path}` must be a JSON-encoded string",
                object["type"], object["id"]
            )
        })?;
    serde_json::from_str(text).map_err(|e| {
        format!(
            "{} {}: `{path}` is not JSON: {e}",
            object["type"], object["id"]
        )
    })
}

fn label(object: &Value) -> String {
    format!(
        "{} {}",
        object["type"].as_str().unwrap_or("?"),
        object["id"].as_str().unwrap_or("?")
    )
}

fn has_string(object: &Value, pointer: &str) -> bool {
    object.pointer(pointer).is_some_and(Value::is_string)
}

/// The index pattern's fields by name (the `fields` attribute).
fn pattern_fields(objects: &[Value]) -> BTreeMap<String, Value> {
    objects
        .iter()
        .filter(|o| o["type"] == "index-pattern")
        .filter_map(|o| json_attribute(o, "fields").ok())
        .filter_map(|fields| fields.as_array().cloned())
        .flatten()
        .filter_map(|f| Some((f["name"].as_str()?.to_string(), f)))
        .collect()
}

/// Every broken rule, one line each. Empty: the file imports and renders.
fn violations(objects: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    let mut keys = BTreeSet::new();
    let latest: BTreeMap<&str, &str> = LATEST_MIGRATION.into_iter().collect();

    for object in objects {
        let name = label(object);
        let (Some(kind), Some(id)) = (object["type"].as_str(), object["id"].as_str()) else {
            out.push(format!("{name}: `type` and `id` must be strings"));
            continue;
        };
        // src/core/server/saved_objects/import/collect_saved_objects.ts: a type:id twice is a 400 for the whole import.
        if !keys.insert((kind.to_string(), id.to_string())) {
            out.push(format!("{name}: duplicate type:id"));
        }
        let Some(last) = latest.get(kind) else {
            out.push(format!(
                "{name}: type `{kind}` is not importable into OpenSearch Dashboards"
            ));
            continue;
        };
        // src/core/server/saved_objects/migrations/core/document_migrator.ts: a version above the type's latest migration is
        // refused ("belongs to a more recent version of OpenSearch Dashboards"),
        // a key naming anything but the type as well; and without
        // migrationVersion collect_saved_objects.ts sets `{}`, so every
        // migration since 6.x runs again over an object already in today's shape.
        match object.get("migrationVersion").and_then(Value::as_object) {
            None => out.push(format!(
                "{name}: no migrationVersion (import would rerun every migration since 6.x)"
            )),
            Some(versions) => {
                for key in versions.keys() {
                    if key != kind {
                        out.push(format!(
                            "{name}: migrationVersion names `{key}`, which has no migrations"
                        ));
                    }
                }
                match versions.get(kind).and_then(Value::as_str).and_then(version) {
                    None => out.push(format!("{name}: migrationVersion.{kind} must be a semver")),
                    Some(v) if v > version(last).expect("semver") => out.push(format!(
                        "{name}: migrationVersion.{kind} is newer than the latest migration {last}"
                    )),
                    Some(v) if v < version(last).expect("semver") => out.push(format!(
                        "{name}: migrationVersion.{kind} is older than {last}: migrations for older shapes would run"
                    )),
                    Some(_) => {}
                }
            }
        }
        if !object["attributes"].is_object() || !object["references"].is_array() {
            out.push(format!(
                "{name}: needs `attributes` (object) and `references` (array)"
            ));
            continue;
        }
        if !has_string(object, "/attributes/title") {
            out.push(format!(
                "{name}: attributes.title is required (getTitle of the type)"
            ));
        }
        match kind {
            "index-pattern" => index_pattern_rules(object, &mut out),
            "visualization" => visualization_rules(object, objects, &mut out),
            "dashboard" => dashboard_rules(object, objects, &mut out),
            _ => {}
        }
    }

    // src/core/server/saved_objects/import/validate_references.ts: an index-pattern or search reference that is
    // neither in the file nor in the cluster fails as `missing_references`;
    // the file must stand alone, so every reference resolves inside it.
    let present: BTreeSet<(String, String)> = objects
        .iter()
        .filter_map(|o| {
            Some((
                o["type"].as_str()?.to_string(),
                o["id"].as_str()?.to_string(),
            ))
        })
        .collect();
    for object in objects {
        for reference in object["references"].as_array().into_iter().flatten() {
            let (Some(kind), Some(id)) = (reference["type"].as_str(), reference["id"].as_str())
            else {
                out.push(format!("{}: reference without type and id", label(object)));
                continue;
            };
            if !present.contains(&(kind.to_string(), id.to_string())) {
                out.push(format!(
                    "{}: reference {kind}:{id} is not in the file",
                    label(object)
                ));
            }
        }
    }
    out
}

fn index_pattern_rules(object: &Value, out: &mut Vec<String>) {
    let name = label(object);
    if object["attributes"]["timeFieldName"] != "@timestamp" {
        out.push(format!("{name}: timeFieldName must be @timestamp"));
    }
    // src/plugins/data/common/index_patterns/index_patterns/index_patterns.ts (savedObjectToSpec): references[0] is taken as the
    // data source, so a plain index pattern has no references.
    if object["references"]
        .as_array()
        .is_some_and(|r| !r.is_empty())
    {
        out.push(format!(
            "{name}: an index pattern without a data source has no references"
        ));
    }
    let fields = match json_attribute(object, "fields") {
        Ok(Value::Array(fields)) => fields,
        Ok(_) => return out.push(format!("{name}: fields must encode an array")),
        Err(e) => return out.push(e),
    };
    // index_patterns.ts, same file (isFieldRefreshRequired): a spec without
    // aggregatable/searchable/readFromDocValues sends the pattern back to the
    // cluster for its fields on first load; FieldSpec in
    // src/plugins/data/common/index_patterns/types.ts needs name and type.
    for field in &fields {
        for key in ["name", "type"] {
            if !field[key].is_string() {
                out.push(format!("{name}: field {field} needs `{key}`"));
            }
        }
        for key in ["searchable", "aggregatable", "readFromDocValues"] {
            if !field[key].is_boolean() {
                out.push(format!(
                    "{name}: field {} needs boolean `{key}`",
                    field["name"]
                ));
            }
        }
    }
    let by_name: BTreeMap<&str, &Value> = fields
        .iter()
        .filter_map(|f| Some((f["name"].as_str()?, f)))
        .collect();
    for (path, es_type) in template_fields() {
        match by_name.get(path.as_str()) {
            None => out.push(format!(
                "{name}: mapped field {path} is missing from `fields`"
            )),
            Some(field) => {
                if field["type"] != osd_type(&es_type) || field["esTypes"] != json!([es_type]) {
                    out.push(format!(
                        "{name}: {path} must be {} ({es_type}) as mapped",
                        osd_type(&es_type)
                    ));
                }
                if field["aggregatable"] != true || field["searchable"] != true {
                    out.push(format!(
                        "{name}: {path} is a {es_type} with doc values: searchable and aggregatable"
                    ));
                }
            }
        }
    }
}

fn search_source_rules(object: &Value, needs_index: bool, out: &mut Vec<String>) {
    let name = label(object);
    let source = match json_attribute(object, "kibanaSavedObjectMeta.searchSourceJSON") {
        Ok(source) => source,
        Err(e) => return out.push(e),
    };
    // src/plugins/data/common/search/search_source/{extract,inject}_references.ts: the index lives in the
    // references under INDEX_REF; an inline `index` is the pre-7.0 shape.
    if source.get("index").is_some() {
        out.push(format!(
            "{name}: searchSourceJSON.index must be a reference (indexRefName)"
        ));
    }
    let query = &source["query"];
    if !query["query"].is_string() || !query["language"].is_string() {
        out.push(format!(
            "{name}: searchSourceJSON.query needs `query` and `language`"
        ));
    }
    if !source["filter"].is_array() {
        out.push(format!("{name}: searchSourceJSON.filter must be an array"));
    }
    let refs = object["references"].as_array().cloned().unwrap_or_default();
    match source.get("indexRefName").and_then(Value::as_str) {
        Some(ref_name) => {
            // inject_references.ts: "Could not find reference for <indexRefName>"
            if !refs
                .iter()
                .any(|r| r["name"] == ref_name && r["type"] == "index-pattern")
            {
                out.push(format!(
                    "{name}: no index-pattern reference named {ref_name}"
                ));
            }
            if ref_name != INDEX_REF {
                out.push(format!("{name}: indexRefName must be {INDEX_REF}"));
            }
        }
        None if needs_index => out.push(format!("{name}: searchSourceJSON needs indexRefName")),
        None => {}
    }
}

fn visualization_rules(object: &Value, objects: &[Value], out: &mut Vec<String>) {
    let name = label(object);
    // src/plugins/visualizations/server/saved_objects/visualization.ts (mappings)
    // and src/plugins/visualizations/public/saved_visualizations/_saved_vis.ts (defaults).
    for key in ["visState", "uiStateJSON", "description"] {
        if !has_string(object, &format!("/attributes/{key}")) {
            out.push(format!("{name}: attributes.{key} must be a string"));
        }
    }
    if !object["attributes"]["version"].is_u64() {
        out.push(format!("{name}: attributes.version must be an integer"));
    }
    if json_attribute(object, "uiStateJSON").is_err() {
        out.push(format!("{name}: uiStateJSON must encode JSON"));
    }
    search_source_rules(object, true, out);
    let state = match json_attribute(object, "visState") {
        Ok(state) => state,
        Err(e) => return out.push(e),
    };
    if state["title"] != object["attributes"]["title"] {
        out.push(format!("{name}: visState.title differs from the title"));
    }
    let vis_type = state["type"].as_str().unwrap_or_default();
    let Some(schemas) = schemas_of(vis_type) else {
        return out.push(format!(
            "{name}: vis type `{vis_type}` is not a line, histogram or table"
        ));
    };
    let Some(aggs) = state["aggs"].as_array() else {
        return out.push(format!("{name}: visState.aggs must be an array"));
    };
    if !state["params"].is_object() {
        out.push(format!("{name}: visState.params must be an object"));
    }
    let fields = pattern_fields(objects);
    let mut ids = BTreeSet::new();
    for schema in schemas {
        let count = aggs.iter().filter(|a| a["schema"] == schema.name).count();
        if count < schema.min || count > schema.max {
            out.push(format!(
                "{name}: schema {} takes {}..{} aggs, has {count}",
                schema.name, schema.min, schema.max
            ));
        }
    }
    for agg in aggs {
        agg_rules(&name, agg, &fields, out);
        let id = agg["id"].as_str().unwrap_or_default();
        if !ids.insert(id) {
            out.push(format!("{name}: agg id {id} twice"));
        }
        let agg_type = agg["type"].as_str().unwrap_or_default();
        match schemas.iter().find(|s| agg["schema"] == s.name) {
            None => out.push(format!(
                "{name}: agg {id} has a schema {vis_type} does not define"
            )),
            Some(schema) if schema.metrics != METRIC_AGGS.contains(&agg_type) => out.push(format!(
                "{name}: agg {id} ({agg_type}) is in the wrong group for schema {}",
                schema.name
            )),
            Some(_) => {}
        }
        // terms.ts: orderBy names a metric of the vis ("1"), `_key`, or
        // `custom` with an orderAgg; the ordering metric passes termsAggFilter.
        if agg_type == "terms" {
            let params = &agg["params"];
            match params["orderBy"].as_str() {
                Some("custom") => match params["orderAgg"]["type"].as_str() {
                    Some(t) if METRIC_AGGS.contains(&t) && !NOT_A_TERMS_ORDER.contains(&t) => {}
                    _ => out.push(format!("{name}: agg {id} orders by an unusable orderAgg")),
                },
                Some("_key" | "_count") => {}
                Some(metric) => match aggs.iter().find(|a| a["id"] == metric) {
                    Some(m)
                        if m["schema"] == "metric"
                            && !NOT_A_TERMS_ORDER.contains(&m["type"].as_str().unwrap_or("")) => {}
                    _ => out.push(format!(
                        "{name}: agg {id} orders by `{metric}`, which is no usable metric"
                    )),
                },
                None => out.push(format!("{name}: agg {id} has no orderBy")),
            }
            if !params["size"].is_u64() || !matches!(params["order"].as_str(), Some("asc" | "desc"))
            {
                out.push(format!("{name}: agg {id} needs a size and an order"));
            }
        }
    }
    // agg.tsx: with a parent pipeline metric the last bucket agg must be a
    // date histogram or histogram.
    if aggs
        .iter()
        .any(|a| PARENT_PIPELINE_AGGS.contains(&a["type"].as_str().unwrap_or("")))
    {
        let last_bucket = aggs
            .iter()
            .rev()
            .find(|a| BUCKET_AGGS.contains(&a["type"].as_str().unwrap_or("")));
        if !last_bucket.is_some_and(|a| a["type"] == "date_histogram" || a["type"] == "histogram") {
            out.push(format!("{name}: last bucket aggregation must be a date histogram with a parent pipeline metric"));
        }
    }
    if vis_type != "table" {
        point_series_params(&name, &state, aggs, out);
    }
}

fn agg_rules(name: &str, agg: &Value, fields: &BTreeMap<String, Value>, out: &mut Vec<String>) {
    // the serialized agg, {id, enabled, type, schema, params}, as the sample data
    // stores it (src/plugins/home/server/services/sample_data/data_sets/logs/saved_objects.ts)
    let id = agg["id"].as_str().unwrap_or("?");
    if !agg["id"].is_string()
        || !agg["enabled"].is_boolean()
        || !agg["schema"].is_string()
        || !agg["params"].is_object()
    {
        out.push(format!(
            "{name}: agg {id} needs string id, boolean enabled, schema and params"
        ));
    }
    let agg_type = agg["type"].as_str().unwrap_or_default();
    if !METRIC_AGGS.contains(&agg_type) && !BUCKET_AGGS.contains(&agg_type) {
        return out.push(format!("{name}: agg {id} has unknown type `{agg_type}`"));
    }
    // src/plugins/data/common/search/aggs/param_types/field.ts: the field must be in the index pattern
    // (SavedObjectNotFound 'index-pattern-field'), aggregatable, and of a
    // type the aggregation accepts ("Saved field … is invalid for use with …").
    for param in ["field", "sortField"] {
        let Some(field_name) = agg["params"][param].as_str() else {
            continue;
        };
        match fields.get(field_name) {
            None => out.push(format!(
                "{name}: agg {id} uses {field_name}, which the index pattern lacks"
            )),
            Some(field) => {
                let field_type = field["type"].as_str().unwrap_or_default();
                if !accepted_field_types(agg_type, param).contains(&field_type) {
                    out.push(format!(
                        "{name}: agg {id} ({agg_type}) does not take a {field_type} {param}"
                    ));
                }
                let needs_aggregatable = !(agg_type == "top_hits" && param == "field");
                if needs_aggregatable && field["aggregatable"] != true {
                    out.push(format!(
                        "{name}: agg {id} uses {field_name}, which is not aggregatable"
                    ));
                }
            }
        }
    }
    if agg_type == "date_histogram" && agg["params"]["field"].is_null() {
        out.push(format!("{name}: agg {id} needs a date field"));
    }
    // parent_pipeline_agg_helper.ts: metricAgg "custom" with a customMetric
    // that passes metricAggFilter.
    if PARENT_PIPELINE_AGGS.contains(&agg_type) {
        let custom = &agg["params"]["customMetric"];
        let custom_type = custom["type"].as_str().unwrap_or_default();
        if agg["params"]["metricAgg"] != "custom"
            || !METRIC_AGGS.contains(&custom_type)
            || NOT_A_CUSTOM_METRIC.contains(&custom_type)
        {
            out.push(format!(
                "{name}: agg {id} needs metricAgg `custom` with a usable customMetric"
            ));
        }
        agg_rules(name, custom, fields, out);
    }
    if let Some(order) = agg["params"].get("orderAgg").filter(|o| o.is_object()) {
        agg_rules(name, order, fields, out);
    }
}

/// line.ts / histogram.ts visConfig defaults: the axes and one series per
/// metric, each series drawn on an axis that exists.
fn point_series_params(name: &str, state: &Value, aggs: &[Value], out: &mut Vec<String>) {
    let params = &state["params"];
    if params["type"] != state["type"] {
        out.push(format!("{name}: params.type must repeat the vis type"));
    }
    let axes: BTreeSet<&str> = params["valueAxes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_str())
        .collect();
    if axes.is_empty() || params["categoryAxes"].as_array().is_none_or(Vec::is_empty) {
        out.push(format!("{name}: needs categoryAxes and valueAxes"));
    }
    let metrics: BTreeSet<&str> = aggs
        .iter()
        .filter(|a| a["schema"] == "metric")
        .filter_map(|a| a["id"].as_str())
        .collect();
    let series: Vec<&Value> = params["seriesParams"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let drawn: BTreeSet<&str> = series
        .iter()
        .filter_map(|s| s["data"]["id"].as_str())
        .collect();
    if drawn != metrics {
        out.push(format!(
            "{name}: seriesParams draw {drawn:?}, the metrics are {metrics:?}"
        ));
    }
    for s in series {
        if !s["valueAxis"].as_str().is_some_and(|a| axes.contains(a)) {
            out.push(format!(
                "{name}: a series sits on an axis that does not exist"
            ));
        }
    }
}

fn dashboard_rules(object: &Value, objects: &[Value], out: &mut Vec<String>) {
    let name = label(object);
    let attributes = &object["attributes"];
    // src/plugins/dashboard/server/saved_objects/dashboard.ts (mappings),
    // src/plugins/dashboard/public/saved_dashboards/saved_dashboard.ts (defaults).
    for key in ["panelsJSON", "optionsJSON", "description"] {
        if !attributes[key].is_string() {
            out.push(format!("{name}: attributes.{key} must be a string"));
        }
    }
    if !attributes["version"].is_u64() || !attributes["timeRestore"].is_boolean() {
        out.push(format!(
            "{name}: needs integer version and boolean timeRestore"
        ));
    }
    if attributes["timeRestore"] == true
        && (!attributes["timeFrom"].is_string() || !attributes["timeTo"].is_string())
    {
        out.push(format!("{name}: timeRestore needs timeFrom and timeTo"));
    }
    search_source_rules(object, false, out);
    let panels = match json_attribute(object, "panelsJSON") {
        Ok(Value::Array(panels)) => panels,
        Ok(_) => return out.push(format!("{name}: panelsJSON must encode an array")),
        Err(e) => return out.push(e),
    };
    let refs = object["references"].as_array().cloned().unwrap_or_default();
    let mut used = BTreeSet::new();
    let mut cells: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for panel in &panels {
        let index = panel["panelIndex"].as_str().unwrap_or_default().to_string();
        // src/plugins/dashboard/common/bwc/types.ts (RawSavedDashboardPanel730ToLatest): panelIndex, gridData,
        // version, embeddableConfig; a saved-object panel keeps only panelRefName.
        if index.is_empty() || !panel["embeddableConfig"].is_object() {
            out.push(format!(
                "{name}: a panel needs panelIndex and embeddableConfig"
            ));
        }
        if panel.get("id").is_some() || panel.get("type").is_some() {
            out.push(format!(
                "{name}: panel {index} carries id/type instead of a panelRefName"
            ));
        }
        // src/plugins/dashboard/public/application/lib/migrate_app_state.ts: a panel version `<7.3` is migrated again as a 6.x panel.
        match panel["version"].as_str().and_then(version) {
            Some(v) if v >= (7, 3, 0) => {}
            _ => out.push(format!(
                "{name}: panel {index} needs a version of 7.3.0 or later"
            )),
        }
        let grid = &panel["gridData"];
        let (x, y, w, h) = (
            grid["x"].as_u64(),
            grid["y"].as_u64(),
            grid["w"].as_u64(),
            grid["h"].as_u64(),
        );
        match (x, y, w, h) {
            (Some(x), Some(y), Some(w), Some(h))
                if w > 0 && h > 0 && x + w <= 48 && grid["i"] == index.as_str() =>
            {
                for cx in x..x + w {
                    for cy in y..y + h {
                        if let Some(other) = cells.insert((cx, cy), index.clone()) {
                            out.push(format!("{name}: panels {other} and {index} overlap"));
                            break;
                        }
                    }
                }
            }
            _ => out.push(format!(
                "{name}: panel {index} needs gridData x,y,w,h inside 48 columns and i = panelIndex"
            )),
        }
        // src/plugins/dashboard/public/saved_dashboards/saved_dashboard_references.ts: `Could not find reference "<panelRefName>"`
        let Some(ref_name) = panel["panelRefName"].as_str() else {
            out.push(format!("{name}: panel {index} has no panelRefName"));
            continue;
        };
        used.insert(ref_name.to_string());
        match refs.iter().find(|r| r["name"] == ref_name) {
            None => out.push(format!(
                "{name}: panel {index} refers to {ref_name}, which is not a reference"
            )),
            Some(r) if r["type"] != "visualization" => {
                out.push(format!("{name}: {ref_name} is not a visualization"))
            }
            Some(r) => {
                if !objects
                    .iter()
                    .any(|o| o["type"] == "visualization" && o["id"] == r["id"])
                {
                    out.push(format!(
                        "{name}: {ref_name} points at no visualization of the file"
                    ));
                }
            }
        }
    }
    for r in &refs {
        if !used.contains(r["name"].as_str().unwrap_or_default()) {
            out.push(format!(
                "{name}: reference {} is used by no panel",
                r["name"]
            ));
        }
    }
}

// ------------------------------------------------------------------ helpers

fn visualization<'a>(objects: &'a [Value], id: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["type"] == "visualization" && o["id"] == id)
        .unwrap_or_else(|| panic!("visualization {id}"))
}

fn vis_state(object: &Value) -> Value {
    json_attribute(object, "visState").expect("visState")
}

fn aggs(state: &Value) -> Vec<Value> {
    state["aggs"].as_array().cloned().expect("aggs")
}

/// The bucket aggs in nesting order (the order of `aggs`, which is the order
/// AggConfigs nests them in the request).
fn buckets(state: &Value) -> Vec<Value> {
    aggs(state)
        .into_iter()
        .filter(|a| BUCKET_AGGS.contains(&a["type"].as_str().unwrap_or("")))
        .collect()
}

fn terms_fields(state: &Value) -> Vec<String> {
    buckets(state)
        .into_iter()
        .filter(|a| a["type"] == "terms")
        .filter_map(|a| a["params"]["field"].as_str().map(String::from))
        .collect()
}

fn edit_vis_state(objects: &mut [Value], id: &str, edit: impl FnOnce(&mut Value)) {
    let object = objects
        .iter_mut()
        .find(|o| o["type"] == "visualization" && o["id"] == id)
        .expect("visualization");
    let mut state = vis_state(object);
    edit(&mut state);
    object["attributes"]["visState"] = Value::String(state.to_string());
}

fn edit_json_attribute(
    objects: &mut [Value],
    kind: &str,
    path: &str,
    edit: impl FnOnce(&mut Value),
) {
    let object = objects
        .iter_mut()
        .find(|o| o["type"] == kind)
        .expect("object");
    let mut value = json_attribute(object, path).expect("json attribute");
    edit(&mut value);
    let pointer = format!("/attributes/{}", path.replace('.', "/"));
    *object.pointer_mut(&pointer).expect("attribute") = Value::String(value.to_string());
}

/// Breaks a copy of the shipped file and expects a violation containing `expected`.
fn assert_refused(expected: &str, edit: impl FnOnce(&mut Vec<Value>)) {
    let mut copy = objects();
    edit(&mut copy);
    let found = violations(&copy);
    assert!(
        found.iter().any(|v| v.contains(expected)),
        "expected a violation containing {expected:?}, got {found:#?}"
    );
}

fn agg_by_id<'a>(state: &'a mut Value, id: &str) -> &'a mut Map<String, Value> {
    state["aggs"]
        .as_array_mut()
        .and_then(|aggs| aggs.iter_mut().find(|a| a["id"] == id))
        .and_then(Value::as_object_mut)
        .expect("agg")
}

// ------------------------------------------------------------------ the file

#[test]
fn shipped_saved_objects_break_no_rule() {
    let objects = objects();
    assert_eq!(
        objects.len(),
        6,
        "index pattern, four visualizations, dashboard"
    );
    let found = violations(&objects);
    assert!(found.is_empty(), "{found:#?}");
    // src/core/server/saved_objects/routes/import.ts: anything but a .ndjson file name is a 400.
    assert!(SAVED_OBJECTS_PATH.ends_with(".ndjson"));
}

#[test]
fn the_four_views_match_the_kibana_dashboard() {
    let objects = objects();
    let kibana = parse_lines(KIBANA_SAVED_OBJECTS);
    let titles = |objects: &[Value], kind: &str| -> BTreeSet<String> {
        objects
            .iter()
            .filter(|o| o["type"] == kind)
            .filter_map(|o| o["attributes"]["title"].as_str().map(String::from))
            .collect()
    };
    let lens = titles(&kibana, "lens");
    assert_eq!(lens.len(), 4);
    assert_eq!(titles(&objects, "visualization"), lens);
    assert_eq!(titles(&objects, "dashboard"), titles(&kibana, "dashboard"));
    let dashboard = objects
        .iter()
        .find(|o| o["type"] == "dashboard")
        .expect("dashboard");
    assert_eq!(dashboard["attributes"]["timeFrom"], "now-30d");
    assert_eq!(dashboard["references"].as_array().map(Vec::len), Some(4));
    let pattern = objects
        .iter()
        .find(|o| o["type"] == "index-pattern")
        .expect("index pattern");
    assert_eq!(pattern["attributes"]["title"], "docker-pulls-*");
}

#[test]
fn index_pattern_covers_every_mapped_field_with_its_type() {
    let fields = pattern_fields(&objects());
    for (path, es_type) in template_fields() {
        let field = &fields[&path];
        assert_eq!(field["type"], osd_type(&es_type), "{path}");
        assert_eq!(field["aggregatable"], true, "{path}");
    }
    assert_eq!(fields["@timestamp"]["type"], "date");
    assert_eq!(fields[NAMESPACE]["type"], "string");
    assert_eq!(fields[PULLS]["type"], "number");
}

#[test]
fn repositories_are_split_by_namespace_then_name() {
    for object in objects().iter().filter(|o| o["type"] == "visualization") {
        let state = vis_state(object);
        let fields = terms_fields(&state);
        assert_eq!(
            fields,
            [NAMESPACE, NAME],
            "{}: namespace outside, name inside",
            label(object)
        );
        let bucket_aggs = buckets(&state);
        let schemas: BTreeSet<&str> = bucket_aggs
            .iter()
            .filter(|a| a["type"] == "terms")
            .filter_map(|a| a["schema"].as_str())
            .collect();
        assert_eq!(
            schemas.len(),
            1,
            "{}: both split the same way",
            label(object)
        );
        // adjacent: nothing comes between namespace and name
        let pos = |field: &str| {
            bucket_aggs
                .iter()
                .position(|a| a["params"]["field"] == field)
                .expect("terms")
        };
        assert_eq!(pos(NAME), pos(NAMESPACE) + 1, "{}", label(object));
    }
}

#[test]
fn charts_put_time_inside_the_repositories_and_rank_them_by_pulls() {
    let objects = objects();
    for id in [
        "docker-pulls-pulls-over-time",
        "docker-pulls-pulls-gained",
        "docker-pulls-stars-over-time",
    ] {
        let state = vis_state(visualization(&objects, id));
        let bucket_aggs = buckets(&state);
        let last = bucket_aggs.last().expect("buckets");
        assert_eq!(
            (last["type"].as_str(), last["params"]["field"].as_str()),
            (Some("date_histogram"), Some("@timestamp")),
            "{id}"
        );
        // the same repositories in every chart: the most pulled ones
        for terms in bucket_aggs.iter().filter(|a| a["type"] == "terms") {
            let params = &terms["params"];
            let order_field = match params["orderBy"].as_str() {
                Some("custom") => params["orderAgg"]["params"]["field"].clone(),
                Some(metric) => aggs(&state)
                    .into_iter()
                    .find(|a| a["id"] == metric)
                    .expect("metric")["params"]["field"]
                    .clone(),
                None => Value::Null,
            };
            assert_eq!(order_field, PULLS, "{id}");
            assert_eq!(params["order"], "desc", "{id}");
        }
    }
    let stars = vis_state(visualization(&objects, "docker-pulls-stars-over-time"));
    let metric = &aggs(&stars)[0];
    assert_eq!(
        (metric["type"].as_str(), metric["params"]["field"].as_str()),
        (Some("max"), Some(STARS))
    );
    let pulls = vis_state(visualization(&objects, "docker-pulls-pulls-over-time"));
    let metric = &aggs(&pulls)[0];
    assert_eq!(
        (metric["type"].as_str(), metric["params"]["field"].as_str()),
        (Some("max"), Some(PULLS))
    );
}

#[test]
fn pulls_gained_is_the_derivative_of_the_highest_pull_count_per_repository() {
    let objects = objects();
    let state = vis_state(visualization(&objects, "docker-pulls-pulls-gained"));
    assert_eq!(state["type"], "histogram");
    let metrics: Vec<Value> = aggs(&state)
        .into_iter()
        .filter(|a| a["schema"] == "metric")
        .collect();
    assert_eq!(metrics.len(), 1);
    let derivative = &metrics[0];
    assert!(matches!(
        derivative["type"].as_str(),
        Some("derivative" | "serial_diff")
    ));
    assert_eq!(derivative["params"]["metricAgg"], "custom");
    let inner = &derivative["params"]["customMetric"];
    assert_eq!(
        (inner["type"].as_str(), inner["params"]["field"].as_str()),
        (Some("max"), Some(PULLS))
    );
    // per repository: the difference is taken inside each namespace/name bucket
    assert_eq!(terms_fields(&state), [NAMESPACE, NAME]);
    assert_eq!(
        buckets(&state).last().expect("buckets")["type"],
        "date_histogram"
    );
    assert_eq!(state["params"]["seriesParams"][0]["mode"], "stacked");
}

#[test]
fn latest_totals_show_the_newest_pull_and_star_counts() {
    let objects = objects();
    let state = vis_state(visualization(&objects, "docker-pulls-latest-totals"));
    assert_eq!(state["type"], "table");
    let latest: BTreeSet<String> = aggs(&state)
        .into_iter()
        .filter(|a| a["type"] == "top_hits")
        .inspect(|a| {
            assert_eq!(a["params"]["size"], 1);
            assert_eq!(a["params"]["sortField"], "@timestamp");
            assert_eq!(a["params"]["sortOrder"], "desc");
        })
        .filter_map(|a| a["params"]["field"].as_str().map(String::from))
        .collect();
    assert_eq!(
        latest,
        BTreeSet::from([PULLS.to_string(), STARS.to_string()])
    );
    assert_eq!(terms_fields(&state), [NAMESPACE, NAME]);
    assert!(
        buckets(&state).iter().all(|a| a["schema"] == "bucket"),
        "one row per repository"
    );
}

#[test]
fn documents_without_collaborator_count_fill_every_panel() {
    // listing mode leaves collaborator_count out; no panel may depend on it
    let objects = objects();
    for object in objects.iter().filter(|o| o["type"] == "visualization") {
        assert!(
            !object["attributes"]["visState"]
                .as_str()
                .unwrap_or_default()
                .contains("collaborator_count"),
            "{}",
            label(object)
        );
    }
}

#[test]
fn import_instructions_use_the_opensearch_dashboards_route_and_header() {
    // src/core/server/saved_objects/routes/index.ts: '/api/saved_objects/'; routes/import.ts: '/_import',
    // `overwrite` query flag, multipart field `file`; src/core/server/http/lifecycle_handlers.ts:
    // XSRF_HEADER = 'osd-xsrf' (Kibana's kbn-xsrf is not accepted).
    let command = GUIDE
        .lines()
        .skip_while(|line| {
            !line.contains("/api/saved_objects/_import?overwrite=true") || line.contains("kibana")
        })
        .take(6)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(command.contains("curl -X POST"), "{command}");
    assert!(command.contains("-H 'osd-xsrf: true'"), "{command}");
    assert!(
        command.contains("--form file=@opensearch-dashboards/docker-pulls.ndjson"),
        "{command}"
    );
    assert!(!command.contains("kbn-xsrf"), "{command}");
    let readme = README
        .split("\n## ")
        .find(|s| s.starts_with("Seeing the data in"))
        .expect("README section");
    assert!(readme.contains(SAVED_OBJECTS_PATH), "{readme}");
}

// ------------------------------------------------- each rule refuses a broken copy

#[test]
fn a_migration_version_newer_than_the_source_is_refused() {
    assert_refused("newer than the latest migration 7.10.0", |objects| {
        objects[1]["migrationVersion"] = json!({"visualization": "7.10.1"});
    });
    assert_refused("newer than the latest migration 7.9.3", |objects| {
        let dashboard = objects
            .iter_mut()
            .find(|o| o["type"] == "dashboard")
            .expect("dashboard");
        dashboard["migrationVersion"] = json!({"dashboard": "8.0.0"});
    });
}

#[test]
fn a_missing_migration_version_is_refused() {
    assert_refused("no migrationVersion", |objects| {
        objects[0]
            .as_object_mut()
            .expect("object")
            .remove("migrationVersion");
    });
}

#[test]
fn a_kibana_only_type_is_refused() {
    assert_refused("is not importable", |objects| {
        objects[1]["type"] = json!("lens")
    });
}

#[test]
fn a_reference_outside_the_file_is_refused() {
    assert_refused(
        "reference index-pattern:elsewhere is not in the file",
        |objects| {
            objects[2]["references"][0]["id"] = json!("elsewhere");
        },
    );
}

#[test]
fn an_inline_index_in_the_search_source_is_refused() {
    assert_refused("searchSourceJSON.index must be a reference", |objects| {
        edit_json_attribute(
            objects,
            "visualization",
            "kibanaSavedObjectMeta.searchSourceJSON",
            |source| {
                source["index"] = json!("docker-pulls");
            },
        );
    });
}

#[test]
fn an_unregistered_vis_type_is_refused() {
    assert_refused("is not a line, histogram or table", |objects| {
        edit_vis_state(objects, "docker-pulls-pulls-over-time", |state| {
            state["type"] = json!("lnsXY")
        });
    });
}

#[test]
fn a_derivative_without_a_date_histogram_last_is_refused() {
    assert_refused(
        "last bucket aggregation must be a date histogram",
        |objects| {
            edit_vis_state(objects, "docker-pulls-pulls-gained", |state| {
                let aggs = state["aggs"].as_array_mut().expect("aggs");
                let histogram = aggs.pop().expect("date histogram");
                aggs.insert(1, histogram);
            });
        },
    );
}

#[test]
fn a_field_outside_the_mapping_is_refused() {
    assert_refused("which the index pattern lacks", |objects| {
        edit_vis_state(objects, "docker-pulls-stars-over-time", |state| {
            agg_by_id(state, "1")
                .insert("params".into(), json!({"field": "http.docker_hub.stars"}));
        });
    });
}

#[test]
fn a_field_of_the_wrong_type_is_refused() {
    assert_refused("does not take a string field", |objects| {
        edit_vis_state(objects, "docker-pulls-pulls-over-time", |state| {
            agg_by_id(state, "1").insert("params".into(), json!({"field": NAME}));
        });
    });
}

#[test]
fn ordering_terms_by_a_derivative_is_refused() {
    assert_refused("which is no usable metric", |objects| {
        edit_vis_state(objects, "docker-pulls-pulls-gained", |state| {
            let params = agg_by_id(state, "2")
                .get_mut("params")
                .and_then(Value::as_object_mut)
                .expect("params");
            params.insert("orderBy".into(), json!("1"));
            params.remove("orderAgg");
        });
    });
}

#[test]
fn too_many_split_series_are_refused() {
    assert_refused("schema group takes 0..3 aggs, has 4", |objects| {
        edit_vis_state(objects, "docker-pulls-pulls-over-time", |state| {
            let aggs = state["aggs"].as_array_mut().expect("aggs");
            for id in ["5", "6"] {
                let mut extra = aggs[1].clone();
                extra["id"] = json!(id);
                aggs.insert(1, extra);
            }
        });
    });
}

#[test]
fn a_panel_without_its_reference_is_refused() {
    assert_refused("which is not a reference", |objects| {
        let dashboard = objects
            .iter_mut()
            .find(|o| o["type"] == "dashboard")
            .expect("dashboard");
        dashboard["references"]
            .as_array_mut()
            .expect("references")
            .remove(0);
    });
}

#[test]
fn a_pre_7_3_panel_version_is_refused() {
    assert_refused("needs a version of 7.3.0 or later", |objects| {
        edit_json_attribute(objects, "dashboard", "panelsJSON", |panels| {
            panels[0]["version"] = json!("6.3.0")
        });
    });
}

#[test]
fn overlapping_panels_are_refused() {
    assert_refused("overlap", |objects| {
        edit_json_attribute(objects, "dashboard", "panelsJSON", |panels| {
            panels[1]["gridData"]["x"] = json!(12);
        });
    });
}

#[test]
fn an_index_pattern_field_without_capabilities_is_refused() {
    assert_refused("needs boolean `aggregatable`", |objects| {
        edit_json_attribute(objects, "index-pattern", "fields", |fields| {
            fields[0]
                .as_object_mut()
                .expect("field")
                .remove("aggregatable");
        });
    });
}
