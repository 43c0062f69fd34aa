//! Settings for one run, read from SSM Parameter Store on every invocation
//! (so a change applies at the next run), or given directly in local mode.
//!
//! Reading is split from interpreting: [`ParameterStore`] fetches a prefix's
//! parameters, and [`Settings::from_parameters`] turns them into typed
//! settings without I/O, so every rule here is unit-tested.

use crate::error::Error;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::fmt;

pub const DEFAULT_SSM_PREFIX: &str = "/docker-pulls";
pub const DEFAULT_INDEX_PREFIX: &str = "docker-pulls";
/// Docker Hub's API (`DOCKER_HUB_URL`).
pub const DEFAULT_HUB_URL: &str = "https://hub.docker.com";
/// Most Docker Hub requests in flight (`HUB_CONCURRENCY`).
pub const DEFAULT_HUB_CONCURRENCY: usize = 16;
/// `MAX_EVENT_AGE`'s default: Lambda's own retries of a scheduled event
/// arrive well inside 15 minutes; a replay from the dead-letter queue does not.
pub const DEFAULT_MAX_EVENT_AGE: std::time::Duration = std::time::Duration::from_secs(900);
pub const DEFAULT_PIPELINE: &str = "docker-hub-pulls";
/// The `elasticsearch/pipeline` value that turns the pipeline off.
pub const NO_PIPELINE: &str = "none";

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
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

    /// The `Authorization` header's text, if any.
    pub fn header_value(&self) -> Option<String> {
        match self {
            EsAuth::None => None,
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
}

/// A Docker Hub personal access token and its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubCredentials {
    pub username: String,
    pub token: Secret,
}

/// Where a run takes Docker Hub counts from (`dockerhub/namespace_counts`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NamespaceCounts {
    /// One request per repository: the contract's five-field documents.
    #[default]
    Details,
    /// Namespace listing pages (100 repositories a request) wherever they
    /// cost fewer requests than per-repository fetches; documents built from
    /// a listing carry no `collaborator_count`.
    Listing,
}

impl NamespaceCounts {
    /// The parameter's value: `details` or `listing`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "details" => Ok(Self::Details),
            "listing" => Ok(Self::Listing),
            other => Err(format!(
                "{other:?} is neither `details` (the default) nor `listing`"
            )),
        }
    }
}

/// Everything one run needs besides the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The raw image references (parsed later, so bad ones are reported per
    /// entry instead of failing the run): from SSM, `images` then every
    /// parameter under `images/` in name order, each reference once.
    pub images: Vec<String>,
    /// The full SSM parameter each reference of `images` first came from,
    /// so an invalid one can be traced to where it is written. Empty when
    /// the references did not come from SSM.
    pub image_sources: BTreeMap<String, String>,
    /// `None` only when no Elasticsearch is configured; the run then fails
    /// unless it is a dry run.
    pub elasticsearch: Option<EsSettings>,
    pub hub_credentials: Option<HubCredentials>,
    /// `dockerhub/namespace_counts`.
    pub namespace_counts: NamespaceCounts,
}

/// Which settings this run cannot do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// False when the event brings its own image list.
    pub images: bool,
    /// False on a dry run, which indexes nothing.
    pub elasticsearch: bool,
}

impl Needs {
    pub const ALL: Needs = Needs {
        images: true,
        elasticsearch: true,
    };
}

/// Where a run's settings come from: SSM in Lambda, flags in local mode.
pub trait SettingsSource: Send + Sync {
    fn load(&self, needs: Needs) -> impl Future<Output = Result<Settings, Error>> + Send;
}

/// Settings read from SSM under `prefix` on every call.
#[derive(Debug, Clone)]
pub struct SsmSettings<P> {
    store: P,
    prefix: String,
}

impl<P: ParameterStore> SsmSettings<P> {
    pub fn new(store: P, prefix: impl Into<String>) -> Self {
        Self {
            store,
            prefix: prefix.into(),
        }
    }
}

impl<P: ParameterStore> SettingsSource for SsmSettings<P> {
    async fn load(&self, needs: Needs) -> Result<Settings, Error> {
        let parameters = self.store.parameters_by_path(&self.prefix).await?;
        Settings::from_parameters(&self.prefix, &parameters, needs)
    }
}

/// Fixed settings (local mode): what is missing is named by its flag.
impl SettingsSource for Settings {
    async fn load(&self, needs: Needs) -> Result<Settings, Error> {
        if needs.images && self.images.is_empty() {
            return Err(Error::MissingParameter {
                name: "--images".into(),
                hint: "image references such as `httpd radoondas/*`",
            });
        }
        if needs.elasticsearch && self.elasticsearch.is_none() {
            return Err(Error::MissingParameter {
                name: "--es-url".into(),
                hint: "where to index the documents",
            });
        }
        Ok(self.clone())
    }
}

/// The function's environment (see CONTRACT.md), read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub ssm_prefix: String,
    pub hub_url: String,
    pub hub_concurrency: usize,
    /// `SPOOL_BUCKET`: where undelivered documents wait; `None`: no spool.
    pub spool_bucket: Option<String>,
    /// `MAX_EVENT_AGE`: a scheduled event older than this is a late replay,
    /// and its counts get the fetch time instead of the event's.
    pub max_event_age: std::time::Duration,
}

impl Environment {
    /// Reads `SSM_PREFIX`, `DOCKER_HUB_URL`, `HUB_CONCURRENCY`,
    /// `SPOOL_BUCKET` and `MAX_EVENT_AGE` through `var` (the process
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
            max_event_age,
        })
    }
}

/// Reads every parameter under a prefix, decrypted, following every page.
/// Keys in the returned map are relative to the prefix (`elasticsearch/url`).
pub trait ParameterStore: Send + Sync {
    fn parameters_by_path(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, String>, Error>> + Send;
}

/// [`ParameterStore`] backed by SSM `GetParametersByPath`.
#[derive(Debug, Clone)]
pub struct SsmParameterStore {
    client: aws_sdk_ssm::Client,
}

impl SsmParameterStore {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self { client }
    }
}

impl ParameterStore for SsmParameterStore {
    async fn parameters_by_path(&self, prefix: &str) -> Result<BTreeMap<String, String>, Error> {
        let prefix = prefix.trim_end_matches('/');
        let mut pages = self
            .client
            .get_parameters_by_path()
            .path(prefix)
            .recursive(true)
            .with_decryption(true)
            .into_paginator()
            .send();
        let mut parameters = BTreeMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|error| {
                let region = self.client.config().region().map(|r| r.as_ref());
                let call =
                    crate::aws_error::AwsCall::ssm("ssm:GetParametersByPath", prefix, region);
                Error::Ssm {
                    prefix: prefix.to_owned(),
                    message: crate::aws_error::explain(&error, &call),
                }
            })?;
            for parameter in page.parameters() {
                let (Some(name), Some(value)) = (parameter.name(), parameter.value()) else {
                    continue;
                };
                if let Some(key) = name.strip_prefix(prefix).map(|k| k.trim_start_matches('/')) {
                    parameters.insert(key.to_owned(), value.to_owned());
                }
            }
        }
        Ok(parameters)
    }
}

impl Settings {
    /// Interprets the parameters under `prefix` (keys relative to it).
    pub fn from_parameters(
        prefix: &str,
        parameters: &BTreeMap<String, String>,
        needs: Needs,
    ) -> Result<Self, Error> {
        let prefix = prefix.trim_end_matches('/');
        let full_name = |key: &str| format!("{prefix}/{key}");
        let get = |key: &str| {
            parameters
                .get(key)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };

        // `images`, then `images/<any name>` in name order (the map's): a
        // list too long for one SSM value is split over several.
        let mut images = Vec::new();
        let mut image_sources = BTreeMap::new();
        let lists = parameters
            .iter()
            .filter(|(key, _)| *key == "images" || key.starts_with("images/"));
        for (key, list) in lists {
            for reference in crate::image_ref::split_list(list) {
                if !image_sources.contains_key(reference) {
                    image_sources.insert(reference.to_owned(), full_name(key));
                    images.push(reference.to_owned());
                }
            }
        }
        // Sources are SSM parameter names; local mode presents its flags as
        // parameters of a prefix that is not one.
        if !prefix.starts_with('/') {
            image_sources.clear();
        }
        if needs.images && images.is_empty() {
            return Err(Error::MissingParameter {
                name: full_name("images"),
                hint: "a list of image references such as `httpd, radoondas/*`",
            });
        }

        let url = match (get("elasticsearch/url"), get("elasticsearch/cloud_id")) {
            (Some(url), _) => Some((url.to_owned(), "elasticsearch/url")),
            (None, Some(cloud_id)) => Some((
                decode_cloud_id(cloud_id).map_err(|reason| Error::InvalidParameter {
                    name: full_name("elasticsearch/cloud_id"),
                    reason,
                })?,
                "elasticsearch/cloud_id",
            )),
            (None, None) if needs.elasticsearch => {
                return Err(Error::MissingParameter {
                    name: full_name("elasticsearch/url"),
                    hint: "or elasticsearch/cloud_id: where to index the documents",
                });
            }
            (None, None) => None,
        };

        let elasticsearch = match url {
            None => None,
            Some((url, source)) => {
                let (url, url_credentials) =
                    split_url_credentials(&url).map_err(|reason| Error::InvalidParameter {
                        name: full_name(source),
                        reason,
                    })?;
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
                    (None, None, None) => url_credentials.unwrap_or(EsAuth::None),
                };
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
                let pipeline = match parameters.get("elasticsearch/pipeline").map(|p| p.trim()) {
                    None => Some(DEFAULT_PIPELINE.to_owned()),
                    Some(p) if p.eq_ignore_ascii_case(NO_PIPELINE) => None,
                    Some(p) => {
                        validate_pipeline_name(p).map_err(|reason| Error::InvalidParameter {
                            name: full_name("elasticsearch/pipeline"),
                            reason,
                        })?;
                        Some(p.to_owned())
                    }
                };
                Some(EsSettings {
                    url,
                    auth,
                    index_prefix: index_prefix.to_owned(),
                    pipeline,
                })
            }
        };

        let hub_credentials = match (get("dockerhub/username"), get("dockerhub/token")) {
            (Some(username), Some(token)) => Some(HubCredentials {
                username: username.to_owned(),
                token: Secret::new(token),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::MissingParameter {
                    name: full_name("dockerhub/token"),
                    hint: "set together with dockerhub/username",
                });
            }
            (None, Some(_)) => {
                return Err(Error::MissingParameter {
                    name: full_name("dockerhub/username"),
                    hint: "set together with dockerhub/token",
                });
            }
        };

        let namespace_counts = match get("dockerhub/namespace_counts") {
            None => NamespaceCounts::default(),
            Some(value) => {
                NamespaceCounts::parse(value).map_err(|reason| Error::InvalidParameter {
                    name: full_name("dockerhub/namespace_counts"),
                    reason,
                })?
            }
        };

        Ok(Settings {
            images,
            image_sources,
            elasticsearch,
            hub_credentials,
            namespace_counts,
        })
    }
}

impl Settings {
    /// Parses image references (this run's: the SSM list, or the event's):
    /// the valid ones with their spec, and for each invalid one the reason,
    /// which names the SSM parameter it came from.
    pub fn parse_images(&self, references: &[String]) -> ParsedImages {
        let mut parsed = ParsedImages::default();
        for reference in references {
            match crate::image_ref::parse(reference) {
                Ok(spec) => parsed.specs.push((reference.clone(), spec)),
                Err(error) => {
                    let reason = match self.image_sources.get(reference) {
                        Some(parameter) => {
                            format!("invalid reference (in {parameter}): {error}")
                        }
                        None => format!("invalid reference: {error}"),
                    };
                    parsed.invalid.push((reference.clone(), reason));
                }
            }
        }
        parsed
    }
}

/// Image references sorted into those to fetch and those that cannot be.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParsedImages {
    /// `(reference as written, what it asks for)`.
    pub specs: Vec<(String, crate::image_ref::ImageSpec)>,
    /// `(reference as written, reason)`, for the run's `failed` list.
    pub invalid: Vec<(String, String)>,
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

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, Error> {
        Settings::from_parameters("/docker-pulls", &params(pairs), Needs::ALL)
    }

    #[test]
    fn minimal_parameters_take_the_defaults() {
        let s = settings(&[
            ("images", "httpd,library/mysql\nradoondas/*"),
            ("elasticsearch/url", "https://es.example.com:9243/"),
        ])
        .expect("valid");
        assert_eq!(s.images, ["httpd", "library/mysql", "radoondas/*"]);
        let es = s.elasticsearch.expect("es configured");
        assert_eq!(es.url, "https://es.example.com:9243");
        assert_eq!(es.auth, EsAuth::None);
        assert_eq!(es.index_prefix, "docker-pulls");
        assert_eq!(es.pipeline.as_deref(), Some("docker-hub-pulls"));
        assert_eq!(s.hub_credentials, None);
    }

    #[test]
    fn missing_images_names_the_full_parameter() {
        let err = settings(&[("elasticsearch/url", "http://localhost:9200")]).unwrap_err();
        assert!(err.to_string().contains("/docker-pulls/images"), "{err}");
        let blank = settings(&[("images", " , \n"), ("elasticsearch/url", "http://x")]);
        assert!(
            blank
                .unwrap_err()
                .to_string()
                .contains("/docker-pulls/images")
        );
        // An event with its own list, on a dry run, needs neither.
        let needs = Needs {
            images: false,
            elasticsearch: false,
        };
        let s = Settings::from_parameters("/p/", &params(&[]), needs).expect("valid");
        assert!(s.images.is_empty() && s.elasticsearch.is_none());
        let err = settings(&[("images", "httpd")]).unwrap_err();
        assert!(
            err.to_string().contains("/docker-pulls/elasticsearch/url"),
            "{err}"
        );
    }

    #[test]
    fn api_key_wins_and_is_sent_verbatim() {
        let s = settings(&[
            ("images", "httpd"),
            ("elasticsearch/url", "https://es:9243"),
            (
                "elasticsearch/api_key",
                "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==",
            ),
            ("elasticsearch/username", "elastic"),
            ("elasticsearch/password", "changeme"),
        ])
        .expect("valid");
        let auth = s.elasticsearch.expect("es").auth;
        assert_eq!(
            auth.header_value().as_deref(),
            Some("ApiKey VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==")
        );
        assert!(!format!("{auth:?}").contains("VnVh"));
    }

    #[test]
    fn basic_auth_from_parameters_or_url() {
        let s = settings(&[
            ("images", "httpd"),
            ("elasticsearch/url", "https://es:9243"),
            ("elasticsearch/username", "elastic"),
            ("elasticsearch/password", "changeme"),
        ])
        .expect("valid");
        assert_eq!(
            s.elasticsearch.expect("es").auth.header_value().as_deref(),
            Some("Basic ZWxhc3RpYzpjaGFuZ2VtZQ==")
        );

        let s = settings(&[
            ("images", "httpd"),
            (
                "elasticsearch/url",
                "https://elastic:p%40ss@es.example.com:9243",
            ),
        ])
        .expect("valid");
        let es = s.elasticsearch.expect("es");
        assert_eq!(es.url, "https://es.example.com:9243");
        assert_eq!(
            es.auth,
            EsAuth::Basic {
                username: "elastic".into(),
                password: Secret::new("p@ss")
            }
        );
    }

    #[test]
    fn half_configured_credentials_are_errors() {
        let err = settings(&[
            ("images", "httpd"),
            ("elasticsearch/url", "https://es"),
            ("elasticsearch/username", "elastic"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("/docker-pulls/elasticsearch/password"),
            "{err}"
        );
        let err = settings(&[
            ("images", "httpd"),
            ("elasticsearch/url", "https://es"),
            ("dockerhub/token", "dckr_pat_x"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("/docker-pulls/dockerhub/username"),
            "{err}"
        );
        assert!(!err.to_string().contains("dckr_pat_x"));
    }

    #[test]
    fn cloud_id_decodes_to_the_elasticsearch_url() {
        // "us-east-1.aws.found.io$abc123$def456" and with a port.
        let plain = base64::engine::general_purpose::STANDARD
            .encode("us-east-1.aws.found.io$abc123$def456");
        assert_eq!(
            decode_cloud_id(&format!("my-deployment:{plain}")).as_deref(),
            Ok("https://abc123.us-east-1.aws.found.io")
        );
        let port =
            base64::engine::general_purpose::STANDARD.encode("eu-west-1.aws.found.io:9243$es1$kb1");
        assert_eq!(
            decode_cloud_id(&format!("name:with:colons:{port}")).as_deref(),
            Ok("https://es1.eu-west-1.aws.found.io:9243")
        );
        assert!(decode_cloud_id("label:!!!").is_err());
        let s = settings(&[
            ("images", "httpd"),
            ("elasticsearch/cloud_id", &format!("d:{plain}")),
        ])
        .expect("valid");
        assert_eq!(
            s.elasticsearch.expect("es").url,
            "https://abc123.us-east-1.aws.found.io"
        );
        let err = settings(&[("images", "httpd"), ("elasticsearch/cloud_id", "d:@@")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("/docker-pulls/elasticsearch/cloud_id"),
            "{err}"
        );
    }

    #[test]
    fn pipeline_none_disables_it_and_index_prefix_is_checked() {
        let s = settings(&[
            ("images", "httpd"),
            ("elasticsearch/url", "http://es:9200"),
            ("elasticsearch/pipeline", "none"),
            ("elasticsearch/index", "pulls"),
        ])
        .expect("valid");
        let es = s.elasticsearch.expect("es");
        assert_eq!(es.pipeline, None);
        assert_eq!(es.index_prefix, "pulls");
        for bad in ["Pulls", "a/b", "_x", "a b"] {
            let err = settings(&[
                ("images", "httpd"),
                ("elasticsearch/url", "http://es:9200"),
                ("elasticsearch/index", bad),
            ])
            .unwrap_err();
            assert!(
                err.to_string()
                    .contains("/docker-pulls/elasticsearch/index"),
                "{err}"
            );
        }
    }

    #[test]
    fn pipeline_names_that_would_change_the_url_or_match_several_are_refused() {
        let with_pipeline = |name: &str| {
            settings(&[
                ("images", "httpd"),
                ("elasticsearch/url", "http://es:9200"),
                ("elasticsearch/pipeline", name),
            ])
        };
        for good in [
            "docker-hub-pulls",
            "Pulls.v2",
            "pulls_2",
            "NONE",
            " trimmed ",
        ] {
            assert!(with_pipeline(good).is_ok(), "{good:?} is a valid name");
        }
        assert_eq!(
            with_pipeline(" trimmed ")
                .unwrap()
                .elasticsearch
                .unwrap()
                .pipeline
                .as_deref(),
            Some("trimmed")
        );
        let refused = [
            ("", "is empty"),
            ("   ", "is empty"),
            ("a,b", "','"),
            ("pulls*", "'*'"),
            ("a/b", "'/'"),
            ("a?b", "'?'"),
            ("a#b", "'#'"),
            ("a b", "' '"),
            ("a\tb", "'\\t'"),
            ("a:b", "':'"),
            ("a\\b", "'\\\\'"),
            ("a|b", "'|'"),
            ("a\"b", "'\"'"),
            ("<a>", "'<'"),
            ("_none", "set `none`"),
            ("_pulls", "must not start with"),
            ("-pulls", "must not start with"),
            ("+pulls", "must not start with"),
            ("..", "not a name"),
        ];
        for (bad, why) in refused {
            let error = with_pipeline(bad).unwrap_err().to_string();
            assert!(
                error.starts_with("invalid SSM parameter /docker-pulls/elasticsearch/pipeline: "),
                "{bad:?}: {error}"
            );
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        let long = "p".repeat(256);
        assert!(
            with_pipeline(&long)
                .unwrap_err()
                .to_string()
                .contains("255")
        );
        assert!(with_pipeline(&"p".repeat(255)).is_ok());
    }

    #[test]
    fn credentials_that_cannot_be_sent_are_named_not_shown() {
        let err = settings(&[
            ("images", "httpd"),
            ("elasticsearch/url", "https://es"),
            ("elasticsearch/api_key", "line\nbreak"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("/docker-pulls/elasticsearch/api_key"), "{err}");
        assert!(!err.contains("break"), "{err}");
    }

    #[test]
    fn bad_url_is_named() {
        let err =
            settings(&[("images", "httpd"), ("elasticsearch/url", "es.example.com")]).unwrap_err();
        assert!(
            err.to_string().contains("/docker-pulls/elasticsearch/url"),
            "{err}"
        );
    }

    #[test]
    fn image_lists_under_images_are_merged_in_order_without_duplicates() {
        let s = settings(&[
            ("images/team-b", "acme/b1\nhttpd"),
            ("images", "httpd, library/mysql"),
            ("images/team-a", "acme/a1, library/mysql, acme/a2"),
            ("images/team-a/nested", "acme/deep"),
            ("images-old", "acme/ignored"),
            ("elasticsearch/url", "https://es"),
        ])
        .expect("valid");
        assert_eq!(
            s.images,
            [
                "httpd",
                "library/mysql",
                "acme/a1",
                "acme/a2",
                "acme/deep",
                "acme/b1"
            ]
        );
        assert_eq!(s.image_sources["library/mysql"], "/docker-pulls/images");
        assert_eq!(
            s.image_sources["acme/deep"],
            "/docker-pulls/images/team-a/nested"
        );
        // `images` itself may be absent.
        let s = settings(&[
            ("images/only", "httpd"),
            ("elasticsearch/url", "https://es"),
        ])
        .expect("valid");
        assert_eq!(s.images, ["httpd"]);
    }

    #[test]
    fn an_invalid_reference_names_its_parameter() {
        let s = settings(&[
            ("images", "httpd"),
            ("images/team-a", "acme/ok, Acme/Bad"),
            ("elasticsearch/url", "https://es"),
        ])
        .expect("valid");
        let parsed = s.parse_images(&s.images);
        assert_eq!(
            parsed
                .specs
                .iter()
                .map(|(r, _)| r.as_str())
                .collect::<Vec<_>>(),
            ["httpd", "acme/ok"]
        );
        assert_eq!(
            parsed.invalid,
            [(
                "Acme/Bad".to_owned(),
                "invalid reference (in /docker-pulls/images/team-a): repository names must be lowercase"
                    .to_owned()
            )]
        );
        // References from the event carry no parameter.
        let parsed = s.parse_images(&["a/b/c".to_owned()]);
        assert_eq!(
            parsed.invalid[0].1,
            "invalid reference: too many path parts: Docker Hub repositories are `namespace/name`"
        );
        // Local mode's pseudo-prefix is no SSM parameter.
        let local = Settings::from_parameters(
            "(local)",
            &params(&[("images", "Bad")]),
            Needs {
                images: true,
                elasticsearch: false,
            },
        )
        .expect("valid");
        assert!(local.image_sources.is_empty());
    }

    #[test]
    fn namespace_counts_is_details_listing_or_an_error_naming_the_parameter() {
        let base = [("images", "httpd"), ("elasticsearch/url", "https://es")];
        assert_eq!(
            settings(&base).expect("valid").namespace_counts,
            NamespaceCounts::Details
        );
        for (value, expected) in [
            ("details", NamespaceCounts::Details),
            (" listing\n", NamespaceCounts::Listing),
        ] {
            let mut pairs = base.to_vec();
            pairs.push(("dockerhub/namespace_counts", value));
            assert_eq!(settings(&pairs).expect("valid").namespace_counts, expected);
        }
        let mut pairs = base.to_vec();
        pairs.push(("dockerhub/namespace_counts", "Listing"));
        let err = settings(&pairs).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "invalid SSM parameter /docker-pulls/dockerhub/namespace_counts: \"Listing\" is neither `details` (the default) nor `listing`"
        );
    }

    #[test]
    fn hub_credentials_are_read() {
        let s = settings(&[
            ("images", "acme/private"),
            ("elasticsearch/url", "https://es"),
            ("dockerhub/username", "acme"),
            ("dockerhub/token", "dckr_pat_secret"),
        ])
        .expect("valid");
        let creds = s.hub_credentials.expect("creds");
        assert_eq!(creds.username, "acme");
        assert_eq!(creds.token.expose(), "dckr_pat_secret");
        assert!(!format!("{creds:?}").contains("dckr_pat_secret"));
    }

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
                max_event_age: std::time::Duration::from_secs(900),
            }
        );
        let env = Environment::from_vars(|name| match name {
            "SSM_PREFIX" => Some("/prod/pulls/".into()),
            "HUB_CONCURRENCY" => Some("32".into()),
            "DOCKER_HUB_URL" => Some("http://127.0.0.1:8080".into()),
            "SPOOL_BUCKET" => Some(" pulls-spool ".into()),
            "MAX_EVENT_AGE" => Some("600".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(env.spool_bucket.as_deref(), Some("pulls-spool"));
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
