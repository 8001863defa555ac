//! Atomic file replacement: write a temporary sibling, fsync, rename over the target.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::train::error::{Result, TrainError};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary sibling for writing `path` (`.<name>.tmp.<pid>.<n>`), unique per call.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

/// Runs `write(tmp)` then fsyncs and renames `tmp` over `path` (and fsyncs the directory); on
/// error the temporary file is removed and `path` is untouched. A killed process leaves at most
/// a stray `.tmp` file, never a truncated `path`. Safe to call from several threads; concurrent
/// writers of the same `path` race (the last rename wins, each file is complete).
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = temp_path(path);
    let res = write(&tmp).and_then(|_| {
        let f = std::fs::File::open(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
        f.sync_all().map_err(|e| TrainError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Atomically writes `bytes` to `path`.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |tmp| {
        let mut f = std::fs::File::create(tmp).map_err(|e| TrainError::io(tmp, e))?;
        f.write_all(bytes).map_err(|e| TrainError::io(tmp, e))
    })
}
