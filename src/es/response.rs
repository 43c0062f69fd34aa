//! What Elasticsearch's answer to a `_bulk` request means for each document
//! it carried, decided once: the typed response (positions and `_id`s), the
//! per-item classification, and the whole-request statuses.

use super::error_reason;
use crate::error::Error;
use reqwest::StatusCode;
use serde::Deserialize;
use std::collections::HashMap;

/// Just enough of the response to match items to documents by position and
/// `_id`, and to explain failures. Successful items keep their `status`, so
/// positions are never lost (unlike `filter_path=items.*.error`).
/// `error.caused_by` says why a script or mapping failed;
/// `error.header.processor_type` marks an ingest processor's failure.
pub const FILTER_PATH: &str = "errors,items.*._id,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by.type,items.*.error.caused_by.reason,items.*.error.header.processor_type";

/// The typed bulk response (after [`FILTER_PATH`]).
#[derive(Debug, Deserialize)]
pub struct BulkResponse {
    #[serde(default)]
    pub errors: bool,
    #[serde(default)]
    pub items: Vec<ActionItem>,
}

/// One entry of `items`, `{"<action>": {…}}`: the item under its (first)
/// action name, `None` for an empty object. Read without building a map per
/// item, which made the parsed response of a 5,000-document run weigh
/// about 2 MB more than the documents themselves.
#[derive(Debug, Clone)]
pub struct ActionItem(pub Option<BulkItem>);

impl<'de> Deserialize<'de> for ActionItem {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ActionItem;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object with the action's result")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ActionItem, A::Error> {
                let mut item = None;
                while let Some(serde::de::IgnoredAny) = map.next_key()? {
                    if item.is_none() {
                        item = Some(map.next_value::<BulkItem>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(ActionItem(item))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BulkItem {
    #[serde(rename = "_id", default)]
    pub id: Option<String>,
    #[serde(default)]
    pub status: u16,
    #[serde(default)]
    pub error: Option<ItemError>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ItemError {
    #[serde(rename = "type", default)]
    pub error_type: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub caused_by: Option<Cause>,
    /// Set by Elasticsearch on an ingest processor's failure.
    #[serde(default)]
    pub header: Option<ErrorHeader>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorHeader {
    #[serde(default)]
    pub processor_type: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cause {
    #[serde(rename = "type", default)]
    pub error_type: String,
    #[serde(default)]
    pub reason: String,
}

impl ItemError {
    /// An ingest processor or script failed, or the pipeline is missing.
    /// Elasticsearch answers these with 400 or 500 (`fail` processors,
    /// scripts, and every ingest failure on 7.0–7.4, wrapped as `exception`:
    /// elastic/elasticsearch#48803); the processor header or the types say
    /// which, not the status.
    fn is_pipeline_failure(&self) -> bool {
        let ingest = |t: &str| {
            t.contains("ingest")
                || t.contains("script")
                || t.contains("pipeline")
                || t.contains("processor")
                || t.starts_with("painless")
        };
        self.header
            .as_ref()
            .is_some_and(|h| h.processor_type.is_some())
            || ingest(&self.error_type)
            || self
                .caused_by
                .as_ref()
                .is_some_and(|c| ingest(&c.error_type))
            || names_missing_pipeline(&self.reason)
    }
}

/// What to do with one document after a bulk attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Created,
    /// 409 on `create`: an earlier attempt or run indexed it.
    AlreadyIndexed,
    /// 429, 5xx, or missing from the response: send again later.
    Retry(String),
    /// Refused while going through the pipeline: send again without it.
    WithoutPipeline(String),
    /// 401/403/404 for this item: a missing privilege or index creation
    /// turned off. No retry helps until someone changes the cluster, and
    /// nothing is wrong with the document: keep it (spool) and say why.
    Refused(String),
    /// Refused on its own merits (mapping conflict, …): final.
    Rejected(String),
}

/// An item's status and error, cleaned ([`crate::secrets::clean`]).
fn describe(status: u16, error: Option<&ItemError>) -> String {
    crate::secrets::clean(&describe_raw(status, error))
}

fn describe_raw(status: u16, error: Option<&ItemError>) -> String {
    match error {
        Some(e) => {
            let mut text = format!("{status} {}: {}", e.error_type, e.reason);
            if let Some(cause) = &e.caused_by {
                text.push_str(&format!(
                    " (caused by {}: {})",
                    cause.error_type, cause.reason
                ));
            }
            text
        }
        None => format!("{status}"),
    }
}

/// What to change in the cluster for a per-item 401/403/404.
fn refusal_hint(status: u16, error: Option<&ItemError>) -> &'static str {
    let text = error.map_or(String::new(), |e| format!("{} {}", e.error_type, e.reason));
    match status {
        401 => "the credentials were not accepted for this index",
        403 if text.contains("auto_create") || text.contains("create_index") => {
            "the credentials may not create the index: grant `auto_configure` (or `create_index`) on the index pattern, or create the index"
        }
        403 => {
            "the credentials may not write to the index: grant `create_doc` (and `auto_configure`) on the index pattern, e.g. `docker-pulls-*`"
        }
        _ if text.contains("auto_create_index") || text.contains("index_not_found") => {
            "the index does not exist and automatic index creation is disabled: allow the index pattern in `action.auto_create_index`, or create the index"
        }
        _ => "the index was not found",
    }
}

/// Classifies one item of a response. Only the item's own error may reject
/// a document for good: a 4xx that is not the pipeline's doing (mapping or
/// parse failures). 401/403/404 are refusals of the index, not of the
/// document; 408/429/5xx and anything unexpected are worth another try.
pub fn classify(item: &BulkItem, used_pipeline: bool) -> ItemOutcome {
    let error = item.error.as_ref();
    let reason = || describe(item.status, error);
    match item.status {
        200 | 201 => ItemOutcome::Created,
        409 => ItemOutcome::AlreadyIndexed,
        _ if used_pipeline && error.is_some_and(ItemError::is_pipeline_failure) => {
            ItemOutcome::WithoutPipeline(reason())
        }
        401 | 403 | 404 => ItemOutcome::Refused(format!(
            "{}; {}",
            reason(),
            refusal_hint(item.status, error)
        )),
        status if StatusCode::from_u16(status).is_ok_and(crate::retry::is_transient) => {
            ItemOutcome::Retry(reason())
        }
        // Sent through the pipeline: it may be the pipeline's doing; the
        // answer without it decides.
        400..=499 if used_pipeline => ItemOutcome::WithoutPipeline(reason()),
        400..=499 => ItemOutcome::Rejected(reason()),
        // No status, or one `create` never answers with: not a verdict.
        _ => ItemOutcome::Retry(reason()),
    }
}

/// Matches a response to the `ids` sent, in order. Items are matched by
/// position when the counts agree and ids do not contradict it, otherwise
/// by `_id`; a document the response does not account for is retried
/// (`create` makes that safe), never counted as indexed.
pub fn read_response<S: AsRef<str>>(
    body: &[u8],
    ids: &[S],
    used_pipeline: bool,
) -> Result<Vec<ItemOutcome>, String> {
    let response: BulkResponse =
        serde_json::from_slice(body).map_err(|e| format!("unreadable bulk response: {e}"))?;
    let items: Vec<BulkItem> = response
        .items
        .into_iter()
        .filter_map(|item| item.0)
        .collect();
    let positional = items.len() == ids.len()
        && items.iter().zip(ids).all(|(item, id)| {
            item.id
                .as_ref()
                .is_none_or(|item_id| item_id == id.as_ref())
        });
    if positional {
        return Ok(items
            .iter()
            .map(|item| classify(item, used_pipeline))
            .collect());
    }
    let mut by_id: HashMap<&str, &BulkItem> = HashMap::new();
    for item in &items {
        if let Some(id) = &item.id {
            by_id.insert(id.as_str(), item);
        }
    }
    let missing = format!(
        "bulk response accounted for {} of {} documents",
        items.len(),
        ids.len()
    );
    Ok(ids
        .iter()
        .map(|id| match by_id.get(id.as_ref()) {
            Some(item) => classify(item, used_pipeline),
            None => ItemOutcome::Retry(missing.clone()),
        })
        .collect())
}

/// "pipeline with id [x] does not exist": Elasticsearch's words for a
/// pipeline that was never installed. The one place that reads them.
pub(crate) fn names_missing_pipeline(reason: &str) -> bool {
    reason.contains("pipeline with id [") && reason.contains("does not exist")
}

/// How a whole request ended, for the documents it carried.
pub(crate) enum RequestOutcome {
    Items(Vec<ItemOutcome>),
    /// The same outcome for every document of the request.
    All(ItemOutcome),
    /// 413: split and send again.
    TooLarge,
    /// 401/403: stop sending anything.
    Halt(Error),
}

/// Classifies a whole answer: its status, and for a 2xx its items. `url` is
/// the cluster's (for the messages).
///
/// A whole-request answer is never a verdict on the documents: 401/403 stop
/// sending at once (the credentials, not the documents), 413 splits the
/// body, and every other non-2xx — a proxy's 500, a 404 from a wrong path,
/// a 400 — is retried and, failing that, spooled. Only while the ingest
/// pipeline is named is a 4xx first tried again without it (older clusters
/// answer a missing pipeline for the whole request).
pub(crate) fn classify_answer(
    status: StatusCode,
    body: &[u8],
    ids: &[&str],
    used_pipeline: bool,
    url: &str,
) -> RequestOutcome {
    match status {
        status if status.is_success() => match read_response(body, ids, used_pipeline) {
            Ok(items) => RequestOutcome::Items(items),
            Err(reason) => RequestOutcome::All(ItemOutcome::Retry(reason)),
        },
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RequestOutcome::Halt(Error::EsAuth {
            url: url.to_owned(),
            status: status.as_u16(),
            reason: error_reason(body),
        }),
        StatusCode::PAYLOAD_TOO_LARGE => RequestOutcome::TooLarge,
        StatusCode::NOT_FOUND if !used_pipeline => {
            RequestOutcome::All(ItemOutcome::Retry(format!(
                "404 {}: {url}/_bulk does not answer as Elasticsearch's bulk API; check elasticsearch/url for a wrong path, or a proxy in front of Elasticsearch",
                error_reason(body)
            )))
        }
        status if status.is_client_error() && used_pipeline => RequestOutcome::All(
            ItemOutcome::WithoutPipeline(format!("{} {}", status.as_u16(), error_reason(body))),
        ),
        status => RequestOutcome::All(ItemOutcome::Retry(format!(
            "{} {}",
            status.as_u16(),
            error_reason(body)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::es::fixture;

    #[test]
    fn all_created_fixture_reads_as_created() {
        let ids = vec!["library/httpd@2026-11-27T18:35:00Z".to_owned()];
        let outcomes =
            read_response(&fixture("bulk-all-created.json"), &ids, true).expect("readable");
        assert_eq!(outcomes, vec![ItemOutcome::Created]);
    }

    #[test]
    fn mixed_errors_fixture_is_classified_per_item() {
        let ids: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let outcomes =
            read_response(&fixture("bulk-mixed-errors.json"), &ids, true).expect("readable");
        assert_eq!(outcomes[0], ItemOutcome::Created);
        assert_eq!(outcomes[1], ItemOutcome::AlreadyIndexed);
        assert!(
            matches!(&outcomes[2], ItemOutcome::Retry(r) if r.starts_with("429 es_rejected_execution_exception"))
        );
        assert!(
            matches!(&outcomes[3], ItemOutcome::WithoutPipeline(r) if r.contains("pipeline with id [docker-hub-pulls] does not exist"))
        );
        assert!(
            matches!(&outcomes[4], ItemOutcome::WithoutPipeline(r) if r.contains("field [ecs] not present"))
        );

        // Without a pipeline the same 400s are final.
        let outcomes =
            read_response(&fixture("bulk-mixed-errors.json"), &ids, false).expect("readable");
        assert!(matches!(&outcomes[3], ItemOutcome::Rejected(_)));
    }

    #[test]
    fn a_response_that_lost_positions_never_counts_as_success() {
        // `filter_path=items.*.error` dropped the successful items: only one
        // item for three documents, without ids.
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        let outcomes = read_response(&fixture("bulk-filter-path-items-error.json"), &ids, true)
            .expect("readable");
        assert_eq!(outcomes.len(), 3);
        assert!(
            outcomes.iter().all(|o| matches!(o, ItemOutcome::Retry(_))),
            "{outcomes:?}"
        );
    }

    #[test]
    fn fewer_items_with_ids_are_matched_by_id() {
        let ids: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
        let body = br#"{"errors":true,"items":[{"create":{"_id":"c","status":201}},{"create":{"_id":"a","status":409}}]}"#;
        let outcomes = read_response(body, &ids, false).expect("readable");
        assert_eq!(outcomes[0], ItemOutcome::AlreadyIndexed);
        assert!(matches!(&outcomes[1], ItemOutcome::Retry(r) if r.contains("2 of 3")));
        assert_eq!(outcomes[2], ItemOutcome::Created);
    }

    #[test]
    fn garbage_is_an_error_not_a_success() {
        assert!(read_response(b"<html>proxy error</html>", &["a"], false).is_err());
        let ids = vec!["a".to_owned()];
        let outcomes = read_response(br#"{"errors":false}"#, &ids, false).expect("readable");
        assert!(matches!(&outcomes[0], ItemOutcome::Retry(_)));
    }

    fn item(status: u16, error_type: &str, reason: &str, cause: Option<(&str, &str)>) -> BulkItem {
        BulkItem {
            id: None,
            status,
            error: Some(ItemError {
                error_type: error_type.into(),
                reason: reason.into(),
                caused_by: cause.map(|(t, r)| Cause {
                    error_type: t.into(),
                    reason: r.into(),
                }),
                header: None,
            }),
        }
    }

    #[test]
    fn privilege_and_index_refusals_are_not_pipeline_refusals() {
        let forbidden = item(
            403,
            "security_exception",
            "action [indices:data/write/bulk[s]] is unauthorized for API key id [x] of user [y] on indices [docker-pulls-2026], this action is granted by the index privileges [create_doc,create,index,write,all]",
            None,
        );
        for pipeline in [true, false] {
            match classify(&forbidden, pipeline) {
                ItemOutcome::Refused(reason) => {
                    assert!(reason.contains("`create_doc`"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        let auto_create = item(
            403,
            "security_exception",
            "action [indices:admin/auto_create] is unauthorized for user [y] on indices [docker-pulls-2026], this action is granted by the index privileges [auto_configure,create_index,manage,all]",
            None,
        );
        assert!(
            matches!(classify(&auto_create, true), ItemOutcome::Refused(r) if r.contains("`auto_configure`"))
        );
        let no_index = item(
            404,
            "index_not_found_exception",
            "no such index [docker-pulls-2026] and [action.auto_create_index] ([false]) doesn't match",
            None,
        );
        assert!(
            matches!(classify(&no_index, true), ItemOutcome::Refused(r) if r.contains("`action.auto_create_index`"))
        );
    }

    #[test]
    fn ingest_failures_are_pipeline_refusals_whatever_their_status() {
        let script_500 = item(
            500,
            "script_exception",
            "runtime error",
            Some(("illegal_argument_exception", "cannot round a string")),
        );
        assert!(matches!(
            classify(&script_500, true),
            ItemOutcome::WithoutPipeline(r) if r.contains("caused by illegal_argument_exception: cannot round a string")
        ));
        let processor_500 = item(
            500,
            "illegal_argument_exception",
            "field [ecs] not present",
            Some(("ingest_processor_exception", "field [ecs] not present")),
        );
        assert!(matches!(
            classify(&processor_500, true),
            ItemOutcome::WithoutPipeline(_)
        ));
        // Without a pipeline named, a 500 is just transient.
        assert!(matches!(
            classify(&script_500, false),
            ItemOutcome::Retry(_)
        ));
        let fail_processor = item(500, "fail_processor_exception", "no pulls", None);
        assert!(matches!(
            classify(&fail_processor, true),
            ItemOutcome::WithoutPipeline(_)
        ));
        // 7.0–7.4: every ingest failure a 500 `exception`, the processor in
        // the header.
        let wrapped: BulkItem = serde_json::from_value(serde_json::json!({
            "status": 500,
            "error": {"type": "exception",
                "reason": "java.lang.IllegalArgumentException: field [ecs] not present as part of path [ecs]",
                "caused_by": {"type": "illegal_argument_exception", "reason": "field [ecs] not present as part of path [ecs]"},
                "header": {"processor_type": "remove"}}
        }))
        .expect("item");
        assert!(matches!(
            classify(&wrapped, true),
            ItemOutcome::WithoutPipeline(_)
        ));
        // A plain 500 through the pipeline is transient too.
        let plain = item(500, "node_not_connected_exception", "node left", None);
        assert!(matches!(classify(&plain, true), ItemOutcome::Retry(_)));
    }

    #[test]
    fn a_whole_request_answer_is_never_a_verdict_on_the_documents() {
        let url = "https://es.example.com/prefix";
        let ids = ["a", "b"];
        for (status, body) in [
            (
                500,
                &br#"{"error":{"type":"exception","reason":"proxy"},"status":500}"#[..],
            ),
            (404, b"<html>Not Found</html>"),
            (
                400,
                br#"{"error":{"type":"parse_exception","reason":"bad"},"status":400}"#,
            ),
            (408, b"Request Timeout"),
            (405, b""),
            (301, b""),
        ] {
            let status = StatusCode::from_u16(status).expect("a status");
            match classify_answer(status, body, &ids, false, url) {
                RequestOutcome::All(ItemOutcome::Retry(reason)) => {
                    assert!(reason.starts_with(status.as_str()), "{status}: {reason}")
                }
                _ => panic!("{status}: not retried"),
            }
            // Through the pipeline, a 4xx is first tried without it; never rejected.
            match classify_answer(status, body, &ids, true, url) {
                RequestOutcome::All(ItemOutcome::Retry(_) | ItemOutcome::WithoutPipeline(_)) => {}
                _ => panic!("{status} with the pipeline: neither retried nor re-sent"),
            }
        }
        match classify_answer(StatusCode::NOT_FOUND, b"Not Found", &ids, false, url) {
            RequestOutcome::All(ItemOutcome::Retry(reason)) => {
                assert!(
                    reason.contains("https://es.example.com/prefix/_bulk")
                        && reason.contains("wrong path"),
                    "{reason}"
                );
            }
            _ => panic!("404 not retried"),
        }
        assert!(matches!(
            classify_answer(StatusCode::FORBIDDEN, b"{}", &ids, false, url),
            RequestOutcome::Halt(_)
        ));
        assert!(matches!(
            classify_answer(StatusCode::PAYLOAD_TOO_LARGE, b"", &ids, false, url),
            RequestOutcome::TooLarge
        ));
    }

    #[test]
    fn only_an_items_own_4xx_rejects_it() {
        let with_status = |status: u16| BulkItem {
            id: None,
            status,
            error: Some(ItemError {
                error_type: "document_parsing_exception".into(),
                reason: "failed to parse".into(),
                caused_by: None,
                header: None,
            }),
        };
        assert!(matches!(
            classify(&with_status(400), false),
            ItemOutcome::Rejected(_)
        ));
        assert!(matches!(
            classify(&with_status(400), true),
            ItemOutcome::WithoutPipeline(_)
        ));
        for status in [0, 100, 302, 408, 429, 500, 503] {
            assert!(
                matches!(classify(&with_status(status), false), ItemOutcome::Retry(_)),
                "{status}"
            );
        }
    }
}
