//! The advisory lock that serialises writers of one configuration file:
//! `.<file>.lock` next to it, held while the file is re-read, compared with
//! what the command read before, written and audited.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Kind, Result};

/// How long a writer waits for another one: a change holds the lock for
/// milliseconds (re-read, rename, one appended line), a `--git` commit for
/// well under a second.
const WAIT: Duration = Duration::from_secs(10);

/// Held until dropped (the OS releases it when the process ends, too).
pub struct Lock {
    _file: File,
}

pub fn path_for(config: &Path) -> PathBuf {
    let name = config
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    config.with_file_name(format!(".{name}.lock"))
}

pub fn acquire(config: &Path) -> Result<Lock> {
    let path = path_for(config);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| Error::io(format!("{}: cannot open the lock file: {err}", path.display())))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(TryLockError::WouldBlock) if started.elapsed() < WAIT => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::new(
                    Kind::Stale,
                    format!(
                        "{}: another parallel-run-ctl holds the lock for more than {} s",
                        path.display(),
                        WAIT.as_secs()
                    ),
                ))
            }
            Err(TryLockError::Error(err)) => return Err(Error::io(format!("{}: cannot lock: {err}", path.display()))),
        }
    }
}
