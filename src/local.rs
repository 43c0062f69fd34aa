//! The one-shot local mode: the same run as the Lambda, with settings from
//! flags and environment instead of SSM, so it works without an AWS account.
//! Without `--es-url` it indexes nothing and prints the documents as NDJSON.

use crate::config::{Environment, Settings};
use crate::event::{Action, Request};
use crate::retry::Deadline;
use crate::run::{Job, Summary};
use crate::spool::{DirSpool, SpoolStore};
use crate::{Error, document::RunTime};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// What the seed article tracked; shown when no `--images` are given.
pub const DEFAULT_IMAGES: [&str; 3] = ["httpd", "library/mysql", "radoondas/netatmobeat"];

pub const USAGE: &str = "\
docker-pulls: record Docker Hub pull statistics in Elasticsearch.

In AWS Lambda (AWS_LAMBDA_RUNTIME_API set, no arguments) it serves events and
reads its settings from SSM. Anywhere else it runs once:

usage: docker-pulls [run] [options]

  --images LIST     image references, separated by commas or spaces; may repeat
                    (default: httpd library/mysql radoondas/netatmobeat)
  --es-url URL      index into this Elasticsearch; without it, print the
                    documents as NDJSON and index nothing
  --index PREFIX    index prefix, documents go to PREFIX-<yyyy> (default docker-pulls)
  --pipeline NAME   ingest pipeline, `none` to disable (default docker-hub-pulls;
                    none with --aws-auth aoss)
  --aws-auth es|aoss
                    sign requests with SigV4 for an Amazon OpenSearch Service
                    domain (es) or OpenSearch Serverless (aoss), with the AWS
                    credentials and region of the environment or profile
  --time RFC3339    the run's timestamp (default: now)
  --spool DIR       keep documents Elasticsearch did not take in DIR/spool/ and
                    send them on a later run (as SPOOL_BUCKET does in Lambda)
  --dry-run         fetch and print the documents, index nothing
  --setup           install the ingest pipeline and index template, then exit
  --ssm             read the settings from SSM under SSM_PREFIX instead of flags
  -h, --help        this text

environment: ES_API_KEY, or ES_USERNAME and ES_PASSWORD (Elasticsearch
credentials); DOCKERHUB_USERNAME and DOCKERHUB_TOKEN (a personal access
token); DOCKER_HUB_URL, HUB_CONCURRENCY, SSM_PREFIX as in Lambda; with --ssm,
SPOOL_BUCKET too (unless --spool is given); with --aws-auth (or --ssm), the AWS
SDK's AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, ….
";

/// The parsed command line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub images: Vec<String>,
    pub es_url: Option<String>,
    pub index: Option<String>,
    pub pipeline: Option<String>,
    pub aws_auth: Option<String>,
    pub time: Option<String>,
    pub spool: Option<std::path::PathBuf>,
    pub dry_run: bool,
    pub setup: bool,
    pub ssm: bool,
    pub help: bool,
}

/// Parses the arguments after the program name.
pub fn parse_args(args: Vec<OsString>) -> Result<Options, lexopt::Error> {
    use lexopt::prelude::*;
    let mut options = Options::default();
    let mut parser = lexopt::Parser::from_args(args);
    let mut first = true;
    while let Some(arg) = parser.next()? {
        match arg {
            Value(command) if first && command == "run" => {}
            Long("images") | Long("image") => {
                let list = parser.value()?.string()?;
                options
                    .images
                    .extend(crate::image_ref::split_list(&list).map(str::to_owned));
            }
            Long("es-url") => options.es_url = Some(parser.value()?.string()?),
            Long("index") => options.index = Some(parser.value()?.string()?),
            Long("pipeline") => options.pipeline = Some(parser.value()?.string()?),
            Long("aws-auth") => options.aws_auth = Some(parser.value()?.string()?),
            Long("time") => options.time = Some(parser.value()?.string()?),
            Long("spool") => options.spool = Some(parser.value()?.into()),
            Long("dry-run") => options.dry_run = true,
            Long("setup") => options.setup = true,
            Long("ssm") => options.ssm = true,
            Short('h') | Long("help") => options.help = true,
            _ => return Err(arg.unexpected()),
        }
        first = false;
    }
    Ok(options)
}

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
        elasticsearch: options.setup,
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

/// Runs once from the command line; the process's exit code.
pub async fn main(args: Vec<OsString>, env: Environment, http: reqwest::Client) -> ExitCode {
    let options = match parse_args(args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {error}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if options.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(&options, &env, http).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: &Options, env: &Environment, http: reqwest::Client) -> Result<(), Error> {
    let time = options
        .time
        .as_deref()
        .map(RunTime::parse)
        .transpose()
        .map_err(|e| Error::InvalidEvent(e.to_string()))?;
    let request = Request {
        action: if options.setup {
            Action::Setup
        } else {
            Action::Run
        },
        time,
        images: (!options.images.is_empty()).then(|| options.images.clone()),
        dry_run: options.dry_run || (options.es_url.is_none() && !options.ssm),
        // A person's run: an explicit --time is honoured as given.
        scheduled: false,
    };
    // Generous: a local run is not bounded by a Lambda timeout.
    let deadline = Deadline::after(Duration::from_secs(15 * 60));

    let dir_spool = options
        .spool
        .as_ref()
        .map(|dir| Arc::new(DirSpool::new(dir)) as Arc<dyn SpoolStore>);
    if options.ssm {
        // As in Lambda (SPOOL_BUCKET included), unless --spool says otherwise.
        let mut job = crate::wiring::ssm_job(env, http).await?;
        if let Some(spool) = dir_spool {
            job = job.with_spool(spool);
        }
        return finish(&job, &request, deadline).await;
    }
    let hub = crate::wiring::hub_client(env, &http)?;
    let settings = settings_from_options(options, |name| std::env::var(name).ok())?;
    let mut job = Job::new(settings, hub, http).with_max_event_age(env.max_event_age);
    if options.aws_auth.is_some() {
        // The AWS CLI's credentials and region: environment, profile, SSO.
        let aws =
            crate::tls::aws_sdk_config()
                .await
                .map_err(|error| Error::InvalidEnvironment {
                    name: "SSL_CERT_FILE",
                    reason: error.to_string(),
                })?;
        job = job.with_aws(&aws);
    }
    if let Some(spool) = dir_spool {
        job = job.with_spool(spool);
    }
    finish(&job, &request, deadline).await
}

async fn finish<S: crate::config::SettingsSource>(
    job: &Job<S>,
    request: &Request,
    deadline: Deadline,
) -> Result<(), Error> {
    if request.action == Action::Setup {
        let response = job.setup(deadline).await?;
        println!("{response:#}");
        return Ok(());
    }
    let summary = job.run(request, deadline).await?;
    print_summary(summary);
    Ok(())
}

/// Documents (dry run) go to stdout as NDJSON; the summary goes to stdout
/// after a real run, to stderr after a dry run so the NDJSON stays clean.
fn print_summary(mut summary: Summary) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match summary.documents.take() {
        Some(documents) => {
            for document in &documents {
                if serde_json::to_writer(&mut out, document).is_err()
                    || out.write_all(b"\n").is_err()
                {
                    return;
                }
            }
            let _ = out.flush();
            eprintln!("{}", serde_json::to_string(&summary).unwrap_or_default());
        }
        None => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&summary).unwrap_or_default()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_PIPELINE, EsAuth, HubCredentials, Secret};

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn flags_parse() {
        let options = parse_args(args(&[
            "run",
            "--images",
            "httpd, radoondas/*",
            "--image=acme/app",
            "--es-url",
            "http://localhost:9200",
            "--index",
            "pulls",
            "--pipeline",
            "none",
            "--aws-auth",
            "es",
            "--time",
            "2026-11-27T18:35:00Z",
            "--spool",
            "/var/spool/docker-pulls",
            "--dry-run",
        ]))
        .expect("valid");
        assert_eq!(options.images, ["httpd", "radoondas/*", "acme/app"]);
        assert_eq!(options.es_url.as_deref(), Some("http://localhost:9200"));
        assert_eq!(options.index.as_deref(), Some("pulls"));
        assert_eq!(options.pipeline.as_deref(), Some("none"));
        assert_eq!(options.aws_auth.as_deref(), Some("es"));
        assert_eq!(
            options.spool.as_deref(),
            Some(std::path::Path::new("/var/spool/docker-pulls"))
        );
        assert!(parse_args(args(&["--spool"])).is_err());
        assert!(options.dry_run && !options.setup && !options.ssm);
        assert!(parse_args(args(&["--bogus"])).is_err());
        assert!(parse_args(args(&["--es-url"])).is_err());
        assert!(parse_args(args(&["-h"])).expect("valid").help);
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
