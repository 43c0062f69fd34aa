//! The one-shot local mode: the same run as the Lambda, with settings from
//! flags and environment instead of SSM, so it works without an AWS account.
//! Without `--es-url` it indexes nothing and prints the documents as NDJSON.

use crate::archive::ArchiveStore;
use crate::config::{Environment, Settings};
use crate::event::{Action, Request};
use crate::export::ExportRequest;
use crate::replay::{ReplayRequest, parse_bound};
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
       docker-pulls replay --from DATE --to DATE [--archive DIR|s3://BUCKET]
                           (--es-url URL | --ssm) [--index PREFIX] [--cursor KEY]
       docker-pulls export-index --index PATTERN --archive DIR|s3://BUCKET
                           (--es-url URL | --ssm) [--from DATE] [--to DATE]

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
  --archive DIR     archive every run's documents in DIR/archive/ (as
                    ARCHIVE_BUCKET does in Lambda); s3://BUCKET for an S3 bucket
  --dry-run         fetch and print the documents, index nothing
  --setup           install the ingest pipeline and index template, then exit
  --ssm             read the settings from SSM under SSM_PREFIX instead of flags
  -h, --help        this text

replay indexes every archived document with FROM <= @timestamp < TO (dates
like 2026-01-01, or RFC 3339 times) into PREFIX-<yyyy>, with the same _id as
the runs: what is already there counts as already indexed. --cursor KEY
continues a replay that stopped. export-index copies the documents of the
indices PATTERN names (e.g. 'docker-pulls-*') into the archive, trimmed to the
document. Both show their progress on stderr, print a summary on stdout, and
exit with 1 when a document was refused or not indexed.

environment: ES_API_KEY, or ES_USERNAME and ES_PASSWORD (Elasticsearch
credentials); DOCKERHUB_USERNAME and DOCKERHUB_TOKEN (a personal access
token); DOCKER_HUB_URL, HUB_CONCURRENCY, SSM_PREFIX as in Lambda; with --ssm,
SPOOL_BUCKET and ARCHIVE_BUCKET too (unless --spool or --archive is given);
with --aws-auth (or --ssm), the AWS SDK's AWS_PROFILE, AWS_REGION,
AWS_ACCESS_KEY_ID, ….
";

/// What the command line asks for.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// One run (`run`, or no command).
    #[default]
    Run,
    /// `replay`: archived documents indexed again.
    Replay,
    /// `export-index`: an index's documents copied into the archive.
    ExportIndex,
}

/// The parsed command line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    pub command: Command,
    /// `--archive`: a directory, or `s3://BUCKET`.
    pub archive: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cursor: Option<String>,
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
            Value(command) if first && command == "replay" => options.command = Command::Replay,
            Value(command) if first && command == "export-index" => {
                options.command = Command::ExportIndex
            }
            Long("archive") => options.archive = Some(parser.value()?.string()?),
            Long("from") => options.from = Some(parser.value()?.string()?),
            Long("to") => options.to = Some(parser.value()?.string()?),
            Long("cursor") => options.cursor = Some(parser.value()?.string()?),
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
    let missing = match options.command {
        _ if options.help => None,
        Command::Replay if options.from.is_none() || options.to.is_none() => {
            Some("replay needs --from and --to")
        }
        Command::ExportIndex if options.index.is_none() => {
            Some("export-index needs --index PATTERN (e.g. 'docker-pulls-*')")
        }
        Command::Replay | Command::ExportIndex if options.archive.is_none() && !options.ssm => {
            Some("--archive DIR or --archive s3://BUCKET is needed (or --ssm with ARCHIVE_BUCKET)")
        }
        _ => None,
    };
    if let Some(message) = missing {
        return Err(message.into());
    }
    // Bounds and cursor are checked here, so a mistake prints the usage.
    let (from, to) = (options.from.as_deref(), options.to.as_deref());
    if options.command == Command::Replay && !options.help {
        ReplayRequest::new(
            from.unwrap_or_default(),
            to.unwrap_or_default(),
            options.cursor.as_deref(),
        )?;
    }
    for (flag, value) in [("from", from), ("to", to)] {
        if let Some(text) = value {
            parse_bound(flag, text)?;
        }
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
    let outcome = match options.command {
        Command::Run => run(&options, &env, http).await.map(|()| true),
        Command::Replay | Command::ExportIndex => history(&options, &env, http).await,
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
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
    let archive = open_archive(options).await?;
    if options.ssm {
        // As in Lambda (SPOOL_BUCKET and ARCHIVE_BUCKET included), unless
        // --spool or --archive says otherwise.
        let mut job = crate::wiring::ssm_job(env, http).await?;
        if let Some(spool) = dir_spool {
            job = job.with_spool(spool);
        }
        if let Some(archive) = archive {
            job = job.with_archive(archive);
        }
        return finish(&job, &request, deadline).await;
    }
    let hub = crate::wiring::hub_client(env, &http)?;
    let settings = settings_from_options(options, |name| std::env::var(name).ok())?;
    let job = Job::new(settings, hub, http).with_max_event_age(env.max_event_age);
    let mut job = signing(job, options).await?;
    if let Some(spool) = dir_spool {
        job = job.with_spool(spool);
    }
    if let Some(archive) = archive {
        job = job.with_archive(archive);
    }
    finish(&job, &request, deadline).await
}

/// The archive `--archive` names, if any.
async fn open_archive(options: &Options) -> Result<Option<Arc<dyn ArchiveStore>>, Error> {
    match &options.archive {
        Some(spec) => crate::archive::open(spec)
            .await
            .map(Some)
            .map_err(|e| Error::Archive(e.to_string())),
        None => Ok(None),
    }
}

/// `replay` and `export-index`: without a deadline, with progress on
/// stderr and the summary on stdout; whether every document made it.
async fn history(
    options: &Options,
    env: &Environment,
    http: reqwest::Client,
) -> Result<bool, Error> {
    let archive = open_archive(options).await?;
    if options.ssm {
        let mut job = crate::wiring::ssm_job(env, http.clone()).await?;
        if let Some(archive) = archive {
            job = job.with_archive(archive);
        }
        return history_with(&job, options).await;
    }
    let mut flags = options.clone();
    if options.command == Command::ExportIndex {
        // --index is the pattern to read, not the prefix to write.
        flags.index = None;
    }
    let settings = settings_from_options(&flags, |name| std::env::var(name).ok())?;
    let hub = crate::wiring::hub_client(env, &http)?;
    let mut job = signing(Job::new(settings, hub, http), options).await?;
    if let Some(archive) = archive {
        job = job.with_archive(archive);
    }
    history_with(&job, options).await
}

/// With `--aws-auth`, signs with the AWS CLI's credentials and region
/// (environment, profile, SSO).
async fn signing<S: crate::config::SettingsSource>(
    job: Job<S>,
    options: &Options,
) -> Result<Job<S>, Error> {
    if options.aws_auth.is_none() {
        return Ok(job);
    }
    let aws = crate::wiring::aws_sdk_config().await?;
    Ok(job.with_aws(&aws))
}

async fn history_with<S: crate::config::SettingsSource>(
    job: &Job<S>,
    options: &Options,
) -> Result<bool, Error> {
    // Not bounded by a Lambda timeout: a month of history takes minutes.
    let deadline = Deadline::after(Duration::from_secs(30 * 86_400));
    let progress = crate::progress::Stderr::default();
    if options.command == Command::Replay {
        let (from, to) = (options.from.as_deref(), options.to.as_deref());
        let request = ReplayRequest::new(
            from.unwrap_or_default(),
            to.unwrap_or_default(),
            options.cursor.as_deref(),
        )
        .map_err(Error::InvalidEvent)?;
        let summary = job.replay(&request, deadline, &progress).await?;
        print_json(&summary);
        return Ok(summary.all_indexed());
    }
    let mut request = ExportRequest::new(options.index.clone().unwrap_or_default());
    for (flag, value, bound) in [
        ("from", &options.from, &mut request.from),
        ("to", &options.to, &mut request.to),
    ] {
        if let Some(text) = value {
            *bound = Some(parse_bound(flag, text).map_err(Error::InvalidEvent)?);
        }
    }
    let (archive, es) = job.history().await?;
    let client = job.es_client(es)?;
    let summary = crate::export::export_index(&client, &*archive, &request, deadline, &progress)
        .await
        .map_err(|e| Error::Archive(e.to_string()))?;
    print_json(&summary);
    Ok(summary.refused == 0)
}

fn print_json(summary: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(summary).unwrap_or_default()
    );
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
    fn replay_and_export_index_flags_parse_and_say_what_is_missing() {
        let options = parse_args(args(&[
            "replay",
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-01T00:00:00Z",
            "--archive",
            "s3://pulls",
            "--es-url",
            "http://es:9200",
            "--cursor",
            "archive/year=2026/month=01/day=05/20260105T100000.000Z-0123456789abcdef.ndjson.gz",
        ]))
        .expect("valid");
        assert_eq!(options.command, Command::Replay);
        assert_eq!(options.archive.as_deref(), Some("s3://pulls"));
        assert_eq!(options.from.as_deref(), Some("2026-01-01"));
        let options = parse_args(args(&[
            "export-index",
            "--index",
            "docker-pulls-*",
            "--archive",
            "/tmp/history",
            "--ssm",
        ]))
        .expect("valid");
        assert_eq!(options.command, Command::ExportIndex);
        assert_eq!(options.index.as_deref(), Some("docker-pulls-*"));
        let run = parse_args(args(&["--archive", "/tmp/a", "--es-url", "http://es:9200"]))
            .expect("valid");
        assert_eq!(
            (run.command, run.archive.as_deref()),
            (Command::Run, Some("/tmp/a"))
        );
        for (bad, why) in [
            (
                &["replay", "--to", "2026-02-01", "--archive", "d"][..],
                "--from and --to",
            ),
            (
                &[
                    "replay",
                    "--from",
                    "2026-02-01",
                    "--to",
                    "2026-01-01",
                    "--archive",
                    "d",
                ],
                "must be before",
            ),
            (
                &["replay", "--from", "2026-01-01", "--to", "2026-02-01"],
                "--archive",
            ),
            (
                &[
                    "replay",
                    "--from",
                    "2026-01-01",
                    "--to",
                    "2026-02-01",
                    "--archive",
                    "d",
                    "--cursor",
                    "x",
                ],
                "not an archive key",
            ),
            (&["export-index", "--archive", "d"], "--index PATTERN"),
            (
                &[
                    "export-index",
                    "--index",
                    "i",
                    "--archive",
                    "d",
                    "--from",
                    "soon",
                ],
                "`from` must be a date",
            ),
        ] {
            let error = parse_args(args(bad)).unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
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
