//! Property-based fuzzing of everything that reads input from outside:
//! image references (SSM, events), Docker Hub bodies, bulk responses,
//! events, SSM parameters, Cloud IDs and rate-limit headers. None may panic,
//! and each keeps its promise on whatever it accepts.
//!
//! `FUZZ_CASES` sets the cases per property (default 4096; scripts/test
//! runs the default).

use docker_pulls::config::{Needs, Settings, decode_cloud_id};
use docker_pulls::document::RepositoryStats;
use docker_pulls::es::response::{ItemOutcome, read_response};
use docker_pulls::event::Request;
use docker_pulls::image_ref::{self, ImageSpec};
use docker_pulls::retry::{parse_rate_limit_reset, parse_retry_after};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4096)
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map("[a-z_@]{0,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A bulk item as Elasticsearch (or a broken proxy) might answer it.
fn bulk_item(ids: Vec<String>) -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        Just(None),
        prop::sample::select(ids).prop_map(Some),
        "[a-z]{1,4}".prop_map(Some)
    ];
    let status = prop_oneof![
        Just(201u16),
        Just(200),
        Just(409),
        Just(429),
        Just(400),
        Just(503),
        any::<u16>()
    ];
    (id, status, any::<bool>(), "[a-z ]{0,10}").prop_map(|(id, status, error, reason)| {
        let mut item = json!({"status": status});
        if let Some(id) = id {
            item["_id"] = json!(id);
        }
        if error {
            item["error"] = json!({"type": "x_exception", "reason": reason});
        }
        json!({"create": item})
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn image_references_never_panic(reference in ".{0,300}") {
        let _ = image_ref::parse(&reference);
        let _ = image_ref::split_list(&reference).count();
    }

    /// What is accepted is safe to put in a URL path and parses back to
    /// itself.
    #[test]
    fn accepted_references_are_url_safe_and_stable(reference in "[a-zA-Z0-9./:@_*-]{0,300}") {
        if let Ok(spec) = image_ref::parse(&reference) {
            let (text, again) = match &spec {
                ImageSpec::Repository(repository) => {
                    (repository.to_string(), image_ref::parse(&repository.to_string()))
                }
                ImageSpec::Namespace(namespace) => {
                    (namespace.clone(), image_ref::parse(&format!("{namespace}/*")))
                }
            };
            prop_assert!(text.len() <= 255);
            prop_assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)),
                "{text}"
            );
            prop_assert!(!text.contains(".."), "{text}");
            prop_assert_eq!(again, Ok(spec));
        }
    }

    #[test]
    fn hub_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = serde_json::from_slice::<RepositoryStats>(&body);
    }

    /// Counts are kept exactly, as integers, or the body is refused.
    #[test]
    fn hub_counts_are_exact_or_refused(
        pulls in json_value(),
        stars in any::<u64>(),
        extra in json_value(),
    ) {
        let body = json!({
            "namespace": "library", "name": "httpd",
            "pull_count": pulls, "star_count": stars, "full_description": extra,
        });
        match serde_json::from_value::<RepositoryStats>(body) {
            Ok(stats) => {
                prop_assert_eq!(stats.star_count, stars);
                let expected = pulls.as_u64().or_else(|| {
                    pulls.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f <= 9_007_199_254_740_992.0).map(|f| f as u64)
                });
                prop_assert_eq!(Some(stats.pull_count), expected);
            }
            Err(_) => prop_assert!(!pulls.is_u64()),
        }
    }

    #[test]
    fn bulk_responses_never_panic(
        body in prop::collection::vec(any::<u8>(), 0..2048),
        count in 0usize..8,
        pipeline in any::<bool>(),
    ) {
        let ids: Vec<String> = (0..count).map(|i| format!("doc{i}")).collect();
        if let Ok(outcomes) = read_response(&body, &ids, pipeline) {
            prop_assert_eq!(outcomes.len(), ids.len());
        }
    }

    /// Every document gets an outcome, and none counts as indexed unless an
    /// item for it said so.
    #[test]
    fn bulk_outcomes_account_for_every_document(
        (ids, items) in (1usize..8).prop_flat_map(|n| {
            let ids: Vec<String> = (0..n).map(|i| format!("repo{i}@t")).collect();
            (Just(ids.clone()), prop::collection::vec(bulk_item(ids), 0..10))
        }),
        errors in any::<bool>(),
        pipeline in any::<bool>(),
    ) {
        let body = json!({"errors": errors, "items": items}).to_string();
        let outcomes = read_response(body.as_bytes(), &ids, pipeline).expect("valid JSON is read");
        prop_assert_eq!(outcomes.len(), ids.len());
        let positional = items.len() == ids.len();
        for (position, (id, outcome)) in ids.iter().zip(&outcomes).enumerate() {
            if matches!(outcome, ItemOutcome::Created | ItemOutcome::AlreadyIndexed) {
                let success = |item: &Value| matches!(item["create"]["status"].as_u64(), Some(200 | 201 | 409));
                let by_position = positional && success(&items[position]);
                let by_id = items.iter().any(|item| item["create"]["_id"] == json!(id) && success(item));
                prop_assert!(by_position || by_id, "{id} counted as indexed without an item saying so");
            }
        }
    }

    #[test]
    fn events_never_panic(event in json_value()) {
        let _ = Request::from_event(&event);
    }

    /// Whatever the parameters hold, reading them never panics and no error
    /// shows a secret's value.
    #[test]
    fn parameters_never_panic_or_leak(
        values in prop::collection::vec(prop::option::of(".{0,40}"), 10),
        secret in "[A-Za-z0-9]{12,24}",
    ) {
        let keys = [
            "images", "elasticsearch/url", "elasticsearch/cloud_id", "elasticsearch/username",
            "elasticsearch/index", "elasticsearch/pipeline", "dockerhub/username",
            "elasticsearch/api_key", "elasticsearch/password", "dockerhub/token",
        ];
        let mut parameters = BTreeMap::new();
        for (i, (key, value)) in keys.iter().zip(values).enumerate() {
            // The three secrets always hold `secret` when present.
            let value = if i >= 7 { value.map(|_| format!("SECRET{secret}")) } else { value };
            if let Some(value) = value {
                parameters.insert((*key).to_owned(), value);
            }
        }
        for needs in [Needs::ALL, Needs { images: false, elasticsearch: false }] {
            match Settings::from_parameters("/docker-pulls", &parameters, needs) {
                Ok(settings) => {
                    let shown = format!("{:?}", settings);
                    prop_assert!(!shown.contains(&secret));
                },
                Err(error) => {
                    prop_assert!(!error.to_string().contains(&secret));
                    let shown = format!("{:?}", error);
                    prop_assert!(!shown.contains(&secret));
                }
            }
        }
    }

    #[test]
    fn cloud_ids_and_headers_never_panic(text in ".{0,200}", now in any::<u64>()) {
        let _ = decode_cloud_id(&text);
        let _ = parse_retry_after(&text, now);
        let _ = parse_rate_limit_reset(&text, now);
    }
}
