//! SigV4 signing of the requests to an Amazon OpenSearch Service domain
//! (`es`) or an OpenSearch Serverless collection (`aoss`), with the
//! function's own AWS credentials (`elasticsearch/aws_auth`), so no secret
//! is stored in SSM.
//!
//! The signature is AWS's own `aws-sigv4` crate's, with its default settings
//! (what every AWS service but S3 expects: the path encoded twice, the query
//! re-encoded and sorted). Serverless also wants `x-amz-content-sha256`.
//! What is signed is exactly what [`super::EsClient::send`] sends: the
//! method, the URL as serialised, the `Host` header (port included), the
//! `Content-Type` and the body's bytes; the headers the signer adds
//! (`authorization`, `x-amz-date`, `x-amz-security-token`,
//! `x-amz-content-sha256`) are added by the client after signing and nothing
//! after them.
//!
//! Credentials come from the `SdkConfig`'s provider (the default chain: in
//! Lambda the role's session from the environment). The provider itself does
//! not cache (the SDK's clients cache through their own identity cache, which
//! needs a whole client runtime to drive), so [`AwsSigning`] keeps the last
//! credentials as the SDK's lazy cache does: until 10 seconds before they
//! expire, or 15 minutes for credentials without an expiry. A warm container
//! therefore picks up the role's next session, and credentials past their
//! expiry are never used to sign.

use crate::config::AwsService;
use crate::http::causes_on_one_line;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_types::SdkConfig;
use aws_types::sdk_config::SharedTimeSource;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Credentials are loaded again this long before they expire (the SDK's
/// lazy cache's default buffer).
pub const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(10);
/// Credentials without an expiry are loaded again after this long (the SDK's
/// default for them).
pub const REFRESH_WITHOUT_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// The most time loading credentials may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The function's AWS identity for signing: the credentials provider, the
/// region and the clock of an `SdkConfig`, and the last credentials loaded.
/// Built once per container and shared by every run, so a warm container
/// reuses its credentials until they are about to expire.
#[derive(Clone)]
pub struct AwsSigning {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Option<SharedCredentialsProvider>,
    region: Option<String>,
    clock: SharedTimeSource,
    cache: tokio::sync::Mutex<Option<Cached>>,
}

struct Cached {
    credentials: Credentials,
    refresh_at: SystemTime,
}

impl std::fmt::Debug for AwsSigning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSigning")
            .field("region", &self.inner.region)
            .field("credentials_provider", &self.inner.provider.is_some())
            .finish()
    }
}

impl AwsSigning {
    /// Signing with `config`'s credentials provider, region and clock (the
    /// same `SdkConfig` the SSM and S3 clients are built from).
    pub fn from_sdk_config(config: &SdkConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                provider: config.credentials_provider(),
                region: config.region().map(|region| region.as_ref().to_owned()),
                clock: config.time_source().unwrap_or_default(),
                cache: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// A signer for `service` in `region` (the endpoint's, see
    /// [`crate::config::signing_region`]), else in the configuration's own
    /// region; the reason when this configuration cannot sign at all (no
    /// region, no credentials provider).
    pub(crate) fn signer(
        &self,
        service: AwsService,
        region: Option<&str>,
    ) -> Result<Signer, String> {
        let Some(region) = region
            .map(str::to_owned)
            .or_else(|| self.inner.region.clone())
        else {
            return Err(
                "no AWS region is configured: set AWS_REGION (Lambda sets it) or elasticsearch/aws_region, or a region in the AWS profile"
                    .into(),
            );
        };
        if self.inner.provider.is_none() {
            return Err("no AWS credentials provider is configured".into());
        }
        Ok(Signer {
            aws: self.clone(),
            service,
            region,
        })
    }

    /// Credentials that have not expired: the cached ones until shortly
    /// before they expire, else freshly loaded.
    async fn credentials(&self) -> Result<Credentials, String> {
        let Some(provider) = &self.inner.provider else {
            return Err("no AWS credentials provider is configured".into());
        };
        let mut cache = self.inner.cache.lock().await;
        let now = self.inner.clock.now();
        if let Some(cached) = cache.as_ref().filter(|c| now < c.refresh_at) {
            return Ok(cached.credentials.clone());
        }
        let loaded = match tokio::time::timeout(LOAD_TIMEOUT, provider.provide_credentials()).await
        {
            Ok(Ok(credentials)) => credentials,
            Ok(Err(error)) => {
                let reason = format!(
                    "could not load AWS credentials: {}",
                    causes_on_one_line(&error)
                );
                return stale_but_valid(cache.as_ref(), now, reason);
            }
            Err(_) => {
                let reason = format!(
                    "loading AWS credentials took longer than {} s",
                    LOAD_TIMEOUT.as_secs()
                );
                return stale_but_valid(cache.as_ref(), now, reason);
            }
        };
        // A signature mismatch answer may echo the session token: mask it.
        crate::secrets::register(loaded.secret_access_key());
        if let Some(token) = loaded.session_token() {
            crate::secrets::register(token);
        }
        let refresh_at = match loaded.expiry() {
            Some(expiry) => expiry
                .checked_sub(REFRESH_BEFORE_EXPIRY)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            None => now + REFRESH_WITHOUT_EXPIRY,
        };
        *cache = Some(Cached {
            credentials: loaded.clone(),
            refresh_at,
        });
        Ok(loaded)
    }
}

/// After a failed load: the cached credentials while they have not expired,
/// else the failure.
fn stale_but_valid(
    cached: Option<&Cached>,
    now: SystemTime,
    reason: String,
) -> Result<Credentials, String> {
    match cached {
        Some(cached)
            if cached
                .credentials
                .expiry()
                .is_some_and(|expiry| now < expiry) =>
        {
            tracing::warn!(%reason, "using the AWS credentials loaded before, which have not expired");
            Ok(cached.credentials.clone())
        }
        _ => Err(reason),
    }
}

fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{time:?}"))
}

/// A header the signature asks for. `sensitive` ones (the signature, the
/// session token) are marked so no HTTP layer logs them.
pub(crate) struct SignedHeader {
    pub(crate) name: &'static str,
    pub(crate) value: String,
    pub(crate) sensitive: bool,
}

/// Signs requests for one service and region.
#[derive(Clone)]
pub(crate) struct Signer {
    aws: AwsSigning,
    service: AwsService,
    region: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("service", &self.service)
            .field("region", &self.region)
            .finish()
    }
}

impl Signer {
    /// What to change in AWS when the cluster refused a signed request
    /// (401/403) with `reason`: the signature itself (region, clock,
    /// credentials), or the permissions of the function's role.
    pub(crate) fn refusal_hint(&self, reason: &str, index_prefix: &str) -> String {
        let (product, region) = (self.service.product(), &self.region);
        let lower = reason.to_ascii_lowercase();
        let signature_refused = [
            "signature",
            "credential should be scoped",
            "security token",
            "authentication token",
        ]
        .iter()
        .any(|text| lower.contains(text));
        if signature_refused {
            return format!(
                "{product} refused the SigV4 signature (signed for region {region}, service {}): check that the endpoint is in region {region} (the endpoint's host names the region; for another endpoint set elasticsearch/aws_region, else AWS_REGION applies), that the clock is right and that the function's credentials are current",
                self.service.signing_name()
            );
        }
        match self.service {
            AwsService::Es => format!(
                "the function's role needs es:ESHttpPost on <domain ARN>/_bulk, and for setup es:ESHttpGet and es:ESHttpPut on <domain ARN>/_index_template/* (in IAM and in the domain's access policy); on a domain with fine-grained access control, also map the role's ARN as a backend role to a role that may write {index_prefix}-* (docs/elasticsearch-kibana.md)"
            ),
            AwsService::Aoss => format!(
                "the function's role needs aoss:APIAccessAll on the collection (IAM) and a data access policy granting it aoss:CreateIndex and aoss:WriteDocument on index/<collection>/{index_prefix}-* (setup also aoss:DescribeCollectionItems, aoss:CreateCollectionItems and aoss:UpdateCollectionItems on collection/<collection>; docs/elasticsearch-kibana.md)"
            ),
        }
    }

    /// The headers that sign a request of `method` to `url` with `host` as
    /// its `Host` header, `content_type` and exactly `body`.
    pub(crate) async fn sign(
        &self,
        method: &str,
        url: &str,
        host: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<SignedHeader>, String> {
        let credentials = self.aws.credentials().await?;
        let now = self.aws.inner.clock.now();
        if let Some(expiry) = credentials.expiry().filter(|expiry| *expiry <= now) {
            return Err(format!(
                "the AWS credentials of access key {} expired at {}; not signing with them",
                credentials.access_key_id(),
                rfc3339(expiry),
            ));
        }
        let identity: Identity = credentials.into();
        let mut settings = SigningSettings::default();
        if self.service == AwsService::Aoss {
            // Serverless requires the payload hash as a header.
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service.signing_name())
            .time(now)
            .settings(settings)
            .build()
            .map_err(|error| format!("SigV4 parameters: {error}"))?
            .into();
        let mut headers = vec![("host", host)];
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        let request =
            SignableRequest::new(method, url, headers.into_iter(), SignableBody::Bytes(body))
                .map_err(|error| {
                    format!(
                        "SigV4 cannot sign this request: {}",
                        causes_on_one_line(&error)
                    )
                })?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|error| format!("SigV4 signing failed: {}", causes_on_one_line(&error)))?
            .into_parts();
        let (headers, _params) = instructions.into_parts();
        Ok(headers
            .into_iter()
            .map(|header| SignedHeader {
                name: header.name(),
                sensitive: header.sensitive()
                    || matches!(header.name(), "authorization" | "x-amz-security-token"),
                value: header.value().to_owned(),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::region::Region;

    fn signer(service: AwsService) -> Signer {
        let config = SdkConfig::builder()
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "test",
            )))
            .region(Region::new("eu-west-1"))
            .build();
        AwsSigning::from_sdk_config(&config)
            .signer(service, None)
            .expect("can sign")
    }

    #[test]
    fn refusals_name_the_signature_or_the_permissions() {
        let es = signer(AwsService::Es);
        let hint = es.refusal_hint(
            "The request signature we calculated does not match the signature you provided.",
            "pulls",
        );
        assert!(
            hint.contains("signed for region eu-west-1, service es"),
            "{hint}"
        );
        let hint = es.refusal_hint(
            "User: arn:aws:sts::123456789012:assumed-role/r/docker-pulls is not authorized to perform: es:ESHttpPost",
            "pulls",
        );
        for action in [
            "es:ESHttpPost on <domain ARN>/_bulk",
            "es:ESHttpPut on <domain ARN>/_index_template/*",
            "es:ESHttpGet",
            "backend role",
            "pulls-*",
        ] {
            assert!(hint.contains(action), "{action}: {hint}");
        }
        // Changed rule (issue 22): the role no longer gets es:ESHttpHead.
        assert!(!hint.contains("ESHttpHead"), "{hint}");
        let aoss = signer(AwsService::Aoss);
        let hint = aoss.refusal_hint("Forbidden", "pulls");
        for permission in [
            "aoss:APIAccessAll",
            "aoss:WriteDocument",
            "aoss:CreateIndex",
            "index/<collection>/pulls-*",
        ] {
            assert!(hint.contains(permission), "{permission}: {hint}");
        }
    }

    #[test]
    fn no_region_is_a_configuration_error() {
        let config = SdkConfig::builder().build();
        let reason = AwsSigning::from_sdk_config(&config)
            .signer(AwsService::Es, None)
            .expect_err("no region");
        assert!(reason.contains("set AWS_REGION"), "{reason}");
        // The endpoint's region is enough (the provider is still missing).
        let reason = AwsSigning::from_sdk_config(&config)
            .signer(AwsService::Es, Some("eu-central-2"))
            .expect_err("no credentials provider");
        assert!(reason.contains("credentials provider"), "{reason}");
        // Debug shows neither credentials nor the provider.
        assert!(!format!("{:?}", AwsSigning::from_sdk_config(&config)).contains("secret"));
    }

    #[tokio::test]
    async fn the_headers_carry_the_signature_marked_sensitive() {
        let headers = signer(AwsService::Aoss)
            .sign(
                "POST",
                "https://abc.eu-west-1.aoss.amazonaws.com/_bulk?filter_path=errors,items.*._id",
                "abc.eu-west-1.aoss.amazonaws.com",
                Some("application/x-ndjson"),
                b"{}\n",
            )
            .await
            .expect("signed");
        let find = |name: &str| headers.iter().find(|h| h.name == name);
        let authorization = find("authorization").expect("authorization");
        assert!(authorization.sensitive);
        assert!(
            authorization
                .value
                .starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{}",
            authorization.value
        );
        assert!(authorization.value.contains("/eu-west-1/aoss/aws4_request"));
        assert!(find("x-amz-date").is_some_and(|h| !h.sensitive));
        // sha256("{}\n")
        assert_eq!(
            find("x-amz-content-sha256").map(|h| h.value.as_str()),
            Some("ca3d163bab055381827226140568f3bef7eaac187cebd76878e0b63e9e442356")
        );
    }
}
