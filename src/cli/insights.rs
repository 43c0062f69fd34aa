//! `docker-pulls insights --archive DIR|s3://BUCKET`: every repository's
//! total, its pulls over the last day, week and month, and the alert
//! conditions that hold, as a table (see [`crate::insights`]).

use super::Options;
use crate::Error;
use crate::document::RunTime;
use crate::insights::alerts::Thresholds;

/// The time `--time` names (default: the archive's newest measurement).
pub(super) fn at(options: &Options) -> Result<Option<i64>, Error> {
    options
        .time
        .as_deref()
        .map(|text| {
            RunTime::parse(text)
                .map(|t| t.unix_seconds())
                .map_err(|e| Error::InvalidEvent(e.to_string()))
        })
        .transpose()
}

/// Prints the table; false when the archive holds no measurement.
pub(super) async fn insights(options: &Options) -> Result<bool, Error> {
    let archive = super::open_archive(options)
        .await?
        .ok_or_else(|| Error::Archive("insights need --archive DIR or s3://BUCKET".into()))?;
    let (_, figures) = crate::insights::latest(&*archive, at(options)?)
        .await
        .map_err(|e| Error::Archive(e.to_string()))?;
    if figures.is_empty() {
        eprintln!("no measurements in {}", archive.location());
        return Ok(false);
    }
    print!(
        "{}",
        crate::insights::table(&figures, &Thresholds::default())
    );
    Ok(true)
}
