//! End to end: the real `rkube server` binary, driven by the real kubectl (1.33 and 1.32) as
//! a user drives a cluster, on the embedded store and on a real etcd. Each step asserts what
//! the user sees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::Cluster;
use rkube_store_tests::{EtcdServer, free_port};

const MANIFEST: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: web}
data:
  a: "1"
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  password: hunter2
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1.36
        command: ["true"]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: main
            image: busybox:1.36
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: postgres:16
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: busybox:1.36
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port: {number: 80}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: deny-all
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
subjects:
- kind: User
  name: jane
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: reader
  apiGroup: rbac.authorization.k8s.io
"#;

fn user_workflow(c: &Cluster, server_version: &str) {
    let manifest = c.write("app.yaml", MANIFEST);

    // apply, apply unchanged, apply a change.
    let out = c.ok(&["apply", "-f", &manifest]);
    for line in [
        "configmap/settings created",
        "secret/creds created",
        "deployment.apps/web created",
        "service/web created",
        "job.batch/once created",
        "cronjob.batch/nightly created",
        "statefulset.apps/db created",
        "daemonset.apps/agent created",
        "ingress.networking.k8s.io/web created",
        "networkpolicy.networking.k8s.io/deny-all created",
        "role.rbac.authorization.k8s.io/reader created",
        "rolebinding.rbac.authorization.k8s.io/read-pods created",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let again = c.ok(&["apply", "-f", &manifest]);
    assert!(
        again.contains("configmap/settings unchanged")
            && again.contains("deployment.apps/web unchanged"),
        "{again}"
    );
    let changed = c.write(
        "app2.yaml",
        &MANIFEST
            .replace("a: \"1\"", "a: \"2\"")
            .replace("nginx:1.25", "nginx:1.26"),
    );
    let diff = c.run(&["diff", "-f", &changed]);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "diff exits 1 when something would change"
    );
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+      - image: nginx:1.26"));
    let out = c.ok(&["apply", "-f", &changed]);
    assert!(
        out.contains("configmap/settings configured")
            && out.contains("deployment.apps/web configured"),
        "{out}"
    );
    assert!(out.contains("service/web unchanged"), "{out}");

    // get in its forms.
    assert_eq!(
        c.ok(&["get", "cm", "settings", "-o", "jsonpath={.data.a}"]),
        "2"
    );
    let wide = c.ok(&["get", "deploy", "web", "-o", "wide"]);
    assert!(
        wide.contains("nginx:1.26") && wide.contains("app=web") && wide.starts_with("NAME"),
        "{wide}"
    );
    assert_eq!(
        c.ok(&["get", "cm", "-l", "app=web", "-o", "name"]).trim(),
        "configmap/settings"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "ns",
            "--field-selector",
            "metadata.name=default",
            "-o",
            "name"
        ])
        .trim(),
        "namespace/default"
    );
    let svcs = c.ok(&["get", "svc", "-A"]);
    assert!(
        svcs.contains("kubernetes") && svcs.contains("10.43.0.1") && svcs.contains("443/TCP"),
        "{svcs}"
    );
    let columns = c.ok(&[
        "get",
        "svc",
        "web",
        "-o",
        "custom-columns=NAME:.metadata.name,TYPE:.spec.type",
        "--no-headers",
    ]);
    assert_eq!(
        columns.split_whitespace().collect::<Vec<_>>(),
        ["web", "ClusterIP"]
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "deploy", "-o", "json"])).unwrap();
    assert_eq!(
        json["items"][0]["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults are applied"
    );
    let yaml = c.ok(&["get", "secret", "creds", "-o", "yaml"]);
    assert!(
        yaml.contains("password: aHVudGVyMg=="),
        "stringData is encoded into data: {yaml}"
    );
    let sorted = c.ok(&["get", "cm", "--sort-by=.metadata.name", "-o", "name"]);
    let names: Vec<&str> = sorted.lines().collect();
    let mut in_order = names.clone();
    in_order.sort();
    assert_eq!(names, in_order, "--sort-by orders by name");
    assert!(names.contains(&"configmap/settings"), "{sorted}");
    let labels = c.ok(&["get", "deploy", "web", "--show-labels"]);
    assert!(
        labels.contains("LABELS") && labels.contains("app=web"),
        "{labels}"
    );
    // The controllers make pods for the workloads above; an empty selection still says so.
    let pods = c.run(&["get", "pods", "-l", "app=nothing-selects-this"]);
    assert!(
        pods.status.success()
            && String::from_utf8_lossy(&pods.stderr).contains("No resources found")
    );
    // The Deployment's controllers create its pods through ReplicaSets (with no kubelet the
    // pods never become ready, so a rollout of a changed template keeps old and new ones).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pods = c.ok(&["get", "pods", "-l", "app=web", "-o", "name"]);
        if pods.lines().count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the deployment's pods: {pods}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Changing things.
    assert!(
        c.ok(&["label", "cm", "settings", "tier=gold"])
            .contains("configmap/settings labeled")
    );
    assert!(
        c.ok(&["annotate", "cm", "settings", "note=hi"])
            .contains("configmap/settings annotated")
    );
    assert!(
        c.ok(&[
            "patch",
            "cm",
            "settings",
            "--type=json",
            "-p",
            r#"[{"op":"add","path":"/data/b","value":"x"}]"#
        ])
        .contains("patched")
    );
    assert!(
        c.ok(&[
            "patch",
            "cm",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"c":"y"}}"#
        ])
        .contains("patched")
    );
    assert!(c.ok(&["patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"nginx","env":[{"name":"MODE","value":"fast"}]}]}}}}"#]).contains("patched"));
    let containers = c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].env[0].value}"]);
    assert_eq!(
        containers, "nginx:1.26 fast",
        "strategic merge kept the image and added env"
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "settings",
            "-o",
            "jsonpath={.data.b}{.data.c}{.metadata.labels.tier}"
        ]),
        "xygold"
    );
    assert!(
        c.ok(&["scale", "deploy", "web", "--replicas=3"])
            .contains("deployment.apps/web scaled")
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "3"
    );
    assert!(
        c.ok(&["set", "image", "deploy/web", "nginx=nginx:1.27"])
            .contains("image updated")
    );
    let mut edit = c.command(&["edit", "deploy", "web"]);
    edit.env("EDITOR", "sed -i s/nginx:1.27/nginx:1.28/");
    let edited = edit.output().unwrap();
    assert!(
        String::from_utf8_lossy(&edited.stdout).contains("deployment.apps/web edited"),
        "{edited:?}"
    );
    let replacement = c.write(
        "replace.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  only: one\n",
    );
    assert!(
        c.ok(&["replace", "-f", &replacement])
            .contains("configmap/settings replaced")
    );
    assert_eq!(
        c.ok(&["get", "cm", "settings", "-o", "jsonpath={.data}"]),
        r#"{"only":"one"}"#
    );

    // Bad input gets the server's error.
    let bad = c.write(
        "bad.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad\nbogus: 1\n",
    );
    assert!(
        c.fails(&["apply", "-f", &bad])
            .contains("strict decoding error: unknown field \"bogus\"")
    );
    let invalid = c.write(
        "invalid.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
    );
    assert!(
        c.fails(&["apply", "-f", &invalid])
            .contains("is invalid: metadata.name: Invalid value: \"Bad_Name\"")
    );
    assert!(
        c.fails(&["get", "cm", "nope"])
            .contains("configmaps \"nope\" not found")
    );
    assert!(
        c.fails(&["get", "pods", "--field-selector", "spec.bogus=1"])
            .contains("field label not supported: spec.bogus")
    );
    assert!(
        c.fails(&["--token", "not-a-token", "get", "ns"])
            .contains("You must be logged in to the server")
    );

    // Watching: ADDED, MODIFIED, DELETED as they happen.
    let watch = c
        .command(&[
            "get",
            "cm",
            "-w",
            "--output-watch-events",
            "--request-timeout=6s",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    c.ok(&[
        "apply",
        "-f",
        &c.write(
            "w.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n",
        ),
    ]);
    c.ok(&["label", "cm", "watched", "x=y"]);
    c.ok(&["delete", "cm", "watched"]);
    let watched = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&watched.stdout);
    let events: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().take(2).collect())
        .filter(|w: &Vec<&str>| w.get(1) == Some(&"watched"))
        .collect();
    assert_eq!(
        events,
        [
            ["ADDED", "watched"],
            ["MODIFIED", "watched"],
            ["DELETED", "watched"]
        ],
        "{text}"
    );

    // Discovery and documentation.
    let resources = c.ok(&["api-resources"]);
    assert!(
        resources
            .lines()
            .any(|l| l.starts_with("deployments") && l.contains("deploy") && l.contains("apps/v1")),
        "{resources}"
    );
    assert!(
        c.ok(&["api-versions"])
            .lines()
            .any(|l| l == "networking.k8s.io/v1")
    );
    assert!(
        c.ok(&["version"])
            .contains(&format!("Server Version: {server_version}"))
    );
    assert!(
        c.ok(&["explain", "pod.spec.containers"])
            .contains("FIELD: containers <[]Container>")
    );
    let describe = c.ok(&["describe", "deploy", "web"]);
    assert!(
        describe.contains("Name:") && describe.contains("nginx:1.28"),
        "{describe}"
    );

    // kustomize.
    c.write("kust/kustomization.yaml", "configMapGenerator:\n- name: generated\n  literals: [k=v]\ngeneratorOptions:\n  disableNameSuffixHash: true\n");
    let dir = c.dir().join("kust");
    assert!(
        c.ok(&["apply", "-k", dir.to_str().unwrap()])
            .contains("configmap/generated created")
    );

    // Deleting.
    assert!(
        c.ok(&["delete", "-f", &manifest])
            .contains("deployment.apps \"web\" deleted")
    );
    assert!(c.fails(&["get", "deploy", "web"]).contains("not found"));
    c.ok(&["wait", "--for=delete", "cm/settings", "--timeout=10s"]);
    // Cascading deletion through ownerReferences, carried out by the garbage collector.
    let owned = |owner: &str, dependent: &str| {
        c.ok(&["create", "configmap", owner]);
        let uid = c.ok(&["get", "cm", owner, "-o", "jsonpath={.metadata.uid}"]);
        let manifest = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {dependent}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n"
        );
        c.ok(&[
            "apply",
            "-f",
            &c.write(&format!("{dependent}.yaml"), &manifest),
        ]);
    };
    owned("boss1", "worker1");
    assert!(
        c.ok(&["delete", "cm", "boss1", "--cascade=orphan", "--timeout=30s"])
            .contains("deleted")
    );
    assert_eq!(
        c.ok(&[
            "get",
            "cm",
            "worker1",
            "-o",
            "jsonpath={.metadata.ownerReferences}"
        ]),
        "",
        "orphaned"
    );
    owned("boss2", "worker2");
    assert!(
        c.ok(&[
            "delete",
            "cm",
            "boss2",
            "--cascade=foreground",
            "--timeout=30s"
        ])
        .contains("deleted")
    );
    assert!(
        c.fails(&["get", "cm", "worker2"]).contains("not found"),
        "foreground deletes dependents first"
    );
    owned("boss3", "worker3");
    c.ok(&["delete", "cm", "boss3"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.run(&["get", "cm", "worker3"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "background deletion left the dependent"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn kubectl_1_33_manages_a_cluster_on_the_embedded_store() {
    let c = Cluster::start("1.33");
    user_workflow(&c, "v1.33.0+rkube");
}

#[test]
fn kubectl_1_32_manages_a_cluster_on_the_embedded_store() {
    let c = Cluster::start("1.32");
    user_workflow(&c, "v1.33.0+rkube");
}

#[test]
fn kubectl_manages_a_cluster_on_etcd() {
    let c = Cluster::on_etcd("1.33", EtcdServer::start());
    user_workflow(&c, "v1.33.0+rkube");
}

#[test]
fn a_file_that_is_not_a_database_stops_the_server_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db/state.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    std::fs::write(&db, b"not a database at all".repeat(100)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rkube"))
        .args([
            "server",
            "--disable-agent",
            "--https-listen-port",
            &free_port().to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&db.display().to_string()),
        "the error names the file: {stderr}"
    );
}

/// The `kubectl create …` subcommands, `kubectl run` and `auth whoami` send protobuf bodies.
fn imperative_workflow(c: &Cluster) {
    let steps: &[(&[&str], &str)] = &[
        (
            &["create", "namespace", "team-a"],
            "namespace/team-a created",
        ),
        (
            &["create", "configmap", "c1", "--from-literal=k=v"],
            "configmap/c1 created",
        ),
        (
            &["create", "secret", "generic", "s1", "--from-literal=p=w"],
            "secret/s1 created",
        ),
        (
            &[
                "create",
                "deployment",
                "d1",
                "--image=nginx:1.27",
                "--replicas=2",
            ],
            "deployment.apps/d1 created",
        ),
        (
            &["create", "service", "clusterip", "s2", "--tcp=80:8080"],
            "service/s2 created",
        ),
        (
            &["create", "job", "j1", "--image=busybox:1.36", "--", "true"],
            "job.batch/j1 created",
        ),
        (
            &[
                "create",
                "cronjob",
                "cj1",
                "--image=busybox:1.36",
                "--schedule=*/5 * * * *",
            ],
            "cronjob.batch/cj1 created",
        ),
        (
            &["create", "job", "j2", "--from=cronjob/cj1"],
            "job.batch/j2 created",
        ),
        (
            &["create", "serviceaccount", "bot"],
            "serviceaccount/bot created",
        ),
        (
            &["create", "role", "r1", "--verb=get", "--resource=pods"],
            "role.rbac.authorization.k8s.io/r1 created",
        ),
        (
            &["create", "rolebinding", "rb1", "--role=r1", "--user=jane"],
            "rolebinding.rbac.authorization.k8s.io/rb1 created",
        ),
        (
            &["create", "quota", "q1", "--hard=pods=10"],
            "resourcequota/q1 created",
        ),
        (
            &["create", "priorityclass", "pc1", "--value=1000"],
            "priorityclass.scheduling.k8s.io/pc1 created",
        ),
        (
            &[
                "create",
                "poddisruptionbudget",
                "pdb1",
                "--selector=app=x",
                "--min-available=1",
            ],
            "poddisruptionbudget.policy/pdb1 created",
        ),
        (
            &["create", "ingress", "i1", "--rule=a.example.com/=s2:80"],
            "ingress.networking.k8s.io/i1 created",
        ),
        (&["run", "p1", "--image=nginx:1.27"], "pod/p1 created"),
    ];
    for (args, expected) in steps {
        let out = c.ok(args);
        assert!(out.contains(expected), "kubectl {args:?}: {out}");
    }
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "d1",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.spec.replicas}"
        ]),
        "nginx:1.27 2"
    );
    assert_eq!(
        c.ok(&["get", "secret", "s1", "-o", "jsonpath={.data.p}"]),
        "dw=="
    );
    assert_eq!(
        c.ok(&[
            "get",
            "job",
            "j2",
            "-o",
            "jsonpath={.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}"
        ]),
        "manual"
    );
    let pods = c.ok(&["get", "pods"]);
    assert!(
        pods.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "p1",
                    "0/1",
                    "Pending",
                    "0",
                    l.split_whitespace().last().unwrap_or("")
                ]),
        "{pods}"
    );
    let whoami = c.ok(&["auth", "whoami"]);
    assert!(
        whoami.contains("system:admin") && whoami.contains("system:masters"),
        "{whoami}"
    );
    assert_eq!(c.ok(&["auth", "can-i", "create", "pods"]).trim(), "yes");
    assert!(
        c.fails(&["create", "configmap", "c1", "--from-literal=k=v"])
            .contains("configmaps \"c1\" already exists")
    );

    // Service account tokens: issued by TokenRequest, accepted while the account exists.
    let token = c.ok(&["create", "token", "bot"]);
    let token = token.trim();
    let who = c.ok(&[
        "--token",
        token,
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(who, "system:serviceaccount:default:bot");
    assert!(
        c.fails(&["create", "token", "bot", "--duration=5m"])
            .contains("may not specify a duration less than 10 minutes")
    );
    c.ok(&["delete", "serviceaccount", "bot"]);
    assert!(
        c.fails(&["--token", token, "get", "ns"])
            .contains("You must be logged in to the server"),
        "a deleted account's token is refused"
    );

    // Certificate signing requests: created from a real request, approved through kubectl.
    let key = c.dir().join("csr.key");
    let request = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=jane/O=dev",
        ])
        .arg("-keyout")
        .arg(&key)
        .output()
        .expect("openssl");
    assert!(request.status.success(), "{request:?}");
    let encoded = base64::engine::general_purpose::STANDARD.encode(&request.stdout);
    let csr = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: jane\nspec:\n  request: {encoded}\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n"
    );
    c.ok(&["apply", "-f", &c.write("csr.yaml", &csr)]);
    assert!(
        c.ok(&["certificate", "approve", "jane"])
            .contains("certificatesigningrequest.certificates.k8s.io/jane approved")
    );
    let condition = c.ok(&[
        "get",
        "csr",
        "jane",
        "-o",
        "jsonpath={.status.conditions[0].type}",
    ]);
    assert_eq!(condition, "Approved");

    // Every namespace gets its default ServiceAccount and the cluster CA from the controllers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(c
        .run(&["get", "sa", "default", "-n", "team-a"])
        .status
        .success()
        && c.run(&["get", "cm", "kube-root-ca.crt", "-n", "team-a"])
            .status
            .success())
    {
        assert!(
            Instant::now() < deadline,
            "no default service account in team-a"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Deleting a namespace empties it and then removes it; kubectl waits for that.
    c.ok(&[
        "create",
        "configmap",
        "inside",
        "-n",
        "team-a",
        "--from-literal=k=v",
    ]);
    c.ok(&[
        "create",
        "deployment",
        "app",
        "-n",
        "team-a",
        "--image=nginx:1.27",
    ]);
    let deleted = c.ok(&["delete", "namespace", "team-a", "--timeout=30s"]);
    assert!(
        deleted.contains("namespace \"team-a\" deleted"),
        "{deleted}"
    );
    assert!(
        c.fails(&["get", "namespace", "team-a"])
            .contains("namespaces \"team-a\" not found")
    );
}

#[test]
fn kubectl_1_33_create_subcommands_send_protobuf() {
    imperative_workflow(&Cluster::start("1.33"));
}

#[test]
fn kubectl_1_32_create_subcommands_send_protobuf() {
    imperative_workflow(&Cluster::start("1.32"));
}

#[test]
fn the_official_python_client_creates_lists_and_watches_pods() {
    // The script asserts the exact watch events its own writes cause; without nodes the
    // scheduler would add one (PodScheduled=False), so it is left out here.
    let c = Cluster::start_with("1.33", &["--disable-scheduler"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python_client.py");
    let out = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(c.kubeconfig())
        .output()
        .expect("python3-kubernetes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("watched ADDED MODIFIED DELETED") && stdout.contains("gone 404"),
        "{stdout}"
    );
}

#[test]
fn bearer_tokens_from_the_token_file_authenticate() {
    let tokens = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tokens.path(), "s3cret,alice,1001,\"dev,ops\"\n").unwrap();
    let c = Cluster::start_with(
        "1.33",
        &["--token-auth-file", tokens.path().to_str().unwrap()],
    );
    let whoami = c.ok(&[
        "--token",
        "s3cret",
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(whoami, r#"alice ["dev","ops","system:authenticated"]"#);
    let denied = c.fails(&["--token", "wrong", "get", "pods"]);
    assert!(
        denied.contains("You must be logged in to the server"),
        "{denied}"
    );
    let slice = c.ok(&[
        "get",
        "endpointslice",
        "kubernetes",
        "-o",
        "jsonpath={.ports[0].port}",
    ]);
    assert!(
        !slice.is_empty(),
        "the kubernetes Service has its EndpointSlice"
    );
}

/// Server-side apply: field ownership, a conflict with another writer, and forcing it.
fn server_side_apply_workflow(c: &Cluster) {
    let manifest = c.write("ssa.yaml", MANIFEST);
    let out = c.ok(&["apply", "--server-side", "-f", &manifest]);
    assert!(
        out.contains("deployment.apps/web serverside-applied")
            && out.contains("service/web serverside-applied"),
        "{out}"
    );
    assert!(
        c.ok(&["apply", "--server-side", "-f", &manifest])
            .contains("deployment.apps/web serverside-applied")
    );
    c.ok(&["scale", "deploy", "web", "--replicas=5"]);
    let conflict = c.fails(&["apply", "--server-side", "-f", &manifest]);
    assert!(
        conflict.contains("Apply failed with 1 conflict") && conflict.contains(".spec.replicas"),
        "{conflict}"
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "5",
        "nothing changed"
    );
    assert!(
        c.ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &manifest
        ])
        .contains("deployment.apps/web serverside-applied")
    );
    assert_eq!(
        c.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]),
        "2"
    );
    let managers = c.ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "jsonpath={.metadata.managedFields[*].manager}:{.metadata.managedFields[*].operation}",
    ]);
    assert!(
        managers.contains("kubectl") && managers.contains("Apply"),
        "{managers}"
    );
    // Dropping a field from the configuration removes it.
    let slim = c.write(
        "ssa2.yaml",
        &MANIFEST.replace("        ports:\n        - containerPort: 80\n", ""),
    );
    c.ok(&["apply", "--server-side", "-f", &slim]);
    assert_eq!(
        c.ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].ports}"
        ]),
        ""
    );
}

#[test]
fn kubectl_1_33_applies_server_side() {
    server_side_apply_workflow(&Cluster::start("1.33"));
}

#[test]
fn kubectl_1_32_applies_server_side() {
    server_side_apply_workflow(&Cluster::start("1.32"));
}

#[test]
fn the_server_shuts_down_cleanly_on_sigterm_and_keeps_its_data() {
    let mut c = Cluster::start("1.33");
    c.ok(&["create", "configmap", "kept", "--from-literal=k=v"]);
    let status = c.terminate();
    assert!(status.success(), "exit status {status}: {}", c.log());
    // The same data directory serves the same objects again.
    c.restart();
    assert_eq!(
        c.ok(&["get", "cm", "kept", "-o", "jsonpath={.data.k}"]),
        "v"
    );
}

/// Polls `kubectl` until `args` print `want` (10 s at most); returns the last output.
fn eventually(c: &Cluster, args: &[&str], want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = String::from_utf8_lossy(&c.run(args).stdout).into_owned();
        if want(&out) || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_server_schedules_pods_and_kubectl_describe_shows_why_not() {
    let c = Cluster::start("1.33");
    let node = "apiVersion: v1\nkind: Node\nmetadata:\n  name: worker-1\nstatus:\n  \
                capacity: {cpu: \"2\", memory: 4Gi, pods: \"110\"}\n  \
                allocatable: {cpu: \"2\", memory: 4Gi, pods: \"110\"}\n";
    c.ok(&["apply", "-f", &c.write("node.yaml", node)]);
    let pod = |name: &str, cpu: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  \
             - name: main\n    image: nginx:1.27\n    resources:\n      requests: {{cpu: \"{cpu}\"}}\n"
        )
    };
    c.ok(&["apply", "-f", &c.write("small.yaml", &pod("small", "500m"))]);
    c.ok(&["apply", "-f", &c.write("huge.yaml", &pod("huge", "3"))]);
    let node_name = eventually(
        &c,
        &["get", "pod", "small", "-o", "jsonpath={.spec.nodeName}"],
        |out| out == "worker-1",
    );
    assert_eq!(node_name, "worker-1");
    let describe = eventually(&c, &["describe", "pod", "huge"], |out| {
        out.contains("FailedScheduling")
    });
    assert!(
        describe.contains(
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
             1 Preemption is not helpful for scheduling."
        ),
        "{describe}"
    );
    // The scheduler's metrics are served on the API server's /metrics.
    let metrics = c.ok(&["get", "--raw", "/metrics"]);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("scheduler_schedule_attempts_total{")
                && l.contains("result=\"scheduled\"")),
        "{metrics}"
    );
    assert!(metrics.contains("scheduler_pending_pods{"), "{metrics}");
}

const CRONTAB_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
    categories: [all]
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec:
                type: string
                pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
              image:
                type: string
              replicas:
                type: integer
                minimum: 1
                maximum: 10
                default: 1
          status:
            type: object
            properties:
              replicas:
                type: integer
    subresources:
      status: {}
      scale:
        specReplicasPath: .spec.replicas
        statusReplicasPath: .status.replicas
    additionalPrinterColumns:
    - name: Spec
      type: string
      jsonPath: .spec.cronSpec
    - name: Replicas
      type: integer
      jsonPath: .spec.replicas
    - name: Age
      type: date
      jsonPath: .metadata.creationTimestamp
"#;

/// A user installs a CustomResourceDefinition and works with its resources as with built-in
/// ones: apply, get with the printer columns, explain, validation errors, scale, patch, the
/// `all` category, and deleting the definition takes its resources with it.
fn custom_resource_workflow(c: &Cluster) {
    let crd = c.write("crontab-crd.yaml", CRONTAB_CRD);
    c.ok(&["apply", "-f", &crd]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=20s",
    ]);
    let cr = c.write(
        "crontab.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: nightly\nspec:\n  cronSpec: \"0 3 * * *\"\n  image: backup:1\n",
    );
    // A fresh kubectl finds the new kind through discovery.
    let out = c.ok(&["apply", "-f", &cr]);
    assert_eq!(out.trim(), "crontab.stable.example.com/nightly created");
    let out = c.ok(&["get", "ct"]);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["NAME", "SPEC", "REPLICAS", "AGE"]);
    assert_eq!(&lines[1][..6], ["nightly", "0", "3", "*", "*", "*"]);
    assert_eq!(lines[1][6], "1", "the schema's default: {out}");
    let out = c.ok(&["get", "all"]);
    assert!(out.contains("crontab.stable.example.com/nightly"), "{out}");
    let out = c.ok(&["explain", "crontab.spec.replicas"]);
    assert!(out.contains("FIELD: replicas <integer>"), "{out}");

    let bad = c.write(
        "bad-crontab.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: bad\nspec:\n  cronSpec: sometimes\n  replicas: 11\n",
    );
    let err = c.fails(&["apply", "-f", &bad]);
    assert!(
        err.contains("The CronTab \"bad\" is invalid:")
            && err.contains("spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10")
            && err.contains("spec.cronSpec in body should match"),
        "{err}"
    );
    let unknown = c.write(
        "unknown-crontab.yaml",
        "apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata:\n  name: odd\nspec:\n  cronSpec: \"* * * * *\"\n  colour: red\n",
    );
    let err = c.fails(&["apply", "-f", &unknown]);
    assert!(err.contains("unknown field \"spec.colour\""), "{err}");

    let out = c.ok(&["scale", "crontab", "nightly", "--replicas=3"]);
    assert!(out.contains("scaled"), "{out}");
    assert_eq!(
        c.ok(&[
            "get",
            "ct",
            "nightly",
            "-o",
            "jsonpath={.spec.replicas} {.metadata.generation}"
        ]),
        "3 2"
    );
    c.ok(&[
        "patch",
        "ct",
        "nightly",
        "--type=merge",
        "-p",
        r#"{"spec":{"image":"backup:2"}}"#,
    ]);
    let err = c.fails(&[
        "patch",
        "ct",
        "nightly",
        "-p",
        r#"{"spec":{"image":"backup:3"}}"#,
    ]);
    assert!(
        err.contains("application/strategic-merge-patch+json is not supported"),
        "{err}"
    );
    c.ok(&[
        "patch",
        "ct",
        "nightly",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"replicas":3}}"#,
    ]);
    assert_eq!(
        c.ok(&["get", "ct", "nightly", "-o", "jsonpath={.status.replicas}"]),
        "3"
    );

    c.ok(&["delete", "crd", "crontabs.stable.example.com"]);
    let out = eventually(c, &["get", "crd", "-o", "name"], |o| {
        !o.contains("crontabs")
    });
    assert!(!out.contains("crontabs"), "{out}");
    c.ok(&["apply", "-f", &crd]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/crontabs.stable.example.com",
        "--timeout=20s",
    ]);
    let out = c.ok(&["get", "crontabs", "-A", "-o", "name"]);
    assert_eq!(
        out.trim(),
        "",
        "the old resources went with the old definition"
    );
}

#[test]
fn kubectl_1_33_manages_custom_resources() {
    custom_resource_workflow(&Cluster::start("1.33"));
}

#[test]
fn kubectl_1_32_manages_custom_resources() {
    custom_resource_workflow(&Cluster::start("1.32"));
}

/// A definition served in two versions: v1 stored, v2 converted by strategy None.
const TWO_VERSION_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: backups.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names:
    plural: backups
    kind: Backup
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
  - name: v2
    served: true
    storage: false
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

/// A resource written in one version of its definition is read in the other, and `kubectl
/// get apiservices` shows the local APIServices of built-in and custom group versions.
fn versions_and_api_services_workflow(c: &Cluster) {
    let crd = c.write("backup-crd.yaml", TWO_VERSION_CRD);
    c.ok(&["apply", "-f", &crd]);
    c.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/backups.stable.example.com",
        "--timeout=20s",
    ]);
    let cr = c.write(
        "backup.yaml",
        "apiVersion: stable.example.com/v1\nkind: Backup\nmetadata:\n  name: nightly\nspec:\n  at: \"0 3 * * *\"\n",
    );
    c.ok(&["apply", "-f", &cr]);
    let out = c.ok(&[
        "get",
        "backups.v2.stable.example.com",
        "nightly",
        "-o",
        "jsonpath={.apiVersion} {.spec.at}",
    ]);
    assert_eq!(out, "stable.example.com/v2 0 3 * * *");
    let out = c.ok(&[
        "get",
        "backups.v2.stable.example.com",
        "-o",
        "jsonpath={.items[*].apiVersion}",
    ]);
    assert_eq!(out, "stable.example.com/v2");
    let out = c.ok(&[
        "get",
        "backups.v1.stable.example.com",
        "nightly",
        "-o",
        "jsonpath={.apiVersion}",
    ]);
    assert_eq!(out, "stable.example.com/v1");

    let out = eventually(c, &["get", "apiservices"], |o| {
        o.contains("v2.stable.example.com")
    });
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "SERVICE", "AVAILABLE", "AGE"]);
    for name in [
        "v1.",
        "v1.apps",
        "v1.stable.example.com",
        "v2.stable.example.com",
    ] {
        let row = rows
            .iter()
            .find(|r| r[0] == name)
            .unwrap_or_else(|| panic!("{name}: {out}"));
        assert_eq!(&row[1..3], ["Local", "True"], "{out}");
    }
}

#[test]
fn kubectl_1_33_reads_custom_resources_in_every_version_and_lists_api_services() {
    versions_and_api_services_workflow(&Cluster::start("1.33"));
}

const HPA_V1: &str = "apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: web
  minReplicas: 1
  maxReplicas: 4
  targetCPUUtilizationPercentage: 60
";

/// HorizontalPodAutoscalers through `kubectl autoscale` and autoscaling/v1 manifests, read
/// back in both versions.
fn autoscaler_workflow(c: &Cluster) {
    c.ok(&["create", "deployment", "web", "--image=busybox"]);
    assert!(
        c.ok(&["api-resources", "--api-group=autoscaling"])
            .contains("autoscaling/v2")
    );
    c.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--name=auto",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    assert_eq!(
        c.ok(&[
            "get",
            "horizontalpodautoscalers.v1.autoscaling",
            "auto",
            "-o",
            "jsonpath={.apiVersion} {.spec.targetCPUUtilizationPercentage}",
        ]),
        "autoscaling/v1 50"
    );
    let manifest = c.write("hpa.yaml", HPA_V1);
    assert!(
        c.ok(&["apply", "-f", &manifest])
            .contains("horizontalpodautoscaler.autoscaling/web created")
    );
    let changed = c.write("hpa2.yaml", &HPA_V1.replace(": 60", ": 70"));
    assert!(
        c.ok(&["apply", "-f", &changed])
            .contains("horizontalpodautoscaler.autoscaling/web configured")
    );
    assert_eq!(
        c.ok(&[
            "get",
            "hpa",
            "web",
            "-o",
            "jsonpath={.apiVersion} {.spec.metrics[0].resource.target.averageUtilization}",
        ]),
        "autoscaling/v2 70"
    );
    let table = c.ok(&["get", "horizontalpodautoscalers.v1.autoscaling"]);
    assert!(
        table.contains("Deployment/web") && table.contains("auto") && table.contains("web"),
        "{table}"
    );
}

#[test]
fn kubectl_1_33_manages_autoscalers_in_both_versions() {
    autoscaler_workflow(&Cluster::start("1.33"));
}

#[test]
fn kubectl_1_32_manages_autoscalers_in_both_versions() {
    autoscaler_workflow(&Cluster::start("1.32"));
}

/// Polls `kubectl` until its output (stdout and stderr) satisfies `want`, for `timeout` at
/// most; returns the last output.
fn eventually_within(
    c: &Cluster,
    timeout: Duration,
    args: &[&str],
    want: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let out = c.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if want(&text) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Service, EndpointSlice and APIService that put the wardle server at 127.0.0.1:`port`
/// behind the group version `wardle.example.com/v1alpha1`.
fn wardle_manifests(port: u16, ca_pem: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  ports:
  - name: https
    port: 443
    targetPort: {port}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: api-1
  labels:
    kubernetes.io/service-name: api
addressType: IPv4
endpoints:
- addresses: [127.0.0.1]
  conditions:
    ready: true
ports:
- name: https
  port: {port}
  protocol: TCP
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: v1alpha1.wardle.example.com
spec:
  group: wardle.example.com
  version: v1alpha1
  service:
    namespace: default
    name: api
    port: 443
  caBundle: {ca}
  groupPriorityMinimum: 2000
  versionPriority: 200
"
    )
}

/// An extension API server registered with an APIService: kubectl waits for it to be
/// Available, finds its resources in discovery, lists and creates them through the server
/// (the backend sees the admin), and sees them go when the backend stops and when the
/// APIService is deleted.
fn aggregated_api_server_workflow(version: &str) {
    use rkube_apiserver_tests::wardle::{RequestHeaderTrust, Wardle};
    let c = Cluster::start(version);
    let cm = c.ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
        "-o",
        "json",
    ]);
    let cm: serde_json::Value = serde_json::from_str(&cm).unwrap();
    let trust = RequestHeaderTrust::from_config_map(&cm["data"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let wardle = runtime.block_on(Wardle::start(trust, &["api.default.svc"]));
    wardle.insert("default", "one");
    let manifests = c.write(
        "wardle.yaml",
        &wardle_manifests(wardle.addr.port(), &wardle.ca_pem),
    );
    c.ok(&["apply", "-f", &manifests]);
    c.ok(&[
        "wait",
        "--for=condition=Available",
        "apiservice/v1alpha1.wardle.example.com",
        "--timeout=30s",
    ]);
    let out = c.ok(&["get", "apiservice", "v1alpha1.wardle.example.com"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..3],
        ["v1alpha1.wardle.example.com", "default/api", "True"],
        "{out}"
    );

    let out = c.ok(&["api-resources", "--api-group=wardle.example.com"]);
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row,
        [
            "flunders",
            "fl",
            "wardle.example.com/v1alpha1",
            "true",
            "Flunder"
        ],
        "{out}"
    );
    let out = c.ok(&["get", "flunders"]);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [vec!["NAME", "CREATED", "BY"], vec!["one", "test"]],
        "{out}"
    );

    // Client-side validation is on (kubectl's default): kubectl reads the group version's
    // OpenAPI documents, which the server took from the backend.
    let flunder = c.write(
        "flunder.yaml",
        "apiVersion: wardle.example.com/v1alpha1\nkind: Flunder\nmetadata:\n  name: two\nspec:\n  reference: one\n",
    );
    let out = c.ok(&["apply", "-f", &flunder]);
    assert_eq!(out.trim(), "flunder.wardle.example.com/two created");
    let out = c.ok(&["explain", "flunders"]);
    for expected in [
        "KIND:       Flunder",
        "VERSION:    v1alpha1",
        "Flunder is an example type with a spec and a status.",
        "spec\t<FlunderSpec>",
        "metadata\t<ObjectMeta>",
    ] {
        assert!(out.contains(expected), "{expected:?} in {out}");
    }
    let out = c.ok(&["explain", "flunders.spec.reference"]);
    assert!(
        out.contains("A name of another flunder or fischer"),
        "{out}"
    );
    let out = c.ok(&[
        "get",
        "fl",
        "two",
        "-o",
        "jsonpath={.metadata.annotations.wardle\\.example\\.com/created-by}",
    ]);
    assert_eq!(out, "system:admin");
    let created = wardle
        .seen()
        .into_iter()
        .find(|s| s.method == "POST")
        .unwrap();
    assert_eq!(created.users, ["system:admin"]);
    assert_eq!(created.groups, ["system:masters", "system:authenticated"]);
    assert_eq!(created.proxy, "front-proxy-client");

    wardle.stop();
    let out = eventually_within(
        &c,
        Duration::from_secs(40),
        &["get", "apiservice", "v1alpha1.wardle.example.com"],
        |o| o.contains("False (FailedDiscoveryCheck)"),
    );
    assert!(out.contains("False (FailedDiscoveryCheck)"), "{out}");
    let err = c.fails(&["get", "flunders"]);
    assert!(
        err.contains("Error from server (ServiceUnavailable)"),
        "{err}"
    );

    c.ok(&["delete", "apiservice", "v1alpha1.wardle.example.com"]);
    // kubectl still maps flunders from its discovery cache: the server answers 404.
    let out = eventually_within(&c, Duration::from_secs(10), &["get", "flunders"], |o| {
        o.contains("NotFound")
    });
    assert!(
        out.contains("the server could not find the requested resource"),
        "{out}"
    );
    let out = c.ok(&["api-resources", "--api-group=wardle.example.com"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let err = c.fails(&["get", "flunders"]);
    assert!(
        err.contains("the server doesn't have a resource type \"flunders\""),
        "{err}"
    );
}

#[test]
fn kubectl_1_33_uses_an_aggregated_api_server() {
    aggregated_api_server_workflow("1.33");
}

#[test]
fn kubectl_1_32_uses_an_aggregated_api_server() {
    aggregated_api_server_workflow("1.32");
}
