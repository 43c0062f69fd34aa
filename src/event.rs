//! What an event asks for: the EventBridge `Scheduled Event`, or a manual
//! object (`images`, `time`, `dry_run`, `action`). Parsing is by hand rather
//! than serde-derived, so each mistake gets a message that names the field.

use crate::document::RunTime;
use crate::error::Error;
use crate::image_ref;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Run,
    Setup,
    /// Index archived documents again (see [`crate::replay`]).
    Replay(crate::replay::ReplayRequest),
    /// Turn raw archive days into Parquet (see [`crate::archive::compact`]):
    /// the day given, else yesterday and every day marked due.
    Compact(Option<time::Date>),
}

/// A parsed event: the EventBridge `Scheduled Event`, or a manual object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub action: Action,
    pub time: Option<RunTime>,
    /// Replaces the SSM image list for this run.
    pub images: Option<Vec<String>>,
    pub dry_run: bool,
    /// An EventBridge scheduled event (`source: aws.events`): its `time` is
    /// when the schedule fired, not a time a person asserts.
    pub scheduled: bool,
}

impl Request {
    /// Reads the fields the contract defines and ignores the rest (a
    /// scheduled event carries `id`, `source`, `resources`, …).
    pub fn from_event(event: &Value) -> Result<Self, Error> {
        let Some(object) = event.as_object() else {
            return Err(Error::InvalidEvent(format!(
                "expected a JSON object, got {}",
                json_kind(event)
            )));
        };
        let action = match object.get("action") {
            None | Some(Value::Null) => Action::Run,
            Some(Value::String(action)) if action == "setup" => Action::Setup,
            Some(Value::String(action)) if action == "replay" => {
                refuse_run_fields(object, "replay")?;
                Action::Replay(crate::replay::ReplayRequest::from_event(object)?)
            }
            Some(Value::String(action)) if action == "compact" => {
                refuse_run_fields(object, "compact")?;
                Action::Compact(compact_day(object)?)
            }
            Some(Value::String(action)) => return Err(Error::UnknownAction(action.clone())),
            Some(other) => return Err(Error::UnknownAction(other.to_string())),
        };
        let time = match object.get("time") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => {
                Some(RunTime::parse(text).map_err(|e| Error::InvalidEvent(e.to_string()))?)
            }
            Some(other) => {
                return Err(Error::InvalidEvent(format!(
                    "`time` must be an RFC 3339 string, got {}",
                    json_kind(other)
                )));
            }
        };
        let images = match object.get("images") {
            None | Some(Value::Null) => None,
            Some(Value::Array(entries)) => {
                let mut images = Vec::with_capacity(entries.len());
                for entry in entries {
                    let Value::String(entry) = entry else {
                        return Err(Error::InvalidEvent(format!(
                            "`images` entries must be strings, got {}",
                            json_kind(entry)
                        )));
                    };
                    images.extend(image_ref::split_list(entry).map(str::to_owned));
                }
                if images.is_empty() {
                    return Err(Error::InvalidEvent("`images` is empty".into()));
                }
                Some(images)
            }
            Some(other) => {
                return Err(Error::InvalidEvent(format!(
                    "`images` must be an array of image references, got {}",
                    json_kind(other)
                )));
            }
        };
        let dry_run = match object.get("dry_run") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(dry_run)) => *dry_run,
            Some(other) => {
                return Err(Error::InvalidEvent(format!(
                    "`dry_run` must be true or false, got {}",
                    json_kind(other)
                )));
            }
        };
        let scheduled = object.get("source").and_then(Value::as_str) == Some("aws.events");
        Ok(Request {
            action,
            time,
            images,
            dry_run,
            scheduled,
        })
    }

    /// The time this run's documents are stamped with: the event's `time`,
    /// except for a scheduled event more than `max_event_age` old (a late
    /// replay), whose counts are measured now and so get `now`.
    pub fn stamp(&self, now: RunTime, max_event_age: Duration) -> (RunTime, Option<LateEvent>) {
        match self.time {
            Some(time) if self.scheduled && time.age_at(&now) > max_event_age => (
                now,
                Some(LateEvent {
                    event_time: time.to_string(),
                    age_seconds: time.age_at(&now).as_secs(),
                }),
            ),
            Some(time) => (time, None),
            None => (now, None),
        }
    }
}

/// A scheduled event that arrived too late for its `time` to be honest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LateEvent {
    /// The `time` the event carried; the documents got the fetch time.
    pub event_time: String,
    pub age_seconds: u64,
}

/// `dry_run`, `images` and `time` belong to a run: an action that would
/// silently ignore them refuses them instead (a person who wrote them
/// expects them to count).
fn refuse_run_fields(object: &serde_json::Map<String, Value>, action: &str) -> Result<(), Error> {
    for field in ["dry_run", "images", "time"] {
        if object.get(field).is_some_and(|v| !v.is_null()) {
            return Err(Error::InvalidEvent(format!(
                "`{field}` is a field of a run, not of a {action}: remove it (a {action} reads the archive, it does not fetch)"
            )));
        }
    }
    Ok(())
}

/// A compaction's optional `day` (`YYYY-MM-DD`).
fn compact_day(object: &serde_json::Map<String, Value>) -> Result<Option<time::Date>, Error> {
    match object.get("day") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => crate::archive::reader::parse_day(text)
            .map(Some)
            .ok_or_else(|| {
                Error::InvalidEvent(format!(
                    "`day` must be a date like 2026-01-05, got {text:?}"
                ))
            }),
        Some(other) => Err(Error::InvalidEvent(format!(
            "`day` must be a date string like 2026-01-05, got {}",
            json_kind(other)
        ))),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event_file(name: &str) -> Value {
        let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn every_event_file_parses_into_a_request() {
        let dir = format!("{}/events", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("events/ exists")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        assert!(names.len() >= 3, "{names:?}");
        for name in names {
            Request::from_event(&event_file(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn scheduled_event_uses_its_time() {
        let request = Request::from_event(&event_file("scheduled.json")).expect("valid");
        assert_eq!(request.action, Action::Run);
        assert!(!request.dry_run);
        assert_eq!(request.images, None);
        assert!(request.time.is_some());
        assert!(request.scheduled);
        assert!(
            !Request::from_event(&event_file("manual.json"))
                .expect("valid")
                .scheduled
        );
    }

    #[test]
    fn only_a_late_scheduled_event_gets_the_fetch_time() {
        let now = RunTime::parse("2026-11-28T08:00:00Z").expect("valid");
        let max_age = Duration::from_secs(900);
        let request = |time: &str, source: &str| {
            Request::from_event(&json!({"time": time, "source": source})).expect("valid")
        };
        // Lambda's own retries, a few minutes late: the event's time.
        let (time, late) = request("2026-11-28T07:50:00Z", "aws.events").stamp(now, max_age);
        assert_eq!(
            (time.to_string().as_str(), late),
            ("2026-11-28T07:50:00Z", None)
        );
        // A replay from the dead-letter queue two days later: now.
        let (time, late) = request("2026-11-26T08:00:00Z", "aws.events").stamp(now, max_age);
        assert_eq!(time, now);
        assert_eq!(
            late,
            Some(LateEvent {
                event_time: "2026-11-26T08:00:00Z".into(),
                age_seconds: 2 * 86_400
            })
        );
        // A person's explicit time is honoured, however old.
        let (time, late) = request("2026-11-26T08:00:00Z", "me").stamp(now, max_age);
        assert_eq!(
            (time.to_string().as_str(), late),
            ("2026-11-26T08:00:00Z", None)
        );
        // No time: now.
        let (time, _) = Request::from_event(&json!({}))
            .expect("valid")
            .stamp(now, max_age);
        assert_eq!(time, now);
    }

    #[test]
    fn manual_events() {
        let request = Request::from_event(&json!({
            "dry_run": true, "images": ["httpd", "radoondas/* acme/app"], "time": "2026-11-27T18:35:00Z"
        }))
        .expect("valid");
        assert!(request.dry_run);
        assert_eq!(
            request.images,
            Some(vec![
                "httpd".into(),
                "radoondas/*".into(),
                "acme/app".into()
            ])
        );
        assert_eq!(
            request.time.expect("time").to_string(),
            "2026-11-27T18:35:00Z"
        );
        assert_eq!(
            Request::from_event(&json!({"action": "setup"}))
                .expect("valid")
                .action,
            Action::Setup
        );
        assert_eq!(
            Request::from_event(&json!({})).expect("valid").action,
            Action::Run
        );
        assert_eq!(
            Request::from_event(&event_file("compact.json"))
                .expect("valid")
                .action,
            Action::Compact(None)
        );
        assert_eq!(
            Request::from_event(&json!({"action": "compact", "day": "2026-01-05"}))
                .expect("valid")
                .action,
            Action::Compact(Some(
                time::Date::from_calendar_date(2026, time::Month::January, 5).expect("day")
            ))
        );
    }

    #[test]
    fn bad_events_are_errors_that_say_why() {
        let cases = [
            (json!({"action": "delete"}), "unknown action \"delete\""),
            (
                json!({"action": "replay", "to": "2026-02-01"}),
                "a replay needs `from`",
            ),
            (json!([1]), "expected a JSON object"),
            (json!({"images": "httpd"}), "`images` must be an array"),
            (json!({"images": []}), "`images` is empty"),
            (json!({"images": [1]}), "entries must be strings"),
            (json!({"time": "noon"}), "not an RFC 3339 timestamp"),
            (json!({"dry_run": "yes"}), "`dry_run` must be true or false"),
            (
                json!({"action": "replay", "from": "2026-01-01", "to": "2026-02-01", "dry_run": true}),
                "`dry_run` is a field of a run, not of a replay",
            ),
            (
                json!({"action": "replay", "from": "2026-01-01", "to": "2026-02-01", "images": ["httpd"]}),
                "`images` is a field of a run",
            ),
            (
                json!({"action": "replay", "from": "2026-01-01", "to": "2026-02-01", "time": "2026-01-01T00:00:00Z"}),
                "`time` is a field of a run",
            ),
            (
                json!({"action": "compact", "dry_run": false}),
                "`dry_run` is a field of a run, not of a compact",
            ),
            (
                json!({"action": "compact", "day": "2026-02-30"}),
                "`day` must be a date like 2026-01-05",
            ),
            (
                json!({"action": "compact", "day": 5}),
                "`day` must be a date string",
            ),
        ];
        for (event, expected) in cases {
            let error = Request::from_event(&event).unwrap_err().to_string();
            assert!(error.contains(expected), "{event}: {error}");
        }
    }
}
