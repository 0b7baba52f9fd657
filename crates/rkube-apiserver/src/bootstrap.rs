//! What a new cluster has before anyone asks: the namespaces upstream creates, the two
//! system PriorityClasses, the API Priority and Fairness configuration, the default
//! ServiceCIDR and the `kubernetes` Service in `default`, pointing at this server.

use std::net::IpAddr;

use rkube_api::ApiError;
use serde_json::json;

use crate::app::App;
use crate::request::{Query, RequestInfo};

const NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

async fn create_if_missing(
    app: &App,
    group: &str,
    kind: &str,
    namespace: Option<&str>,
    object: serde_json::Value,
) -> Result<(), ApiError> {
    let rt = app.resource(group, kind)?;
    let info = RequestInfo {
        namespace: namespace.map(str::to_owned),
        ..Default::default()
    };
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    match app.get(rt, &info, name).await {
        Ok(_) => return Ok(()),
        Err(ApiError::NotFound { .. }) => {}
        Err(err) => return Err(err),
    }
    match app.create(rt, &info, &Query::default(), object).await {
        Ok(_) | Err(ApiError::AlreadyExists { .. }) => Ok(()),
        Err(err) => Err(err),
    }
}

/// Creates what is missing; safe to run at every start.
pub async fn run(app: &App, advertise_ip: IpAddr, port: u16) -> Result<(), ApiError> {
    for ns in NAMESPACES {
        create_if_missing(
            app,
            "",
            "Namespace",
            None,
            json!({"metadata": {"name": ns}}),
        )
        .await?;
    }
    for (name, value, description) in crate::priority::SYSTEM_CLASSES {
        let class = crate::priority::system_class(name, value, description);
        create_if_missing(app, "scheduling.k8s.io", "PriorityClass", None, class).await?;
    }
    // Independent objects: created together, so their writes share commits.
    let levels = crate::flowcontrol::priority_levels()
        .into_iter()
        .map(|level| {
            create_if_missing(
                app,
                "flowcontrol.apiserver.k8s.io",
                "PriorityLevelConfiguration",
                None,
                level,
            )
        });
    futures::future::try_join_all(levels).await?;
    let schemas = crate::flowcontrol::flow_schemas()
        .into_iter()
        .map(|schema| {
            create_if_missing(
                app,
                "flowcontrol.apiserver.k8s.io",
                "FlowSchema",
                None,
                schema,
            )
        });
    futures::future::try_join_all(schemas).await?;
    let service_cidr = json!({
        "metadata": {"name": "kubernetes"},
        "spec": {"cidrs": [app.config.service_cidr.to_string()]},
    });
    create_if_missing(app, "networking.k8s.io", "ServiceCIDR", None, service_cidr).await?;
    let cluster_ip = app.config.service_cidr.nth(1).to_string();
    let service = json!({
        "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            "sessionAffinity": "None",
        },
    });
    create_if_missing(app, "", "Service", Some("default"), service).await?;
    if let Some(dns) = app.config.cluster_dns {
        // The cluster DNS Service, under upstream's name and labels; the node agents publish
        // their DNS servers as its endpoints.
        let service = json!({
            "metadata": {"name": "kube-dns", "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            }},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": dns.to_string(),
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
        });
        create_if_missing(app, "", "Service", Some("kube-system"), service).await?;
    }
    let endpoints = json!({
        "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": advertise_ip.to_string()}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    });
    create_if_missing(app, "", "Endpoints", Some("default"), endpoints).await?;
    let slice = json!({
        "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": if advertise_ip.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [advertise_ip.to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    create_if_missing(
        app,
        "discovery.k8s.io",
        "EndpointSlice",
        Some("default"),
        slice,
    )
    .await
}
