//! The library's modules depend on each other in one direction only: each
//! file has one job, and shared parts (HTTP plumbing, retries, errors) sit
//! below the clients that use them, never beside them in a circle.

use std::collections::{BTreeMap, BTreeSet};

/// `module -> modules it uses`, from `crate::<module>` in code (comments
/// and doc links left out).
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = format!("{}/src", env!("CARGO_MANIFEST_DIR"));
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("src/") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().and_then(|e| e.to_str()) != Some("rs")
            || name == "lib"
            || name == "main"
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable");
        let mut uses = BTreeSet::new();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            let mut rest = code;
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
        graph.insert(name.to_owned(), uses);
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
    for client in ["hub", "bulk", "setup"] {
        assert!(
            graph[client].contains("http"),
            "{client} uses the shared HTTP module"
        );
    }
    for client in ["bulk", "setup", "config"] {
        assert!(
            !graph[client].contains("hub"),
            "{client} must not borrow the Docker Hub client's plumbing"
        );
    }
}
