//! osmem-server, an in-memory OpenSearch-compatible server written by others
//! (real `_bulk`, `_search`, dynamic mapping; no ingest pipelines), run as a
//! child process: a second opinion on what the strict fake says about reads.
//!
//! The binary comes with the `osmem-server` Python package
//! (scripts/requirements.txt); the interpreter is `$OSMEM_PYTHON`, else the
//! package's `.venv/bin/python3`, else `python3`. The server prints one JSON
//! line with its URL, and exits when its stdin (a pipe only this process
//! holds) closes, so it never outlives the test.

use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// A running osmem-server.
pub struct Osmem {
    url: String,
    _child: Child,
    _stdin: ChildStdin,
}

impl Osmem {
    /// Starts the server on a free port; `Err` says why it could not (not
    /// installed, for one).
    pub async fn start() -> Result<Self, String> {
        let binary = binary()?;
        let mut child = Command::new(&binary)
            .args(["--addr", "127.0.0.1:0", "--no-ja"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let read = reader.read_line(&mut line);
        tokio::time::timeout(std::time::Duration::from_secs(30), read)
            .await
            .map_err(|_| "osmem-server printed nothing within 30 s".to_owned())?
            .map_err(|e| e.to_string())?;
        let started: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("osmem-server's first line {line:?}: {e}"))?;
        let url = started["url"]
            .as_str()
            .ok_or_else(|| format!("no url in {line:?}"))?
            .to_owned();
        Ok(Self {
            url,
            _child: child,
            _stdin: stdin,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn binary() -> Result<PathBuf, String> {
    let mut pythons: Vec<PathBuf> = Vec::new();
    if let Some(python) = std::env::var_os("OSMEM_PYTHON") {
        pythons.push(python.into());
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    if venv.exists() {
        pythons.push(venv);
    }
    pythons.push("python3".into());
    let mut errors = Vec::new();
    for python in pythons {
        let output = std::process::Command::new(&python)
            .args([
                "-c",
                "from osmem_server import resolve_binary; print(resolve_binary())",
            ])
            .output();
        match output {
            Ok(output) if output.status.success() => {
                let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                return Ok(path.into());
            }
            Ok(output) => errors.push(format!(
                "{}: {}",
                python.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(e) => errors.push(format!("{}: {e}", python.display())),
        }
    }
    Err(format!(
        "osmem-server is not installed (pip install osmem-server, or set OSMEM_PYTHON): {}",
        errors.join("; ")
    ))
}
