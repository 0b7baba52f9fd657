//! JSON -> protobuf -> JSON gives back the same object, for each API group.

use serde_json::{Value, json};

fn round_trip(object: Value) {
    let bytes = rkube_proto::encode(&object).expect("encodes");
    assert!(bytes.starts_with(b"k8s\0"));
    let back = rkube_proto::decode(&bytes).expect("decodes");
    assert_eq!(back, object);
}

fn meta(name: &str) -> Value {
    json!({
        "name": name,
        "namespace": "default",
        "uid": "6f1c9a52-3b8e-4a55-9d2f-0c1a7e5b9d11",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2026-01-02T15:04:05Z",
        "labels": {"app": name, "tier": "web"},
        "annotations": {"note": "a \"quoted\" value"},
        "finalizers": ["example.com/cleanup"],
        "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "owner",
            "uid": "0d5a3f8e-1111-2222-3333-444455556666", "controller": true,
            "blockOwnerDeletion": true
        }],
        "managedFields": [{
            "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
            "time": "2026-01-02T15:04:05Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
        }]
    })
}

#[test]
fn a_full_deployment_survives_a_round_trip() {
    round_trip(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("web"),
        "spec": {
            "replicas": 0,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "paused": true,
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "command": ["nginx"],
                        "args": ["-g", "daemon off;"],
                        "ports": [
                            {"name": "http", "containerPort": 80, "protocol": "TCP"},
                            {"containerPort": 9090, "hostPort": 9091, "hostIP": "0.0.0.0"}
                        ],
                        "env": [
                            {"name": "MODE", "value": "prod"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "PASSWORD", "valueFrom": {
                                "secretKeyRef": {"name": "creds", "key": "password", "optional": false}
                            }}
                        ],
                        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "250m", "memory": "64Mi"}
                        },
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP",
                                        "httpHeaders": [{"name": "X-Probe", "value": "1"}]},
                            "initialDelaySeconds": 5, "periodSeconds": 10, "timeoutSeconds": 1,
                            "successThreshold": 1, "failureThreshold": 3
                        },
                        "readinessProbe": {"tcpSocket": {"port": 80}},
                        "startupProbe": {"exec": {"command": ["cat", "/tmp/ready"]}},
                        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/web", "readOnly": true}],
                        "securityContext": {
                            "runAsUser": 0, "runAsNonRoot": false,
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"]}
                        },
                        "imagePullPolicy": "IfNotPresent",
                        "terminationMessagePath": "/dev/termination-log"
                    }],
                    "volumes": [
                        {"name": "cfg", "configMap": {"name": "web-config", "defaultMode": 420,
                                                      "items": [{"key": "a", "path": "a.conf"}]}},
                        {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "token", "projected": {"sources": [
                            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
                        ]}}
                    ],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 30,
                    "dnsPolicy": "ClusterFirst",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "serviceAccountName": "web",
                    "automountServiceAccountToken": false,
                    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule",
                                     "tolerationSeconds": 300}],
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                            "labelSelector": {"matchLabels": {"app": "web"}}}
                    }]}},
                    "securityContext": {"fsGroup": 2000, "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}
                }
            }
        },
        "status": {
            "observedGeneration": 3,
            "replicas": 3,
            "readyReplicas": 3,
            "conditions": [{
                "type": "Available", "status": "True",
                "lastUpdateTime": "2026-01-02T15:04:05Z",
                "lastTransitionTime": "2026-01-02T15:04:05Z",
                "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."
            }]
        }
    }));
}

#[test]
fn core_objects_survive_a_round_trip() {
    round_trip(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "type": "Opaque", "immutable": true,
        "data": {"bin": "AAEC/w==", "text": "aGVsbG8="}}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
        "data": {"a.conf": "x = 1\n"}, "binaryData": {"blob": "3q2+7w=="}}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {
            "type": "NodePort", "selector": {"app": "web"},
            "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 30080},
                {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
            ]
        },
        "status": {"loadBalancer": {}}}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("p"),
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n1",
                 "overhead": {"cpu": "10m"}},
        "status": {
            "phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
            "hostIPs": [{"ip": "192.168.1.2"}], "startTime": "2026-01-02T15:04:05Z",
            "qosClass": "BestEffort",
            "containerStatuses": [{
                "name": "c", "ready": true, "restartCount": 0, "image": "busybox",
                "imageID": "sha256:abc", "containerID": "containerd://1", "started": true,
                "state": {"running": {"startedAt": "2026-01-02T15:04:06Z"}},
                "lastState": {"terminated": {"exitCode": -1, "reason": "Error",
                    "startedAt": "2026-01-02T15:00:00Z", "finishedAt": "2026-01-02T15:01:00Z"}}
            }]
        }}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"],
                 "taints": [{"key": "k", "effect": "NoSchedule", "timeAdded": "2026-01-02T15:04:05Z"}]},
        "status": {
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "3800m"},
            "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
            "conditions": [{"type": "Ready", "status": "True",
                "lastHeartbeatTime": "2026-01-02T15:04:05Z", "lastTransitionTime": "2026-01-02T15:04:05Z"}],
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.1",
                "osImage": "Linux", "containerRuntimeVersion": "containerd://2", "kubeletVersion": "v1.33.0",
                "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": "amd64"},
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}
        }}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.0.0.5", "targetRef": {"kind": "Pod", "name": "p"}}],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
        "secrets": [{"name": "sa-token"}], "automountServiceAccountToken": false}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Scheduled", "message": "assigned", "type": "Normal", "count": 2,
        "firstTimestamp": "2026-01-02T15:04:05Z", "lastTimestamp": "2026-01-02T15:05:05Z",
        "eventTime": "2026-01-02T15:04:05.123456Z", "source": {"component": "scheduler"},
        "reportingComponent": "scheduler", "reportingInstance": "s1"}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
        "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                 "hostPath": {"path": "/data", "type": "DirectoryOrCreate"},
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "local",
                 "claimRef": {"namespace": "default", "name": "data"}},
        "status": {"phase": "Bound"}}),
    );
    // An empty storageClassName means "no class" and must not be dropped.
    round_trip(
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                 "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"}}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
        "spec": {"hard": {"pods": "10", "requests.cpu": "4"}},
        "status": {"hard": {"pods": "10"}, "used": {"pods": "1"}}}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "l"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "1"},
                             "defaultRequest": {"cpu": "100m"}, "max": {"memory": "1Gi"}}]}}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc"},
        "spec": {"replicas": 1, "selector": {"app": "x"},
                 "template": {"metadata": {"labels": {"app": "x"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "pt"},
        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}),
    );
    round_trip(
        json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"kind": "Node", "name": "n1"}}),
    );
}

#[test]
fn workload_objects_survive_a_round_trip() {
    let template = json!({"metadata": {"labels": {"app": "x"}},
                          "spec": {"containers": [{"name": "c", "image": "i"}]}});
    round_trip(
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "x"}}, "template": template},
        "status": {"replicas": 2, "fullyLabeledReplicas": 2}}),
    );
    round_trip(
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "replicas": 3, "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": {"app": "x"}}, "template": template,
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                     "spec": {"accessModes": ["ReadWriteOnce"],
                              "resources": {"requests": {"storage": "1Gi"}}}}],
                 "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"}}}),
    );
    round_trip(
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "ds"},
        "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template,
                 "updateStrategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "0%"}}},
        "status": {"currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                   "numberMisscheduled": 0, "numberReady": 1}}),
    );
    round_trip(
        json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "cr"},
        "revision": 7, "data": {"spec": {"template": {"$patch": "replace"}}}}),
    );
    round_trip(
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1, "suspend": false,
                 "ttlSecondsAfterFinished": 0, "completionMode": "NonIndexed",
                 "podFailurePolicy": {"rules": [{"action": "FailJob",
                     "onExitCodes": {"operator": "In", "values": [1, 2, 42]}}]},
                 "template": {"spec": {"containers": [{"name": "c", "image": "i"}],
                                       "restartPolicy": "Never"}}},
        "status": {"startTime": "2026-01-02T15:04:05Z", "succeeded": 1,
                   "completionTime": "2026-01-02T15:05:05Z"}}),
    );
    round_trip(
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
        "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC", "concurrencyPolicy": "Forbid",
                 "startingDeadlineSeconds": 30,
                 "jobTemplate": {"spec": {"template": {"spec": {
                     "containers": [{"name": "c", "image": "i"}], "restartPolicy": "OnFailure"}}}}},
        "status": {"lastScheduleTime": "2026-01-02T15:00:00Z",
                   "active": [{"kind": "Job", "name": "cj-1"}]}}),
    );
    round_trip(
        json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
        "spec": {"replicas": 5}, "status": {"replicas": 3, "selector": "app=web"}}),
    );
    round_trip(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 10,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                     "target": {"type": "Utilization", "averageUtilization": 80}}}],
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300,
                     "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}},
        "status": {"currentReplicas": 2, "desiredReplicas": 2,
                   "lastScaleTime": "2026-01-02T15:04:05Z"}}),
    );
    round_trip(
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
        "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "x"}},
                 "unhealthyPodEvictionPolicy": "AlwaysAllow"},
        "status": {"disruptionsAllowed": 1, "currentHealthy": 2, "desiredHealthy": 1,
                   "expectedPods": 2, "disruptedPods": {"p1": "2026-01-02T15:04:05Z"}}}),
    );
    round_trip(json!({"apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": "p", "namespace": "default"},
        "deleteOptions": {"gracePeriodSeconds": 0, "propagationPolicy": "Background",
                          "dryRun": ["All"]}}));
}

#[test]
fn networking_rbac_and_cluster_objects_survive_a_round_trip() {
    round_trip(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i"},
        "spec": {"ingressClassName": "nginx",
                 "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}],
                 "rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
    );
    round_trip(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
        "spec": {"controller": "k8s.io/ingress-nginx"}}),
    );
    round_trip(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                                       {"namespaceSelector": {"matchLabels": {"team": "a"}}}],
                              "ports": [{"protocol": "TCP", "port": 8000, "endPort": 9000},
                                        {"port": "dns"}]}]}}),
    );
    let rules = json!([{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                       {"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]);
    round_trip(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "r"}, "rules": rules}),
    );
    round_trip(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "cr"}, "rules": rules,
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]}}),
    );
    let subjects = json!([{"kind": "ServiceAccount", "name": "sa", "namespace": "default"},
                          {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}]);
    round_trip(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "rb"}, "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"}}),
    );
    round_trip(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "crb"}, "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr"}}),
    );
    round_trip(
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
        "metadata": {"name": "high"}, "value": 1000000, "globalDefault": true,
        "preemptionPolicy": "Never", "description": "important"}),
    );
    round_trip(
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local"}, "provisioner": "rancher.io/local-path",
        "parameters": {"type": "ssd"}, "reclaimPolicy": "Delete", "allowVolumeExpansion": true,
        "volumeBindingMode": "WaitForFirstConsumer", "mountOptions": ["noatime"]}),
    );
    round_trip(
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "n1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                 "acquireTime": "2026-01-02T15:04:05.000000Z",
                 "renewTime": "2026-01-02T15:04:45.123456Z", "leaseTransitions": 0}}),
    );
    round_trip(
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.5"], "nodeName": "n1", "zone": "z1",
                       "conditions": {"ready": true, "serving": true, "terminating": false},
                       "targetRef": {"kind": "Pod", "name": "p", "namespace": "default"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}]}),
    );
    round_trip(
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
        "eventTime": "2026-01-02T15:04:05.123456Z", "reportingController": "kubelet",
        "reportingInstance": "n1", "action": "Pulling", "reason": "Pulling", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "p"}, "note": "pulling image",
        "series": {"count": 3, "lastObservedTime": "2026-01-02T15:05:05.000001Z"},
        "deprecatedCount": 3, "deprecatedFirstTimestamp": "2026-01-02T15:04:05Z"}),
    );
    round_trip(
        json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": "csr"},
        "spec": {"request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
                 "signerName": "kubernetes.io/kube-apiserver-client", "expirationSeconds": 86400,
                 "usages": ["client auth"], "username": "jane", "groups": ["system:authenticated"],
                 "extra": {"scopes": ["a", "b"]}},
        "status": {"certificate": "AAEC", "conditions": [{"type": "Approved", "status": "True",
            "reason": "AutoApproved", "lastUpdateTime": "2026-01-02T15:04:05Z"}]}}),
    );
}

#[test]
fn auth_reviews_and_meta_kinds_survive_a_round_trip() {
    round_trip(
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "metadata": {"name": "sa"},
        "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600,
                 "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}},
        "status": {"token": "eyJ...", "expirationTimestamp": "2026-01-02T16:04:05Z"}}),
    );
    round_trip(
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
        "metadata": {},
        "status": {"userInfo": {"username": "jane", "uid": "1", "groups": ["dev"],
                                "extra": {"scopes": ["view"], "empty": []}}}}),
    );
    round_trip(
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "metadata": {},
        "spec": {"token": "abc", "audiences": ["api"]},
        "status": {"authenticated": true, "user": {"username": "system:serviceaccount:default:sa"},
                   "audiences": ["api"]}}),
    );
    round_trip(
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "create",
                                        "group": "apps", "resource": "deployments",
                                        "labelSelector": {"rawSelector": "app=web"}}},
        "status": {"allowed": true, "reason": "RBAC: allowed"}}),
    );
    round_trip(json!({"apiVersion": "v1", "kind": "Status", "metadata": {},
        "status": "Failure", "message": "pods \"p\" not found", "reason": "NotFound",
        "details": {"name": "p", "kind": "pods",
                    "causes": [{"reason": "FieldValueInvalid", "message": "bad", "field": "spec"}]},
        "code": 404}));
    round_trip(
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
        "gracePeriodSeconds": 30, "propagationPolicy": "Foreground",
        "preconditions": {"uid": "u", "resourceVersion": "7"}}),
    );
    round_trip(json!({"apiVersion": "apps/v1", "kind": "DeploymentList",
        "metadata": {"resourceVersion": "99", "continue": "token", "remainingItemCount": 5},
        "items": [{"metadata": {"name": "a"}, "spec": {"replicas": 1,
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}]}));
    round_trip(
        json!({"apiVersion": "v1", "kind": "NamespaceList", "metadata": {},
        "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}),
    );
}

#[test]
fn a_raw_extension_may_hold_any_json_value() {
    for data in [
        json!([1, "two", null]),
        json!("text"),
        json!(3.5),
        json!({"a": {"b": [true]}}),
    ] {
        round_trip(
            json!({"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": "cr"}, "revision": 1, "data": data}),
        );
    }
}

#[test]
fn negative_and_extreme_integers_survive_a_round_trip() {
    round_trip(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "securityContext": {"runAsUser": i64::MAX}}],
                 "activeDeadlineSeconds": i64::MAX, "priority": i32::MIN},
        "status": {"containerStatuses": [{"name": "c", "ready": false, "restartCount": i32::MAX,
            "image": "", "imageID": "",
            "state": {"terminated": {"exitCode": i32::MIN, "startedAt": "0001-01-01T00:00:01Z"}}}]}}),
    );
}
