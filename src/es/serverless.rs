//! What only OpenSearch Serverless answers: a time series or vector search
//! collection refuses a document `_id` ("Document ID is not supported in
//! create/index operation request"), because it makes its own.
//!
//! docker-pulls cannot write there. Its promise that a retried event or a
//! drained spool object never duplicates a data point rests on `create` with
//! our `_id`; without it a retry cannot be told from a new document. So the
//! refusal is not a verdict on the documents (nothing is rejected for good,
//! and the `_id` is never dropped to make them fit): sending stops as for a
//! whole-request 401/403, the documents stay in the spool, and the run fails
//! with [`Error::UnsupportedTarget`], which says to use a collection of type
//! search (docs/elasticsearch-kibana.md, "OpenSearch Serverless").

use super::error_reason;
use super::response::BulkResponse;
use crate::error::Error;
use reqwest::StatusCode;

/// The words of the refusal, as clients quote it (opensearch-py#792,
/// langchainjs#4346, aws-sdk-pandas#2784).
pub const DOCUMENT_ID_NOT_SUPPORTED: &str = "Document ID is not supported";

/// The error that stops sending when a `_bulk` answer (`status`, `body`)
/// refuses our document `_id`s, per item or for the whole request; `None`
/// for any other answer. `url` is the collection's.
pub(crate) fn refused_document_ids(status: StatusCode, body: &[u8], url: &str) -> Option<Error> {
    // Cheap on the answers that matter (a 5,000-item response): look for the
    // words before parsing anything.
    let needle = DOCUMENT_ID_NOT_SUPPORTED.as_bytes();
    if !body.windows(needle.len()).any(|window| window == needle) {
        return None;
    }
    let reason = if status.is_success() {
        serde_json::from_slice::<BulkResponse>(body)
            .ok()?
            .items
            .into_iter()
            .filter_map(|item| item.0?.error)
            .map(|error| error.reason)
            .find(|reason| reason.contains(DOCUMENT_ID_NOT_SUPPORTED))?
    } else {
        let reason = error_reason(body);
        if !reason.contains(DOCUMENT_ID_NOT_SUPPORTED) {
            return None;
        }
        // `type: reason`: the reason alone.
        match reason.split_once(": ") {
            Some((_, text)) if text.contains(DOCUMENT_ID_NOT_SUPPORTED) => text.to_owned(),
            _ => reason,
        }
    };
    Some(Error::UnsupportedTarget {
        url: url.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://abc.eu-west-1.aoss.amazonaws.com";

    #[test]
    fn a_time_series_collection_refusing_ids_per_item_stops_sending() {
        // As clients quote it (opensearch-py#792): a 200 with errors, each
        // item refused with 400 illegal_argument_exception.
        let body = br#"{"took":12,"errors":true,"items":[
            {"create":{"_index":"docker-pulls-2026","_id":"library/httpd@2026-11-27T18:35:00Z","status":400,
              "error":{"type":"illegal_argument_exception","reason":"Document ID is not supported in create/index operation request"}}},
            {"create":{"_index":"docker-pulls-2026","_id":"library/mysql@2026-11-27T18:35:00Z","status":400,
              "error":{"type":"illegal_argument_exception","reason":"Document ID is not supported in create/index operation request"}}}]}"#;
        let error = refused_document_ids(StatusCode::OK, body, URL).expect("refused");
        assert_eq!(error.kind(), "UnsupportedTarget");
        assert!(error.fails_invocation_after_spooling());
        assert_eq!(
            error.to_string(),
            "OpenSearch Serverless at https://abc.eu-west-1.aoss.amazonaws.com refused the document _id (\"Document ID is not supported in create/index operation request\"): the collection is a time series or vector search collection, where a retry cannot be told from a new document. Use a collection of type search for docker-pulls."
        );
    }

    #[test]
    fn a_whole_request_refusal_of_ids_stops_sending_too() {
        let body = br#"{"error":{"root_cause":[{"type":"illegal_argument_exception","reason":"Document ID is not supported in create/index operation request"}],"type":"illegal_argument_exception","reason":"Document ID is not supported in create/index operation request"},"status":400}"#;
        let error = refused_document_ids(StatusCode::BAD_REQUEST, body, URL).expect("refused");
        assert!(
            matches!(&error, Error::UnsupportedTarget { reason, .. } if reason == "Document ID is not supported in create/index operation request"),
            "{error}"
        );
    }

    #[test]
    fn other_answers_are_left_to_the_usual_classification() {
        let created = br#"{"errors":false,"items":[{"create":{"_id":"a","status":201}}]}"#;
        assert!(refused_document_ids(StatusCode::OK, created, URL).is_none());
        let mapping = br#"{"errors":true,"items":[{"create":{"_id":"a","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [http.docker_hub.pull_count] of type [long]"}}}]}"#;
        assert!(refused_document_ids(StatusCode::OK, mapping, URL).is_none());
        let forbidden = br#"{"message":"User: arn:aws:sts::123456789012:assumed-role/r/f is not authorized to perform: aoss:APIAccessAll"}"#;
        assert!(refused_document_ids(StatusCode::FORBIDDEN, forbidden, URL).is_none());
        // The words inside a document id (never ours, but) are not a refusal.
        let odd = br#"{"errors":false,"items":[{"create":{"_id":"Document ID is not supported","status":201}}]}"#;
        assert!(refused_document_ids(StatusCode::OK, odd, URL).is_none());
        assert!(
            refused_document_ids(
                StatusCode::OK,
                b"not json Document ID is not supported",
                URL
            )
            .is_none()
        );
    }
}
