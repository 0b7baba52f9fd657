//! Upstream's atomic writer for configMap, secret, downwardAPI and projected volumes: the
//! files live in a timestamped directory that the `..data` symlink points at, and each visible
//! name is a symlink through `..data`, so a reader sees either the old set or the new one.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// One file of a payload: contents and mode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct File {
    /// Contents.
    pub data: Vec<u8>,
    /// Mode bits.
    pub mode: u32,
}

/// Paths (relative, no `..`) to files.
pub type Payload = BTreeMap<String, File>;

fn check_path(path: &str) -> io::Result<()> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.split('/').any(|part| part == ".." || part.is_empty())
        || path.starts_with("..");
    if bad {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid path in volume payload: {path:?}"),
        ));
    }
    Ok(())
}

/// Refuses a payload with a path that is absolute, empty or leaves the volume.
pub fn check_paths(payload: &Payload) -> io::Result<()> {
    payload.keys().try_for_each(|path| check_path(path))
}

fn read_current(dir: &Path) -> Option<Payload> {
    let data = dir.join("..data");
    let target = std::fs::read_link(&data).ok()?;
    let root = dir.join(target);
    let mut out = Payload::new();
    fn walk(root: &Path, rel: &str, out: &mut Payload) -> io::Result<()> {
        for entry in std::fs::read_dir(root.join(rel))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel_path = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = entry.metadata()?;
            if meta.is_dir() {
                walk(root, &rel_path, out)?;
            } else {
                out.insert(
                    rel_path.clone(),
                    File {
                        data: std::fs::read(root.join(&rel_path))?,
                        mode: meta.permissions().mode() & 0o7777,
                    },
                );
            }
        }
        Ok(())
    }
    walk(&root, "", &mut out).ok()?;
    Some(out)
}

/// Makes `dir` hold exactly `payload`; returns whether anything changed. `group` (fsGroup)
/// owns the files when given.
pub fn write(dir: &Path, payload: &Payload, group: Option<u32>) -> io::Result<bool> {
    check_paths(payload)?;
    std::fs::create_dir_all(dir)?;
    if read_current(dir).as_ref() == Some(payload) {
        return Ok(false);
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let new_dir = dir.join(&stamp);
    std::fs::create_dir_all(&new_dir)?;
    for (path, file) in payload {
        let target = new_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.data)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))?;
        if let Some(gid) = group {
            std::os::unix::fs::chown(&target, None, Some(gid))?;
        }
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, dir.join("..data"))?;
    // Visible names: one symlink per top-level entry, through ..data.
    let top: std::collections::BTreeSet<&str> = payload
        .keys()
        .map(|p| p.split('/').next().unwrap_or(p))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link)?;
        }
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !top.contains(name.as_str()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old {
        let old_dir = dir.join(old);
        if old_dir != new_dir {
            let _ = std::fs::remove_dir_all(old_dir);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str) -> File {
        File {
            data: s.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    #[test]
    fn updates_swap_the_data_link_and_drop_stale_names() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("vol");
        let mut payload = Payload::new();
        payload.insert("a".into(), file("1"));
        payload.insert("sub/b".into(), file("2"));
        assert!(write(&dir, &payload, None)?);
        assert_eq!(std::fs::read_to_string(dir.join("a"))?, "1");
        assert_eq!(std::fs::read_to_string(dir.join("sub/b"))?, "2");
        assert!(
            !write(&dir, &payload, None)?,
            "the same payload changes nothing"
        );
        let mut next = Payload::new();
        next.insert("a".into(), file("3"));
        assert!(write(&dir, &next, None)?);
        assert_eq!(std::fs::read_to_string(dir.join("a"))?, "3");
        assert!(std::fs::symlink_metadata(dir.join("sub")).is_err());
        let stamps = std::fs::read_dir(&dir)?
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with("..") && e.file_name() != "..data"
            })
            .count();
        assert_eq!(stamps, 1, "the old timestamped directory is gone");
        Ok(())
    }

    #[test]
    fn paths_that_climb_out_are_refused() {
        let tmp = tempfile::tempdir().ok();
        let Some(tmp) = tmp else { return };
        let mut payload = Payload::new();
        payload.insert("../escape".into(), file("x"));
        assert!(write(tmp.path(), &payload, None).is_err());
    }
}
