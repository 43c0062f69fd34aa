//! The library's modules depend on each other in one direction only: each
//! file has one job, and shared parts (HTTP plumbing, retries, errors) sit
//! below the clients that use them, never beside them in a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, with the top-level module it belongs to
/// (`src/hub/budget.rs` belongs to `hub`).
fn source_files() -> Vec<(String, PathBuf)> {
    fn walk(dir: &Path, top: Option<&str>, out: &mut Vec<(String, PathBuf)>) {
        for entry in std::fs::read_dir(dir).expect("readable dir") {
            let path = entry.expect("entry").path();
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            if path.is_dir() {
                walk(&path, Some(top.unwrap_or(name)), out);
            } else if path.extension().and_then(|e| e.to_str()) == Some("rs") {
                out.push((top.unwrap_or(name).to_owned(), path.clone()));
            }
        }
    }
    let mut files = Vec::new();
    walk(
        Path::new(&format!("{}/src", env!("CARGO_MANIFEST_DIR"))),
        None,
        &mut files,
    );
    files.sort();
    files
}

/// The code of a file, comments left out.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable");
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `module -> modules it uses`, from `crate::<module>` in code (comments
/// and doc links left out); submodules count as their top-level module.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, path) in source_files() {
        if name == "lib" || name == "main" {
            continue;
        }
        let uses = graph.entry(name.clone()).or_default();
        let code = code(&path);
        let mut rest = code.as_str();
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !module.is_empty() && module != name && module != "USER_AGENT" {
                uses.insert(module);
            }
        }
    }
    graph
}

#[test]
fn modules_depend_on_each_other_without_a_cycle() {
    let graph = module_graph();
    assert!(graph.len() >= 10, "{graph:?}");
    // Depth-first search for a back edge, reporting the cycle found.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| m == module) {
            let mut cycle = path[at..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn shared_http_plumbing_has_one_home() {
    let graph = module_graph();
    for client in ["hub", "es"] {
        assert!(
            graph[client].contains("http"),
            "{client} uses the shared HTTP module"
        );
    }
    for client in ["es", "config", "spool", "delivery"] {
        assert!(
            !graph[client].contains("hub"),
            "{client} must not borrow the Docker Hub client's plumbing"
        );
    }
}

/// Only `src/es/mod.rs` builds a request to Elasticsearch, and only the bulk
/// sink uses the bulk sink: setup and the Hub client never reach into it.
#[test]
fn one_elasticsearch_client_and_nobody_reaches_into_bulk() {
    for (module, path) in source_files() {
        let code = code(&path);
        let file = path
            .strip_prefix(env!("CARGO_MANIFEST_DIR"))
            .unwrap_or(&path);
        let name = file.display().to_string();
        let reaches_into_bulk = code.contains("es::bulk") || code.contains("super::bulk");
        if name.ends_with("src/es/setup.rs") || module == "hub" {
            assert!(!reaches_into_bulk, "{name} reaches into the bulk sink");
        }
        if module == "es" && !name.ends_with("src/es/mod.rs") {
            for builder in [".http", "reqwest::Client", "header::AUTHORIZATION"] {
                assert!(
                    !code.contains(builder),
                    "{name} builds its own Elasticsearch request ({builder}); use es::EsClient"
                );
            }
        }
    }
}

/// Which statuses are worth another try is said once, in `retry.rs`
/// (`is_transient`); nobody else keeps a list of them.
#[test]
fn there_is_one_transient_status_rule() {
    let lists = [
        "is_server_error",
        "500..=599",
        "BAD_GATEWAY",
        "SERVICE_UNAVAILABLE",
        "GATEWAY_TIMEOUT",
        "REQUEST_TIMEOUT",
    ];
    let mut users = BTreeSet::new();
    for (module, path) in source_files() {
        let code = code(&path);
        if module == "retry" {
            assert!(code.contains("pub fn is_transient"), "retry::is_transient");
            continue;
        }
        for list in lists {
            assert!(
                !code.contains(list),
                "{} keeps its own transient statuses ({list}); use retry::is_transient",
                path.display()
            );
        }
        if code.contains("is_transient") {
            users.insert(module);
        }
    }
    for client in ["hub", "es"] {
        assert!(users.contains(client), "{client} asks retry::is_transient");
    }
}
