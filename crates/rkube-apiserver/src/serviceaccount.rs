//! Upstream's ServiceAccount admission plugin (`plugin/pkg/admission/serviceaccount`), on pod
//! creation: a pod runs as `default` unless it names an account; the account must exist (403
//! otherwise); unless the pod or its account turns automounting off, the pod gets the
//! `kube-api-access-<random>` projected volume (a bound token, the cluster CA, the namespace)
//! mounted read-only at [`TOKEN_MOUNT_PATH`] in every init and app container that does not
//! mount something there already; without image pull secrets of its own it takes its
//! account's. Mirror pods (a kubelet's static pods) get none of this, and may not reference
//! service accounts, secrets or token projections at all.

use std::time::Duration;

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde_json::{Value, json};

use crate::admission::Informers;

/// The account a pod runs as when it names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// Where the token volume is mounted.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The prefix of the token volume's name.
const VOLUME_PREFIX: &str = "kube-api-access-";

/// The annotation marking a kubelet's mirror of a static pod.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// An account annotation asking that its pods use only the secrets it lists.
const ENFORCE_MOUNTABLE_SECRETS: &str = "kubernetes.io/enforce-mountable-secrets";

/// The token's lifetime: upstream's `WarnOnlyBoundTokenExpirationSeconds` (an hour and seven
/// seconds, which lets the server recognise tokens from this volume).
const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// How often a missing `default` account is looked up before the pod is refused: the
/// service account controller creates it moments after its namespace.
const DEFAULT_ACCOUNT_ATTEMPTS: usize = 10;

/// Whether `pod` is a mirror pod.
fn is_mirror(pod: &Value) -> bool {
    pod["metadata"]["annotations"]
        .get(MIRROR_ANNOTATION)
        .is_some()
}

/// Upstream's `shouldAutomount`: the pod's choice, else the account's, else yes.
fn should_automount(account: &Value, pod: &Value) -> bool {
    pod["spec"]["automountServiceAccountToken"]
        .as_bool()
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true)
}

/// The projected volume source upstream's `TokenVolumeSource` builds.
fn token_volume_source() -> Value {
    json!({
        // Set explicitly (upstream #104464), as defaulting does not see what admission adds.
        "defaultMode": 420,
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [
                {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}},
            ]}},
        ],
    })
}

/// Adds the token volume and its mounts (`generate` names a new volume).
fn mount_token(pod: &mut Value, generate: impl FnOnce() -> String) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    // A volume named like the token volume is taken to be it.
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str())
        .find(|name| name.starts_with(VOLUME_PREFIX))
        .map(str::to_owned);
    let has_volume = existing.is_some();
    let name = existing.unwrap_or_else(generate);
    let mount = json!({"name": name, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        for container in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            // A mount at the token path already keeps the token out of this container.
            let taken = container
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|m| m["mountPath"].as_str() == Some(TOKEN_MOUNT_PATH));
            if taken {
                continue;
            }
            let mounts = container
                .entry("volumeMounts")
                .or_insert_with(|| Value::Array(Vec::new()));
            if !mounts.is_array() {
                *mounts = Value::Array(Vec::new());
            }
            if let Value::Array(mounts) = mounts {
                mounts.push(mount.clone());
                needed = true;
            }
        }
    }
    if needed && !has_volume {
        let volumes = spec
            .entry("volumes")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !volumes.is_array() {
            *volumes = Value::Array(Vec::new());
        }
        if let Value::Array(volumes) = volumes {
            volumes.push(json!({"name": name, "projected": token_volume_source()}));
        }
    }
}

/// Every secret name a pod refers to (upstream's `VisitPodSecretNames` over all containers).
fn secret_names<'a>(pod: &'a Value) -> Vec<&'a str> {
    let spec = &pod["spec"];
    let mut names = Vec::new();
    let mut add = |v: &'a Value| {
        if let Some(name) = v.as_str().filter(|n| !n.is_empty()) {
            names.push(name);
        }
    };
    for secret in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        add(&secret["name"]);
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for container in spec[list].as_array().into_iter().flatten() {
            for from in container["envFrom"].as_array().into_iter().flatten() {
                add(&from["secretRef"]["name"]);
            }
            for env in container["env"].as_array().into_iter().flatten() {
                add(&env["valueFrom"]["secretKeyRef"]["name"]);
            }
        }
    }
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        add(&volume["secret"]["secretName"]);
        add(&volume["azureFile"]["secretName"]);
        add(&volume["csi"]["nodePublishSecretRef"]["name"]);
        for source in [
            "cephfs",
            "cinder",
            "flexVolume",
            "rbd",
            "iscsi",
            "scaleIO",
            "storageos",
        ] {
            add(&volume[source]["secretRef"]["name"]);
        }
        for projection in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add(&projection["secret"]["name"]);
        }
    }
    names
}

/// What upstream forbids of a mirror pod.
fn check_mirror(pod: &Value) -> Result<(), String> {
    if pod["spec"]["serviceAccountName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
    {
        return Err("a mirror pod may not reference service accounts".into());
    }
    if !secret_names(pod).is_empty() {
        return Err("a mirror pod may not reference secrets".into());
    }
    let projects_token = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|v| v["projected"]["sources"].as_array().into_iter().flatten())
        .any(|s| s.get("serviceAccountToken").is_some_and(|t| !t.is_null()));
    if projects_token {
        return Err("a mirror pod may not use ServiceAccountToken volume projections".into());
    }
    Ok(())
}

/// Whether `account` asks that its pods use only the secrets it lists (a true value of the
/// enforce annotation, as Go's `strconv.ParseBool` reads it).
fn enforces_mountable_secrets(account: &Value) -> bool {
    matches!(
        account["metadata"]["annotations"][ENFORCE_MOUNTABLE_SECRETS].as_str(),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

/// Upstream's `limitSecretReferences`: the pod's secret volumes, secret environment values and
/// image pull secrets must be ones `account` lists.
fn limit_secret_references(account: &Value, pod: &Value) -> Result<(), String> {
    let names = |field: &str| -> Vec<&str> {
        account[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .collect()
    };
    let (mountable, pullable) = (names("secrets"), names("imagePullSecrets"));
    let account_name = account["metadata"]["name"].as_str().unwrap_or("");
    let spec = &pod["spec"];
    for volume in spec["volumes"].as_array().into_iter().flatten() {
        if let Some(secret) = volume["secret"]["secretName"].as_str()
            && !mountable.contains(&secret)
        {
            return Err(format!(
                "volume with secret.secretName=\"{secret}\" is not allowed because service account {account_name} does not reference that secret"
            ));
        }
    }
    for (list, what) in [
        ("initContainers", "init container"),
        ("containers", "container"),
    ] {
        for container in spec[list].as_array().into_iter().flatten() {
            for env in container["env"].as_array().into_iter().flatten() {
                if let Some(secret) = env["valueFrom"]["secretKeyRef"]["name"].as_str()
                    && !mountable.contains(&secret)
                {
                    return Err(format!(
                        "{what} {} with envVar {} referencing secret.secretName=\"{secret}\" is not allowed because service account {account_name} does not reference that secret",
                        container["name"].as_str().unwrap_or(""),
                        env["name"].as_str().unwrap_or(""),
                    ));
                }
            }
        }
    }
    for (i, secret) in spec["imagePullSecrets"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = secret["name"].as_str().unwrap_or("");
        if !pullable.contains(&name) {
            return Err(format!(
                "imagePullSecrets[{i}].name=\"{name}\" is not allowed because service account {account_name} does not reference that imagePullSecret"
            ));
        }
    }
    Ok(())
}

/// Applies the plugin to a new non-mirror pod whose account is `account`.
fn admit_pod(pod: &mut Value, account: &Value, generate: impl FnOnce() -> String) {
    if should_automount(account, pod) {
        mount_token(pod, generate);
    }
    let own = pod["spec"]["imagePullSecrets"]
        .as_array()
        .is_some_and(|l| !l.is_empty());
    let theirs: Vec<Value> = account["imagePullSecrets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| json!({"name": r["name"].as_str().unwrap_or("")}))
        .collect();
    if !own && !theirs.is_empty() && pod["spec"].is_object() {
        pod["spec"]["imagePullSecrets"] = Value::Array(theirs);
    }
}

/// The ServiceAccount plugin on a pod being created.
pub(crate) async fn admit(
    cluster: &impl Informers,
    rt: &ResourceType,
    ns: Option<&str>,
    name: &str,
    pod: &mut Value,
) -> Result<(), ApiError> {
    let applies = rt.group.is_empty() && rt.kind == "Pod";
    let (true, Some(ns)) = (applies, ns) else {
        return Ok(());
    };
    let forbidden =
        |message: String| ApiError::Forbidden(format!("pods {name:?} is forbidden: {message}"));
    if is_mirror(pod) {
        return check_mirror(pod).map_err(forbidden);
    }
    let spec = pod
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| ApiError::bad_request("a pod needs a spec"))?;
    let account_name = match spec.get("serviceAccountName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => {
            spec.insert("serviceAccountName".into(), json!(DEFAULT_SERVICE_ACCOUNT));
            DEFAULT_SERVICE_ACCOUNT.to_owned()
        }
    };
    let account = service_account(cluster, ns, &account_name)
        .await
        .map_err(|err| {
            forbidden(format!(
                "error looking up service account {ns}/{account_name}: {}",
                lookup_message(&err)
            ))
        })?;
    admit_pod(pod, &account, || crate::rest::generate_name(VOLUME_PREFIX));
    if enforces_mountable_secrets(&account) {
        limit_secret_references(&account, pod).map_err(forbidden)?;
    }
    Ok(())
}

/// Looks an account up as upstream's plugin does: in the cache, then in the store; the
/// `default` account, which the controller creates with its namespace, up to ten times
/// 100–200 ms apart before it counts as missing.
async fn service_account(
    cluster: &impl Informers,
    ns: &str,
    name: &str,
) -> Result<Value, ApiError> {
    let accounts = crate::admission::kind("", "ServiceAccount")?;
    if let Some(account) = cluster.cached(accounts, Some(ns), name).await {
        return Ok(account);
    }
    let attempts = if name == DEFAULT_SERVICE_ACCOUNT {
        DEFAULT_ACCOUNT_ATTEMPTS
    } else {
        1
    };
    let interval = Duration::from_millis(100 + rand::random::<u64>() % 100);
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(interval).await;
        }
        match cluster.stored(accounts, Some(ns), name).await {
            Ok(account) => return Ok(account),
            Err(ApiError::NotFound { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Err(ApiError::NotFound {
        group: String::new(),
        resource: "serviceaccount".into(),
        name: name.into(),
    })
}

/// The text of a lookup failure, as Go's error prints it (`serviceaccount "x" not found`).
fn lookup_message(err: &ApiError) -> String {
    match err {
        ApiError::NotFound { resource, name, .. } => format!("{resource} {name:?} not found"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn every_init_and_app_container_mounts_the_token_volume() {
        let mut p = pod(json!({
            "initContainers": [{"name": "init", "image": "busybox"}],
            "containers": [
                {"name": "a", "image": "nginx"},
                {"name": "b", "image": "nginx", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
        }));
        admit_pod(&mut p, &json!({}), || "kube-api-access-x2b4z".into());
        let mount = json!({"name": "kube-api-access-x2b4z", "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
        assert_eq!(
            p["spec"]["initContainers"][0]["volumeMounts"],
            json!([mount])
        );
        assert_eq!(p["spec"]["containers"][0]["volumeMounts"], json!([mount]));
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"],
            json!([{"name": "own", "mountPath": TOKEN_MOUNT_PATH}])
        );
        assert!(
            p["spec"]["ephemeralContainers"][0]
                .get("volumeMounts")
                .is_none()
        );
        assert_eq!(
            p["spec"]["volumes"],
            json!([{"name": "kube-api-access-x2b4z", "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ],
            }}])
        );
    }

    #[test]
    fn automounting_follows_the_pod_then_the_account() {
        let spec = json!({"containers": [{"name": "a", "image": "nginx"}]});
        let off = json!({"automountServiceAccountToken": false});
        let on = json!({"automountServiceAccountToken": true});
        let mut p = pod(spec.clone());
        admit_pod(&mut p, &off, || unreachable!());
        assert!(p["spec"].get("volumes").is_none());
        let mut own_choice =
            pod(json!({"automountServiceAccountToken": true, "containers": [{"name": "a"}]}));
        admit_pod(&mut own_choice, &off, || "kube-api-access-aaaaa".into());
        assert_eq!(
            own_choice["spec"]["volumes"][0]["name"],
            "kube-api-access-aaaaa"
        );
        let mut declined =
            pod(json!({"automountServiceAccountToken": false, "containers": [{"name": "a"}]}));
        admit_pod(&mut declined, &on, || unreachable!());
        assert!(declined["spec"].get("volumes").is_none());
    }

    #[test]
    fn an_existing_token_volume_is_reused_and_mounted_where_missing() {
        let mut p = pod(json!({
            "containers": [{"name": "a"}],
            "volumes": [{"name": "kube-api-access-zzzzz", "projected": {"sources": []}}],
        }));
        admit_pod(&mut p, &json!({}), || unreachable!());
        assert_eq!(p["spec"]["volumes"].as_array().unwrap().len(), 1);
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][0]["name"],
            "kube-api-access-zzzzz"
        );
        // Nothing to mount into: no volume either.
        let mut none = pod(
            json!({"containers": [{"name": "a", "volumeMounts": [{"name": "x", "mountPath": TOKEN_MOUNT_PATH}]}]}),
        );
        admit_pod(&mut none, &json!({}), || "kube-api-access-unused".into());
        assert!(none["spec"].get("volumes").is_none());
    }

    #[test]
    fn image_pull_secrets_come_from_the_account_when_the_pod_has_none() {
        let account = json!({"automountServiceAccountToken": false, "imagePullSecrets": [{"name": "registry"}]});
        let mut p = pod(json!({"containers": [{"name": "a"}]}));
        admit_pod(&mut p, &account, || unreachable!());
        assert_eq!(p["spec"]["imagePullSecrets"], json!([{"name": "registry"}]));
        let mut own =
            pod(json!({"containers": [{"name": "a"}], "imagePullSecrets": [{"name": "mine"}]}));
        admit_pod(&mut own, &account, || unreachable!());
        assert_eq!(own["spec"]["imagePullSecrets"], json!([{"name": "mine"}]));
    }

    #[test]
    fn mirror_pods_may_not_reference_accounts_secrets_or_tokens() {
        let mirror = |spec: Value| json!({"metadata": {"annotations": {MIRROR_ANNOTATION: "hash"}}, "spec": spec});
        assert!(is_mirror(&mirror(json!({}))));
        assert_eq!(
            check_mirror(&mirror(json!({"containers": [{"name": "a"}]}))),
            Ok(())
        );
        assert_eq!(
            check_mirror(&mirror(json!({"serviceAccountName": "default"}))).unwrap_err(),
            "a mirror pod may not reference service accounts"
        );
        assert_eq!(
            check_mirror(&mirror(
                json!({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "s"}}]}]})
            ))
            .unwrap_err(),
            "a mirror pod may not reference secrets"
        );
        assert_eq!(
            check_mirror(&mirror(json!({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]})))
                .unwrap_err(),
            "a mirror pod may not use ServiceAccountToken volume projections"
        );
    }

    #[test]
    fn an_enforcing_account_limits_the_secrets_a_pod_uses() {
        let account = json!({
            "metadata": {"name": "builder", "annotations": {ENFORCE_MOUNTABLE_SECRETS: "true"}},
            "secrets": [{"name": "allowed"}],
        });
        assert!(enforces_mountable_secrets(&account));
        let ok = pod(json!({"volumes": [{"name": "v", "secret": {"secretName": "allowed"}}]}));
        assert_eq!(limit_secret_references(&account, &ok), Ok(()));
        let volume = pod(json!({"volumes": [{"name": "v", "secret": {"secretName": "other"}}]}));
        assert_eq!(
            limit_secret_references(&account, &volume).unwrap_err(),
            "volume with secret.secretName=\"other\" is not allowed because service account builder does not reference that secret"
        );
        let env = pod(
            json!({"initContainers": [{"name": "i", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}}]}]}),
        );
        assert_eq!(
            limit_secret_references(&account, &env).unwrap_err(),
            "init container i with envVar E referencing secret.secretName=\"other\" is not allowed because service account builder does not reference that secret"
        );
        let pull = pod(json!({"imagePullSecrets": [{"name": "registry"}]}));
        assert_eq!(
            limit_secret_references(&account, &pull).unwrap_err(),
            "imagePullSecrets[0].name=\"registry\" is not allowed because service account builder does not reference that imagePullSecret"
        );
    }
}
