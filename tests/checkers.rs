//! Self-tests of the Python checkers the other tests lean on.
//!
//! `tests/support/sigv4_proxy.py` verifies the SigV4 signatures docker-pulls
//! sends to Amazon OpenSearch Service with botocore, an implementation
//! independent of the `aws-sigv4` crate that makes them; its self-test pins it
//! to vectors of the AWS SigV4 test suite and to AWS's refusal messages.
//! `tests/support/archive_sql.py` reads the archive layout with DuckDB as
//! Athena would, and checks the example queries of docs/operations.md against
//! hand-computed values. A checker that silently passes everything would make
//! the tests that use it worthless, so these run with the rest of the suite.
//!
//! The interpreter is `$CHECKERS_PYTHON`, else the package's
//! `.venv/bin/python3` when present, else `python3` on `PATH`; it needs
//! `botocore` and `duckdb` (scripts/requirements.txt).

use std::process::{Command, Output};

#[path = "support/checkers.rs"]
mod checkers_support;
use checkers_support::python;

fn run(args: &[&str]) -> Output {
    let python = python();
    Command::new(&python)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()))
}

fn assert_success(what: &str, output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}) with {}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status,
        python().display(),
    );
    // Shown with --nocapture: which cases ran.
    println!("{stdout}");
}

#[test]
fn sigv4_proxy_self_test() {
    let output = run(&["tests/support/sigv4_proxy.py", "--self-test"]);
    assert_success("tests/support/sigv4_proxy.py --self-test", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ok    AWS test-suite vector get-vanilla:"),
        "the AWS get-vanilla vector was not checked:\n{stdout}"
    );
}

#[test]
fn archive_sql_self_test() {
    let has_duckdb = run(&["-c", "import duckdb"]).status.success();
    if !has_duckdb && std::env::var_os("CI").is_none() {
        eprintln!(
            "SKIPPED archive_sql_self_test: duckdb is not importable by {} \
             (pip install duckdb, or set CHECKERS_PYTHON); under CI this fails instead",
            python().display()
        );
        return;
    }
    let output = run(&["tests/support/archive_sql.py", "--self-test"]);
    assert_success("tests/support/archive_sql.py --self-test", &output);
}
