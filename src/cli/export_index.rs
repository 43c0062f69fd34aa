//! `docker-pulls export-index`: an index's documents copied into the
//! archive (see [`crate::export`]), with progress on stderr and the summary
//! on stdout.

use super::{Options, print_json};
use crate::Error;
use crate::config::SettingsSource;
use crate::export::ExportRequest;
use crate::progress::Progress;
use crate::replay::parse_bound;
use crate::retry::Deadline;
use crate::run::Job;

/// Whether every document read was archived.
pub(super) async fn export_index<S: SettingsSource>(
    job: &Job<S>,
    options: &Options,
    deadline: Deadline,
    progress: &dyn Progress,
) -> Result<bool, Error> {
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
    let summary = crate::export::export_index(&client, &*archive, &request, deadline, progress)
        .await
        .map_err(|e| Error::Archive(e.to_string()))?;
    print_json(&summary);
    Ok(summary.refused == 0)
}
