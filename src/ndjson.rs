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
/// `create` action naming `_index` and `_id`, and a JSON object. Strict: the
/// first unreadable line is an error (see [`Decoder`] for the forgiving way).
pub fn decode_creates(body: &[u8]) -> Result<Vec<BulkEntry>, String> {
    let mut decoder = Decoder::default();
    let mut entries = Vec::new();
    for (number, line) in body.split(|&b| b == b'\n').enumerate() {
        for decoded in decoder.push(number + 1, line) {
            entries.push(decoded.map_err(|bad| format!("line {}: {}", bad.line, bad.reason))?);
        }
    }
    if let Some(bad) = decoder.finish() {
        return Err(format!("line {}: {}", bad.line, bad.reason));
    }
    Ok(entries)
}

/// A line of a spool object that cannot be sent, kept for a person: where it
/// was, why, and what it said.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unreadable {
    pub line: usize,
    pub reason: String,
    pub text: String,
}

impl Unreadable {
    fn new(line: usize, reason: impl Into<String>, bytes: &[u8]) -> Self {
        Self {
            line,
            reason: reason.into(),
            text: String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

/// Reads bulk lines one at a time, so a damaged line costs only itself: a
/// line that is not a `create` action, or a document that is not a JSON
/// object, comes out as [`Unreadable`] while the pairs around it still come
/// out as entries.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The action waiting for its document: line, `_index`, `_id`, text.
    action: Option<(usize, String, String, Vec<u8>)>,
}

/// Any JSON object, checked without building it.
struct AnyObject;

impl<'de> Deserialize<'de> for AnyObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AnyObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AnyObject, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(AnyObject)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl Decoder {
    /// Takes line `number` (1-based, without its `\n`); gives back what it
    /// completes: nothing (an action waits for its document), an entry, or
    /// the lines that cannot be sent.
    pub fn push(&mut self, number: usize, line: &[u8]) -> Vec<Result<BulkEntry, Unreadable>> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Vec::new();
        }
        let as_action = || -> Result<(String, String), String> {
            let action: CreateAction = serde_json::from_slice(line)
                .map_err(|e| format!("not a create action naming _index and _id: {e}"))?;
            Ok((
                action.create.index.into_owned(),
                action.create.id.into_owned(),
            ))
        };
        let Some((action_line, index, id, action_text)) = self.action.take() else {
            return match as_action() {
                Ok((index, id)) => {
                    self.action = Some((number, index, id, line.to_vec()));
                    Vec::new()
                }
                Err(reason) => vec![Err(Unreadable::new(number, reason, line))],
            };
        };
        match (
            serde_json::from_slice::<AnyObject>(line),
            std::str::from_utf8(line),
        ) {
            (Ok(AnyObject), Ok(source)) => vec![Ok(BulkEntry {
                index,
                id,
                source: source.to_owned(),
            })],
            _ => {
                let orphan = Unreadable::new(
                    action_line,
                    "create action without a readable document",
                    &action_text,
                );
                match as_action() {
                    // The document was lost, not this line: it starts a pair.
                    Ok((index, id)) => {
                        self.action = Some((number, index, id, line.to_vec()));
                        vec![Err(orphan)]
                    }
                    Err(_) => vec![
                        Err(orphan),
                        Err(Unreadable::new(
                            number,
                            "document is not a JSON object",
                            line,
                        )),
                    ],
                }
            }
        }
    }

    /// At the end of the object: an action still waiting lost its document.
    pub fn finish(self) -> Option<Unreadable> {
        self.action.map(|(line, _, _, text)| {
            Unreadable::new(
                line,
                "create action without a document (the object ends)",
                &text,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::sample as document;
    use serde_json::{Value, json};

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

    #[test]
    fn a_damaged_line_costs_only_itself() {
        let entries: Vec<BulkEntry> = (0..3)
            .map(|i| {
                BulkEntry::new(
                    "docker-pulls-2026",
                    &document("acme", &format!("app{i}"), i),
                )
            })
            .collect();
        let mut body = Vec::new();
        for entry in &entries {
            encode_create(&mut body, entry);
        }
        // Cut the last document mid-JSON, as a truncated upload would.
        let cut = body.len() - 20;
        body.truncate(cut);
        let mut decoder = Decoder::default();
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (number, line) in body.split(|&b| b == b'\n').enumerate() {
            for decoded in decoder.push(number + 1, line) {
                match decoded {
                    Ok(entry) => good.push(entry),
                    Err(unreadable) => bad.push(unreadable),
                }
            }
        }
        bad.extend(decoder.finish());
        assert_eq!(good, entries[..2].to_vec());
        assert_eq!(
            bad.iter().map(|b| b.line).collect::<Vec<_>>(),
            vec![5, 6],
            "{bad:?}"
        );
        assert!(bad[0].text.contains("acme/app2@"), "{bad:?}");

        // A garbled action line: its document is orphaned, the next pair survives.
        let text = String::from_utf8(encode_object_for_test(&entries)).expect("utf-8");
        let garbled = text.replacen("{\"create\"", "{\"crea", 1);
        let mut decoder = Decoder::default();
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (number, line) in garbled.as_bytes().split(|&b| b == b'\n').enumerate() {
            for decoded in decoder.push(number + 1, line) {
                match decoded {
                    Ok(entry) => good.push(entry),
                    Err(unreadable) => bad.push(unreadable.line),
                }
            }
        }
        assert!(decoder.finish().is_none());
        assert_eq!(good, entries[1..].to_vec());
        assert_eq!(bad, vec![1, 2]);
    }

    fn encode_object_for_test(entries: &[BulkEntry]) -> Vec<u8> {
        let mut body = Vec::new();
        for entry in entries {
            encode_create(&mut body, entry);
        }
        body
    }
}
