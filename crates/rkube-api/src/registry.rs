//! Which resources the API serves, with upstream's names, scope, short names, categories,
//! verbs and subresources. Group, version, kind, plural and scope come from k8s-openapi's own
//! constants, so they cannot drift from the types.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use k8s_openapi::api::{
    admissionregistration::v1 as admission, apps::v1 as apps, authentication::v1 as authn,
    authorization::v1 as authz, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling,
    batch::v1 as batch, certificates::v1 as certificates, coordination::v1 as coordination,
    core::v1 as core, discovery::v1 as discovery, events::v1 as events,
    flowcontrol::v1 as flowcontrol, networking::v1 as networking, node::v1 as node,
    policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration;
use k8s_openapi::{ListableResource, NamespaceResourceScope, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The verbs of a resource stored and served in full.
pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces: everything but deletecollection.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Review resources: answered, never stored.
const CREATE_ONLY: &[&str] = &["create"];
/// Read-only resources answered by the server (ComponentStatus).
const GET_LIST: &[&str] = &["get", "list"];

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

/// One resource the API serves.
#[derive(Debug)]
pub struct ResourceType {
    /// The API group ("" for the core group).
    pub group: &'static str,
    /// The version, e.g. `v1`.
    pub version: &'static str,
    /// The kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// The kind of its list, e.g. `DeploymentList` (empty for create-only resources).
    pub list_kind: &'static str,
    /// The plural resource name used in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl accepts, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Categories, e.g. `all`.
    pub categories: &'static [&'static str],
    /// The verbs it supports.
    pub verbs: &'static [&'static str],
    /// Its subresources, e.g. `status`, `scale`.
    pub subresources: &'static [&'static str],
    /// Round-trips a JSON object through the typed form: checks types, keeps known fields
    /// only, and gives the canonical JSON.
    pub normalize: fn(&Value) -> Result<Value, serde_json::Error>,
    /// The same round trip from JSON text: decoded straight into the typed form, without
    /// building the sent object first.
    pub normalize_json: fn(&[u8]) -> Result<Value, serde_json::Error>,
    /// Adds the kind's OpenAPI schema (and those it refers to) to a generator and returns a
    /// reference to it.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// The schema's name, e.g. `io.k8s.api.core.v1.Pod`.
    pub schema_name: fn() -> std::borrow::Cow<'static, str>,
    /// For a custom resource, what its definition says about this version.
    pub custom: Option<Arc<crate::crd::Version>>,
    /// For a version served from another version's storage, how its objects convert.
    pub conversion: Option<&'static crate::convert::Conversion>,
}

impl ResourceType {
    /// The singular name (the lowercased kind), as discovery and kubectl use it.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The resource name qualified by group, as upstream messages use it: `pods`,
    /// `deployments.apps`.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The kind qualified by group, as upstream's invalid-object messages use it: `Pod`,
    /// `Deployment.apps`.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Whether the resource supports `verb`.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// Whether objects are kept in the store (create-only reviews and the server's own
    /// ComponentStatuses are not).
    pub fn is_stored(&self) -> bool {
        self.supports("get") && !(self.group.is_empty() && self.kind == "ComponentStatus")
    }

    /// Whether it has the named subresource.
    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.contains(&name)
    }
}

fn schema<T: schemars::JsonSchema>(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}

fn normalize<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, serde_json::Error> {
    serde_json::to_value(T::deserialize(value)?)
}

fn normalize_json<T: DeserializeOwned + Serialize>(
    text: &[u8],
) -> Result<Value, serde_json::Error> {
    serde_json::to_value(serde_json::from_slice::<T>(text)?)
}

fn is_namespaced<T: Resource + 'static>() -> bool {
    TypeId::of::<T::Scope>() == TypeId::of::<NamespaceResourceScope>()
}

/// A resource stored and served with the standard verbs.
fn stored<T>(
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
) -> ResourceType
where
    T: Resource + ListableResource + DeserializeOwned + Serialize + schemars::JsonSchema + 'static,
{
    ResourceType {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind: T::LIST_KIND,
        plural: T::URL_PATH_SEGMENT,
        namespaced: is_namespaced::<T>(),
        short_names,
        categories,
        verbs: STANDARD_VERBS,
        subresources,
        normalize: normalize::<T>,
        normalize_json: normalize_json::<T>,
        schema: schema::<T>,
        schema_name: T::schema_name,
        custom: None,
        conversion: None,
    }
}

/// A review: created, answered, never stored.
fn review<T>() -> ResourceType
where
    T: Resource + DeserializeOwned + Serialize + schemars::JsonSchema + 'static,
{
    ResourceType {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind: "",
        plural: T::URL_PATH_SEGMENT,
        namespaced: is_namespaced::<T>(),
        short_names: NONE,
        categories: NONE,
        verbs: CREATE_ONLY,
        subresources: NONE,
        normalize: normalize::<T>,
        normalize_json: normalize_json::<T>,
        schema: schema::<T>,
        schema_name: T::schema_name,
        custom: None,
        conversion: None,
    }
}

/// Every resource served, in discovery order.
pub fn all() -> &'static Registry {
    &REGISTRY
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut namespaces = stored::<core::Namespace>(&["ns"], NONE, &["finalize", "status"]);
    namespaces.verbs = NAMESPACE_VERBS;
    // ComponentStatuses are answered from the server's own health, never stored.
    let mut component_statuses = stored::<core::ComponentStatus>(&["cs"], NONE, NONE);
    component_statuses.verbs = GET_LIST;
    let mut hpa_v1 = stored::<autoscaling_v1::HorizontalPodAutoscaler>(&["hpa"], ALL, &["status"]);
    hpa_v1.conversion = Some(&crate::convert::HPA_V1);
    Registry::new(vec![
        // core/v1
        // bindings: the legacy form of pods/binding (created, never stored).
        review::<core::Binding>(),
        component_statuses,
        stored::<core::ConfigMap>(&["cm"], NONE, NONE),
        stored::<core::Endpoints>(&["ep"], NONE, NONE),
        stored::<core::Event>(&["ev"], NONE, NONE),
        stored::<core::LimitRange>(&["limits"], NONE, NONE),
        namespaces,
        stored::<core::Node>(&["no"], NONE, &["proxy", "status"]),
        stored::<core::PersistentVolumeClaim>(&["pvc"], NONE, &["status"]),
        stored::<core::PersistentVolume>(&["pv"], NONE, &["status"]),
        stored::<core::Pod>(
            &["po"],
            ALL,
            &[
                "attach",
                "binding",
                "ephemeralcontainers",
                "eviction",
                "exec",
                "log",
                "portforward",
                "proxy",
                "resize",
                "status",
            ],
        ),
        stored::<core::PodTemplate>(NONE, NONE, NONE),
        stored::<core::ReplicationController>(&["rc"], ALL, &["scale", "status"]),
        stored::<core::ResourceQuota>(&["quota"], NONE, &["status"]),
        stored::<core::Secret>(NONE, NONE, NONE),
        stored::<core::ServiceAccount>(&["sa"], NONE, &["token"]),
        stored::<core::Service>(&["svc"], ALL, &["proxy", "status"]),
        // admissionregistration.k8s.io/v1
        stored::<admission::MutatingWebhookConfiguration>(NONE, &["api-extensions"], NONE),
        stored::<admission::ValidatingAdmissionPolicy>(NONE, &["api-extensions"], &["status"]),
        stored::<admission::ValidatingAdmissionPolicyBinding>(NONE, &["api-extensions"], NONE),
        stored::<admission::ValidatingWebhookConfiguration>(NONE, &["api-extensions"], NONE),
        // apiextensions.k8s.io/v1
        stored::<apiextensions::CustomResourceDefinition>(
            &["crd", "crds"],
            &["api-extensions"],
            &["status"],
        ),
        // apiregistration.k8s.io/v1
        stored::<apiregistration::APIService>(NONE, &["api-extensions"], &["status"]),
        // apps/v1
        stored::<apps::ControllerRevision>(NONE, NONE, NONE),
        stored::<apps::DaemonSet>(&["ds"], ALL, &["status"]),
        stored::<apps::Deployment>(&["deploy"], ALL, &["scale", "status"]),
        stored::<apps::ReplicaSet>(&["rs"], ALL, &["scale", "status"]),
        stored::<apps::StatefulSet>(&["sts"], ALL, &["scale", "status"]),
        // authentication.k8s.io/v1, authorization.k8s.io/v1
        review::<authn::SelfSubjectReview>(),
        review::<authn::TokenReview>(),
        review::<authz::LocalSubjectAccessReview>(),
        review::<authz::SelfSubjectAccessReview>(),
        review::<authz::SelfSubjectRulesReview>(),
        review::<authz::SubjectAccessReview>(),
        // autoscaling/v2, and v1 from the same storage
        stored::<autoscaling::HorizontalPodAutoscaler>(&["hpa"], ALL, &["status"]),
        hpa_v1,
        // batch/v1
        stored::<batch::CronJob>(&["cj"], ALL, &["status"]),
        stored::<batch::Job>(NONE, ALL, &["status"]),
        // certificates.k8s.io/v1
        stored::<certificates::CertificateSigningRequest>(&["csr"], NONE, &["approval", "status"]),
        // coordination.k8s.io/v1
        stored::<coordination::Lease>(NONE, NONE, NONE),
        // discovery.k8s.io/v1
        stored::<discovery::EndpointSlice>(NONE, NONE, NONE),
        // events.k8s.io/v1
        stored::<events::Event>(&["ev"], NONE, NONE),
        // flowcontrol.apiserver.k8s.io/v1
        stored::<flowcontrol::FlowSchema>(NONE, NONE, &["status"]),
        stored::<flowcontrol::PriorityLevelConfiguration>(NONE, NONE, &["status"]),
        // networking.k8s.io/v1
        stored::<networking::IngressClass>(NONE, NONE, NONE),
        stored::<networking::Ingress>(&["ing"], NONE, &["status"]),
        stored::<networking::IPAddress>(&["ip"], NONE, NONE),
        stored::<networking::NetworkPolicy>(&["netpol"], NONE, NONE),
        stored::<networking::ServiceCIDR>(NONE, NONE, &["status"]),
        // node.k8s.io/v1
        stored::<node::RuntimeClass>(NONE, NONE, NONE),
        // policy/v1
        stored::<policy::PodDisruptionBudget>(&["pdb"], NONE, &["status"]),
        // rbac.authorization.k8s.io/v1
        stored::<rbac::ClusterRoleBinding>(NONE, NONE, NONE),
        stored::<rbac::ClusterRole>(NONE, NONE, NONE),
        stored::<rbac::RoleBinding>(NONE, NONE, NONE),
        stored::<rbac::Role>(NONE, NONE, NONE),
        // scheduling.k8s.io/v1
        stored::<scheduling::PriorityClass>(&["pc"], NONE, NONE),
        // storage.k8s.io/v1
        stored::<storage::CSIDriver>(NONE, NONE, NONE),
        stored::<storage::CSINode>(NONE, NONE, NONE),
        stored::<storage::CSIStorageCapacity>(NONE, NONE, NONE),
        stored::<storage::StorageClass>(&["sc"], NONE, NONE),
        stored::<storage::VolumeAttachment>(NONE, NONE, &["status"]),
    ])
});

/// The resources served, with lookups by URL and by kind.
#[derive(Debug)]
pub struct Registry {
    types: Vec<ResourceType>,
    by_path: HashMap<(&'static str, &'static str, &'static str), usize>,
    by_kind: HashMap<(&'static str, &'static str), usize>,
}

impl Registry {
    fn new(types: Vec<ResourceType>) -> Self {
        let by_path = types
            .iter()
            .enumerate()
            .map(|(i, t)| ((t.group, t.version, t.plural), i))
            .collect();
        // A kind is found at its storage version.
        let by_kind = types
            .iter()
            .enumerate()
            .filter(|(_, t)| t.conversion.is_none())
            .map(|(i, t)| ((t.group, t.kind), i))
            .collect();
        Self {
            types,
            by_path,
            by_kind,
        }
    }

    /// Every resource, in discovery order (core first, then groups by name).
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The resource at `/apis/<group>/<version>/<plural>` (`/api/v1/<plural>` for core),
    /// built in or custom.
    pub fn by_path(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        match self.by_path.get(&(group, version, plural)) {
            Some(i) => Some(&self.types[*i]),
            None => custom_read()
                .types()
                .find(|t| t.group == group && t.version == version && t.plural == plural),
        }
    }

    /// The resource of `kind` in `group`: a custom kind's storage version.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        match self.by_kind.get(&(group, kind)) {
            Some(i) => Some(&self.types[*i]),
            None => {
                let custom = custom_read();
                let mut matching = custom
                    .types()
                    .filter(|t| t.group == group && t.kind == kind)
                    .peekable();
                let first = *matching.peek()?;
                Some(
                    matching
                        .find(|t| {
                            t.custom
                                .as_ref()
                                .is_some_and(|c| c.storage_version == t.version)
                        })
                        .unwrap_or(first),
                )
            }
        }
    }

    /// The type objects of `rt` are stored as: itself, unless it is served from another
    /// version's storage.
    pub fn storage_of<'a>(&'a self, rt: &'a ResourceType) -> &'a ResourceType {
        match rt.conversion {
            Some(_) => self.by_kind(rt.group, rt.kind).unwrap_or(rt),
            None => rt,
        }
    }

    /// The groups served, core ("") first, each once, in order of first appearance; custom
    /// groups after the built-in ones, by name.
    pub fn groups(&self) -> Vec<&'static str> {
        let mut groups: Vec<&'static str> = Vec::new();
        for t in &self.types {
            if !groups.contains(&t.group) {
                groups.push(t.group);
            }
        }
        for t in custom_types() {
            if !groups.contains(&t.group) {
                groups.push(t.group);
            }
        }
        groups
    }

    /// The preferred version served for `group`.
    pub fn version_of(&self, group: &str) -> Option<&'static str> {
        self.versions_of(group).first().copied()
    }

    /// Every version served for `group`, the preferred first (upstream's priority: GA,
    /// then beta, then alpha, newer first; other names alphabetically).
    pub fn versions_of(&self, group: &str) -> Vec<&'static str> {
        let mut versions: Vec<&'static str> = Vec::new();
        for t in self.types.iter().filter(|t| t.group == group) {
            if !versions.contains(&t.version) {
                versions.push(t.version);
            }
        }
        if !versions.is_empty() {
            versions.sort_by_key(|v| version_priority(v));
            return versions;
        }
        for t in custom_types() {
            if t.group == group && !versions.contains(&t.version) {
                versions.push(t.version);
            }
        }
        versions.sort_by_key(|v| version_priority(v));
        versions
    }

    /// The resources of one group and version, built in or custom.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceType> + 'a {
        let custom: Vec<&'static ResourceType> = custom_types()
            .into_iter()
            .filter(|t| t.group == group && t.version == version)
            .collect();
        self.types
            .iter()
            .filter(move |t| t.group == group && t.version == version)
            .chain(custom)
    }
}

/// A sort key ordering versions as upstream's discovery does: `v2`, `v1`, `v11beta2`,
/// `v10beta3`, `v3beta1`, `v12alpha1`, `v11alpha2`, then other names alphabetically.
fn version_priority(version: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    let parse = |v: &str| -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((0, major, 0));
        }
        for (stage, word) in [(1u8, "beta"), (2u8, "alpha")] {
            if let Some(minor) = tail.strip_prefix(word) {
                return Some((stage, major, minor.parse().ok()?));
            }
        }
        None
    };
    match parse(version) {
        Some((stage, major, minor)) => (
            stage,
            std::cmp::Reverse(major),
            std::cmp::Reverse(minor),
            String::new(),
        ),
        None => (
            3,
            std::cmp::Reverse(0),
            std::cmp::Reverse(0),
            version.to_owned(),
        ),
    }
}

/// The resource types served for custom resource definitions, by definition name.
#[derive(Default)]
struct Custom {
    /// Per definition: a fingerprint of what it serves, and the types.
    by_crd: HashMap<String, (String, Vec<&'static ResourceType>)>,
}

impl Custom {
    fn types(&self) -> impl Iterator<Item = &'static ResourceType> + '_ {
        self.by_crd
            .values()
            .flat_map(|(_, types)| types.iter().copied())
    }
}

static CUSTOM: LazyLock<RwLock<Custom>> = LazyLock::new(RwLock::default);

/// Raised whenever the custom resources served change.
static CUSTOM_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A number that changes whenever the custom resources served change (for caches of what
/// is derived from them, such as the OpenAPI documents).
pub fn custom_generation() -> u64 {
    CUSTOM_GENERATION.load(std::sync::atomic::Ordering::Acquire)
}

fn custom_read() -> std::sync::RwLockReadGuard<'static, Custom> {
    CUSTOM.read().unwrap_or_else(|p| p.into_inner())
}

/// Serves what the definition `crd` (an established CustomResourceDefinition) defines,
/// replacing what it served before. Types live for the rest of the process (they are
/// referenced as `&'static`); an unchanged definition reuses them.
pub fn set_custom(crd: &serde_json::Value) {
    let name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let fingerprint = crd["spec"].to_string();
    let mut custom = CUSTOM.write().unwrap_or_else(|p| p.into_inner());
    if custom
        .by_crd
        .get(&name)
        .is_some_and(|(f, _)| *f == fingerprint)
    {
        return;
    }
    let types: Vec<&'static ResourceType> = crate::crd::resource_types(crd)
        .into_iter()
        .map(|t| &*Box::leak(Box::new(t)))
        .collect();
    custom.by_crd.insert(name, (fingerprint, types));
    CUSTOM_GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// Stops serving what the definition named `crd` defined.
pub fn remove_custom(crd: &str) {
    let removed = CUSTOM
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .by_crd
        .remove(crd);
    if removed.is_some() {
        CUSTOM_GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Every custom resource type served, ordered by group, then version, then plural.
pub fn custom_types() -> Vec<&'static ResourceType> {
    let mut types: Vec<&'static ResourceType> = custom_read().types().collect();
    types.sort_by(|a, b| (a.group, a.version, a.plural).cmp(&(b.group, b.version, b.plural)));
    types
}

/// The kind, group and version a subresource's body has, and the verbs it takes.
pub fn subresource_kind(
    parent: &ResourceType,
    subresource: &str,
) -> (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
) {
    const GET_UPDATE: &[&str] = &["get", "patch", "update"];
    match subresource {
        "status" => (parent.kind, parent.group, parent.version, GET_UPDATE),
        "scale" => ("Scale", "autoscaling", "v1", GET_UPDATE),
        "binding" => ("Binding", "", "v1", &["create"]),
        "eviction" => ("Eviction", "policy", "v1", &["create"]),
        "token" => ("TokenRequest", "authentication.k8s.io", "v1", &["create"]),
        "finalize" => ("Namespace", "", "v1", &["update"]),
        "approval" => (
            "CertificateSigningRequest",
            "certificates.k8s.io",
            "v1",
            GET_UPDATE,
        ),
        "ephemeralcontainers" | "resize" => ("Pod", "", "v1", GET_UPDATE),
        "log" => ("Pod", "", "v1", &["get"]),
        "exec" | "attach" | "portforward" => ("PodExecOptions", "", "v1", &["create", "get"]),
        "proxy" => (
            "",
            "",
            "v1",
            &["create", "delete", "get", "patch", "update"],
        ),
        _ => ("", "", "", &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_grouped_resources_are_found_by_path_and_kind() {
        let pods = all().by_path("", "v1", "pods").expect("pods");
        assert_eq!(
            (pods.kind, pods.list_kind, pods.namespaced),
            ("Pod", "PodList", true)
        );
        assert_eq!(pods.short_names, ["po"]);
        let deploy = all().by_kind("apps", "Deployment").expect("deployments");
        assert_eq!(
            (deploy.plural, deploy.qualified_plural()),
            ("deployments", "deployments.apps".into())
        );
        assert!(deploy.has_subresource("scale"));
        let nodes = all().by_path("", "v1", "nodes").expect("nodes");
        assert!(!nodes.namespaced);
        let crb = all()
            .by_kind("rbac.authorization.k8s.io", "ClusterRoleBinding")
            .expect("crb");
        assert!(!crb.namespaced);
        assert!(all().by_path("", "v1", "widgets").is_none());
    }

    #[test]
    fn versions_sort_as_upstream_discovery() {
        let mut v = vec![
            "v1alpha1", "foo", "v1", "v2beta1", "v1beta2", "v2", "v10beta3",
        ];
        v.sort_by_key(|v| version_priority(v));
        assert_eq!(
            v,
            [
                "v2", "v1", "v10beta3", "v2beta1", "v1beta2", "v1alpha1", "foo"
            ]
        );
    }

    #[test]
    fn every_resource_is_unique_by_path_and_kind() {
        let r = all();
        assert_eq!(r.by_path.len(), r.types.len());
        let converted = r.types.iter().filter(|t| t.conversion.is_some()).count();
        assert_eq!(r.by_kind.len(), r.types.len() - converted);
        assert_eq!(r.groups()[0], "");
    }

    #[test]
    fn normalize_drops_unknown_fields_and_rejects_wrong_types() {
        let cm = all().by_kind("", "ConfigMap").expect("configmaps");
        let v = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a"}, "data": {"k": "v"}, "bogus": 1});
        let n = (cm.normalize)(&v).expect("valid");
        assert!(n.get("bogus").is_none());
        assert_eq!(n["data"]["k"], "v");
        let bad = serde_json::json!({"metadata": {"name": 5}});
        assert!((cm.normalize)(&bad).is_err());
        assert_eq!((cm.normalize_json)(v.to_string().as_bytes()).unwrap(), n);
        assert!((cm.normalize_json)(bad.to_string().as_bytes()).is_err());
    }
}
