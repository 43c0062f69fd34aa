//! shields.io endpoint badges: the JSON that
//! `https://img.shields.io/endpoint?url=…` draws. Shields rejects any key
//! its schema does not know, so a badge holds exactly
//! `{"schemaVersion":1,"label","message","color"}`.

use super::gains::Gain;
use super::number::metric;
use serde::Serialize;

/// One endpoint badge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Badge {
    pub schema_version: u8,
    pub label: String,
    pub message: String,
    pub color: String,
}

/// The badges of a repository, by file name (`total`, `day`, `week`,
/// `month`: `badges/<namespace>/<name>/<kind>.json`).
pub const KINDS: [&str; 4] = ["total", "day", "week", "month"];

/// The lifetime total, as shields' own Docker pulls badge shows it.
pub fn total(pulls: u64) -> Badge {
    Badge {
        schema_version: 1,
        label: "docker pulls".into(),
        message: metric(i64::try_from(pulls).unwrap_or(i64::MAX)),
        color: "blue".into(),
    }
}

/// Pulls over `window` (`day`, `week`, `month`): `1.2k/week`, coloured as
/// shields colours download rates. Unknown (and a regression, which is no
/// rate at all) reads `unknown`, in grey: never a made-up 0.
pub fn gain(window: &str, gain: Gain) -> Badge {
    let (message, color) = match gain {
        Gain::Gained(n) => (
            format!("{}/{window}", metric(i64::try_from(n).unwrap_or(i64::MAX))),
            rate_color(n),
        ),
        Gain::Unknown | Gain::Regressed { .. } => ("unknown".to_owned(), "lightgrey"),
    };
    Badge {
        schema_version: 1,
        label: "pulls".into(),
        message,
        color: color.into(),
    }
}

/// shields' download-count colour scale.
fn rate_color(n: u64) -> &'static str {
    match n {
        0 => "red",
        1..=9 => "yellow",
        10..=99 => "yellowgreen",
        100..=999 => "green",
        _ => "brightgreen",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn badges_are_exactly_the_endpoint_schema() {
        assert_eq!(
            serde_json::to_value(total(2_244_658_322)).expect("json"),
            json!({"schemaVersion":1,"label":"docker pulls","message":"2.2G","color":"blue"})
        );
        assert_eq!(
            serde_json::to_value(gain("week", Gain::Gained(1234))).expect("json"),
            json!({"schemaVersion":1,"label":"pulls","message":"1.2k/week","color":"brightgreen"})
        );
        assert_eq!(gain("day", Gain::Gained(0)).message, "0/day");
        assert_eq!(gain("day", Gain::Gained(0)).color, "red");
        for unknown in [Gain::Unknown, Gain::Regressed { from: 5 }] {
            let badge = gain("month", unknown);
            assert_eq!(
                (badge.message.as_str(), badge.color.as_str()),
                ("unknown", "lightgrey")
            );
        }
    }
}
