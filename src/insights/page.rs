//! The stats page: one self-contained HTML file (inline style, inline SVG,
//! one inline script to sort; nothing loaded from anywhere) with, per
//! repository, a chart of its daily pulls over the last 90 days, its total,
//! and its week's and month's gains. Sorted by the week's growth; buttons
//! sort by month, total or name.

use super::gains::Gain;
use super::number::metric;
use std::fmt::Write;

/// Days the charts cover.
pub const DAYS: usize = 90;

/// One repository's figures on the page.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRepo {
    pub namespace: String,
    pub name: String,
    pub total: u64,
    pub week: Gain,
    pub month: Gain,
    /// Pulls gained each day, oldest first (`None`: unknown that day).
    pub daily: Vec<Option<u64>>,
}

/// The page for `repos` (the most pulled of `of` repositories), generated
/// at `generated` (RFC 3339), whose daily series start on `first_day`
/// (`YYYY-MM-DD`, for the charts' labels).
pub fn render(repos: &[PageRepo], of: usize, generated: &str, first_day: &str) -> String {
    let mut sorted: Vec<&PageRepo> = repos.iter().collect();
    sorted.sort_by_key(|r| {
        (
            std::cmp::Reverse(sort_value(r.week)),
            r.namespace.clone(),
            r.name.clone(),
        )
    });
    let mut html = String::with_capacity(4096 + repos.len() * 8192);
    html.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Docker Hub pulls</title>\n<style>\n\
         body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}\n\
         h1{font-size:1.4em;margin:0 0 .2em}\n.meta{color:#666;margin:0 0 1em}\n\
         button{margin:0 .4em .8em 0;padding:.3em .8em}\n\
         section.repo{border-top:1px solid #ddd;padding:.6em 0}\n\
         section.repo h2{font-size:1.05em;margin:0 0 .2em}\n\
         .figures span{margin-right:1.2em}\n.unknown{color:#999}\n\
         svg.chart{display:block;width:100%;max-width:760px;height:auto}\n\
         svg.chart rect.bar{fill:#4c8eda}\nsvg.chart rect.gap{fill:#eee}\n\
         </style>\n</head>\n<body>\n<h1>Docker Hub pulls</h1>\n",
    );
    let shown = if of > repos.len() {
        format!(
            "the {} most pulled of {of} repositories (all of them in index.json)",
            repos.len()
        )
    } else {
        format!("{} repositories", repos.len())
    };
    let _ = writeln!(
        html,
        "<p class=\"meta\">{shown} · daily pulls over the last {DAYS} days from {} · generated {}</p>",
        escape(first_day),
        escape(generated)
    );
    html.push_str(
        "<div id=\"sort\">Sort by: <button data-key=\"week\">week's growth</button>\
         <button data-key=\"month\">month's growth</button>\
         <button data-key=\"total\">total</button>\
         <button data-key=\"name\">name</button></div>\n<div id=\"repos\">\n",
    );
    for repo in sorted {
        section(&mut html, repo);
    }
    html.push_str("</div>\n<script>\n");
    html.push_str(SORT_SCRIPT);
    html.push_str("</script>\n</body>\n</html>\n");
    html
}

/// What sorting by a gain compares: unknown (and a regression) last.
fn sort_value(gain: Gain) -> i128 {
    gain.known().map_or(-1, i128::from)
}

fn section(html: &mut String, repo: &PageRepo) {
    let full = format!("{}/{}", repo.namespace, repo.name);
    let _ = writeln!(
        html,
        "<section class=\"repo\" data-name=\"{}\" data-total=\"{}\" data-week=\"{}\" data-month=\"{}\">",
        escape(&full),
        repo.total,
        sort_value(repo.week),
        sort_value(repo.month)
    );
    let _ = writeln!(html, "<h2>{}</h2>", escape(&full));
    let _ = writeln!(
        html,
        "<div class=\"figures\"><span>total <b>{}</b></span><span>week {}</span><span>month {}</span></div>",
        metric(i64::try_from(repo.total).unwrap_or(i64::MAX)),
        gain_text(repo.week),
        gain_text(repo.month)
    );
    chart(html, &full, &repo.daily);
    html.push_str("</section>\n");
}

fn gain_text(gain: Gain) -> String {
    match gain {
        Gain::Gained(n) => format!("<b>+{}</b>", metric(i64::try_from(n).unwrap_or(i64::MAX))),
        Gain::Unknown => "<span class=\"unknown\">unknown</span>".into(),
        Gain::Regressed { .. } => "<span class=\"unknown\">count went down</span>".into(),
    }
}

/// A bar chart of `daily` as inline SVG, one bar a day, scaled to the
/// largest day; an unknown day is a pale stub.
fn chart(html: &mut String, full: &str, daily: &[Option<u64>]) {
    const WIDTH: usize = 760;
    const HEIGHT: u64 = 120;
    let slot = WIDTH as f64 / daily.len().max(1) as f64;
    let max = daily.iter().flatten().copied().max().unwrap_or(0).max(1);
    let _ = writeln!(
        html,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"daily pulls of {}\">",
        HEIGHT + 14,
        escape(full)
    );
    for (i, day) in daily.iter().enumerate() {
        let x = i as f64 * slot;
        match day {
            Some(n) => {
                let height =
                    ((*n as f64 / max as f64) * HEIGHT as f64).max(if *n > 0 { 1.0 } else { 0.0 });
                let _ = writeln!(
                    html,
                    "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\"><title>{n} pulls</title></rect>",
                    HEIGHT as f64 - height,
                    (slot - 1.0).max(0.5)
                );
            }
            None => {
                let _ = writeln!(
                    html,
                    "<rect class=\"gap\" x=\"{x:.1}\" y=\"{}\" width=\"{:.1}\" height=\"2\"><title>unknown</title></rect>",
                    HEIGHT - 2,
                    (slot - 1.0).max(0.5)
                );
            }
        }
    }
    let _ = writeln!(
        html,
        "<text x=\"0\" y=\"{}\" font-size=\"11\" fill=\"#666\">max {}/day</text>\n</svg>",
        HEIGHT + 12,
        metric(i64::try_from(max).unwrap_or(i64::MAX))
    );
}

/// Sorts the sections by the button's key: numbers descending, names ascending.
const SORT_SCRIPT: &str = r#"document.querySelectorAll('#sort button').forEach(function (button) {
  button.addEventListener('click', function () {
    var key = button.getAttribute('data-key');
    var list = document.getElementById('repos');
    var sections = Array.prototype.slice.call(list.querySelectorAll('section.repo'));
    sections.sort(function (a, b) {
      if (key === 'name') { return a.dataset.name < b.dataset.name ? -1 : 1; }
      return Number(b.dataset[key]) - Number(a.dataset[key]);
    });
    sections.forEach(function (s) { list.appendChild(s); });
  });
});
"#;

/// Text for HTML (element content and attribute values).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Each day's pulls from the count at the end of each day (one more day
/// than the result: the first is the baseline). A day is unknown when
/// either end is, or when the count went down.
pub fn daily_gains(ends: &[Option<u64>]) -> Vec<Option<u64>> {
    ends.windows(2)
        .map(|pair| match pair {
            [Some(before), Some(after)] => after.checked_sub(*before),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str, week: Gain, daily: Vec<Option<u64>>) -> PageRepo {
        PageRepo {
            namespace: "acme".into(),
            name: name.into(),
            total: 1_234_567,
            week,
            month: Gain::Unknown,
            daily,
        }
    }

    #[test]
    fn the_page_is_self_contained_with_one_chart_per_repository_sorted_by_growth() {
        let repos = [
            repo("slow", Gain::Gained(10), vec![Some(1); DAYS]),
            repo("fast", Gain::Gained(5000), vec![Some(700), None, Some(0)]),
            repo("<odd>", Gain::Unknown, vec![]),
        ];
        let html = render(&repos, repos.len(), "2026-12-07T12:00:00Z", "2026-09-08");
        assert_eq!(html.matches("<svg class=\"chart\"").count(), 3);
        assert_eq!(html.matches("<section class=\"repo\"").count(), 3);
        // Week's growth first, unknown last.
        let at = |name: &str| html.find(&format!("<h2>acme/{name}</h2>")).expect(name);
        assert!(at("fast") < at("slow"));
        assert!(at("slow") < html.find("<h2>acme/&lt;odd&gt;</h2>").expect("escaped"));
        assert!(html.contains("total <b>1.2M</b>") && html.contains("week <b>+5k</b>"));
        assert!(
            html.contains("<title>700 pulls</title>") && html.contains("<title>unknown</title>")
        );
        // Nothing from elsewhere: no src, no href, no external URL.
        for forbidden in ["src=", "href=", "http://", "https://", "@import", "url("] {
            let allowed = html.matches("http://www.w3.org/2000/svg").count();
            if forbidden == "http://" {
                assert_eq!(html.matches(forbidden).count(), allowed);
            } else {
                assert!(!html.contains(forbidden), "{forbidden}");
            }
        }
    }

    #[test]
    fn daily_pulls_are_unknown_where_a_day_is_missing_or_went_down() {
        assert_eq!(
            daily_gains(&[Some(10), Some(15), None, Some(30), Some(29), Some(29)]),
            [Some(5), None, None, None, Some(0)]
        );
        assert!(daily_gains(&[Some(1)]).is_empty());
    }
}
