//! Alerts as people and programs read them: a sentence and a JSON body,
//! published to the alert topic (`ALERT_TOPIC_ARN`, SNS), or only logged
//! and counted when there is none.

use super::alerts::{Edge, Kind, Transition};
use super::gains::{Gain, Gains};
use super::number::metric;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

/// One alert: an episode of `kind` starting or ending for a repository.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub namespace: String,
    pub name: String,
    pub transition: Transition,
    /// The measurement that opened or closed the episode.
    pub at: i64,
    pub pulls: u64,
    pub gains: Gains,
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

fn gain_words(gain: Gain) -> String {
    match gain {
        Gain::Gained(n) => metric(i64::try_from(n).unwrap_or(i64::MAX)),
        Gain::Unknown => "an unknown number of".into(),
        Gain::Regressed { from } => format!("minus (from {from})"),
    }
}

impl Alert {
    pub fn repository(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// One readable sentence.
    pub fn sentence(&self) -> String {
        let repo = self.repository();
        let pulls = self.pulls;
        let day = gain_words(self.gains.day);
        match (self.transition.kind, self.transition.edge) {
            (Kind::Spike, Edge::Started) => format!(
                "Pulls of {repo} spiked: {day} in the last 24 hours, far above its usual daily pulls (now {pulls} in total)."
            ),
            (Kind::Spike, Edge::Ended) => format!(
                "The pull spike of {repo} is over: {day} in the last 24 hours (now {pulls} in total)."
            ),
            (Kind::Stall, Edge::Started) => format!(
                "Pulls of {repo} stalled: its count has stayed at {pulls} for 24 hours after a busy week; Docker Hub's counter may be frozen."
            ),
            (Kind::Stall, Edge::Ended) => {
                format!(
                    "Pulls of {repo} are counted again: {day} in the last 24 hours (now {pulls})."
                )
            }
            (Kind::Regression, Edge::Started) => format!(
                "The pull count of {repo} went down, to {pulls}: Docker Hub's counter went backwards."
            ),
            (Kind::Regression, Edge::Ended) => {
                format!("The pull count of {repo} is back above where it was (now {pulls}).")
            }
        }
    }

    /// The facts as JSON, for programs subscribed to the topic.
    pub fn body(&self) -> Value {
        let gain = |g: Gain| match g {
            Gain::Gained(n) => json!(n),
            _ => Value::Null,
        };
        json!({
            "alert": self.transition.kind,
            "state": match self.transition.edge { Edge::Started => "started", Edge::Ended => "ended" },
            "namespace": self.namespace,
            "name": self.name,
            "timestamp": rfc3339(self.at),
            "since": rfc3339(self.transition.since),
            "pull_count": self.pulls,
            "gains": {"day": gain(self.gains.day), "week": gain(self.gains.week), "month": gain(self.gains.month)},
        })
    }

    /// The SNS subject (at most 100 characters) and message: the sentence,
    /// a blank line, the JSON body.
    pub fn message(&self) -> (String, String) {
        let edge = match self.transition.edge {
            Edge::Started => "started",
            Edge::Ended => "ended",
        };
        let mut subject = format!(
            "docker-pulls: {} {} for {}",
            self.transition.kind.name(),
            edge,
            self.repository()
        );
        subject.truncate(100);
        let body = serde_json::to_string_pretty(&self.body()).unwrap_or_default();
        (subject, format!("{}\n\n{body}\n", self.sentence()))
    }
}

/// Publishing an alert failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("publishing an alert to {topic} failed: {message}")]
pub struct NotifyError {
    pub topic: String,
    pub message: String,
}

/// Where alerts go.
pub trait AlertSink: Send + Sync {
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), NotifyError>>;
}

/// The alert topic in SNS.
#[derive(Debug, Clone)]
pub struct SnsSink {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsSink {
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

impl AlertSink for SnsSink {
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        message: &'a str,
    ) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            self.client
                .publish()
                .topic_arn(&self.topic_arn)
                .subject(subject)
                .message(message)
                .send()
                .await
                .map_err(|error| {
                    let region = self.client.config().region().map(|r| r.as_ref().to_owned());
                    let call = crate::aws_error::AwsCall {
                        service: "SNS",
                        action: "sns:Publish",
                        resource: self.topic_arn.clone(),
                        iam_resource: self.topic_arn.clone(),
                        region,
                        endpoint: None,
                    };
                    NotifyError {
                        topic: self.topic_arn.clone(),
                        message: crate::aws_error::explain(&error, &call),
                    }
                })?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_is_a_sentence_and_a_json_body() {
        let alert = Alert {
            namespace: "acme".into(),
            name: "app".into(),
            transition: Transition {
                kind: Kind::Spike,
                edge: Edge::Started,
                since: 1_796_294_100,
            },
            at: 1_796_294_100,
            pulls: 123_456,
            gains: Gains {
                day: Gain::Gained(25_000),
                week: Gain::Gained(31_000),
                month: Gain::Unknown,
            },
        };
        let (subject, message) = alert.message();
        assert_eq!(subject, "docker-pulls: spike started for acme/app");
        let (sentence, body) = message.split_once("\n\n").expect("two parts");
        assert_eq!(
            sentence,
            "Pulls of acme/app spiked: 25k in the last 24 hours, far above its usual daily pulls (now 123456 in total)."
        );
        let body: Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(
            body,
            json!({"alert":"spike","state":"started","namespace":"acme","name":"app",
                   "timestamp":"2026-12-03T10:35:00Z","since":"2026-12-03T10:35:00Z","pull_count":123456,
                   "gains":{"day":25000,"week":31000,"month":null}})
        );
    }
}
