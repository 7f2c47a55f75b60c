//! Crash-safe file writes: temporary file, fsync, rename.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// File mode for private keys.
pub const MODE_PRIVATE: u32 = 0o600;
/// File mode for public material.
pub const MODE_PUBLIC: u32 = 0o644;

/// A file written to a temporary name, not yet in place.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
}

/// Writes `bytes` to a temporary file next to `dest` with `mode` and fsyncs
/// it; [`Staged::commit`] renames it into place.
pub fn stage(dest: &Path, bytes: &[u8], mode: u32) -> io::Result<Staged> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", rand::random::<u32>()));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let res = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(Staged {
        tmp,
        dest: dest.to_path_buf(),
    })
}

impl Staged {
    /// Renames the staged file over its destination.
    pub fn commit(self) -> io::Result<()> {
        fs::rename(&self.tmp, &self.dest)
    }

    /// Removes the staged file.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Writes a set of files so that none is replaced unless all were staged,
/// then fsyncs the directory.
pub fn write_all_atomic(files: &[(&Path, &[u8], u32)]) -> io::Result<()> {
    let mut staged = Vec::new();
    for (path, bytes, mode) in files {
        match stage(path, bytes, *mode) {
            Ok(s) => staged.push(s),
            Err(e) => {
                staged.into_iter().for_each(Staged::discard);
                return Err(e);
            }
        }
    }
    let dir = files
        .first()
        .and_then(|f| f.0.parent())
        .map(Path::to_path_buf);
    for s in staged {
        s.commit()?;
    }
    if let Some(dir) = dir {
        if let Ok(d) = File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        }) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Writes one file atomically.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    write_all_atomic(&[(path, bytes, mode)])
}
