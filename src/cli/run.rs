//! `docker-pulls [run]`: one run (or `--setup`), printing the documents of a
//! dry run as NDJSON and the summary.

use super::{
    Options, SSM_DRY_RUN_LINE, open_archive, settings_from_options, signing, writing_line,
};
use crate::config::Environment;
use crate::event::{Action, Request};
use crate::retry::Deadline;
use crate::run::{Job, Summary};
use crate::spool::{DirSpool, SpoolStore};
use crate::{Error, document::RunTime};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn run(
    options: &Options,
    env: &Environment,
    http: reqwest::Client,
) -> Result<(), Error> {
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
        // Only this command line can make it write: --es-url names the
        // cluster, --ssm needs --write (the cluster SSM names is production).
        dry_run: options.dry_run
            || if options.ssm {
                !options.write
            } else {
                options.es_url.is_none()
            },
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
        return finish(&job, &request, deadline, options).await;
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
    finish(&job, &request, deadline, options).await
}

async fn finish<S: crate::config::SettingsSource>(
    job: &Job<S>,
    request: &Request,
    deadline: Deadline,
    options: &Options,
) -> Result<(), Error> {
    if request.action == Action::Setup || !request.dry_run {
        // The first line names the cluster; nothing is written before it.
        eprintln!("{}", writing_line(&job.elasticsearch().await?));
    } else if options.ssm && !options.dry_run {
        eprintln!("{SSM_DRY_RUN_LINE}");
    }
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
