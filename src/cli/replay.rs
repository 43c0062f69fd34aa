//! `docker-pulls replay`: archived documents indexed again (see
//! [`crate::replay`]), with progress on stderr and the summary on stdout.

use super::{Options, print_json};
use crate::Error;
use crate::config::SettingsSource;
use crate::progress::Progress;
use crate::replay::ReplayRequest;
use crate::retry::Deadline;
use crate::run::Job;

/// Whether every document in range ended up indexed.
pub(super) async fn replay<S: SettingsSource>(
    job: &Job<S>,
    options: &Options,
    deadline: Deadline,
    progress: &dyn Progress,
) -> Result<bool, Error> {
    let (from, to) = (options.from.as_deref(), options.to.as_deref());
    let request = ReplayRequest::new(
        from.unwrap_or_default(),
        to.unwrap_or_default(),
        options.cursor.as_deref(),
    )
    .map_err(Error::InvalidEvent)?;
    let summary = job.replay(&request, deadline, progress).await?;
    print_json(&summary);
    Ok(summary.all_indexed())
}
