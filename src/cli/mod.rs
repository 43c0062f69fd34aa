//! The one-shot command line: the same run as the Lambda, with settings from
//! flags and environment instead of SSM, so it works without an AWS account.
//! Without `--es-url` it indexes nothing and prints the documents as NDJSON.
//! It writes to a cluster only when this command line asks for it: `--es-url`
//! names the cluster, or `--ssm --write` (with `--ssm` alone a run is a dry
//! run, and `--setup` or `replay` are refused), because the cluster SSM
//! names is usually production. A writing command's first stderr line names
//! the cluster ([`writing_line`]).
//!
//! This file parses the command line and dispatches; each subcommand lives
//! in a file of its own: [`run`] (a run, or `--setup`), [`replay`],
//! [`export_index`], [`compact`]. [`settings`] turns flags and environment into the
//! settings SSM would give.

mod compact;
mod export_index;
mod insights;
mod replay;
mod report;
mod run;
mod settings;

pub use settings::settings_from_options;

use crate::Error;
use crate::archive::ArchiveStore;
use crate::config::Environment;
use crate::replay::{ReplayRequest, parse_bound};
use crate::retry::Deadline;
use crate::run::Job;
use std::ffi::OsString;
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
                           (--es-url URL | --ssm --write) [--index PREFIX] [--cursor CURSOR]
       docker-pulls export-index --index PATTERN --archive DIR|s3://BUCKET
                           (--es-url URL | --ssm) [--from DATE] [--to DATE]
       docker-pulls insights --archive DIR|s3://BUCKET [--time RFC3339]
       docker-pulls report --archive DIR|s3://BUCKET [--out FILE] [--time RFC3339]
       docker-pulls compact --archive DIR|s3://BUCKET --from DAY --to DAY

  --images LIST     image references, separated by commas or spaces; may repeat
                    (--image is the same flag)
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
  --ssm             read the settings from SSM under SSM_PREFIX instead of flags;
                    a run is then a dry run (it says so on stderr), and --setup
                    and replay are refused, unless --write is given
  --write           with --ssm: write to the cluster SSM names (a run indexes,
                    --setup installs, replay indexes)
  -h, --help        this text

A command that writes to a cluster says which on its first stderr line:
docker-pulls: writing to URL (index PREFIX-<yyyy>)

replay indexes every archived document with FROM <= @timestamp < TO (dates
like 2026-01-01, or RFC 3339 times) into PREFIX-<yyyy>, with the same _id as
the runs: what is already there counts as already indexed. --cursor CURSOR
(the `cursor` a replay that stopped printed) continues right after the last
document it delivered. export-index copies the documents of the indices
PATTERN names (e.g. 'docker-pulls-*') into the archive, trimmed to the
document. compact writes each day from FROM up to, not including, TO (as
replay's range) as one Parquet file, parquet/date=YYYY-MM-DD/, beside the raw
objects (after an import, or for days the daily compaction missed). All print
a summary on stdout; replay and export-index show their progress on stderr.
They exit with 1 when a document was refused or not indexed, or a day could
not be compacted.

insights prints, for every repository in the archive, its total and its pulls
over the last day, week and month (- when the archive cannot tell, `down` when
the count went backwards) and the alert conditions that hold. report writes the
stats page (default report.html): a 90-day daily-pulls chart per repository.
Both read the archive at its newest measurement, or at --time.

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
    /// `insights`: the gains and alerts table from the archive.
    Insights,
    /// `report`: the stats page from the archive.
    Report,
    /// `compact`: archive days into Parquet.
    Compact,
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
    /// `report --out FILE`.
    pub out: Option<std::path::PathBuf>,
    pub dry_run: bool,
    pub setup: bool,
    pub ssm: bool,
    /// `--write`: with `--ssm`, write to the cluster SSM names.
    pub write: bool,
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
            Value(command) if first && command == "insights" => options.command = Command::Insights,
            Value(command) if first && command == "report" => options.command = Command::Report,
            Long("out") => options.out = Some(parser.value()?.into()),
            Value(command) if first && command == "compact" => options.command = Command::Compact,
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
            Long("write") => options.write = true,
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
        Command::Compact if options.from.is_none() || options.to.is_none() => {
            Some("compact needs --from DAY and --to DAY (days like 2026-01-01)")
        }
        Command::Compact if options.archive.is_none() => {
            Some("compact needs --archive DIR or --archive s3://BUCKET")
        }
        Command::ExportIndex if options.index.is_none() => {
            Some("export-index needs --index PATTERN (e.g. 'docker-pulls-*')")
        }
        Command::Insights | Command::Report if options.archive.is_none() => {
            Some("--archive DIR or --archive s3://BUCKET is needed")
        }
        Command::Replay | Command::ExportIndex if options.archive.is_none() && !options.ssm => {
            Some("--archive DIR or --archive s3://BUCKET is needed (or --ssm with ARCHIVE_BUCKET)")
        }
        _ => None,
    };
    if let Some(message) = missing.or_else(|| unsafe_write(&options)) {
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
    if options.command == Command::Compact && !options.help {
        compact::days(from.unwrap_or_default(), to.unwrap_or_default())?;
    }
    for (flag, value) in [("from", from), ("to", to)] {
        if let Some(text) = value {
            parse_bound(flag, text)?;
        }
    }
    Ok(options)
}

/// Why these flags would write where the command line did not say, or
/// contradict each other about writing.
fn unsafe_write(options: &Options) -> Option<&'static str> {
    if options.help {
        return None;
    }
    let writes = options.setup || options.command == Command::Replay;
    match () {
        _ if options.ssm && options.es_url.is_some() => {
            Some("--ssm and --es-url: with --ssm the cluster comes from SSM; give one or the other")
        }
        _ if options.write && options.dry_run => {
            Some("--write and --dry-run contradict each other; give one or the other")
        }
        _ if options.write && !options.ssm && options.es_url.is_none() => Some(
            "--write needs --ssm (it writes to the cluster SSM names); --es-url URL writes by itself",
        ),
        _ if options.ssm && writes && !options.write => Some(if options.setup {
            "--setup with --ssm writes to the cluster SSM names: add --write to do it"
        } else {
            "replay with --ssm indexes into the cluster SSM names: add --write to do it"
        }),
        _ => None,
    }
}

/// The first stderr line of a command that writes to a cluster: where,
/// without credentials (the settings keep them out of the URL).
pub fn writing_line(es: &crate::config::EsSettings) -> String {
    format!(
        "docker-pulls: writing to {} (index {}-<yyyy>)",
        es.url, es.index_prefix
    )
}

/// What a `--ssm` run without `--write` says on stderr first.
pub const SSM_DRY_RUN_LINE: &str = "docker-pulls: dry run: --ssm without --write indexes nothing; add --write to index into the cluster SSM names";

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
        Command::Run => run::run(&options, &env, http).await.map(|()| true),
        Command::Replay | Command::ExportIndex => history(&options, &env, http).await,
        Command::Insights => insights::insights(&options).await,
        Command::Report => report::report(&options).await,
        Command::Compact => compact::compact(&options).await,
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {}", error.message());
            ExitCode::FAILURE
        }
    }
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

/// `replay` and `export-index` with the job built for them: without a
/// Lambda deadline (a month of history takes minutes), progress on stderr.
async fn history_with<S: crate::config::SettingsSource>(
    job: &Job<S>,
    options: &Options,
) -> Result<bool, Error> {
    let deadline = Deadline::after(Duration::from_secs(30 * 86_400));
    if options.command == Command::Replay {
        // The first line names the cluster; nothing is written before it.
        eprintln!("{}", writing_line(&job.elasticsearch().await?));
    }
    let progress = crate::progress::Stderr::default();
    match options.command {
        Command::Replay => replay::replay(job, options, deadline, &progress).await,
        _ => export_index::export_index(job, options, deadline, &progress).await,
    }
}

/// A summary on stdout, for people and for `jq`.
fn print_json(summary: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(summary).unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn only_the_command_line_makes_a_local_command_write() {
        // --ssm alone: a run parses (and is a dry run); with --write it writes.
        let run = parse_args(args(&["--ssm"])).expect("valid");
        assert!(run.ssm && !run.write);
        let run = parse_args(args(&["--ssm", "--write"])).expect("valid");
        assert!(run.ssm && run.write);
        for ok in [
            &["--ssm", "--setup", "--write"][..],
            &[
                "replay",
                "--from",
                "2026-01-01",
                "--to",
                "2026-02-01",
                "--ssm",
                "--write",
            ],
            &["--es-url", "http://es:9200", "--setup"],
            &["--es-url", "http://es:9200", "--write"],
            &["export-index", "--index", "docker-pulls-*", "--ssm"],
        ] {
            assert!(parse_args(args(ok)).is_ok(), "{ok:?}");
        }
        for (bad, why) in [
            (
                &["--ssm", "--setup"][..],
                "--setup with --ssm writes to the cluster SSM names: add --write",
            ),
            (
                &[
                    "replay",
                    "--from",
                    "2026-01-01",
                    "--to",
                    "2026-02-01",
                    "--ssm",
                ],
                "replay with --ssm indexes into the cluster SSM names: add --write",
            ),
            (&["--write"], "--write needs --ssm"),
            (&["--setup", "--write"], "--write needs --ssm"),
            (
                &["--ssm", "--write", "--dry-run"],
                "--write and --dry-run contradict",
            ),
            (
                &["--ssm", "--es-url", "http://es:9200"],
                "--ssm and --es-url",
            ),
        ] {
            let error = parse_args(args(bad)).unwrap_err().to_string();
            assert!(error.contains(why), "{bad:?}: {error}");
        }
        assert!(
            parse_args(args(&["--ssm", "--setup", "--help"]))
                .expect("help")
                .help
        );
    }

    #[test]
    fn the_writing_line_names_the_cluster_and_the_index() {
        let options = parse_args(args(&[
            "--es-url",
            "https://elastic:pw@es.example.com:9243/",
            "--index",
            "pulls",
        ]))
        .expect("valid");
        let settings = settings_from_options(&options, |_| None).expect("valid");
        let line = writing_line(&settings.elasticsearch.expect("es"));
        assert_eq!(
            line,
            "docker-pulls: writing to https://es.example.com:9243 (index pulls-<yyyy>)"
        );
    }

    #[test]
    fn replay_and_export_index_flags_parse_and_say_what_is_missing() {
        let compact = parse_args(args(&[
            "compact",
            "--archive",
            "s3://pulls",
            "--from",
            "2021-01-01",
            "--to",
            "2026-03-02",
        ]))
        .expect("valid");
        assert_eq!(
            (
                compact.command,
                compact.archive.as_deref(),
                compact.from.as_deref()
            ),
            (Command::Compact, Some("s3://pulls"), Some("2021-01-01"))
        );
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
                "is not TIME/NAMESPACE/NAME or TIME",
            ),
            (&["export-index", "--archive", "d"], "--index PATTERN"),
            (
                &["compact", "--archive", "d", "--from", "2026-01-01"],
                "compact needs --from DAY and --to DAY",
            ),
            (
                &["compact", "--from", "2026-01-01", "--to", "2026-01-02"],
                "compact needs --archive",
            ),
            (
                &[
                    "compact",
                    "--archive",
                    "d",
                    "--from",
                    "2026-01-02",
                    "--to",
                    "2026-01-01",
                ],
                "must be before --to",
            ),
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
}
