//! The `setup` action: installs our ingest pipeline and index template into
//! the configured cluster, idempotently.
//!
//! Both assets carry a `version`; one already installed at our version is
//! left alone, so a second setup changes nothing and still succeeds.

use crate::config::EsSettings;
use crate::error::Error;
use crate::http::{ReadError, error_chain, read_capped};
use crate::retry::{self, Deadline};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::time::Duration;

/// Our `docker-hub-pulls` ingest pipeline (elasticsearch/pipeline.json).
pub const PIPELINE: &str = include_str!("../elasticsearch/pipeline.json");
/// Our composable index template (elasticsearch/index-template.json).
pub const INDEX_TEMPLATE: &str = include_str!("../elasticsearch/index-template.json");

const ATTEMPTS: u32 = 4;

/// The index template for `prefix`: ours, matching `<prefix>-*`.
pub fn index_template_for(prefix: &str) -> Result<Value, Error> {
    let mut template: Value = serde_json::from_str(INDEX_TEMPLATE)
        .map_err(|e| Error::Setup(format!("bundled index template is not JSON: {e}")))?;
    template["index_patterns"] = json!([format!("{prefix}-*")]);
    Ok(template)
}

pub fn pipeline() -> Result<Value, Error> {
    serde_json::from_str(PIPELINE)
        .map_err(|e| Error::Setup(format!("bundled pipeline is not JSON: {e}")))
}

/// Installs what is missing or outdated and says what it did.
pub async fn install(
    http: &reqwest::Client,
    es: &EsSettings,
    deadline: Deadline,
) -> Result<Value, Error> {
    let cluster = Cluster { http, es, deadline };

    let pipeline_result = match &es.pipeline {
        None => Value::Null,
        Some(name) => {
            let desired = pipeline()?;
            let path = format!("_ingest/pipeline/{name}");
            let (status, body) = cluster
                .call(Method::GET, &path, None, "read_pipeline")
                .await?;
            let installed = (status == StatusCode::OK)
                .then(|| body.get(name).cloned())
                .flatten();
            let result = cluster
                .put_unless_current(&path, &desired, installed.as_ref(), "manage_pipeline")
                .await?;
            json!({"name": name, "result": result, "version": desired["version"]})
        }
    };

    let name = &es.index_prefix;
    let desired = index_template_for(name)?;
    let path = format!("_index_template/{name}");
    let (status, body) = cluster
        .call(Method::GET, &path, None, "manage_index_templates")
        .await?;
    let installed = (status == StatusCode::OK)
        .then(|| body.pointer("/index_templates/0/index_template").cloned())
        .flatten();
    let current_patterns = installed
        .as_ref()
        .is_some_and(|t| t["index_patterns"] == desired["index_patterns"]);
    let result = cluster
        .put_unless_current(
            &path,
            &desired,
            installed.as_ref().filter(|_| current_patterns),
            "manage_index_templates",
        )
        .await?;

    let response = json!({
        "action": "setup",
        "pipeline": pipeline_result,
        "index_template": {
            "name": name,
            "index_patterns": desired["index_patterns"],
            "result": result,
            "version": desired["version"],
        },
    });
    tracing::info!(%response, "setup finished");
    Ok(response)
}

struct Cluster<'a> {
    http: &'a reqwest::Client,
    es: &'a EsSettings,
    deadline: Deadline,
}

impl Cluster<'_> {
    /// PUTs `desired` unless `installed` already has its version.
    async fn put_unless_current(
        &self,
        path: &str,
        desired: &Value,
        installed: Option<&Value>,
        privilege: &str,
    ) -> Result<&'static str, Error> {
        if let Some(installed) = installed {
            if installed.get("version") == desired.get("version") {
                return Ok("unchanged");
            }
        }
        let (status, body) = self
            .call(Method::PUT, path, Some(desired), privilege)
            .await?;
        if !status.is_success() {
            return Err(Error::Setup(format!(
                "PUT {path}: {} {}",
                status.as_u16(),
                crate::bulk::error_reason(body.to_string().as_bytes())
            )));
        }
        Ok(if installed.is_some() {
            "updated"
        } else {
            "created"
        })
    }

    /// One call with retries on 429/502/503/504 and connection errors.
    /// 401 fails as bad credentials, 403 names the missing `privilege`;
    /// other statuses are returned with their JSON body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        privilege: &str,
    ) -> Result<(StatusCode, Value), Error> {
        let url = format!("{}/{path}", self.es.url);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .header(header::ACCEPT, "application/json")
                .timeout(self.deadline.timeout(Duration::from_secs(20)));
            if let Some(value) = self.es.auth.header() {
                request = request.header(header::AUTHORIZATION, value);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let bytes = match read_capped(response, 4 * 1024 * 1024).await {
                        Ok(bytes) => bytes,
                        Err(ReadError::TooLarge) => {
                            return Err(Error::Setup(format!(
                                "{method} {path}: response too large"
                            )));
                        }
                        Err(ReadError::Transport(e)) => {
                            return Err(Error::Setup(format!(
                                "{method} {path}: {}",
                                error_chain(&e)
                            )));
                        }
                    };
                    match status {
                        StatusCode::UNAUTHORIZED => {
                            return Err(Error::EsAuth {
                                url: self.es.url.clone(),
                                status: 401,
                                reason: crate::bulk::error_reason(&bytes),
                            });
                        }
                        StatusCode::FORBIDDEN => {
                            return Err(Error::Setup(format!(
                                "{method} {path} was refused (403): the credentials lack the `{privilege}` cluster privilege ({})",
                                crate::bulk::error_reason(&bytes)
                            )));
                        }
                        StatusCode::TOO_MANY_REQUESTS
                        | StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT => {
                            format!("{} {}", status.as_u16(), crate::bulk::error_reason(&bytes))
                        }
                        _ => {
                            let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                            return Ok((status, json));
                        }
                    }
                }
                Err(e) => error_chain(&e),
            };
            let wait = retry::backoff(attempt, Duration::from_millis(500), Duration::from_secs(4));
            if attempt >= ATTEMPTS || !self.deadline.allows(wait, Duration::from_secs(1)) {
                return Err(Error::Setup(format!(
                    "{method} {path} failed after {attempt} attempt(s): {failure}"
                )));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_assets_parse_and_carry_versions() {
        let pipeline = pipeline().expect("pipeline JSON");
        assert!(pipeline["version"].is_u64());
        assert!(pipeline["processors"].is_array());
        let template = index_template_for("pulls").expect("template JSON");
        assert_eq!(template["index_patterns"], json!(["pulls-*"]));
        assert!(template["version"].is_u64());
    }
}
