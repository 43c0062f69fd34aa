//! AWS SDK errors (SSM, S3) in one or two sentences a person can act on.
//!
//! The SDK's own `Display` is `dispatch failure` and its `Debug` is a
//! twenty-line dump of nested structs; neither says that credentials are
//! missing or which IAM permission to grant. [`explain`] sorts an
//! [`SdkError`] into a [`Problem`] and words it for the call that failed
//! ([`AwsCall`]); the full source chain goes to the log at debug level.
//!
//! The SDK's credential and endpoint error types are not reachable from this
//! crate's dependencies, so those two are recognised by their `Display`
//! texts (stable across aws-credential-types 1.x), the rest by type
//! (`std::io::Error`), SDK variant and the service's error code.

use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::error::Error as StdError;

/// The call that failed, as the message names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCall {
    /// The service as people name it: `SSM`, `S3`.
    pub service: &'static str,
    /// The IAM action the call needs, e.g. `ssm:GetParametersByPath`.
    pub action: &'static str,
    /// What was read or written, e.g. `/docker-pulls` or `s3://bucket/spool/`.
    pub resource: String,
    /// What to grant `action` on, e.g. `arn:aws:ssm:<region>:<account>:parameter/docker-pulls/*`.
    pub iam_resource: String,
    /// The client's region; `None` when none was configured.
    pub region: Option<String>,
    /// The endpoint override in effect, if any, and the variable that set it.
    pub endpoint: Option<(String, &'static str)>,
}

impl AwsCall {
    /// An SSM call on the parameters under `prefix` (an SSM path).
    pub fn ssm(action: &'static str, prefix: &str, region: Option<&str>) -> Self {
        let prefix = prefix.trim_end_matches('/');
        Self {
            service: "SSM",
            action,
            resource: prefix.to_owned(),
            iam_resource: format!(
                "arn:aws:ssm:{}:<account>:parameter{prefix} and parameter{prefix}/*",
                region.unwrap_or("<region>")
            ),
            region: region.map(str::to_owned),
            endpoint: endpoint_from_env("SSM"),
        }
    }

    /// An S3 call on `key` (an object or a key prefix) in `bucket`.
    pub fn s3(action: &'static str, bucket: &str, key: &str, region: Option<&str>) -> Self {
        Self {
            service: "S3",
            action,
            resource: format!("s3://{bucket}/{key}"),
            iam_resource: if action == "s3:ListBucket" {
                format!("arn:aws:s3:::{bucket}")
            } else {
                format!("arn:aws:s3:::{bucket}/{key}*")
            },
            region: region.map(str::to_owned),
            endpoint: endpoint_from_env("S3"),
        }
    }
}

/// The endpoint override the SDK takes from the environment for `service`
/// (`AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`), without any
/// credentials the URL might carry.
fn endpoint_from_env(service: &str) -> Option<(String, &'static str)> {
    let truthy = |v: String| v.eq_ignore_ascii_case("true");
    if std::env::var("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_ok_and(truthy) {
        return None;
    }
    let specific: &'static str = match service {
        "SSM" => "AWS_ENDPOINT_URL_SSM",
        "S3" => "AWS_ENDPOINT_URL_S3",
        _ => "AWS_ENDPOINT_URL",
    };
    [specific, "AWS_ENDPOINT_URL"].into_iter().find_map(|name| {
        let value = std::env::var(name).ok()?;
        let value = value.trim();
        (!value.is_empty()).then(|| (without_userinfo(value), name))
    })
}

fn without_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// What went wrong, as far as a person can do something about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No provider in the default chain found credentials.
    NoCredentials,
    /// A provider is configured but failed (expired SSO session, bad profile).
    CredentialsNotLoaded {
        detail: String,
    },
    NoRegion,
    /// The endpoint's host name did not resolve.
    Dns,
    ConnectionRefused,
    /// Connecting or waiting for an answer took too long.
    Timeout,
    /// Another transport failure.
    Unreachable {
        detail: String,
    },
    AccessDenied {
        code: String,
        message: String,
    },
    /// The service did not accept the credentials (unknown key, bad signature).
    BadCredentials {
        code: String,
        message: String,
    },
    ExpiredCredentials {
        code: String,
        message: String,
    },
    Throttled {
        code: String,
        message: String,
    },
    /// Any other error answer from the service.
    Refused {
        code: Option<String>,
        message: Option<String>,
        status: Option<u16>,
    },
    /// An answer that could not be read.
    BadResponse {
        detail: String,
    },
    /// The request could not be built.
    Construction {
        detail: String,
    },
}

/// [`explain`] for a call by an S3 `client` on `bucket`/`key`, with the
/// client's region in the advice.
pub fn explain_s3<E, R>(
    client: &aws_sdk_s3::Client,
    action: &'static str,
    bucket: &str,
    key: &str,
    error: &SdkError<E, R>,
) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    let region = client.config().region().map(|r| r.as_ref().to_owned());
    explain(error, &AwsCall::s3(action, bucket, key, region.as_deref()))
}

/// The message for `error` on `call`, one or two sentences; the SDK's full
/// error chain is logged at debug level.
pub fn explain<E, R>(error: &SdkError<E, R>, call: &AwsCall) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    tracing::debug!(
        service = call.service,
        action = call.action,
        resource = %call.resource,
        error = %DisplayErrorContext(error),
        "AWS call failed"
    );
    describe(&classify(error, call.region.is_some()), call)
}

/// Sorts an SDK error into a [`Problem`]; `has_region` says whether the
/// client had a region (without one, endpoint resolution fails first).
pub fn classify<E, R>(error: &SdkError<E, R>, has_region: bool) -> Problem
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug + 'static,
{
    let causes = chain(error);
    if let Some(problem) = credentials_problem(&causes) {
        return problem;
    }
    let status = error
        .raw_response()
        .and_then(|raw| (raw as &dyn std::any::Any).downcast_ref::<HttpResponse>())
        .map(|raw| raw.status().as_u16());
    match error {
        SdkError::ServiceError(_) => service_problem(error.code(), error.message(), status),
        SdkError::ResponseError(_) => Problem::BadResponse {
            detail: innermost(&causes),
        },
        SdkError::TimeoutError(_) => Problem::Timeout,
        SdkError::DispatchFailure(failure) if failure.is_timeout() => Problem::Timeout,
        SdkError::DispatchFailure(_) if !has_region || mentions(&causes, "missing region") => {
            Problem::NoRegion
        }
        SdkError::DispatchFailure(_) if mentions(&causes, "dns error") => Problem::Dns,
        SdkError::DispatchFailure(_) if refused(error) => Problem::ConnectionRefused,
        SdkError::DispatchFailure(_) => Problem::Unreachable {
            detail: innermost(&causes),
        },
        SdkError::ConstructionFailure(_) if !has_region || mentions(&causes, "missing region") => {
            Problem::NoRegion
        }
        _ => Problem::Construction {
            detail: innermost(&causes),
        },
    }
}

/// Words `problem` for `call`, cleaned of credentials (AWS's own message
/// is part of it).
pub fn describe(problem: &Problem, call: &AwsCall) -> String {
    crate::secrets::clean(&describe_raw(problem, call))
}

fn describe_raw(problem: &Problem, call: &AwsCall) -> String {
    let service = call.service;
    let action = call.action;
    let resource = &call.resource;
    let region = call.region.as_deref().unwrap_or("(none)");
    let at = match &call.endpoint {
        Some((url, variable)) => format!("at {url} ({variable})"),
        None => format!("in {region}"),
    };
    let network_hint = format!(
        "check that this machine can reach AWS (a Lambda function in a VPC needs a NAT gateway or a VPC endpoint for {service})"
    );
    match problem {
        Problem::NoCredentials => format!(
            "no AWS credentials found for {service} (set AWS_PROFILE or AWS_ACCESS_KEY_ID, or see README: local runs without AWS)"
        ),
        Problem::CredentialsNotLoaded { detail } => format!(
            "AWS credentials for {service} could not be loaded: {detail} (check AWS_PROFILE and ~/.aws/config; when an SSO session has expired, run `aws sso login`)"
        ),
        Problem::NoRegion => format!(
            "no AWS region set for {service} (set AWS_REGION, e.g. AWS_REGION=us-east-1, or `region` in your AWS profile)"
        ),
        Problem::Dns => match &call.endpoint {
            Some((url, variable)) => format!(
                "could not resolve the host of {service}'s endpoint {url} ({variable}); check that URL and this machine's DNS"
            ),
            None => format!(
                "could not resolve {service}'s endpoint for region {region}: check that AWS_REGION={region} is a real AWS region and that this machine can reach the internet"
            ),
        },
        Problem::ConnectionRefused => match &call.endpoint {
            Some(_) => format!(
                "could not connect to {service} {at}: connection refused; is that server running?"
            ),
            None => {
                format!("could not connect to {service} {at}: connection refused; {network_hint}")
            }
        },
        Problem::Timeout => format!("{service} {at} did not answer in time; {network_hint}"),
        Problem::Unreachable { detail } => {
            format!("could not reach {service} {at} ({detail}); {network_hint}")
        }
        Problem::AccessDenied { message, .. } if mentions_kms(message) => format!(
            "{service} could not decrypt the SecureString parameters under {resource}: this AWS identity may not use their KMS key. Grant it kms:Decrypt on that key (a customer managed key's policy must also allow IAM policies); AWS said: {message}"
        ),
        Problem::AccessDenied { message, .. } => format!(
            "access denied: this AWS identity may not call {action} on {resource}. Grant it {action} on {}; AWS said: {message}",
            call.iam_resource
        ),
        Problem::BadCredentials { code, message } => format!(
            "{service} rejected the AWS credentials ({code}: {message}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or the profile in AWS_PROFILE"
        ),
        Problem::ExpiredCredentials { code, message } => format!(
            "the AWS credentials for {service} have expired ({code}: {message}); get new ones (e.g. `aws sso login`) and try again"
        ),
        Problem::Throttled { code, message } => format!(
            "{service} throttled {action} on {resource} even after the SDK's retries ({code}: {message}); the request rate is shared by everything in this account and region, so try again later"
        ),
        Problem::Refused {
            code,
            message,
            status,
        } => {
            let what = match (code, message, status) {
                (Some(code), Some(message), _) => format!("{code}: {message}"),
                (Some(code), None, _) => code.clone(),
                (None, Some(message), Some(status)) => format!("HTTP {status}: {message}"),
                (None, Some(message), None) => message.clone(),
                (None, None, Some(status)) => format!("HTTP {status}"),
                (None, None, None) => "no reason given".to_owned(),
            };
            format!("{service} refused {action} on {resource} ({what})")
        }
        Problem::BadResponse { detail } => {
            format!("{service}'s answer to {action} on {resource} could not be read ({detail})")
        }
        Problem::Construction { detail } => {
            format!("could not build the {service} request {action} on {resource} ({detail})")
        }
    }
}

/// The `Display` texts of `error` and each of its sources.
fn chain(error: &(dyn StdError + 'static)) -> Vec<String> {
    let mut causes = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    causes
}

fn mentions(causes: &[String], needle: &str) -> bool {
    causes
        .iter()
        .any(|c| c.to_ascii_lowercase().contains(needle))
}

fn mentions_kms(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("kms:") || message.contains("kms key") || message.contains("kms.")
}

/// The deepest cause on one line, at most 300 characters.
fn innermost(causes: &[String]) -> String {
    let text = causes.last().map_or("", String::as_str);
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 300 {
        line = line.chars().take(299).collect::<String>() + "…";
    }
    line
}

/// `CredentialsError`'s `Display` texts (aws-credential-types), and the
/// default chain's "no credentials found in chain".
fn credentials_problem(causes: &[String]) -> Option<Problem> {
    const NOT_LOADED: &str = "the credential provider was not enabled";
    const FAILED: [&str; 4] = [
        "credentials provider timed out",
        "the credentials provider was not properly configured",
        "an error occurred while loading credentials",
        "unexpected credentials error",
    ];
    let position = causes
        .iter()
        .position(|c| c.starts_with(NOT_LOADED) || FAILED.iter().any(|f| c.starts_with(f)))?;
    let first = &causes[position];
    // The default chain ends with instance metadata (IMDS); off EC2, its
    // failure only means that no other source had credentials either.
    if first.starts_with(NOT_LOADED)
        || mentions(causes, "no credentials found in chain")
        || mentions(&causes[position + 1..], "imds")
    {
        return Some(Problem::NoCredentials);
    }
    Some(Problem::CredentialsNotLoaded {
        detail: innermost(&causes[position..]),
    })
}

fn refused(error: &(dyn StdError + 'static)) -> bool {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Sorts an error answer by its code (the JSON `__type` for SSM, the XML
/// `Code` for S3).
fn service_problem(code: Option<&str>, message: Option<&str>, status: Option<u16>) -> Problem {
    let message_text = || {
        message
            .map(|m| m.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "no message".to_owned())
    };
    let Some(code) = code else {
        return match status {
            Some(403) => Problem::AccessDenied {
                code: "403".to_owned(),
                message: message_text(),
            },
            _ => Problem::Refused {
                code: None,
                message: message.map(|_| message_text()),
                status,
            },
        };
    };
    let owned = code.to_owned();
    match code {
        "AccessDeniedException"
        | "AccessDenied"
        | "UnauthorizedOperation"
        | "AllAccessDisabled" => Problem::AccessDenied {
            code: owned,
            message: message_text(),
        },
        // SSM's answers when the SecureString's KMS key cannot be used.
        c if c.starts_with("KMS") || c == "InvalidKeyId" => Problem::AccessDenied {
            code: owned,
            message: format!("{} (KMS key)", message_text()),
        },
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken" => Problem::BadCredentials {
            code: owned,
            message: message_text(),
        },
        "ExpiredTokenException" | "ExpiredToken" | "RequestExpired" | "TokenRefreshRequired" => {
            Problem::ExpiredCredentials {
                code: owned,
                message: message_text(),
            }
        }
        "ThrottlingException"
        | "Throttling"
        | "ThrottledException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "SlowDown"
        | "RequestThrottled"
        | "RequestThrottledException" => Problem::Throttled {
            code: owned,
            message: message_text(),
        },
        _ => Problem::Refused {
            code: Some(owned),
            message: message.map(|_| message_text()),
            status,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> AwsCall {
        AwsCall {
            service: "SSM",
            action: "ssm:GetParametersByPath",
            resource: "/docker-pulls".into(),
            iam_resource: "arn:aws:ssm:us-east-1:<account>:parameter/docker-pulls/*".into(),
            region: Some("us-east-1".into()),
            endpoint: None,
        }
    }

    fn causes(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn an_empty_credentials_chain_is_no_credentials() {
        let chain = causes(&[
            "dispatch failure",
            "other",
            "the credential provider was not enabled",
            "no credentials found in chain. Attempted:\n  Environment: the credential provider was not enabled",
        ]);
        assert_eq!(credentials_problem(&chain), Some(Problem::NoCredentials));
        let message = describe(&Problem::NoCredentials, &call());
        assert_eq!(
            message,
            "no AWS credentials found for SSM (set AWS_PROFILE or AWS_ACCESS_KEY_ID, or see README: local runs without AWS)"
        );
    }

    #[test]
    fn a_failing_provider_says_why_on_one_line() {
        let chain = causes(&[
            "dispatch failure",
            "other",
            "an error occurred while loading credentials",
            "the SSO token\n  for profile dev has expired",
        ]);
        let problem = credentials_problem(&chain).expect("a credentials problem");
        assert_eq!(
            problem,
            Problem::CredentialsNotLoaded {
                detail: "the SSO token for profile dev has expired".into()
            }
        );
        assert!(describe(&problem, &call()).contains("aws sso login"));
        // The last source of the default chain failing is no credentials
        // anywhere, as a machine off EC2 sees it.
        let imds = causes(&[
            "dispatch failure",
            "other",
            "an error occurred while loading credentials",
            "request forbidden: IMDS is disabled or the caller has insufficient permissions.",
        ]);
        assert_eq!(credentials_problem(&imds), Some(Problem::NoCredentials));
        assert_eq!(
            credentials_problem(&causes(&["io error", "dns error"])),
            None
        );
    }

    #[test]
    fn service_codes_sort_into_problems() {
        let denied = service_problem(
            Some("AccessDeniedException"),
            Some(
                "User: arn:aws:sts::1:assumed-role/r/s is not authorized to perform: ssm:GetParametersByPath",
            ),
            Some(400),
        );
        let text = describe(&denied, &call());
        assert!(
            text.starts_with(
                "access denied: this AWS identity may not call ssm:GetParametersByPath on /docker-pulls. Grant it ssm:GetParametersByPath on arn:aws:ssm:us-east-1:<account>:parameter/docker-pulls/*"
            ),
            "{text}"
        );
        let kms = service_problem(
            Some("AccessDeniedException"),
            Some("... is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:..."),
            Some(400),
        );
        assert!(describe(&kms, &call()).contains("Grant it kms:Decrypt"));
        assert!(matches!(
            service_problem(Some("SlowDown"), None, Some(503)),
            Problem::Throttled { .. }
        ));
        assert!(matches!(
            service_problem(Some("UnrecognizedClientException"), Some("bad"), Some(400)),
            Problem::BadCredentials { .. }
        ));
        assert!(matches!(
            service_problem(Some("ExpiredToken"), None, Some(400)),
            Problem::ExpiredCredentials { .. }
        ));
        assert!(matches!(
            service_problem(None, None, Some(403)),
            Problem::AccessDenied { .. }
        ));
        let other = service_problem(Some("NoSuchBucket"), Some("gone"), Some(404));
        assert_eq!(
            describe(&other, &call()),
            "SSM refused ssm:GetParametersByPath on /docker-pulls (NoSuchBucket: gone)"
        );
        assert_eq!(
            describe(&service_problem(None, None, Some(404)), &call()),
            "SSM refused ssm:GetParametersByPath on /docker-pulls (HTTP 404)"
        );
    }

    #[test]
    fn an_endpoint_override_is_named_without_credentials() {
        let mut call = call();
        call.endpoint = Some((
            without_userinfo("http://user:pw@127.0.0.1:5000"),
            "AWS_ENDPOINT_URL_SSM",
        ));
        let text = describe(&Problem::ConnectionRefused, &call);
        assert_eq!(
            text,
            "could not connect to SSM at http://127.0.0.1:5000/ (AWS_ENDPOINT_URL_SSM): connection refused; is that server running?"
        );
        assert!(!text.contains("pw"));
    }

    #[test]
    fn the_innermost_cause_is_one_short_line() {
        let long = "x ".repeat(400);
        let line = innermost(&causes(&["a", &long]));
        assert!(
            !line.contains('\n') && line.chars().count() <= 300,
            "{line}"
        );
        assert_eq!(innermost(&causes(&["a", "b\n  c"])), "b c");
    }

    #[test]
    fn s3_calls_name_the_bucket_and_key() {
        let call = AwsCall::s3("s3:PutObject", "pulls-spool", "spool/", Some("eu-west-1"));
        assert_eq!(call.resource, "s3://pulls-spool/spool/");
        assert_eq!(call.iam_resource, "arn:aws:s3:::pulls-spool/spool/*");
        let text = describe(
            &Problem::AccessDenied {
                code: "AccessDenied".into(),
                message: "Access Denied".into(),
            },
            &call,
        );
        assert!(
            text.contains("may not call s3:PutObject on s3://pulls-spool/spool/"),
            "{text}"
        );
    }
}
