//! The function's environment (CONTRACT.md "Environment"), read once at
//! start-up: where its settings live, Docker Hub's URL and concurrency, the
//! spool and archive buckets, how old a scheduled event may be.

use super::{DEFAULT_HUB_CONCURRENCY, DEFAULT_HUB_URL, DEFAULT_MAX_EVENT_AGE, DEFAULT_SSM_PREFIX};
use crate::error::Error;

/// The function's environment (see CONTRACT.md), read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub ssm_prefix: String,
    pub hub_url: String,
    pub hub_concurrency: usize,
    /// `SPOOL_BUCKET`: where undelivered documents wait; `None`: no spool.
    pub spool_bucket: Option<String>,
    /// `ARCHIVE_BUCKET`: where every run's documents are archived; `None`:
    /// no archive.
    pub archive_bucket: Option<String>,
    /// `BADGE_BUCKET`: where badges, their index and the stats page go;
    /// `None`: none written (see [`crate::insights`]).
    pub badge_bucket: Option<String>,
    /// `ALERT_TOPIC_ARN`: the SNS topic pull alerts are published to;
    /// `None`: alerts are only logged and counted.
    pub alert_topic_arn: Option<String>,
    /// `MAX_EVENT_AGE`: a scheduled event older than this is a late replay,
    /// and its counts get the fetch time instead of the event's.
    pub max_event_age: std::time::Duration,
}

impl Environment {
    /// Reads `SSM_PREFIX`, `DOCKER_HUB_URL`, `HUB_CONCURRENCY`,
    /// `SPOOL_BUCKET`, `ARCHIVE_BUCKET`, `BADGE_BUCKET`, `ALERT_TOPIC_ARN` and `MAX_EVENT_AGE` through `var` (the process
    /// environment in production).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let non_empty = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let hub_concurrency = match non_empty("HUB_CONCURRENCY") {
            None => DEFAULT_HUB_CONCURRENCY,
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=1024).contains(&n) => n,
                _ => {
                    return Err(Error::InvalidEnvironment {
                        name: "HUB_CONCURRENCY",
                        reason: format!("{text:?} is not a whole number from 1 to 1024"),
                    });
                }
            },
        };
        let ssm_prefix = non_empty("SSM_PREFIX").unwrap_or_else(|| DEFAULT_SSM_PREFIX.to_owned());
        if !ssm_prefix.starts_with('/') {
            return Err(Error::InvalidEnvironment {
                name: "SSM_PREFIX",
                reason: format!("{ssm_prefix:?} must start with `/`"),
            });
        }
        let max_event_age = match non_empty("MAX_EVENT_AGE") {
            None => DEFAULT_MAX_EVENT_AGE,
            Some(text) => match text.parse::<u64>() {
                Ok(seconds) if seconds > 0 => std::time::Duration::from_secs(seconds),
                _ => {
                    return Err(Error::InvalidEnvironment {
                        name: "MAX_EVENT_AGE",
                        reason: format!("{text:?} is not a positive number of seconds"),
                    });
                }
            },
        };
        Ok(Self {
            ssm_prefix: ssm_prefix.trim_end_matches('/').to_owned(),
            hub_url: non_empty("DOCKER_HUB_URL").unwrap_or_else(|| DEFAULT_HUB_URL.to_owned()),
            hub_concurrency,
            spool_bucket: non_empty("SPOOL_BUCKET"),
            archive_bucket: non_empty("ARCHIVE_BUCKET"),
            badge_bucket: non_empty("BADGE_BUCKET"),
            alert_topic_arn: non_empty("ALERT_TOPIC_ARN"),
            max_event_age,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_defaults_and_validation() {
        let env = Environment::from_vars(|_| None).expect("defaults");
        assert_eq!(
            env,
            Environment {
                ssm_prefix: "/docker-pulls".into(),
                hub_url: "https://hub.docker.com".into(),
                hub_concurrency: 16,
                spool_bucket: None,
                archive_bucket: None,
                badge_bucket: None,
                alert_topic_arn: None,
                max_event_age: std::time::Duration::from_secs(900),
            }
        );
        let env = Environment::from_vars(|name| match name {
            "SSM_PREFIX" => Some("/prod/pulls/".into()),
            "HUB_CONCURRENCY" => Some("32".into()),
            "DOCKER_HUB_URL" => Some("http://127.0.0.1:8080".into()),
            "SPOOL_BUCKET" => Some(" pulls-spool ".into()),
            "ARCHIVE_BUCKET" => Some("pulls-archive".into()),
            "BADGE_BUCKET" => Some("pulls-badges".into()),
            "ALERT_TOPIC_ARN" => Some("arn:aws:sns:us-east-1:123456789012:pull-alerts".into()),
            "MAX_EVENT_AGE" => Some("600".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(env.spool_bucket.as_deref(), Some("pulls-spool"));
        assert_eq!(env.archive_bucket.as_deref(), Some("pulls-archive"));
        assert_eq!(env.badge_bucket.as_deref(), Some("pulls-badges"));
        assert_eq!(
            env.alert_topic_arn.as_deref(),
            Some("arn:aws:sns:us-east-1:123456789012:pull-alerts")
        );
        assert_eq!(env.max_event_age, std::time::Duration::from_secs(600));
        for bad in ["0", "-5", "15m"] {
            let err = Environment::from_vars(|n| (n == "MAX_EVENT_AGE").then(|| bad.to_owned()))
                .unwrap_err();
            assert!(err.to_string().contains("MAX_EVENT_AGE"), "{err}");
        }
        assert_eq!(env.ssm_prefix, "/prod/pulls");
        assert_eq!(env.hub_concurrency, 32);
        assert_eq!(env.hub_url, "http://127.0.0.1:8080");
        for bad in ["0", "-1", "many", "5000"] {
            let err = Environment::from_vars(|n| (n == "HUB_CONCURRENCY").then(|| bad.to_owned()))
                .unwrap_err();
            assert!(err.to_string().contains("HUB_CONCURRENCY"), "{err}");
        }
        let err = Environment::from_vars(|n| (n == "SSM_PREFIX").then(|| "pulls".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("SSM_PREFIX"), "{err}");
    }
}
