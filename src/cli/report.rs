//! `docker-pulls report --archive DIR|s3://BUCKET --out FILE`: the stats
//! page (see [`crate::insights::page`]) from the archive, as the function
//! writes it into `BADGE_BUCKET` once a day.

use super::Options;
use crate::Error;
use crate::insights::{self, Index};
use std::collections::BTreeSet;

/// Writes the page; false when the archive holds no measurement.
pub(super) async fn report(options: &Options) -> Result<bool, Error> {
    let archive = super::open_archive(options)
        .await?
        .ok_or_else(|| Error::Archive("report needs --archive DIR or s3://BUCKET".into()))?;
    let out = options.out.clone().unwrap_or_else(|| "report.html".into());
    let failed = |e: &dyn std::fmt::Display| Error::Archive(e.to_string());
    let (now, figures) = insights::latest(&*archive, super::insights::at(options)?)
        .await
        .map_err(|e| failed(&e))?;
    if figures.is_empty() {
        eprintln!("no measurements in {}", archive.location());
        return Ok(false);
    }
    let index = insights::next_index(&Index::default(), &figures, &BTreeSet::new(), now);
    let (html, _) = insights::report(&*archive, &index, now)
        .await
        .map_err(|e| failed(&e))?;
    std::fs::write(&out, html)
        .map_err(|e| Error::Archive(format!("writing {}: {e}", out.display())))?;
    eprintln!("{} repositories: {}", figures.len(), out.display());
    Ok(true)
}
