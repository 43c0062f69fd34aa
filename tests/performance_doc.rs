//! docs/performance.md can be reproduced: every section that states a
//! measured figure names the command that measures it, the date and the
//! commit it was measured at; the monthly cost tables are what
//! scripts/cost.py computes from a committed benchmark run, made in the
//! function's default mode under Docker Hub's rate limit at 10 to 10,000
//! repositories.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn page() -> String {
    std::fs::read_to_string(root().join("docs/performance.md")).expect("docs/performance.md")
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Whether git holds the whole history (a shallow clone cannot tell
/// whether a commit is an ancestor).
fn full_history() -> bool {
    git(&["rev-parse", "--is-shallow-repository"]).as_deref() == Some("false")
}

/// The page's sections: (heading, text up to the next `##`/`###` heading).
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![("(top)".into(), String::new())];
    let mut in_fence = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && (line.starts_with("## ") || line.starts_with("### ")) {
            out.push((line.to_owned(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// A number with a unit that only a measurement gives: a time, a size in
/// binary units, a CPU time or a dollar amount.
fn has_measured_figure(body: &str) -> bool {
    let text = body;
    for unit in [
        " ms",
        " µs",
        " MiB",
        " KiB",
        " GiB",
        " CPU s",
        "ms |",
        " documents/s",
    ] {
        let mut from = 0;
        while let Some(at) = text[from..].find(unit) {
            let before = text[..from + at].chars().last();
            if before.is_some_and(|c| c.is_ascii_digit()) {
                return true;
            }
            from += at + unit.len();
        }
    }
    text.match_indices('$').any(|(i, _)| {
        text[i + 1..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

struct Provenance {
    date: String,
    commit: String,
    command: String,
}

/// Every `Measured YYYY-MM-DD at COMMIT with `COMMAND`` of `body`.
fn provenances(body: &str) -> Vec<Provenance> {
    let mut out = Vec::new();
    // A quoted line (`> Measured DATE at COMMIT …`) shows the format.
    let flat: String = body
        .lines()
        .filter(|line| !line.starts_with('>'))
        .collect::<Vec<_>>()
        .join(" ");
    let mut rest = flat.as_str();
    while let Some(at) = rest.find("Measured ") {
        rest = &rest[at + "Measured ".len()..];
        let mut words = rest.splitn(4, ' ');
        let (Some(date), Some("at"), Some(commit), Some(tail)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let Some(command) = tail
            .strip_prefix("with `")
            .and_then(|t| t.split_once('`'))
            .map(|(c, _)| c)
        else {
            continue;
        };
        out.push(Provenance {
            date: date.to_owned(),
            commit: commit.trim_end_matches(',').to_owned(),
            command: command.to_owned(),
        });
    }
    out
}

/// What is wrong with a provenance line, if anything.
fn provenance_problem(p: &Provenance, head_date: &str) -> Option<String> {
    let date_ok = p.date.len() == 10
        && p.date.chars().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !date_ok || p.date.as_str() > head_date || p.date.as_str() < "2026-11-01" {
        return Some(format!(
            "date {:?} is not a YYYY-MM-DD between 2026-11-01 and HEAD's {head_date}",
            p.date
        ));
    }
    if p.commit.len() < 7 || !p.commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(format!("{:?} is not a commit hash", p.commit));
    }
    if full_history() {
        let commit = format!("{}^{{commit}}", p.commit);
        if git(&["rev-parse", "--verify", "--quiet", &commit]).is_none() {
            return Some(format!("commit {} is not in this repository", p.commit));
        }
        if git(&["merge-base", "--is-ancestor", &p.commit, "HEAD"]).is_none() {
            return Some(format!("commit {} is not an ancestor of HEAD", p.commit));
        }
    }
    command_problem(&p.command)
}

/// A command the repository can run: a script, an example or a test that
/// exists.
fn command_problem(command: &str) -> Option<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    let exists = |path: String| root().join(&path).is_file().then_some(()).ok_or(path);
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .and_then(|i| words.get(i + 1))
            .copied()
    };
    let found = match words.first().copied() {
        Some(script) if script.starts_with("scripts/") => exists(script.to_owned()),
        Some(bin) if bin.starts_with("target/release/examples/") => exists(format!(
            "examples/{}.rs",
            bin.trim_start_matches("target/release/examples/")
        )),
        Some("cargo") if words.get(1) == Some(&"run") => match after("--example") {
            Some(example) => exists(format!("examples/{example}.rs")),
            None => Err(command.to_owned()),
        },
        Some("cargo") if words.get(1) == Some(&"test") => match after("--test") {
            Some(test) => exists(format!("tests/{test}.rs")),
            None => Err(command.to_owned()),
        },
        _ => Err(command.to_owned()),
    };
    found
        .err()
        .map(|what| format!("command `{command}`: {what} is not a script, example or test here"))
}

#[test]
fn every_measured_figure_names_its_command_date_and_commit() {
    let head_date = git(&["log", "-1", "--format=%cs", "HEAD"]).unwrap_or_else(|| "9999".into());
    let mut problems = Vec::new();
    let mut measured_sections = 0;
    for (heading, body) in sections(&page()) {
        let found = provenances(&body);
        for p in &found {
            if let Some(problem) = provenance_problem(p, &head_date) {
                problems.push(format!("{heading}: {problem}"));
            }
        }
        if has_measured_figure(&body) {
            measured_sections += 1;
            if found.is_empty() {
                problems.push(format!(
                    "{heading}: states a measured figure but no `Measured DATE at COMMIT with `COMMAND`` line"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "docs/performance.md:\n{}",
        problems.join("\n")
    );
    assert!(
        measured_sections >= 5,
        "only {measured_sections} sections with figures: is the page there?"
    );
}

#[test]
fn the_figure_check_catches_a_figure_without_its_command() {
    // The check above, on a page that misses a provenance or names a
    // command that does not exist.
    let bare = "## Results\n\nA run took 1,234 ms.\n";
    assert!(has_measured_figure(bare));
    assert!(provenances(bare).is_empty());
    let priced = "Costs $6.19 a month.";
    assert!(has_measured_figure(priced));
    assert!(!has_measured_figure(
        "128 MB, every 5 minutes, 180 requests a minute"
    ));
    let named = provenances("Measured 2026-12-07 at 3c2b7a8 with `scripts/nope --x`.\n");
    assert_eq!(named.len(), 1);
    assert!(command_problem(&named[0].command).is_some());
    assert!(command_problem("cargo run --release --example archive_size").is_none());
    assert!(command_problem("cargo run --release --example no_such_example").is_some());
    let future = Provenance {
        date: "2099-01-01".into(),
        commit: "3c2b7a8".into(),
        command: "scripts/bench".into(),
    };
    assert!(provenance_problem(&future, "2026-12-07").is_some());
}

/// The bench runs the cost tables are computed from: the files the page's
/// `<!-- cost.py FILE: begin -->` blocks name.
fn cost_inputs() -> Vec<String> {
    page()
        .lines()
        .filter_map(|l| l.strip_prefix("<!-- cost.py "))
        .filter_map(|l| l.strip_suffix(": begin -->"))
        .map(str::to_owned)
        .collect()
}

fn cost_check(page: &Path) -> std::process::Output {
    Command::new("python3")
        .arg("scripts/cost.py")
        .arg("--check")
        .arg(page)
        .current_dir(root())
        .output()
        .expect("python3 scripts/cost.py")
}

#[test]
fn the_cost_tables_are_what_scripts_cost_py_computes_from_the_committed_bench_run() {
    let out = cost_check(Path::new("docs/performance.md"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A table edited by hand no longer matches.
    let text = page();
    let at = text.find("**$").expect("a total in the cost table");
    let digit = at + 3;
    let mut edited = text.clone();
    let old = &text[digit..digit + 1];
    edited.replace_range(digit..digit + 1, if old == "9" { "8" } else { "9" });
    let dir = std::env::temp_dir().join(format!("performance-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("performance.md");
    std::fs::write(&copy, edited).expect("write the copy");
    let out = cost_check(&copy);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !out.status.success(),
        "a hand-edited total passed the check"
    );
}

#[test]
fn the_cost_bench_ran_in_the_default_mode_under_the_rate_limit_from_10_to_10000_repositories() {
    let inputs = cost_inputs();
    assert!(
        !inputs.is_empty(),
        "no cost.py block in docs/performance.md"
    );
    let template = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    let default_concurrency = template
        .split("HubConcurrency:")
        .nth(1)
        .and_then(|t| t.split("Default:").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .expect("HubConcurrency's default");
    let mut default_mode = 0;
    for input in &inputs {
        let bench: Value = serde_json::from_str(
            &std::fs::read_to_string(root().join(input)).unwrap_or_else(|e| panic!("{input}: {e}")),
        )
        .unwrap_or_else(|e| panic!("{input}: {e}"));
        let config = &bench["config"];
        assert_eq!(
            config["rate_limit_per_minute"], 180,
            "{input}: not under Docker Hub's limit"
        );
        assert_eq!(
            config["hub_concurrency"].to_string(),
            default_concurrency,
            "{input}: not the template's HubConcurrency"
        );
        assert_eq!(
            config["images"], "listing",
            "{input}: images named in the event"
        );
        let sizes: Vec<u64> = bench["results"]
            .as_array()
            .expect("results")
            .iter()
            .filter_map(|r| r["n"].as_u64())
            .collect();
        assert_eq!(sizes, [10, 100, 1000, 10000], "{input}");
        for result in bench["results"].as_array().into_iter().flatten() {
            let n = &result["n"];
            for run in result["runs"].as_array().into_iter().flatten() {
                assert!(
                    run["s3_requests"]["PUT archive"].as_u64() == Some(1),
                    "{input}: N={n}: a run without its archive write: {}",
                    run["s3_requests"]
                );
                assert!(
                    run["emf_metrics"].as_u64() > Some(0),
                    "{input}: N={n}: no EMF record"
                );
            }
            assert!(
                result["compaction"]["summary"]["days"][0]["objects"].as_u64() > Some(0),
                "{input}: N={n}: the compaction read no object"
            );
        }
        let commit = bench["source"]["commit"].as_str().expect("source.commit");
        assert_eq!(bench["source"]["tracked_changes"], false, "{input}");
        if full_history() {
            assert!(
                git(&["merge-base", "--is-ancestor", commit, "HEAD"]).is_some(),
                "{input}: measured at {commit}, not an ancestor of HEAD"
            );
        }
        default_mode += usize::from(config["namespace_counts"] == "details");
    }
    assert!(
        default_mode >= 1,
        "no cost table in the default mode (details)"
    );
}
