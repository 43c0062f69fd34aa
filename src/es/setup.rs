//! The `setup` action: installs our ingest pipeline and index template into
//! the configured cluster, idempotently.
//!
//! Both assets carry a `version`. One installed at our version is left
//! alone, so a second setup changes nothing and still succeeds; one at a
//! higher version is left alone too (a newer function installed it, and an
//! older one must not downgrade it), and the response says so.
//!
//! Under SigV4 (`elasticsearch/aws_auth`) no pipeline is installed
//! (reported as skipped: AWS ignores a signed POST's query, so the bulk
//! request could not name it), and OpenSearch Serverless (`aoss`) gets and the template without its `settings`:
//! Serverless manages shards, replicas and refresh itself.

use super::{EsClient, EsRequest, GaveUp, error_reason, request_error};
use crate::config::AwsService;
use crate::error::Error;
use crate::retry::Deadline;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// Our `docker-hub-pulls` ingest pipeline (elasticsearch/pipeline.json).
pub const PIPELINE: &str = include_str!("../../elasticsearch/pipeline.json");
/// Our composable index template (elasticsearch/index-template.json).
pub const INDEX_TEMPLATE: &str = include_str!("../../elasticsearch/index-template.json");

const ATTEMPTS: u32 = 4;

/// The index template for `prefix`: ours, matching `<prefix>-*`.
pub fn index_template_for(prefix: &str) -> Result<Value, Error> {
    let mut template: Value = serde_json::from_str(INDEX_TEMPLATE)
        .map_err(|e| Error::Setup(format!("bundled index template is not JSON: {e}")))?;
    template["index_patterns"] = json!([format!("{prefix}-*")]);
    Ok(template)
}

/// The index template for `prefix` on OpenSearch Serverless: mappings
/// only, since Serverless decides shards, replicas and refresh.
pub fn serverless_index_template_for(prefix: &str) -> Result<Value, Error> {
    let mut template = index_template_for(prefix)?;
    if let Some(inner) = template.get_mut("template").and_then(Value::as_object_mut) {
        inner.remove("settings");
    }
    Ok(template)
}

pub fn pipeline() -> Result<Value, Error> {
    serde_json::from_str(PIPELINE)
        .map_err(|e| Error::Setup(format!("bundled pipeline is not JSON: {e}")))
}

/// What setup does with one asset, decided from what is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Nothing is installed under the name.
    Create,
    /// The installed one has no version, a lower one, or (same version) the
    /// wrong shape.
    Update,
    /// Ours is installed already.
    Unchanged,
    /// A newer function installed a higher version: an older one must not
    /// downgrade it.
    KeepNewer,
}

impl Plan {
    /// The `result` the setup response reports.
    fn result(self) -> &'static str {
        match self {
            Plan::Create => "created",
            Plan::Update => "updated",
            Plan::Unchanged => "unchanged",
            Plan::KeepNewer => "newer_installed",
        }
    }
}

/// Decides what to do with `desired` given the `installed` asset (if any).
/// `same_shape` says whether the installed one fits otherwise (the index
/// template's patterns).
fn plan(installed: Option<&Value>, desired: &Value, same_shape: bool) -> Plan {
    let Some(installed) = installed else {
        return Plan::Create;
    };
    let version = |asset: &Value| asset.get("version").and_then(Value::as_i64);
    match (version(installed), version(desired)) {
        (Some(theirs), Some(ours)) if theirs > ours => Plan::KeepNewer,
        (Some(theirs), Some(ours)) if theirs == ours && same_shape => Plan::Unchanged,
        _ => Plan::Update,
    }
}

/// Installs what is missing or older and says what it did.
pub async fn install(client: &EsClient, deadline: Deadline) -> Result<Value, Error> {
    let es = client.settings();
    let serverless = es.aws_service() == Some(AwsService::Aoss);
    let cluster = Cluster { client, deadline };

    let pipeline_result = match &es.pipeline {
        // Settings never name one there (config::AOSS_PIPELINE_REFUSED).
        None if serverless => json!({
            "result": "skipped",
            "reason": "OpenSearch Serverless takes no ingest pipeline for docker-pulls",
        }),
        // Nor under SigV4 at all (EsClient::new): a pipeline would be
        // installed for nothing, since the bulk request cannot name it.
        None if es.aws_service().is_some() => json!({
            "result": "skipped",
            "reason": "Amazon OpenSearch Service ignores the query parameters of SigV4-signed POST requests, so docker-pulls names no ingest pipeline there (documents arrive trimmed)",
        }),
        None => Value::Null,
        Some(name) => {
            let desired = pipeline()?;
            let path = ["_ingest", "pipeline", name.as_str()];
            let (status, body) = cluster
                .call(Method::GET, &path, None, "manage_pipeline")
                .await?;
            let installed = (status == StatusCode::OK)
                .then(|| body.get(name).cloned())
                .flatten();
            let plan = plan(installed.as_ref(), &desired, true);
            cluster
                .apply(plan, &path, &desired, "manage_pipeline")
                .await?;
            report("ingest pipeline", name, plan, &desired, installed.as_ref())
        }
    };

    let name = &es.index_prefix;
    let desired = if serverless {
        serverless_index_template_for(name)?
    } else {
        index_template_for(name)?
    };
    let path = ["_index_template", name.as_str()];
    let (status, body) = cluster
        .call(Method::GET, &path, None, "manage_index_templates")
        .await?;
    let installed = (status == StatusCode::OK)
        .then(|| body.pointer("/index_templates/0/index_template").cloned())
        .flatten();
    let same_patterns = installed
        .as_ref()
        .is_some_and(|t| t["index_patterns"] == desired["index_patterns"]);
    let template_plan = plan(installed.as_ref(), &desired, same_patterns);
    cluster
        .apply(template_plan, &path, &desired, "manage_index_templates")
        .await?;
    let mut template_result = report(
        "index template",
        name,
        template_plan,
        &desired,
        installed.as_ref(),
    );
    template_result["index_patterns"] = desired["index_patterns"].clone();

    let response = json!({
        "action": "setup",
        "pipeline": pipeline_result,
        "index_template": template_result,
    });
    tracing::info!(%response, "setup finished");
    Ok(response)
}

/// One asset's part of the setup response: its name, what was done, our
/// version, and the version that was installed before (when one was).
fn report(
    asset: &str,
    name: &str,
    plan: Plan,
    desired: &Value,
    installed: Option<&Value>,
) -> Value {
    let mut result = json!({"name": name, "result": plan.result(), "version": desired["version"]});
    if let Some(installed) = installed {
        let installed_version = installed.get("version").cloned().unwrap_or(Value::Null);
        if plan == Plan::KeepNewer {
            tracing::warn!(
                asset,
                name,
                installed_version = %installed_version,
                version = %desired["version"],
                "a newer {asset} is installed; left as it is (upgrade this function to match)"
            );
        }
        result["installed_version"] = installed_version;
    }
    result
}

struct Cluster<'a> {
    client: &'a EsClient,
    deadline: Deadline,
}

impl Cluster<'_> {
    /// PUTs `desired` when the plan says so.
    async fn apply(
        &self,
        plan: Plan,
        path: &[&str],
        desired: &Value,
        privilege: &str,
    ) -> Result<(), Error> {
        if matches!(plan, Plan::Unchanged | Plan::KeepNewer) {
            return Ok(());
        }
        let (status, body) = self
            .call(Method::PUT, path, Some(desired), privilege)
            .await?;
        if !status.is_success() {
            return Err(Error::Setup(format!(
                "PUT {}: {} {}",
                path.join("/"),
                status.as_u16(),
                error_reason(body.to_string().as_bytes())
            )));
        }
        Ok(())
    }

    /// One call, retried on transient answers ([`EsClient::send_retrying`])
    /// and connection errors. 401 fails as bad credentials, 403 names the
    /// missing `privilege`; other statuses are returned with their JSON body.
    async fn call(
        &self,
        method: Method,
        path: &[&str],
        body: Option<&Value>,
        privilege: &str,
    ) -> Result<(StatusCode, Value), Error> {
        let shown = path.join("/");
        let body = match body.map(serde_json::to_vec).transpose() {
            Ok(body) => body,
            Err(e) => return Err(Error::Setup(format!("{method} {shown}: {e}"))),
        };
        let request = || EsRequest {
            method: method.clone(),
            path,
            query: &[],
            body: body.clone().map(|body| ("application/json", body)),
            timeout: self.deadline.timeout(Duration::from_secs(20)),
            max_response: 4 * 1024 * 1024,
        };
        let answer = match self
            .client
            .send_retrying(request, ATTEMPTS, Duration::from_secs(4), self.deadline)
            .await
        {
            Ok(answer) => answer,
            Err(GaveUp::Failure(failure)) => return Err(request_error(&method, &shown, &failure)),
            Err(GaveUp::Retries { reason, attempts }) => {
                return Err(Error::Setup(format!(
                    "{method} {shown} failed after {attempts} attempt(s): {reason}"
                )));
            }
        };
        match answer.status {
            StatusCode::UNAUTHORIZED => {
                let mut reason = error_reason(&answer.body);
                if let Some(hint) = self.client.aws_refusal_hint(&reason) {
                    reason = format!("{reason}; {hint}");
                }
                Err(Error::EsAuth {
                    url: self.client.settings().url.clone(),
                    status: 401,
                    reason,
                })
            }
            StatusCode::FORBIDDEN => {
                let reason = error_reason(&answer.body);
                Err(Error::Setup(match self.client.aws_refusal_hint(&reason) {
                    Some(hint) => {
                        format!("{method} {shown} was refused (403): {reason}; {hint}")
                    }
                    None => format!(
                        "{method} {shown} was refused (403): the credentials lack the `{privilege}` cluster privilege ({reason})"
                    ),
                }))
            }
            status => {
                let json = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
                Ok((status, json))
            }
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
        assert!(template["template"]["settings"].is_object());
        let serverless = serverless_index_template_for("pulls").expect("template JSON");
        assert_eq!(serverless["index_patterns"], json!(["pulls-*"]));
        assert!(serverless["template"].get("settings").is_none());
        assert_eq!(
            serverless["template"]["mappings"],
            template["template"]["mappings"]
        );
        assert_eq!(serverless["version"], template["version"]);
    }

    #[test]
    fn only_a_missing_or_lower_version_is_installed() {
        let ours = json!({"version": 3});
        assert_eq!(plan(None, &ours, false), Plan::Create);
        assert_eq!(plan(Some(&json!({})), &ours, true), Plan::Update);
        assert_eq!(
            plan(Some(&json!({"version": 2})), &ours, true),
            Plan::Update
        );
        assert_eq!(
            plan(Some(&json!({"version": 3})), &ours, true),
            Plan::Unchanged
        );
        assert_eq!(
            plan(Some(&json!({"version": 3})), &ours, false),
            Plan::Update,
            "same version, wrong patterns"
        );
        assert_eq!(
            plan(Some(&json!({"version": 4})), &ours, true),
            Plan::KeepNewer
        );
        assert_eq!(
            plan(Some(&json!({"version": 4})), &ours, false),
            Plan::KeepNewer
        );
        assert_eq!(Plan::KeepNewer.result(), "newer_installed");
    }
}
