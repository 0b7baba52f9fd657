//! Update validation: what may not change, and what may.

use serde_json::json;

use super::{deployment, job, meta, pod_spec, service, update_errors, valid_objects};

#[test]
fn valid_objects_may_be_updated_unchanged() {
    for (group, kind, object) in valid_objects() {
        let name = object["metadata"]["name"].clone();
        let errors = update_errors(group, kind, object.clone(), object);
        assert_eq!(errors, Vec::<String>::new(), "{kind} {name}");
    }
}

#[test]
fn identity_fields_and_resource_version_are_checked_on_update() {
    let old = json!({"metadata": meta("a"), "data": {}});
    let mut renamed = old.clone();
    renamed["metadata"]["name"] = json!("b");
    assert_eq!(
        update_errors("", "ConfigMap", old.clone(), renamed),
        ["metadata.name: Invalid value: \"b\": field is immutable"]
    );
    let mut no_version = old.clone();
    no_version["metadata"]["resourceVersion"] = json!(null);
    assert_eq!(
        update_errors("", "ConfigMap", old, no_version),
        ["metadata.resourceVersion: Invalid value: \"\": must be specified for an update"]
    );
}

#[test]
fn a_pod_may_change_its_images_but_little_else() {
    let old = json!({"metadata": meta("web"), "spec": pod_spec()});
    let mut new_image = old.clone();
    new_image["spec"]["containers"][0]["image"] = json!("nginx:1.28");
    assert_eq!(
        update_errors("", "Pod", old.clone(), new_image),
        Vec::<String>::new()
    );
    let mut more_tolerations = old.clone();
    more_tolerations["spec"]["tolerations"] = json!([{"key": "gpu", "operator": "Exists"}]);
    assert_eq!(
        update_errors("", "Pod", old.clone(), more_tolerations),
        Vec::<String>::new()
    );
    let mut new_port = old.clone();
    new_port["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8080);
    let errors = update_errors("", "Pod", old, new_port);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with(
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    ));
}

#[test]
fn fixed_fields_of_workloads_services_and_config_are_refused_on_update() {
    let mut moved = deployment();
    moved["spec"]["selector"] = json!({"matchLabels": {"app": "web", "tier": "x"}});
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = json!("x");
    assert_eq!(
        update_errors("apps", "Deployment", deployment(), moved),
        [
            "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"web\",\"tier\":\"x\"}}: field is immutable"
        ]
    );
    let sts = valid_objects()[17].2.clone();
    let mut renamed_service = sts.clone();
    renamed_service["spec"]["serviceName"] = json!("other");
    assert_eq!(
        update_errors("apps", "StatefulSet", sts, renamed_service),
        [
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ]
    );
    let mut with_ip = service();
    with_ip["spec"]["clusterIP"] = json!("10.96.0.10");
    let mut new_ip = service();
    new_ip["spec"]["clusterIP"] = json!("10.96.0.11");
    assert_eq!(
        update_errors("", "Service", with_ip, new_ip),
        ["spec.clusterIPs[0]: Invalid value: [\"10.96.0.11\"]: may not change once set"]
    );
    let frozen = json!({"metadata": meta("c"), "immutable": true, "data": {"k": "v"}});
    let mut thawed = frozen.clone();
    thawed["data"]["k"] = json!("w");
    assert_eq!(
        update_errors("", "ConfigMap", frozen, thawed),
        ["data: Forbidden: field is immutable when `immutable` is set"]
    );
    let secret = json!({"metadata": meta("s"), "type": "Opaque"});
    let mut retyped = secret.clone();
    retyped["type"] = json!("example.com/token");
    assert_eq!(
        update_errors("", "Secret", secret, retyped),
        ["type: Invalid value: \"example.com/token\": field is immutable"]
    );
    let binding = valid_objects()[23].2.clone();
    let mut rebound = binding.clone();
    rebound["roleRef"]["name"] = json!("writer");
    let errors = update_errors("rbac.authorization.k8s.io", "RoleBinding", binding, rebound);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("roleRef: Invalid value: "));
    assert!(errors[0].ends_with("cannot change roleRef"));
    let mut new_template = job();
    new_template["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:6");
    let errors = update_errors("batch", "Job", job(), new_template);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("spec.template: Invalid value: "),
        "{errors:?}"
    );
}

#[test]
fn classes_and_volumes_keep_what_their_consumers_rely_on() {
    let cluster = json!({"name": "c", "uid": "u-1", "resourceVersion": "5"});
    let class = json!({"metadata": cluster, "value": 1000});
    let mut raised = class.clone();
    raised["value"] = json!(2000);
    assert_eq!(
        update_errors("scheduling.k8s.io", "PriorityClass", class, raised),
        ["value: Forbidden: may not be changed in an update."]
    );
    let storage = json!({"metadata": cluster, "provisioner": "a.example.com"});
    let mut moved = storage.clone();
    moved["provisioner"] = json!("b.example.com");
    assert_eq!(
        update_errors("storage.k8s.io", "StorageClass", storage, moved),
        ["provisioner: Forbidden: updates to provisioner are forbidden."]
    );
    let volume = json!({"metadata": cluster, "spec": {"accessModes": ["ReadWriteOnce"],
        "capacity": {"storage": "1Gi"}, "hostPath": {"path": "/a"}}});
    let mut repointed = volume.clone();
    repointed["spec"]["hostPath"]["path"] = json!("/b");
    assert_eq!(
        update_errors("", "PersistentVolume", volume, repointed),
        [
            "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"
        ]
    );
}
