//! Settings for one run, read from SSM Parameter Store on every invocation
//! (so a change applies at the next run), or given directly in local mode.
//!
//! Reading is split from interpreting: [`ParameterStore`] fetches a prefix's
//! parameters, and [`Settings::from_parameters`] turns them into typed
//! settings without I/O, so every rule here is unit-tested. The parts:
//! [`environment`] (the process environment), [`ssm`] (Parameter Store) and
//! [`elasticsearch`] (the cluster's settings and their checks).

mod elasticsearch;
mod environment;
mod insights;
mod ssm;

pub use elasticsearch::{
    AOSS_PIPELINE_REFUSED, AwsService, EsAuth, EsSettings, decode_cloud_id, region_from_host,
    signing_region,
};
pub use environment::Environment;
pub use ssm::{ParameterStore, SsmParameterStore, SsmSettings};

use crate::error::Error;
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

/// A value that must never be printed: there is no `Display`, and `Debug`
/// shows `Secret(***)`. Making one registers the value with
/// [`crate::secrets`], so a server that echoes it back (AWS does) has it
/// masked in every message, log line and error.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        crate::secrets::register(&value);
        Self(value)
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
    /// `insights/*`: when pulls spike or stall (see [`crate::insights`]).
    pub insights: crate::insights::alerts::Thresholds,
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

        let elasticsearch = elasticsearch::read(
            get,
            |key| parameters.get(key).map(String::as_str),
            full_name,
            needs.elasticsearch,
        )?;

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

        let insights = insights::read(get, full_name)?;

        Ok(Settings {
            images,
            image_sources,
            elasticsearch,
            hub_credentials,
            namespace_counts,
            insights,
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

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

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
    fn aws_auth_signs_instead_of_credentials() {
        let url = (
            "elasticsearch/url",
            "https://search-d.eu-west-1.es.amazonaws.com",
        );
        let s =
            settings(&[("images", "httpd"), url, ("elasticsearch/aws_auth", "es")]).expect("valid");
        let es = s.elasticsearch.expect("es");
        assert_eq!(es.auth, EsAuth::Aws(AwsService::Es));
        assert_eq!(es.aws_service(), Some(AwsService::Es));
        assert_eq!(es.auth.header_value(), None);
        // No pipeline under SigV4: AWS ignores a signed POST's query.
        assert_eq!(es.pipeline, None);
        let err = settings(&[
            ("images", "httpd"),
            url,
            ("elasticsearch/aws_auth", "es"),
            ("elasticsearch/pipeline", "docker-hub-pulls"),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            format!(
                "invalid SSM parameter /docker-pulls/elasticsearch/pipeline: {}",
                elasticsearch::SIGV4_PIPELINE_REFUSED
            )
        );

        let err =
            settings(&[("images", "httpd"), url, ("elasticsearch/aws_auth", "iam")]).unwrap_err();
        assert!(matches!(err, Error::InvalidParameter { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "invalid SSM parameter /docker-pulls/elasticsearch/aws_auth: \"iam\" is neither `es` (an Amazon OpenSearch Service domain) nor `aoss` (an OpenSearch Serverless collection)"
        );

        for (other, value) in [
            ("elasticsearch/api_key", "a2V5OnNlY3JldA=="),
            ("elasticsearch/username", "docker_pulls_writer"),
            ("elasticsearch/password", "never-printed"),
        ] {
            let err = settings(&[
                ("images", "httpd"),
                url,
                ("elasticsearch/aws_auth", "es"),
                (other, value),
            ])
            .unwrap_err()
            .to_string();
            assert!(
                err.starts_with("invalid SSM parameter /docker-pulls/elasticsearch/aws_auth: set together with /docker-pulls/")
                    && err.contains(other),
                "{err}"
            );
            assert!(!err.contains(value), "{err}");
        }
        let err = settings(&[
            ("images", "httpd"),
            (
                "elasticsearch/url",
                "https://elastic:never-printed@es.example.com",
            ),
            ("elasticsearch/aws_auth", "aoss"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/docker-pulls/elasticsearch/url (user:password@ in it)"),
            "{err}"
        );
        assert!(!err.contains("never-printed"), "{err}");
    }

    #[test]
    fn credentials_are_refused_over_plain_http_except_to_this_machine() {
        for (pairs, credential) in [
            (
                vec![("elasticsearch/api_key", "a2V5OnNlY3JldA==")],
                "/docker-pulls/elasticsearch/api_key",
            ),
            (
                vec![
                    ("elasticsearch/username", "writer"),
                    ("elasticsearch/password", "never-printed"),
                ],
                "/docker-pulls/elasticsearch/password",
            ),
            (
                vec![("elasticsearch/aws_auth", "es")],
                "/docker-pulls/elasticsearch/aws_auth",
            ),
        ] {
            let mut remote = vec![
                ("images", "httpd"),
                ("elasticsearch/url", "http://es.example.com:9200"),
            ];
            remote.extend(pairs.iter().copied());
            let err = settings(&remote).unwrap_err().to_string();
            assert!(
                err.starts_with("invalid SSM parameter /docker-pulls/elasticsearch/url: http://es.example.com:9200 is plain http://")
                    && err.contains(credential),
                "{err}"
            );
            assert!(
                !err.contains("never-printed") && !err.contains("a2V5"),
                "{err}"
            );
            for local in [
                "http://127.0.0.1:9200",
                "http://localhost:9200",
                "http://[::1]:9200",
            ] {
                let mut pairs_local = vec![("images", "httpd"), ("elasticsearch/url", local)];
                pairs_local.extend(pairs.iter().copied());
                assert!(settings(&pairs_local).is_ok(), "{local}");
            }
        }
        // Credentials in the URL itself name the URL.
        let err = settings(&[
            ("images", "httpd"),
            (
                "elasticsearch/url",
                "http://writer:never-printed@es.example.com",
            ),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("credentials of /docker-pulls/elasticsearch/url"),
            "{err}"
        );
        assert!(!err.contains("never-printed"), "{err}");
        // Without credentials plain http:// is the user's business.
        assert!(
            settings(&[
                ("images", "httpd"),
                ("elasticsearch/url", "http://es.example.com:9200")
            ])
            .is_ok()
        );
    }

    #[test]
    fn aws_region_is_read_and_checked_against_the_host() {
        let custom = ("elasticsearch/url", "https://opensearch.internal.example");
        let s = settings(&[
            ("images", "httpd"),
            custom,
            ("elasticsearch/aws_auth", "es"),
            ("elasticsearch/aws_region", "ap-northeast-3"),
        ])
        .expect("valid");
        assert_eq!(
            s.elasticsearch.expect("es").aws_region.as_deref(),
            Some("ap-northeast-3")
        );
        let err = settings(&[
            ("images", "httpd"),
            (
                "elasticsearch/url",
                "https://search-d.eu-west-1.es.amazonaws.com",
            ),
            ("elasticsearch/aws_auth", "es"),
            ("elasticsearch/aws_region", "us-east-1"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with(
                "invalid SSM parameter /docker-pulls/elasticsearch/aws_region: us-east-1 differs"
            ),
            "{err}"
        );
    }

    #[test]
    fn serverless_names_no_pipeline_and_refuses_one() {
        let url = (
            "elasticsearch/url",
            "https://abc.eu-west-1.aoss.amazonaws.com",
        );
        let s = settings(&[("images", "httpd"), url, ("elasticsearch/aws_auth", "aoss")])
            .expect("valid");
        let es = s.elasticsearch.expect("es");
        assert_eq!(es.auth, EsAuth::Aws(AwsService::Aoss));
        assert_eq!(es.pipeline, None, "no pipeline by default on Serverless");
        let s = settings(&[
            ("images", "httpd"),
            url,
            ("elasticsearch/aws_auth", "aoss"),
            ("elasticsearch/pipeline", "none"),
        ])
        .expect("valid");
        assert_eq!(s.elasticsearch.expect("es").pipeline, None);
        for name in ["docker-hub-pulls", "mine"] {
            let err = settings(&[
                ("images", "httpd"),
                url,
                ("elasticsearch/aws_auth", "aoss"),
                ("elasticsearch/pipeline", name),
            ])
            .unwrap_err();
            assert_eq!(
                err.to_string(),
                "invalid SSM parameter /docker-pulls/elasticsearch/pipeline: OpenSearch Serverless (elasticsearch/aws_auth = aoss) takes no ingest pipeline for docker-pulls; remove the parameter or set it to none"
            );
        }
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
}
