//! Pod volumes on the node: emptyDir (disk or memory), configMap, secret, downwardAPI,
//! projected (with service account tokens), hostPath and persistentVolumeClaim (local and
//! hostPath PersistentVolumes), and the mounts a container gets from its volumeMounts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    Container as ContainerSpec, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Volume,
};
use kube::api::{Api, PostParams};

use crate::atomic::{File, Payload};
use crate::env::{Sources, pod_field, resource_field};
use crate::files::PodFiles;
use crate::podconfig::{Mount, meta};

/// Why a volume could not be set up (the FailedMount event's message).
pub type MountError = String;

/// Tokens handed to pods, refreshed when 80% of their life has passed (upstream's rule).
#[derive(Default)]
pub struct Tokens {
    issued: HashMap<String, (String, Instant, Duration)>,
}

/// Sets up and tears down pod volumes under `<pods_dir>/<uid>/volumes`.
pub struct VolumeManager {
    pods_dir: PathBuf,
    files: std::sync::Arc<dyn PodFiles>,
    client: kube::Client,
    tokens: tokio::sync::Mutex<Tokens>,
}

fn plugin_dir(kind: &str) -> &'static str {
    match kind {
        "emptyDir" => "kubernetes.io~empty-dir",
        "configMap" => "kubernetes.io~configmap",
        "secret" => "kubernetes.io~secret",
        "downwardAPI" => "kubernetes.io~downward-api",
        "projected" => "kubernetes.io~projected",
        _ => "kubernetes.io~other",
    }
}

fn mode_of(item: Option<i32>, default: Option<i32>, fallback: u32) -> u32 {
    item.or(default).map_or(fallback, |m| m as u32 & 0o7777)
}

fn items_payload(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    default_mode: Option<i32>,
    what: &str,
    optional: bool,
) -> Result<Payload, MountError> {
    let mut payload = Payload::new();
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                match data.get(&item.key) {
                    Some(bytes) => {
                        payload.insert(
                            item.path.clone(),
                            File {
                                data: bytes.clone(),
                                mode: mode_of(item.mode, default_mode, 0o644),
                            },
                        );
                    }
                    None if optional => {}
                    None => {
                        return Err(format!(
                            "configuration key {:?} not found in {what}",
                            item.key
                        ));
                    }
                }
            }
        }
        _ => {
            for (k, v) in data {
                payload.insert(
                    k.clone(),
                    File {
                        data: v.clone(),
                        mode: mode_of(None, default_mode, 0o644),
                    },
                );
            }
        }
    }
    Ok(payload)
}

fn config_map_data(sources: &Sources, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let cm = sources.config_maps.get(name)?;
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    Some(out)
}

fn secret_data(sources: &Sources, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let s = sources.secrets.get(name)?;
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.as_bytes().to_vec());
    }
    Some(out)
}

fn downward_payload(
    pod: &Pod,
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    sources: &Sources,
) -> Result<Payload, MountError> {
    let mut payload = Payload::new();
    for item in items {
        let value = if let Some(f) = &item.field_ref {
            pod_field(pod, &f.field_path, sources)
                .ok_or_else(|| format!("unsupported fieldPath {:?}", f.field_path))?
        } else if let Some(r) = &item.resource_field_ref {
            let spec = pod.spec.as_ref();
            let container = spec
                .and_then(|s| {
                    s.containers
                        .iter()
                        .find(|c| Some(c.name.as_str()) == r.container_name.as_deref())
                })
                .ok_or_else(|| format!("container {:?} not found", r.container_name))?;
            resource_field(container, &r.resource, r.divisor.as_ref(), sources).unwrap_or_default()
        } else {
            String::new()
        };
        payload.insert(
            item.path.clone(),
            File {
                data: value.into_bytes(),
                mode: mode_of(item.mode, default_mode, 0o644),
            },
        );
    }
    Ok(payload)
}

impl VolumeManager {
    /// Volumes live under `<pods_dir>/<uid>/volumes`.
    pub fn new(
        pods_dir: PathBuf,
        files: std::sync::Arc<dyn PodFiles>,
        client: kube::Client,
    ) -> Self {
        Self {
            pods_dir,
            files,
            client,
            tokens: tokio::sync::Mutex::new(Tokens::default()),
        }
    }

    /// Where a volume of `kind` (`emptyDir`, `configMap`, ...) of the pod lives on the host.
    pub fn volume_dir(&self, pod: &Pod, kind: &str, name: &str) -> PathBuf {
        self.pods_dir
            .join(meta(pod).2)
            .join("volumes")
            .join(plugin_dir(kind))
            .join(name)
    }

    /// Sets up (or refreshes) every volume of the pod; returns each volume's host path.
    pub async fn setup(
        &self,
        pod: &Pod,
        sources: &Sources,
    ) -> Result<HashMap<String, PathBuf>, MountError> {
        let mut paths = HashMap::new();
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(paths);
        };
        let fs_group = spec
            .security_context
            .as_ref()
            .and_then(|s| s.fs_group)
            .map(|g| g as u32);
        for v in spec.volumes.iter().flatten() {
            let path = self
                .setup_one(pod, v, sources, fs_group)
                .await
                .map_err(|e| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name))?;
            paths.insert(v.name.clone(), path);
        }
        Ok(paths)
    }

    async fn setup_one(
        &self,
        pod: &Pod,
        v: &Volume,
        sources: &Sources,
        fs_group: Option<u32>,
    ) -> Result<PathBuf, MountError> {
        if let Some(e) = &v.empty_dir {
            let dir = self.volume_dir(pod, "emptyDir", &v.name);
            let size = e.size_limit.as_ref().and_then(crate::podconfig::units);
            self.files
                .empty_dir(&dir, e.medium.as_deref() == Some("Memory"), size)?;
            return Ok(dir);
        }
        if let Some(cm) = &v.config_map {
            let dir = self.volume_dir(pod, "configMap", &v.name);
            let optional = cm.optional == Some(true);
            let payload = match config_map_data(sources, &cm.name) {
                Some(data) => items_payload(
                    &data,
                    cm.items.as_ref(),
                    cm.default_mode,
                    &format!("ConfigMap {:?}", cm.name),
                    optional,
                )?,
                None if optional => Payload::new(),
                None => return Err(format!("configmap {:?} not found", cm.name)),
            };
            self.files
                .write_volume(&dir, &payload, fs_group)
                .map_err(|e| e.to_string())?;
            return Ok(dir);
        }
        if let Some(s) = &v.secret {
            let dir = self.volume_dir(pod, "secret", &v.name);
            let name = s.secret_name.clone().unwrap_or_default();
            let optional = s.optional == Some(true);
            let payload = match secret_data(sources, &name) {
                Some(data) => items_payload(
                    &data,
                    s.items.as_ref(),
                    s.default_mode,
                    &format!("Secret {name:?}"),
                    optional,
                )?,
                None if optional => Payload::new(),
                None => return Err(format!("secret {name:?} not found")),
            };
            self.files
                .write_volume(&dir, &payload, fs_group)
                .map_err(|e| e.to_string())?;
            return Ok(dir);
        }
        if let Some(d) = &v.downward_api {
            let dir = self.volume_dir(pod, "downwardAPI", &v.name);
            let payload = downward_payload(
                pod,
                d.items.as_deref().unwrap_or_default(),
                d.default_mode,
                sources,
            )?;
            self.files
                .write_volume(&dir, &payload, fs_group)
                .map_err(|e| e.to_string())?;
            return Ok(dir);
        }
        if let Some(p) = &v.projected {
            let dir = self.volume_dir(pod, "projected", &v.name);
            let mut payload = Payload::new();
            for source in p.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    let optional = cm.optional == Some(true);
                    match config_map_data(sources, &cm.name) {
                        Some(data) => payload.extend(items_payload(
                            &data,
                            cm.items.as_ref(),
                            p.default_mode,
                            &format!("ConfigMap {:?}", cm.name),
                            optional,
                        )?),
                        None if optional => {}
                        None => return Err(format!("configmap {:?} not found", cm.name)),
                    }
                }
                if let Some(s) = &source.secret {
                    let optional = s.optional == Some(true);
                    match secret_data(sources, &s.name) {
                        Some(data) => payload.extend(items_payload(
                            &data,
                            s.items.as_ref(),
                            p.default_mode,
                            &format!("Secret {:?}", s.name),
                            optional,
                        )?),
                        None if optional => {}
                        None => return Err(format!("secret {:?} not found", s.name)),
                    }
                }
                if let Some(d) = &source.downward_api {
                    payload.extend(downward_payload(
                        pod,
                        d.items.as_deref().unwrap_or_default(),
                        p.default_mode,
                        sources,
                    )?);
                }
                if let Some(t) = &source.service_account_token {
                    let token = self.token(pod, t).await?;
                    payload.insert(
                        t.path.clone(),
                        File {
                            data: token.into_bytes(),
                            mode: mode_of(None, p.default_mode, 0o644),
                        },
                    );
                }
            }
            self.files
                .write_volume(&dir, &payload, fs_group)
                .map_err(|e| e.to_string())?;
            return Ok(dir);
        }
        if let Some(h) = &v.host_path {
            let path = PathBuf::from(&h.path);
            check_host_path(&path, h.type_.as_deref().unwrap_or(""))?;
            return Ok(path);
        }
        if let Some(claim) = &v.persistent_volume_claim {
            return self.claim_path(pod, &claim.claim_name).await;
        }
        if v.ephemeral.is_some() {
            let claim = format!("{}-{}", meta(pod).0, v.name);
            return self.claim_path(pod, &claim).await;
        }
        Err("volume type not supported on this node".to_owned())
    }

    async fn claim_path(&self, pod: &Pod, claim: &str) -> Result<PathBuf, MountError> {
        let ns = meta(pod).1;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let pvc = claims
            .get(claim)
            .await
            .map_err(|e| format!("persistentvolumeclaim {claim:?}: {e}"))?;
        let volume = pvc
            .spec
            .and_then(|s| s.volume_name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("persistentvolumeclaim {claim:?} is not bound"))?;
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let pv = pvs
            .get(&volume)
            .await
            .map_err(|e| format!("persistentvolume {volume:?}: {e}"))?;
        let spec = pv.spec.unwrap_or_default();
        if let Some(h) = spec.host_path {
            let path = PathBuf::from(&h.path);
            check_host_path(&path, h.type_.as_deref().unwrap_or(""))?;
            return Ok(path);
        }
        if let Some(l) = spec.local {
            let path = PathBuf::from(&l.path);
            if !path.exists() {
                return Err(format!("path {:?} does not exist", l.path));
            }
            return Ok(path);
        }
        Err(format!(
            "persistentvolume {volume:?}: only hostPath and local volumes can be mounted on this node"
        ))
    }

    async fn token(
        &self,
        pod: &Pod,
        t: &k8s_openapi::api::core::v1::ServiceAccountTokenProjection,
    ) -> Result<String, MountError> {
        let (name, ns, uid) = meta(pod);
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_owned());
        let seconds = t.expiration_seconds.unwrap_or(3600);
        let key = format!(
            "{uid}/{}/{}",
            t.path,
            t.audience.clone().unwrap_or_default()
        );
        let mut tokens = self.tokens.lock().await;
        if let Some((token, issued, life)) = tokens.issued.get(&key)
            && issued.elapsed() < life.mul_f64(0.8)
        {
            return Ok(token.clone());
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: t.audience.clone().into_iter().collect(),
                expiration_seconds: Some(seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".to_owned()),
                    kind: Some("Pod".to_owned()),
                    name: Some(name.to_owned()),
                    uid: Some(uid.to_owned()),
                }),
            },
            ..Default::default()
        };
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(self.client.clone(), ns);
        let answer: TokenRequest = accounts
            .create_subresource("token", &account, &PostParams::default(), &request)
            .await
            .map_err(|e| format!("requesting a token for service account {ns}/{account}: {e}"))?;
        let token = answer.status.map(|s| s.token).unwrap_or_default();
        tokens.issued.insert(
            key,
            (
                token.clone(),
                Instant::now(),
                Duration::from_secs(seconds.max(600) as u64),
            ),
        );
        Ok(token)
    }

    /// Removes the pod's volumes (memory-backed ones unmounted first) and its directory.
    pub async fn teardown(&self, uid: &str) {
        self.files.remove_pod_dir(&self.pods_dir.join(uid));
        self.tokens
            .lock()
            .await
            .issued
            .retain(|k, _| !k.starts_with(uid));
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), MountError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())
}

pub(crate) fn run(program: &str, args: &[&str]) -> Result<(), MountError> {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether something is mounted at `path` (from /proc/self/mountinfo).
pub fn is_mountpoint(path: &Path) -> bool {
    let target = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
    })
}

/// hostPath's type checks (upstream's hostPathTypeChecker).
pub fn check_host_path(path: &Path, kind: &str) -> Result<(), MountError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = std::fs::metadata(path);
    let shown = path.display();
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
                set_mode(path, 0o755)?;
                return Ok(());
            }
            match meta {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(format!(
                    "hostPath type check failed: {shown} is not a directory"
                )),
            }
        }
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!(
                "hostPath type check failed: {shown} is not a directory"
            )),
            Err(_) => Err(format!(
                "hostPath type check failed: {shown} is not a directory"
            )),
        },
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| e.to_string())?;
                set_mode(path, 0o644)?;
                return Ok(());
            }
            match meta {
                Ok(m) if m.is_file() => Ok(()),
                _ => Err(format!("hostPath type check failed: {shown} is not a file")),
            }
        }
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => Err(format!("hostPath type check failed: {shown} is not a file")),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a socket file"
            )),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a character device"
            )),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a block device"
            )),
        },
        other => Err(format!("hostPath type {other:?} is not supported")),
    }
}

/// The mounts a container gets: its volumeMounts resolved to host paths (with subPath checked
/// against escapes through symlinks), plus /etc/hosts and the termination message file.
pub fn container_mounts(
    c: &ContainerSpec,
    volumes: &HashMap<String, PathBuf>,
    etc_hosts: Option<&Path>,
    termination_file: Option<&Path>,
) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    let vars: HashMap<&str, &str> = HashMap::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(base) = volumes.get(&m.name) else {
            return Err(format!(
                "unable to find volume {:?} for container {:?}",
                m.name, c.name
            ));
        };
        let sub = m.sub_path.clone().filter(|s| !s.is_empty()).or_else(|| {
            m.sub_path_expr
                .as_ref()
                .map(|e| crate::env::expand(e, &vars))
        });
        let host_path = match sub {
            Some(sub) => safe_sub_path(base, &sub)?,
            None => base.clone(),
        };
        mounts.push(Mount {
            container_path: m.mount_path.clone(),
            host_path,
            readonly: m.read_only == Some(true),
            propagation: m.mount_propagation.clone(),
        });
    }
    let mounted = |mounts: &[Mount], p: &str| mounts.iter().any(|m| m.container_path == p);
    if let Some(hosts) = etc_hosts
        && !mounted(&mounts, "/etc/hosts")
    {
        mounts.push(Mount {
            container_path: "/etc/hosts".to_owned(),
            host_path: hosts.to_path_buf(),
            readonly: false,
            propagation: None,
        });
    }
    if let Some(file) = termination_file {
        let path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".to_owned());
        if !mounted(&mounts, &path) {
            mounts.push(Mount {
                container_path: path,
                host_path: file.to_path_buf(),
                readonly: false,
                propagation: None,
            });
        }
    }
    Ok(mounts)
}

/// `base/sub`, created as a directory when missing, refused when it resolves (through
/// symlinks) outside `base` (the CVE-2017-1002101 class).
pub fn safe_sub_path(base: &Path, sub: &str) -> Result<PathBuf, String> {
    if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
        return Err(format!(
            "subPath {sub:?} must be a relative path without '..'"
        ));
    }
    let base_real = base
        .canonicalize()
        .map_err(|e| format!("{}: {e}", base.display()))?;
    let joined = base.join(sub);
    if std::fs::symlink_metadata(&joined).is_err() {
        // Create missing directories one step at a time, checking each step stays inside.
        let mut at = base_real.clone();
        for part in sub.split('/').filter(|p| !p.is_empty() && *p != ".") {
            at.push(part);
            if std::fs::symlink_metadata(&at).is_err() {
                std::fs::create_dir(&at).map_err(|e| format!("creating subPath {sub:?}: {e}"))?;
            }
            let real = at.canonicalize().map_err(|e| e.to_string())?;
            if !real.starts_with(&base_real) {
                return Err(format!("subPath {sub:?} resolves outside the volume"));
            }
            at = real;
        }
    }
    let real = joined
        .canonicalize()
        .map_err(|e| format!("subPath {sub:?}: {e}"))?;
    if !real.starts_with(&base_real) {
        return Err(format!("subPath {sub:?} resolves outside the volume"));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sub_path_through_a_symlink_out_of_the_volume_is_refused() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let vol = tmp.path().join("vol");
        std::fs::create_dir_all(&vol)?;
        std::os::unix::fs::symlink("/etc", vol.join("evil"))?;
        assert!(safe_sub_path(&vol, "evil").is_err());
        assert!(safe_sub_path(&vol, "evil/passwd").is_err());
        assert!(safe_sub_path(&vol, "../x").is_err());
        let ok = safe_sub_path(&vol, "a/b").map_err(std::io::Error::other)?;
        assert!(ok.ends_with("vol/a/b") && ok.is_dir());
        Ok(())
    }

    #[test]
    fn host_path_types_are_checked() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let file = tmp.path().join("f");
        std::fs::write(&file, "x")?;
        assert!(check_host_path(&file, "File").is_ok());
        assert!(check_host_path(&file, "Directory").is_err());
        let made = tmp.path().join("new/dir");
        assert!(check_host_path(&made, "DirectoryOrCreate").is_ok() && made.is_dir());
        assert!(check_host_path(&tmp.path().join("missing"), "File").is_err());
        Ok(())
    }
}
