//! The alert thresholds under `insights/` (CONTRACT.md "Insights"), with
//! their defaults: `insights/spike_factor` (5), `insights/spike_min_pulls`
//! (1000), `insights/stall_min_daily_pulls` (100).

use crate::error::Error;
use crate::insights::alerts::Thresholds;

/// The thresholds from the parameters `get` returns; an unparsable value
/// is an error naming the full parameter, as for every setting.
pub(super) fn read<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
    full_name: impl Fn(&str) -> String,
) -> Result<Thresholds, Error> {
    let defaults = Thresholds::default();
    let invalid = |key: &str, value: &str, what: &str| Error::InvalidParameter {
        name: full_name(key),
        reason: format!("{value:?} is not {what}"),
    };
    let whole = |key: &str, default: u64| match get(key) {
        None => Ok(default),
        Some(value) => value
            .parse::<u64>()
            .map_err(|_| invalid(key, value, "a whole number of pulls")),
    };
    let spike_factor = match get("insights/spike_factor") {
        None => defaults.spike_factor,
        Some(value) => match value.parse::<f64>() {
            Ok(factor) if factor.is_finite() && factor >= 1.0 => factor,
            _ => {
                return Err(invalid(
                    "insights/spike_factor",
                    value,
                    "a number of at least 1",
                ));
            }
        },
    };
    Ok(Thresholds {
        spike_factor,
        spike_min_pulls: whole("insights/spike_min_pulls", defaults.spike_min_pulls)?,
        stall_min_daily_pulls: whole(
            "insights/stall_min_daily_pulls",
            defaults.stall_min_daily_pulls,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn thresholds(pairs: &[(&str, &str)]) -> Result<Thresholds, Error> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        read(
            |key| map.get(key).map(String::as_str),
            |key| format!("/docker-pulls/{key}"),
        )
    }

    #[test]
    fn thresholds_default_and_an_invalid_one_names_its_parameter() {
        assert_eq!(thresholds(&[]).expect("defaults"), Thresholds::default());
        let set = thresholds(&[
            ("insights/spike_factor", "2.5"),
            ("insights/spike_min_pulls", "50"),
            ("insights/stall_min_daily_pulls", "7"),
        ])
        .expect("valid");
        assert_eq!(
            set,
            Thresholds {
                spike_factor: 2.5,
                spike_min_pulls: 50,
                stall_min_daily_pulls: 7
            }
        );
        for (key, bad) in [
            ("insights/spike_factor", "0.5"),
            ("insights/spike_factor", "NaN"),
            ("insights/spike_min_pulls", "-1"),
            ("insights/stall_min_daily_pulls", "lots"),
        ] {
            let error = thresholds(&[(key, bad)]).unwrap_err().to_string();
            assert!(error.contains(&format!("/docker-pulls/{key}")), "{error}");
        }
    }
}
