//! Flags and environment presented as the SSM parameters they stand for, so
//! local mode applies the same rules (URL checks, Cloud ID, credential
//! pairs), and its errors name the flag or variable instead.

use super::{Command, DEFAULT_IMAGES, Options};
use crate::Error;
use crate::config::Settings;

/// Builds settings from flags and `var` (the process environment).
pub fn settings_from_options(
    options: &Options,
    var: impl Fn(&str) -> Option<String>,
) -> Result<Settings, Error> {
    let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    let images = if options.images.is_empty() {
        DEFAULT_IMAGES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        options.images.clone()
    };
    // Reuse the SSM rules (URL checks, Cloud ID, credential pairs) by
    // presenting flags and environment as parameters.
    let mut parameters = std::collections::BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            parameters.insert(key.to_owned(), value);
        }
    };
    put("images", Some(images.join(",")));
    put("elasticsearch/url", options.es_url.clone());
    put("elasticsearch/index", options.index.clone());
    put("elasticsearch/pipeline", options.pipeline.clone());
    put("elasticsearch/aws_auth", options.aws_auth.clone());
    put("elasticsearch/api_key", var("ES_API_KEY"));
    put("elasticsearch/username", var("ES_USERNAME"));
    put("elasticsearch/password", var("ES_PASSWORD"));
    put("dockerhub/username", var("DOCKERHUB_USERNAME"));
    put("dockerhub/token", var("DOCKERHUB_TOKEN"));
    let needs = crate::config::Needs {
        images: true,
        elasticsearch: options.setup || options.command != Command::Run,
    };
    Settings::from_parameters("(local)", &parameters, needs).map_err(|error| match error {
        // Name the flag or variable, not an SSM parameter.
        Error::MissingParameter { name, hint } => Error::MissingParameter {
            name: local_name(&name),
            hint,
        },
        Error::InvalidParameter { name, reason } => Error::InvalidParameter {
            name: local_name(&name),
            reason: local_names_in(&reason),
        },
        other => other,
    })
}

fn local_name(parameter: &str) -> String {
    match parameter.trim_start_matches("(local)/") {
        "elasticsearch/url" => "--es-url",
        "elasticsearch/index" => "--index",
        "elasticsearch/pipeline" => "--pipeline",
        "elasticsearch/aws_auth" => "--aws-auth",
        "elasticsearch/api_key" => "ES_API_KEY",
        "elasticsearch/username" => "ES_USERNAME",
        "elasticsearch/password" => "ES_PASSWORD",
        "dockerhub/username" => "DOCKERHUB_USERNAME",
        "dockerhub/token" => "DOCKERHUB_TOKEN",
        other => other,
    }
    .to_owned()
}

/// `reason` with the parameters it names (`(local)/elasticsearch/api_key`)
/// replaced by their flags and variables.
fn local_names_in(reason: &str) -> String {
    const NAMED: [&str; 6] = [
        "elasticsearch/url",
        "elasticsearch/aws_auth",
        "elasticsearch/api_key",
        "elasticsearch/username",
        "elasticsearch/password",
        "elasticsearch/pipeline",
    ];
    NAMED.iter().fold(reason.to_owned(), |text, key| {
        text.replace(&format!("(local)/{key}"), &local_name(key))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::parse_args;
    use crate::config::{DEFAULT_PIPELINE, EsAuth, HubCredentials, Secret};
    use std::ffi::OsString;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn settings_default_to_the_seed_images_and_credentials_from_env() {
        let options = parse_args(args(&["--es-url", "https://es.example.com"])).expect("valid");
        let settings = settings_from_options(&options, |name| match name {
            "ES_API_KEY" => Some("a2V5OnNlY3JldA==".into()),
            "DOCKERHUB_USERNAME" => Some("acme".into()),
            "DOCKERHUB_TOKEN" => Some("dckr_pat_x".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(settings.images, DEFAULT_IMAGES);
        let es = settings.elasticsearch.expect("es");
        assert_eq!(es.auth, EsAuth::ApiKey(Secret::new("a2V5OnNlY3JldA==")));
        assert_eq!(es.pipeline.as_deref(), Some(DEFAULT_PIPELINE));
        assert_eq!(
            settings.hub_credentials,
            Some(HubCredentials {
                username: "acme".into(),
                token: Secret::new("dckr_pat_x")
            })
        );
    }

    #[test]
    fn local_errors_name_flags_and_variables() {
        let options = parse_args(args(&["--setup"])).expect("valid");
        let error = settings_from_options(&options, |_| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--es-url"), "{error}");
        let options = parse_args(args(&["--es-url", "http://es:9200"])).expect("valid");
        let error =
            settings_from_options(&options, |n| (n == "ES_USERNAME").then(|| "elastic".into()))
                .unwrap_err()
                .to_string();
        assert!(error.contains("ES_PASSWORD"), "{error}");
    }

    #[test]
    fn aws_auth_errors_name_the_flags_and_variables() {
        let options = parse_args(args(&[
            "--es-url",
            "https://search-d.eu-west-1.es.amazonaws.com",
            "--aws-auth",
            "iam",
        ]))
        .expect("valid");
        let error = settings_from_options(&options, |_| None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--aws-auth"), "{error}");
        let options = parse_args(args(&[
            "--es-url",
            "https://search-d.eu-west-1.es.amazonaws.com",
            "--aws-auth",
            "es",
        ]))
        .expect("valid");
        let error = settings_from_options(&options, |n| (n == "ES_API_KEY").then(|| "k".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--aws-auth: set together with ES_API_KEY:"),
            "{error}"
        );
        let options = parse_args(args(&[
            "--es-url",
            "https://abc.eu-west-1.aoss.amazonaws.com",
            "--aws-auth",
            "aoss",
        ]))
        .expect("valid");
        let es = settings_from_options(&options, |_| None)
            .expect("valid")
            .elasticsearch
            .expect("es");
        assert_eq!(es.auth, EsAuth::Aws(crate::config::AwsService::Aoss));
        assert_eq!(es.pipeline, None);
        let options = parse_args(args(&[
            "--es-url",
            "https://abc.eu-west-1.aoss.amazonaws.com",
            "--aws-auth",
            "aoss",
            "--pipeline",
            "docker-hub-pulls",
        ]))
        .expect("valid");
        let error = settings_from_options(&options, |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("invalid SSM parameter --pipeline: OpenSearch Serverless"),
            "{error}"
        );
    }

    #[test]
    fn a_pipeline_name_that_would_break_the_setup_url_is_refused_naming_the_flag() {
        for bad in ["a,b", "pulls*", "a/b", "a?b", "a#b", "a b", "", "_none"] {
            let options = parse_args(args(&["--es-url", "http://es:9200", "--pipeline", bad]))
                .expect("flags parse");
            let error = settings_from_options(&options, |_| None)
                .unwrap_err()
                .to_string();
            assert!(error.contains("--pipeline"), "{bad:?}: {error}");
        }
        let options = parse_args(args(&[
            "--es-url",
            "http://es:9200",
            "--pipeline",
            "pulls-v2",
        ]))
        .expect("flags parse");
        let settings = settings_from_options(&options, |_| None).expect("valid");
        assert_eq!(
            settings.elasticsearch.expect("es").pipeline.as_deref(),
            Some("pulls-v2")
        );
    }
}
