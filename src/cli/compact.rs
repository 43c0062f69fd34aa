//! `docker-pulls compact`: archive days into Parquet (see
//! [`crate::archive::compact`]), for imported history and days the daily
//! compaction missed; the summary on stdout.

use super::{Options, open_archive, print_json};
use crate::Error;
use crate::archive::compact;
use crate::archive::reader::parse_day;
use time::Date;

/// Every day `from <= day < to` (`YYYY-MM-DD` each), as replay's range.
pub(super) fn days(from: &str, to: &str) -> Result<Vec<Date>, String> {
    let parse = |flag: &str, text: &str| {
        parse_day(text.trim())
            .ok_or_else(|| format!("--{flag} must be a day like 2026-01-01, got {text:?}"))
    };
    let (first, end) = (parse("from", from)?, parse("to", to)?);
    if first >= end {
        return Err(format!(
            "--from ({from}) must be before --to ({to}): the days are from <= day < to"
        ));
    }
    let mut days = Vec::new();
    let mut day = first;
    while day < end {
        days.push(day);
        match day.next_day() {
            Some(next) => day = next,
            None => break,
        }
    }
    Ok(days)
}

/// Whether every day was compacted (or had nothing to do).
pub(super) async fn compact(options: &Options) -> Result<bool, Error> {
    let days = days(
        options.from.as_deref().unwrap_or_default(),
        options.to.as_deref().unwrap_or_default(),
    )
    .map_err(Error::InvalidEvent)?;
    let archive = open_archive(options)
        .await?
        .ok_or_else(|| Error::Archive("compact needs --archive".into()))?;
    let summary = compact::compact(&*archive, &days, &std::env::temp_dir(), None).await;
    print_json(&summary);
    Ok(summary.failed.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_run_from_up_to_not_including_to() {
        let listed: Vec<String> = days("2025-12-30", "2026-01-02")
            .expect("days")
            .iter()
            .map(Date::to_string)
            .collect();
        assert_eq!(listed, ["2025-12-30", "2025-12-31", "2026-01-01"]);
        assert!(
            days("2026-01-02", "2026-01-02")
                .unwrap_err()
                .contains("before --to")
        );
        assert!(
            days("2026-1-2", "2026-01-03")
                .unwrap_err()
                .contains("--from must be a day")
        );
    }
}
