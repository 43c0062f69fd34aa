//! The Python that runs the independent checkers (`sigv4_proxy.py`,
//! `archive_sql.py`): `$CHECKERS_PYTHON`, else the package's
//! `.venv/bin/python3` when present (scripts/setup), else `python3` on
//! `PATH`. It needs `botocore` and `duckdb` (scripts/requirements.txt).

use std::path::PathBuf;

pub fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("CHECKERS_PYTHON") {
        return python.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        "python3".into()
    }
}
