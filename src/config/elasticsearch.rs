//! Where and how documents are indexed: the cluster's URL (or Elastic
//! Cloud ID), its credentials, the index prefix and the ingest pipeline,
//! read from the `elasticsearch/*` parameters and checked before any
//! request is made.
//!
//! `elasticsearch/aws_auth` replaces credentials with SigV4 signing by the
//! function's own role ([`crate::es::sigv4`]): nothing secret is stored in
//! SSM. It cannot be combined with an API key or a password (which one would
//! the cluster see?), and no ingest pipeline is named under it: AWS
//! ignores the query parameters of SigV4-signed POST requests (so
//! `?pipeline=` would silently do nothing), Serverless runs only a subset of
//! processors, and the documents arrive trimmed anyway
//! (docs/elasticsearch-kibana.md).

use super::{DEFAULT_INDEX_PREFIX, DEFAULT_PIPELINE, NO_PIPELINE, Secret};
use crate::error::Error;
use base64::Engine as _;

/// The AWS service a SigV4 signature is scoped to (`elasticsearch/aws_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsService {
    /// `es`: an Amazon OpenSearch Service domain.
    Es,
    /// `aoss`: an OpenSearch Serverless collection.
    Aoss,
}

impl AwsService {
    /// The parameter's value: `es` or `aoss`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            v if v.eq_ignore_ascii_case("es") => Ok(Self::Es),
            v if v.eq_ignore_ascii_case("aoss") => Ok(Self::Aoss),
            other => Err(format!(
                "{other:?} is neither `es` (an Amazon OpenSearch Service domain) nor `aoss` (an OpenSearch Serverless collection)"
            )),
        }
    }

    /// The signing name in the credential scope.
    pub fn signing_name(self) -> &'static str {
        match self {
            Self::Es => "es",
            Self::Aoss => "aoss",
        }
    }

    /// What the cluster is, in messages.
    pub fn product(self) -> &'static str {
        match self {
            Self::Es => "Amazon OpenSearch Service",
            Self::Aoss => "OpenSearch Serverless",
        }
    }
}

/// How we authenticate to Elasticsearch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EsAuth {
    None,
    /// `Authorization: ApiKey <encoded>`.
    ApiKey(Secret),
    Basic {
        username: String,
        password: Secret,
    },
    /// SigV4 with the function's AWS credentials, for this service; the
    /// signing itself is [`crate::es::sigv4`]'s.
    Aws(AwsService),
}

impl EsAuth {
    /// The `Authorization` header, marked sensitive so no HTTP layer logs
    /// it. Settings read from SSM or flags are checked to make a valid header
    /// ([`Settings::from_parameters`]); one that is not is left out, and the
    /// cluster answers 401.
    pub fn header(&self) -> Option<reqwest::header::HeaderValue> {
        let mut value = reqwest::header::HeaderValue::try_from(self.header_value()?).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// The `Authorization` header's text, if any (SigV4's is computed per
    /// request, so it has none here).
    pub fn header_value(&self) -> Option<String> {
        match self {
            EsAuth::None | EsAuth::Aws(_) => None,
            EsAuth::ApiKey(key) => Some(format!("ApiKey {}", key.expose())),
            EsAuth::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
        }
    }
}

/// Where and how documents are indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsSettings {
    /// Base URL without credentials and without a trailing slash.
    pub url: String,
    pub auth: EsAuth,
    /// Documents go to `<index_prefix>-<yyyy>`.
    pub index_prefix: String,
    /// Ingest pipeline named on the bulk request; `None` when disabled.
    pub pipeline: Option<String>,
    /// The region SigV4 signs for, when known from the settings: the one
    /// the endpoint's host names ([`region_from_host`]), else
    /// `elasticsearch/aws_region`. `None`: the function's own region.
    pub aws_region: Option<String>,
}

impl EsSettings {
    /// The service requests are signed for, when `elasticsearch/aws_auth`
    /// is set.
    pub fn aws_service(&self) -> Option<AwsService> {
        match self.auth {
            EsAuth::Aws(service) => Some(service),
            _ => None,
        }
    }
}

/// Why an ingest pipeline is refused on an Amazon OpenSearch Service domain.
pub const SIGV4_PIPELINE_REFUSED: &str = "Amazon OpenSearch Service ignores the query parameters of SigV4-signed POST requests (elasticsearch/aws_auth = es), so the bulk request cannot name an ingest pipeline; remove the parameter or set it to none (documents arrive trimmed)";

/// Why an ingest pipeline is refused on OpenSearch Serverless.
pub const AOSS_PIPELINE_REFUSED: &str = "OpenSearch Serverless (elasticsearch/aws_auth = aoss) takes no ingest pipeline for docker-pulls; remove the parameter or set it to none";

/// The `elasticsearch/*` parameters as settings: `get` reads a parameter
/// (trimmed, empty as absent), `full_name` names it in errors. `None` when
/// no cluster is configured and `required` is false.
pub(super) fn read<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    raw: impl Fn(&str) -> Option<&'a str>,
    full_name: impl Fn(&str) -> String,
    required: bool,
) -> Result<Option<EsSettings>, Error> {
    let url = match (get("elasticsearch/url"), get("elasticsearch/cloud_id")) {
        (Some(url), _) => Some((url.to_owned(), "elasticsearch/url")),
        (None, Some(cloud_id)) => Some((
            decode_cloud_id(cloud_id).map_err(|reason| Error::InvalidParameter {
                name: full_name("elasticsearch/cloud_id"),
                reason,
            })?,
            "elasticsearch/cloud_id",
        )),
        (None, None) if required => {
            return Err(Error::MissingParameter {
                name: full_name("elasticsearch/url"),
                hint: "or elasticsearch/cloud_id: where to index the documents",
            });
        }
        (None, None) => None,
    };

    Ok(match url {
        None => None,
        Some((url, source)) => {
            let (url, url_credentials) =
                split_url_credentials(&url).map_err(|reason| Error::InvalidParameter {
                    name: full_name(source),
                    reason,
                })?;
            let aws_auth = get("elasticsearch/aws_auth")
                .map(|value| {
                    AwsService::parse(value).map_err(|reason| Error::InvalidParameter {
                        name: full_name("elasticsearch/aws_auth"),
                        reason,
                    })
                })
                .transpose()?;
            if aws_auth.is_some() {
                let conflict = [
                    "elasticsearch/api_key",
                    "elasticsearch/username",
                    "elasticsearch/password",
                ]
                .into_iter()
                .find(|key| get(key).is_some())
                .map(&full_name)
                .or_else(|| {
                    url_credentials
                        .is_some()
                        .then(|| format!("{} (user:password@ in it)", full_name(source)))
                });
                if let Some(conflict) = conflict {
                    return Err(Error::InvalidParameter {
                        name: full_name("elasticsearch/aws_auth"),
                        reason: format!(
                            "set together with {conflict}: SigV4 signing with the function's AWS credentials replaces an API key or a password, so set one or the other, not both"
                        ),
                    });
                }
            }
            let credentials_in_url = url_credentials.is_some();
            let auth = match (
                get("elasticsearch/api_key"),
                get("elasticsearch/username"),
                get("elasticsearch/password"),
            ) {
                (Some(key), _, _) => EsAuth::ApiKey(Secret::new(key)),
                (None, Some(username), Some(password)) => EsAuth::Basic {
                    username: username.to_owned(),
                    password: Secret::new(password),
                },
                (None, Some(_), None) => {
                    return Err(Error::MissingParameter {
                        name: full_name("elasticsearch/password"),
                        hint: "set together with elasticsearch/username",
                    });
                }
                (None, None, Some(_)) => {
                    return Err(Error::MissingParameter {
                        name: full_name("elasticsearch/username"),
                        hint: "set together with elasticsearch/password",
                    });
                }
                (None, None, None) => match aws_auth {
                    Some(service) => EsAuth::Aws(service),
                    None => url_credentials.unwrap_or(EsAuth::None),
                },
            };
            // No credential crosses the network in the clear: plain http://
            // only to this machine (local tests).
            let credential = match &auth {
                EsAuth::None => None,
                EsAuth::ApiKey(_) => Some("elasticsearch/api_key"),
                EsAuth::Basic { .. } if credentials_in_url => Some(source),
                EsAuth::Basic { .. } => Some("elasticsearch/password"),
                EsAuth::Aws(_) => Some("elasticsearch/aws_auth"),
            };
            if let Some(credential) = credential
                && reqwest::Url::parse(&url)
                    .is_ok_and(|parsed| !crate::http::may_carry_credentials(&parsed))
            {
                return Err(Error::InvalidParameter {
                    name: full_name(source),
                    reason: format!(
                        "{url} is plain http://, which would send the credentials of {} unencrypted; use https:// (plain http:// is allowed only to this machine: 127.0.0.1, ::1, localhost)",
                        full_name(credential)
                    ),
                });
            }
            // The header carries base64(user:password): mask that too.
            if let EsAuth::Basic { username, password } = &auth {
                crate::secrets::register_basic(username, password.expose());
            }
            if auth.header_value().is_some() && auth.header().is_none() {
                let name = match auth {
                    EsAuth::ApiKey(_) => "elasticsearch/api_key",
                    _ => "elasticsearch/password",
                };
                return Err(Error::InvalidParameter {
                    name: full_name(name),
                    reason: "contains characters that cannot be sent in an HTTP header".into(),
                });
            }
            let index_prefix = get("elasticsearch/index").unwrap_or(DEFAULT_INDEX_PREFIX);
            validate_index_prefix(index_prefix).map_err(|reason| Error::InvalidParameter {
                name: full_name("elasticsearch/index"),
                reason,
            })?;
            let pipeline = match raw("elasticsearch/pipeline").map(|p| p.trim()) {
                // SigV4: none unless asked for, and asking is refused (AWS
                // ignores a signed POST's `?pipeline=`).
                None if aws_auth.is_some() => None,
                None => Some(DEFAULT_PIPELINE.to_owned()),
                Some(p) if p.eq_ignore_ascii_case(NO_PIPELINE) => None,
                Some(_) if aws_auth == Some(AwsService::Aoss) => {
                    return Err(Error::InvalidParameter {
                        name: full_name("elasticsearch/pipeline"),
                        reason: AOSS_PIPELINE_REFUSED.to_owned(),
                    });
                }
                Some(_) if aws_auth.is_some() => {
                    return Err(Error::InvalidParameter {
                        name: full_name("elasticsearch/pipeline"),
                        reason: SIGV4_PIPELINE_REFUSED.to_owned(),
                    });
                }
                Some(p) => {
                    validate_pipeline_name(p).map_err(|reason| Error::InvalidParameter {
                        name: full_name("elasticsearch/pipeline"),
                        reason,
                    })?;
                    Some(p.to_owned())
                }
            };
            let aws_region =
                signing_region(&url, get("elasticsearch/aws_region")).map_err(|reason| {
                    Error::InvalidParameter {
                        name: full_name("elasticsearch/aws_region"),
                        reason,
                    }
                })?;
            Some(EsSettings {
                url,
                auth,
                index_prefix: index_prefix.to_owned(),
                pipeline,
                aws_region,
            })
        }
    })
}

/// The region an AWS endpoint's host names: `<name>.<region>.es.amazonaws.com`
/// (an OpenSearch Service domain, VPC ones included),
/// `<id>.<region>.aoss.amazonaws.com` (a Serverless collection), and the
/// same under `amazonaws.com.cn` (China); GovCloud regions (`us-gov-west-1`)
/// take the same form. `None` for any other host (a custom endpoint, a
/// proxy, a test server).
pub fn region_from_host(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    let at = |suffix: &[&str]| {
        let n = labels.len();
        (n >= suffix.len() + 2 && labels[n - suffix.len()..] == *suffix)
            .then(|| labels[n - suffix.len() - 1])
    };
    let region = [
        &["es", "amazonaws", "com"][..],
        &["aoss", "amazonaws", "com"],
        &["es", "amazonaws", "com", "cn"],
        &["aoss", "amazonaws", "com", "cn"],
    ]
    .iter()
    .find_map(|suffix| at(suffix))?;
    is_region(region).then(|| region.to_owned())
}

/// `us-east-1`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-5`: lowercase
/// words joined by `-`, ending in a number.
fn is_region(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// The region to sign for, from the endpoint `url`'s host and the
/// `elasticsearch/aws_region` parameter: the host's when it names one (the
/// parameter, if set, must agree), else the parameter's; `None` leaves it
/// to the function's region.
pub fn signing_region(url: &str, parameter: Option<&str>) -> Result<Option<String>, String> {
    let parameter = parameter.map(str::trim).filter(|p| !p.is_empty());
    if let Some(region) = parameter
        && !is_region(region)
    {
        return Err(format!(
            "{region:?} is not an AWS region name such as eu-west-1"
        ));
    }
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned));
    let from_host = host.as_deref().and_then(region_from_host);
    match (from_host, parameter) {
        (Some(host_region), Some(region)) if host_region != region => Err(format!(
            "{region} differs from the region the endpoint's host names ({host_region}); remove the parameter or make it {host_region}"
        )),
        (Some(host_region), _) => Ok(Some(host_region)),
        (None, region) => Ok(region.map(str::to_owned)),
    }
}

/// Decodes an Elastic Cloud ID (`label:base64(host[:port]$es_uuid$kibana_uuid)`)
/// into the Elasticsearch URL `https://<es_uuid>.<host>[:port]`.
pub fn decode_cloud_id(cloud_id: &str) -> Result<String, String> {
    let encoded = cloud_id.rsplit_once(':').map_or(cloud_id, |(_, e)| e);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| "not a Cloud ID: the part after `:` is not base64".to_owned())?;
    let decoded = String::from_utf8(decoded).map_err(|_| "not a Cloud ID: not UTF-8".to_owned())?;
    let mut parts = decoded.split('$');
    let (Some(host), Some(es_uuid)) = (parts.next(), parts.next()) else {
        return Err("not a Cloud ID: expected `host$es_uuid$kibana_uuid`".to_owned());
    };
    if host.is_empty() || es_uuid.is_empty() {
        return Err("not a Cloud ID: empty host or Elasticsearch id".to_owned());
    }
    let (host, port) = match host.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => (host, Some(port)),
        _ => (host, None),
    };
    Ok(match port {
        Some(port) if port != "443" => format!("https://{es_uuid}.{host}:{port}"),
        _ => format!("https://{es_uuid}.{host}"),
    })
}

/// Checks the URL and moves `user:password@` out of it, so the URL can be
/// logged and credentials travel only in the `Authorization` header.
fn split_url_credentials(url: &str) -> Result<(String, Option<EsAuth>), String> {
    let mut parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("not a URL ({e}); expected e.g. https://es.example.com:9243"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", parsed.scheme()));
    }
    let credentials = if parsed.username().is_empty() {
        None
    } else {
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| "credentials in the URL are not valid UTF-8".to_owned())
        };
        let username = decode(parsed.username())?;
        let password = decode(parsed.password().unwrap_or_default())?;
        Some(EsAuth::Basic {
            username,
            password: Secret::new(password),
        })
    };
    // Both setters only fail for URLs that cannot carry credentials, which
    // http(s) URLs always can.
    let _ = parsed.set_username("");
    let _ = parsed.set_password(None);
    Ok((
        parsed.as_str().trim_end_matches('/').to_owned(),
        credentials,
    ))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Elasticsearch index names: lowercase, no `\ / * ? " < > | , # :` or spaces,
/// not starting with `-`, `_` or `+`.
fn validate_index_prefix(prefix: &str) -> Result<(), String> {
    let bad_start = prefix.starts_with(['-', '_', '+']);
    let bad_char = prefix
        .chars()
        .find(|c| c.is_ascii_uppercase() || c.is_whitespace() || "\\/*?\"<>|,#:".contains(*c));
    match (bad_start, bad_char) {
        (true, _) => Err(format!(
            "index prefix {prefix:?} must not start with -, _ or +"
        )),
        (_, Some(c)) => Err(format!(
            "index prefix {prefix:?} contains {c:?}; index names are lowercase without \\ / * ? \" < > | , # : or spaces"
        )),
        _ if prefix.len() > 200 => Err("index prefix is longer than 200 bytes".to_owned()),
        _ => Ok(()),
    }
}

/// Checks an ingest pipeline name. It goes into the setup URL's path and the
/// bulk request's `pipeline` parameter, and `GET _ingest/pipeline/<name>`
/// reads `,` and `*` as several pipelines. Elasticsearch (9.x) warns about,
/// and announces it will refuse, the names its index-name rules refuse
/// (`MetadataCreateIndexService.validateIndexOrAliasName`, case aside).
fn validate_pipeline_name(name: &str) -> Result<(), String> {
    const FORBIDDEN: &str = "\\/*?\"<>|,#:";
    if name.is_empty() {
        return Err(format!(
            "is empty: name an ingest pipeline, or set `{NO_PIPELINE}` to send documents without one"
        ));
    }
    if name == "_none" {
        return Err(format!(
            "`_none` tells Elasticsearch to use no pipeline, so setup would install one that is never used: set `{NO_PIPELINE}` to disable the pipeline"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || FORBIDDEN.contains(*c))
    {
        return Err(format!(
            "pipeline name {name:?} contains {c:?}; Elasticsearch pipeline names have no spaces and none of \\ / * ? \" < > | , # :"
        ));
    }
    if name.starts_with(['_', '-', '+']) {
        return Err(format!(
            "pipeline name {name:?} must not start with _, - or +"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("pipeline name {name:?} is not a name"));
    }
    if name.len() > 255 {
        return Err(format!(
            "pipeline name is {} bytes long; Elasticsearch allows 255",
            name.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_comes_from_an_aws_endpoints_host() {
        for (host, region) in [
            (
                "search-pulls-abc123.eu-west-1.es.amazonaws.com",
                Some("eu-west-1"),
            ),
            (
                "vpc-pulls-abc123.ap-southeast-2.es.amazonaws.com",
                Some("ap-southeast-2"),
            ),
            ("SEARCH-X.US-EAST-2.ES.AMAZONAWS.COM.", Some("us-east-2")),
            ("abc123xyz.us-west-2.aoss.amazonaws.com", Some("us-west-2")),
            (
                "search-x.cn-north-1.es.amazonaws.com.cn",
                Some("cn-north-1"),
            ),
            (
                "abc.cn-northwest-1.aoss.amazonaws.com.cn",
                Some("cn-northwest-1"),
            ),
            (
                "search-x.us-gov-west-1.es.amazonaws.com",
                Some("us-gov-west-1"),
            ),
            ("es.amazonaws.com", None),
            ("eu-west-1.es.amazonaws.com", None),
            ("search-x.not_a_region.es.amazonaws.com", None),
            ("search-x.eu-west-1.es.amazonaws.com.evil.example", None),
            ("es.example.com", None),
            ("127.0.0.1", None),
            ("abc.us-east-1.es.amazonaws.co", None),
        ] {
            assert_eq!(region_from_host(host).as_deref(), region, "{host}");
        }
    }

    #[test]
    fn the_host_wins_the_parameter_fills_in_and_a_conflict_is_an_error() {
        let domain = "https://search-d.eu-west-1.es.amazonaws.com";
        assert_eq!(
            signing_region(domain, None),
            Ok(Some("eu-west-1".to_owned()))
        );
        assert_eq!(
            signing_region(domain, Some("eu-west-1")),
            Ok(Some("eu-west-1".to_owned()))
        );
        let conflict = signing_region(domain, Some("us-east-1")).unwrap_err();
        assert!(
            conflict.contains("us-east-1") && conflict.contains("eu-west-1"),
            "{conflict}"
        );
        let custom = "https://search.example.com:9200";
        assert_eq!(
            signing_region(custom, Some(" ap-south-1 ")),
            Ok(Some("ap-south-1".to_owned()))
        );
        assert_eq!(signing_region(custom, None), Ok(None));
        assert_eq!(signing_region(custom, Some("")), Ok(None));
        assert!(signing_region(custom, Some("Europe")).is_err());
        assert!(signing_region(custom, Some("eu-west")).is_err());
    }
}
