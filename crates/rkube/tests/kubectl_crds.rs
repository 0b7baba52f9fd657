//! End to end: the real CustomResourceDefinitions of cert-manager, the Prometheus operator
//! and Gateway API (`tests/apiserver/testdata/crds`) applied with the real kubectl to the real
//! `rkube server` binary, then used as their users use them: apply resources, list them with
//! the definitions' printer columns, read their schema with `kubectl explain`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::Cluster;

/// The directory of one project's CRDs in the test data.
fn crds(project: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/apiserver/testdata/crds")
        .join(project)
        .display()
        .to_string()
}

/// Output lines split into whitespace-separated columns.
fn columns(out: &str) -> Vec<Vec<&str>> {
    out.lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

const CERTIFICATE: &str = "apiVersion: cert-manager.io/v1
kind: ClusterIssuer
metadata:
  name: selfsigned
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: web
spec:
  secretName: web-tls
  dnsNames: [web.example.com]
  issuerRef:
    name: selfsigned
    kind: ClusterIssuer
";

fn real_crds_workflow(c: &Cluster) {
    let out = c.ok(&["apply", "-f", &crds("cert-manager")]);
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/certificates.cert-manager.io created"
        ),
        "{out}"
    );
    c.ok(&["apply", "-f", &crds("gateway-api")]);
    // The Prometheus operator's largest definitions do not fit the last-applied annotation
    // of a client-side apply (256 KiB of annotations), on upstream as here; its users apply
    // them server-side.
    let err = c.fails(&["apply", "-f", &crds("prometheus-operator")]);
    assert!(
        err.contains("CustomResourceDefinition.apiextensions.k8s.io \"prometheuses.monitoring.coreos.com\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes"),
        "{err}"
    );
    let out = c.ok(&["apply", "--server-side", "-f", &crds("prometheus-operator")]);
    assert!(
        out.contains("customresourcedefinition.apiextensions.k8s.io/prometheuses.monitoring.coreos.com serverside-applied"),
        "{out}"
    );
    let out = c.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd",
        "--all",
        "--timeout=30s",
    ]);
    assert_eq!(out.matches("condition met").count(), 16, "{out}");

    let manifest = c.write("certificate.yaml", CERTIFICATE);
    let out = c.ok(&["apply", "-f", &manifest]);
    assert_eq!(
        out,
        "clusterissuer.cert-manager.io/selfsigned created\ncertificate.cert-manager.io/web created\n"
    );
    let out = c.ok(&["get", "certificates"]);
    let lines = columns(&out);
    assert_eq!(lines[0], ["NAME", "READY", "SECRET", "AGE"]);
    // No Ready condition yet: the cell is empty.
    assert_eq!(lines[1][..2], ["web", "web-tls"], "{out}");
    c.ok(&[
        "patch",
        "certificate",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Ready","message":"Certificate is up to date and has not expired","lastTransitionTime":"2026-01-01T00:00:00Z"}],"notAfter":"2027-01-01T00:00:00Z"}}"#,
    ]);
    let out = c.ok(&["get", "cert", "web", "-o", "wide"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "READY",
            "SECRET",
            "ISSUER",
            "STATUS",
            "EXPIRATION",
            "AGE"
        ]
    );
    let row = out.lines().nth(1).unwrap();
    assert!(
        row.starts_with("web    True    web-tls   selfsigned   Certificate is up to date and has not expired   2027-01-01T00:00:00Z   "),
        "{out}"
    );
    // The definitions' category lists both kinds.
    let out = c.ok(&["get", "cert-manager", "-o", "name"]);
    assert_eq!(
        out,
        "certificate.cert-manager.io/web\nclusterissuer.cert-manager.io/selfsigned\n"
    );

    let out = c.ok(&["explain", "certificate.spec"]);
    assert!(out.contains("KIND:       Certificate"), "{out}");
    assert!(out.contains("FIELD: spec <Object>"), "{out}");
    assert!(out.contains("  secretName\t<string> -required-"), "{out}");
    assert!(out.contains("  issuerRef\t<Object> -required-"), "{out}");
    let out = c.ok(&["explain", "certificate.spec.privateKey.algorithm"]);
    assert!(
        out.contains("FIELD: algorithm <string>\nENUM:\n    RSA\n    ECDSA\n    Ed25519\n"),
        "{out}"
    );

    let unknown = c.write(
        "unknown.yaml",
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: bad\nspec:\n  secretName: bad\n  issuerRef:\n    name: selfsigned\n  privateKey:\n    algorithm: RSA\n    bits: 4096\n",
    );
    let err = c.fails(&["apply", "-f", &unknown]);
    assert!(
        err.contains("Certificate in version \"v1\" cannot be handled as a Certificate: strict decoding error: unknown field \"spec.privateKey.bits\""),
        "{err}"
    );
    let invalid = c.write(
        "invalid.yaml",
        "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: bad\nspec:\n  issuerRef:\n    name: selfsigned\n  privateKey:\n    algorithm: DSA\n",
    );
    let err = c.fails(&["apply", "-f", &invalid]);
    assert!(
        err.contains("The Certificate \"bad\" is invalid: \n* spec.secretName: Required value\n* spec.privateKey.algorithm: Unsupported value: \"DSA\": supported values: \"RSA\", \"ECDSA\", \"Ed25519\""),
        "{err}"
    );
    let route = c.write(
        "route.yaml",
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: web\nspec:\n  parentRefs: [{name: gateway}]\n  rules:\n  - matches: [{path: {type: Exact, value: api}}]\n",
    );
    let err = c.fails(&["apply", "-f", &route]);
    assert!(
        err.contains("The HTTPRoute \"web\" is invalid: spec.rules[0].matches[0].path: Invalid value: \"object\": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"),
        "{err}"
    );
}

#[test]
fn kubectl_1_33_applies_real_crds_and_manages_their_resources() {
    real_crds_workflow(&Cluster::start("1.33"));
}

#[test]
fn kubectl_1_32_applies_real_crds_and_manages_their_resources() {
    real_crds_workflow(&Cluster::start("1.32"));
}
