//! The files the kubelet keeps for its pods under `<agent>/pods/<uid>` (volume contents,
//! /etc/hosts, termination-message files) and the pods' log directories: [`HostFiles`] on a
//! real node, [`MemoryFiles`] on a hollow one, whose containers never read them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::atomic::{self, Payload};

/// Where a pod's files go.
pub trait PodFiles: Send + Sync {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// An emptyDir volume at `dir`: a directory anyone may write, or a tmpfs (`memory`, with
    /// its size limit in bytes) mounted there.
    fn empty_dir(&self, dir: &Path, memory: bool, size: Option<i64>) -> Result<(), String>;
    /// Writes `data` to `path` (creating its parent) with `mode`.
    fn write(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<()>;
    /// The contents of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Makes the volume at `dir` hold exactly `payload`, as [`atomic::write`] does; whether
    /// anything changed.
    fn write_volume(&self, dir: &Path, payload: &Payload, group: Option<u32>) -> io::Result<bool>;
    /// Removes `dir` (a pod's directory), unmounting the memory-backed emptyDirs under it.
    fn remove_pod_dir(&self, dir: &Path);
}

/// The node's own filesystem.
pub struct HostFiles;

impl PodFiles for HostFiles {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn empty_dir(&self, dir: &Path, memory: bool, size: Option<i64>) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        if memory && !crate::volumes::is_mountpoint(dir) {
            let mut options = "mode=0777".to_owned();
            if let Some(size) = size {
                options.push_str(&format!(",size={size}"));
            }
            crate::volumes::run(
                "mount",
                &[
                    "-t",
                    "tmpfs",
                    "-o",
                    &options,
                    "tmpfs",
                    &dir.display().to_string(),
                ],
            )
        } else {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| e.to_string())
        }
    }

    fn write(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, data)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn write_volume(&self, dir: &Path, payload: &Payload, group: Option<u32>) -> io::Result<bool> {
        atomic::write(dir, payload, group)
    }

    fn remove_pod_dir(&self, dir: &Path) {
        let empty = dir.join("volumes").join("kubernetes.io~empty-dir");
        if let Ok(entries) = std::fs::read_dir(&empty) {
            for e in entries.flatten() {
                if crate::volumes::is_mountpoint(&e.path()) {
                    let _ = crate::volumes::run("umount", &[&e.path().display().to_string()]);
                }
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Files kept in memory. Plain files are kept whole; a volume only as a digest of its
/// payload, enough to tell whether a refresh changed it (a hollow node holds thousands of
/// token and CA volumes that nothing reads).
#[derive(Default)]
pub struct MemoryFiles {
    state: Mutex<MemoryState>,
}

#[derive(Default)]
struct MemoryState {
    files: HashMap<PathBuf, Vec<u8>>,
    volumes: HashMap<PathBuf, u64>,
}

impl MemoryFiles {
    /// No files.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many files and volumes are kept (for tests: a removed pod leaves none).
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.files.len() + state.volumes.len()
    }

    /// Nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PodFiles for MemoryFiles {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn empty_dir(&self, _dir: &Path, _memory: bool, _size: Option<i64>) -> Result<(), String> {
        Ok(())
    }

    fn write(&self, path: &Path, data: &[u8], _mode: u32) -> io::Result<()> {
        self.lock().files.insert(path.to_owned(), data.to_vec());
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.lock()
            .files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn write_volume(&self, dir: &Path, payload: &Payload, group: Option<u32>) -> io::Result<bool> {
        atomic::check_paths(payload)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        payload.hash(&mut hasher);
        group.hash(&mut hasher);
        let digest = hasher.finish();
        Ok(self.lock().volumes.insert(dir.to_owned(), digest) != Some(digest))
    }

    fn remove_pod_dir(&self, dir: &Path) {
        let mut state = self.lock();
        state.files.retain(|p, _| !p.starts_with(dir));
        state.volumes.retain(|p, _| !p.starts_with(dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atomic::File;

    #[test]
    fn memory_volumes_report_changes_and_go_with_their_pod() {
        let files = MemoryFiles::new();
        let dir = Path::new("/pods/uid-1/volumes/kubernetes.io~projected/token");
        let mut payload = Payload::new();
        payload.insert(
            "token".to_owned(),
            File {
                data: b"a".to_vec(),
                mode: 0o644,
            },
        );
        assert!(files.write_volume(dir, &payload, None).unwrap());
        assert!(!files.write_volume(dir, &payload, None).unwrap());
        payload.get_mut("token").unwrap().data = b"b".to_vec();
        assert!(files.write_volume(dir, &payload, None).unwrap());
        files
            .write(Path::new("/pods/uid-1/etc-hosts"), b"127.0.0.1", 0o644)
            .unwrap();
        assert_eq!(
            files.read(Path::new("/pods/uid-1/etc-hosts")).unwrap(),
            b"127.0.0.1"
        );
        files.remove_pod_dir(Path::new("/pods/uid-1"));
        assert!(files.is_empty());
    }

    #[test]
    fn memory_volumes_refuse_paths_out_of_the_volume() {
        let mut payload = Payload::new();
        payload.insert(
            "../escape".to_owned(),
            File {
                data: Vec::new(),
                mode: 0o644,
            },
        );
        let files = MemoryFiles::new();
        assert!(files.write_volume(Path::new("/v"), &payload, None).is_err());
    }
}
