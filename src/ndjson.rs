//! The `_bulk` body's lines: a `create` action naming `_index` and `_id`,
//! then the document, each ending in `\n`. The bulk sink writes them, the
//! spool keeps them as they are, and the drain reads them back.

use crate::document::Document;
use serde::Deserialize;

/// One document ready for `_bulk`: its index, its `_id` and its source as
/// one line of JSON. Fresh documents and spooled ones take the same path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkEntry {
    pub index: String,
    pub id: String,
    pub source: String,
}

impl BulkEntry {
    pub fn new(index: &str, document: &Document) -> Self {
        Self {
            index: index.to_owned(),
            id: document.id(),
            // Serialising the document (strings and integers) cannot fail.
            source: serde_json::to_string(document).unwrap_or_default(),
        }
    }
}

#[derive(serde::Serialize, Deserialize)]
struct CreateAction<'a> {
    #[serde(borrow)]
    create: ActionMeta<'a>,
}

#[derive(serde::Serialize, Deserialize)]
struct ActionMeta<'a> {
    #[serde(rename = "_index", borrow)]
    index: std::borrow::Cow<'a, str>,
    #[serde(rename = "_id", borrow)]
    id: std::borrow::Cow<'a, str>,
}

/// Appends one `create` action and its document, each line ending in `\n`.
pub fn encode_create(out: &mut Vec<u8>, entry: &BulkEntry) {
    let action = CreateAction {
        create: ActionMeta {
            index: entry.index.as_str().into(),
            id: entry.id.as_str().into(),
        },
    };
    // Serialising two strings into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &action);
    out.push(b'\n');
    out.extend_from_slice(entry.source.as_bytes());
    out.push(b'\n');
}

/// Reads NDJSON written by [`encode_create`] back into entries: pairs of a
/// `create` action naming `_index` and `_id`, and a JSON object.
pub fn decode_creates(body: &[u8]) -> Result<Vec<BulkEntry>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let mut entries = Vec::new();
    while let Some((number, action)) = lines.next() {
        let action: CreateAction = serde_json::from_str(action)
            .map_err(|e| format!("line {}: not a create action: {e}", number + 1))?;
        let Some((number, source)) = lines.next() else {
            return Err(format!("line {}: action without a document", number + 1));
        };
        match serde_json::from_str::<serde_json::Value>(source) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => return Err(format!("line {}: not a JSON object", number + 1)),
        }
        entries.push(BulkEntry {
            index: action.create.index.into_owned(),
            id: action.create.id.into_owned(),
            source: source.to_owned(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{RepositoryStats, RunTime};
    use serde_json::{Value, json};

    fn document(namespace: &str, name: &str, pulls: u64) -> Document {
        Document {
            timestamp: RunTime::parse("2026-11-27T18:35:00Z").expect("valid"),
            stats: RepositoryStats {
                namespace: namespace.into(),
                name: name.into(),
                pull_count: pulls,
                star_count: 3,
                collaborator_count: Some(0),
            },
        }
    }

    #[test]
    fn ndjson_has_an_action_and_a_document_per_line_and_a_final_newline() {
        let mut body = Vec::new();
        encode_create(
            &mut body,
            &BulkEntry::new(
                "docker-pulls-2026",
                &document("library", "httpd", 2244658322),
            ),
        );
        encode_create(
            &mut body,
            &BulkEntry::new(
                "docker-pulls-2026",
                &document("radoondas", "netatmobeat", 159),
            ),
        );
        assert_eq!(body.last(), Some(&b'\n'));
        let text = String::from_utf8(body).expect("utf-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        assert_eq!(
            lines,
            vec![
                json!({"create":{"_index":"docker-pulls-2026","_id":"library/httpd@2026-11-27T18:35:00Z"}}),
                json!({"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{"namespace":"library","name":"httpd","pull_count":2244658322u64,"star_count":3,"collaborator_count":0}}}),
                json!({"create":{"_index":"docker-pulls-2026","_id":"radoondas/netatmobeat@2026-11-27T18:35:00Z"}}),
                json!({"@timestamp":"2026-11-27T18:35:00Z","http":{"docker_hub":{"namespace":"radoondas","name":"netatmobeat","pull_count":159,"star_count":3,"collaborator_count":0}}}),
            ]
        );
    }

    #[test]
    fn encoded_entries_decode_to_the_same_entries() {
        let entries: Vec<BulkEntry> = [("2025", "a", 1), ("2026", "b", 2)]
            .iter()
            .map(|(year, name, pulls)| {
                BulkEntry::new(
                    &format!("docker-pulls-{year}"),
                    &document("acme", name, *pulls),
                )
            })
            .collect();
        let mut body = Vec::new();
        for entry in &entries {
            encode_create(&mut body, entry);
        }
        assert_eq!(decode_creates(&body).expect("decodes"), entries);
        for bad in [
            &b"{\"index\":{\"_index\":\"i\",\"_id\":\"a\"}}\n{}\n"[..],
            b"{\"create\":{\"_index\":\"i\",\"_id\":\"a\"}}\n",
            b"{\"create\":{\"_index\":\"i\",\"_id\":\"a\"}}\n[1]\n",
            b"{\"create\":{\"_index\":\"i\"}}\n{}\n",
            b"\xff\xfe",
        ] {
            assert!(
                decode_creates(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
