//! Patch metadata of the built-in kinds: which fields carry a `patchStrategy` (and
//! `patchMergeKey`) struct tag upstream, in `k8s.io/api/*/v1/types.go` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/types.go`.
//!
//! It is a graph of struct types, each naming only the fields that matter to a strategic
//! merge: those with a tag, and those that lead to a struct which has one (a pod template's
//! `spec` leads to [`POD_SPEC`]). Every other field has no strategy: maps merge, lists are
//! replaced. Listing a field without its type is enough for lists whose items hold nothing
//! tagged. Nested lists are only ever entered through merging lists, so the item type of a
//! list that is replaced is never needed.

/// The `patchStrategy` of a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Strategy {
    /// No tag: maps merge key by key, lists are replaced.
    Default,
    /// `merge`: lists of maps merge by the merge key, lists of scalars are unioned.
    Merge,
    /// `replace`: the patch value replaces the field whole, maps included.
    Replace,
}

/// One field of a struct type.
#[derive(Debug)]
pub(super) struct Field {
    /// The JSON name.
    pub(super) name: &'static str,
    /// The patch strategy.
    pub(super) strategy: Strategy,
    /// The `patchMergeKey` of a merging list of maps; empty otherwise.
    pub(super) merge_key: &'static str,
    /// Whether the tag also says `retainKeys`. Applying a patch honours a `$retainKeys`
    /// directive wherever it appears (as upstream does), so this only documents where
    /// clients are told to send one.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) retain_keys: bool,
    /// The struct type of the field, or of its list items.
    pub(super) schema: Option<&'static Schema>,
}

/// A struct type: its Go name (for messages) and the fields that matter to a merge.
#[derive(Debug)]
pub(super) struct Schema {
    /// The upstream type name, to tell schemas apart when debugging.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) name: &'static str,
    /// The fields with patch metadata or leading to some.
    pub(super) fields: &'static [Field],
}

impl Schema {
    /// The field a JSON key names. Like Go's `encoding/json`, an exact match wins and a
    /// case-insensitive one is accepted.
    pub(super) fn field(&self, key: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == key).or_else(|| {
            self.fields
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case(key))
        })
    }
}

/// A struct field, or a list of structs, with no strategy of its own.
const fn nested(name: &'static str, schema: &'static Schema) -> Field {
    Field {
        name,
        strategy: Strategy::Default,
        merge_key: "",
        retain_keys: false,
        schema: Some(schema),
    }
}

/// `patchStrategy:"merge" patchMergeKey:"<key>"` on a list of maps.
const fn merge_by(name: &'static str, key: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Merge,
        merge_key: key,
        retain_keys: false,
        schema: None,
    }
}

/// `merge_by` on a list whose items have tagged fields of their own.
const fn merge_items(name: &'static str, key: &'static str, items: &'static Schema) -> Field {
    Field {
        schema: Some(items),
        ..merge_by(name, key)
    }
}

/// `patchStrategy:"merge,retainKeys" patchMergeKey:"<key>"`.
const fn merge_retaining(name: &'static str, key: &'static str) -> Field {
    Field {
        retain_keys: true,
        ..merge_by(name, key)
    }
}

/// `patchStrategy:"merge"` on a list of scalars: a set union.
const fn union(name: &'static str) -> Field {
    merge_by(name, "")
}

/// `patchStrategy:"replace"`.
const fn replace(name: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Replace,
        merge_key: "",
        retain_keys: false,
        schema: None,
    }
}

/// `patchStrategy:"retainKeys"` on a struct (a union whose other members a patch clears).
const fn retain_keys(name: &'static str) -> Field {
    Field {
        name,
        strategy: Strategy::Default,
        merge_key: "",
        retain_keys: true,
        schema: None,
    }
}

const fn schema(name: &'static str, fields: &'static [Field]) -> Schema {
    Schema { name, fields }
}

// meta/v1

/// `ObjectMeta`: finalizers are a set, owner references merge by uid.
pub(super) static OBJECT_META: Schema = schema(
    "ObjectMeta",
    &[union("finalizers"), merge_by("ownerReferences", "uid")],
);

/// A kind with nothing tagged but its metadata.
static OBJECT: Schema = schema("Object", &[nested("metadata", &OBJECT_META)]);

/// A status whose only tagged field is `conditions`, merged by `type`.
static CONDITIONS_STATUS: Schema = schema("Status", &[merge_by("conditions", "type")]);

// core/v1

/// `Container`, and `EphemeralContainer` (which inlines the same fields).
static CONTAINER: Schema = schema(
    "Container",
    &[
        merge_by("ports", "containerPort"),
        merge_by("env", "name"),
        merge_by("volumeMounts", "mountPath"),
        merge_by("volumeDevices", "devicePath"),
    ],
);

/// `PodSpec`, shared by every kind that carries a pod template.
pub(super) static POD_SPEC: Schema = schema(
    "PodSpec",
    &[
        merge_retaining("volumes", "name"),
        merge_items("initContainers", "name", &CONTAINER),
        merge_items("containers", "name", &CONTAINER),
        merge_items("ephemeralContainers", "name", &CONTAINER),
        merge_by("imagePullSecrets", "name"),
        merge_by("hostAliases", "ip"),
        merge_by("topologySpreadConstraints", "topologyKey"),
        merge_by("schedulingGates", "name"),
        merge_retaining("resourceClaims", "name"),
    ],
);

static POD_STATUS: Schema = schema(
    "PodStatus",
    &[
        merge_by("conditions", "type"),
        merge_by("hostIPs", "ip"),
        merge_by("podIPs", "ip"),
        merge_retaining("resourceClaimStatuses", "name"),
    ],
);

static POD: Schema = schema(
    "Pod",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &POD_SPEC),
        nested("status", &POD_STATUS),
    ],
);

/// `PodTemplateSpec`: the `template` of workloads.
static POD_TEMPLATE_SPEC: Schema = schema(
    "PodTemplateSpec",
    &[nested("metadata", &OBJECT_META), nested("spec", &POD_SPEC)],
);

static POD_TEMPLATE: Schema = schema(
    "PodTemplate",
    &[
        nested("metadata", &OBJECT_META),
        nested("template", &POD_TEMPLATE_SPEC),
    ],
);

/// A workload spec whose only way to tagged fields is its pod `template`
/// (ReplicationController, ReplicaSet, StatefulSet, DaemonSet, Job).
static TEMPLATED_SPEC: Schema = schema("Spec", &[nested("template", &POD_TEMPLATE_SPEC)]);

/// A workload with a templated spec and conditions in its status.
static TEMPLATED_WORKLOAD: Schema = schema(
    "Workload",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &TEMPLATED_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
);

static SERVICE: Schema = schema(
    "Service",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &schema("ServiceSpec", &[merge_by("ports", "port")])),
        nested("status", &CONDITIONS_STATUS),
    ],
);

static NODE: Schema = schema(
    "Node",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &schema("NodeSpec", &[union("podCIDRs")])),
        nested(
            "status",
            &schema(
                "NodeStatus",
                &[
                    merge_by("conditions", "type"),
                    merge_by("addresses", "type"),
                ],
            ),
        ),
    ],
);

/// Namespace, PersistentVolumeClaim, HorizontalPodAutoscaler: conditions merge by type.
static WITH_CONDITIONS: Schema = schema(
    "Object",
    &[
        nested("metadata", &OBJECT_META),
        nested("status", &CONDITIONS_STATUS),
    ],
);

static SERVICE_ACCOUNT: Schema = schema(
    "ServiceAccount",
    &[
        nested("metadata", &OBJECT_META),
        merge_by("secrets", "name"),
    ],
);

// apps/v1

static DEPLOYMENT: Schema = schema(
    "Deployment",
    &[
        nested("metadata", &OBJECT_META),
        nested(
            "spec",
            &schema(
                "DeploymentSpec",
                &[
                    nested("template", &POD_TEMPLATE_SPEC),
                    retain_keys("strategy"),
                ],
            ),
        ),
        nested("status", &CONDITIONS_STATUS),
    ],
);

// batch/v1

static CRON_JOB: Schema = schema(
    "CronJob",
    &[
        nested("metadata", &OBJECT_META),
        nested(
            "spec",
            &schema(
                "CronJobSpec",
                &[nested(
                    "jobTemplate",
                    &schema(
                        "JobTemplateSpec",
                        &[
                            nested("metadata", &OBJECT_META),
                            nested("spec", &TEMPLATED_SPEC),
                        ],
                    ),
                )],
            ),
        ),
    ],
);

// policy/v1

static POD_DISRUPTION_BUDGET: Schema = schema(
    "PodDisruptionBudget",
    &[
        nested("metadata", &OBJECT_META),
        nested(
            "spec",
            &schema("PodDisruptionBudgetSpec", &[replace("selector")]),
        ),
        nested("status", &CONDITIONS_STATUS),
    ],
);

// storage/v1

static CSI_NODE: Schema = schema(
    "CSINode",
    &[
        nested("metadata", &OBJECT_META),
        nested(
            "spec",
            &schema("CSINodeSpec", &[merge_by("drivers", "name")]),
        ),
    ],
);

// admissionregistration.k8s.io/v1

static WEBHOOK: Schema = schema("Webhook", &[merge_by("matchConditions", "name")]);

/// Validating and mutating webhook configurations: webhooks, and their match conditions,
/// merge by name.
static WEBHOOK_CONFIGURATION: Schema = schema(
    "WebhookConfiguration",
    &[
        nested("metadata", &OBJECT_META),
        merge_items("webhooks", "name", &WEBHOOK),
    ],
);

static VALIDATING_ADMISSION_POLICY: Schema = schema(
    "ValidatingAdmissionPolicy",
    &[
        nested("metadata", &OBJECT_META),
        nested(
            "spec",
            &schema(
                "ValidatingAdmissionPolicySpec",
                &[
                    merge_by("matchConditions", "name"),
                    merge_by("variables", "name"),
                ],
            ),
        ),
    ],
);

/// The root struct of a built-in kind, or `None` for a kind the server does not know (whose
/// strategic merge patches upstream refuses).
pub(super) fn for_kind(group: &str, kind: &str) -> Option<&'static Schema> {
    let specific = match (group, kind) {
        ("", "Pod") => &POD,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("", "ReplicationController")
        | ("apps", "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => &TEMPLATED_WORKLOAD,
        ("apps", "Deployment") => &DEPLOYMENT,
        ("batch", "CronJob") => &CRON_JOB,
        ("", "Service") => &SERVICE,
        ("", "Node") => &NODE,
        ("", "Namespace" | "PersistentVolumeClaim")
        | ("autoscaling", "HorizontalPodAutoscaler") => &WITH_CONDITIONS,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        ("policy", "PodDisruptionBudget") => &POD_DISRUPTION_BUDGET,
        ("storage.k8s.io", "CSINode") => &CSI_NODE,
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => &WEBHOOK_CONFIGURATION,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            &VALIDATING_ADMISSION_POLICY
        }
        // The `scale` subresource's body is a built-in type too.
        ("autoscaling", "Scale") => &OBJECT,
        _ if crate::registry::all().by_kind(group, kind).is_some() => &OBJECT,
        _ => return None,
    };
    Some(specific)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Follows `path` (field names) from a kind's root to a field.
    fn resolve(group: &str, kind: &str, path: &[&str]) -> Option<&'static Field> {
        let (last, parents) = path.split_last()?;
        let mut schema = for_kind(group, kind)?;
        for name in parents {
            schema = schema.field(name)?.schema?;
        }
        schema.field(last)
    }

    #[test]
    fn every_registered_kind_has_a_schema() {
        for t in crate::registry::all().types() {
            let root = for_kind(t.group, t.kind).expect("schema");
            assert!(root.field("metadata").is_some(), "{}", t.kind);
            assert!(!root.name.is_empty());
        }
        assert!(for_kind("example.com", "Widget").is_none());
        assert!(for_kind("", "Deployment").is_none());
    }

    #[test]
    fn pod_templates_resolve_to_the_pod_spec_in_every_workload() {
        let templated = [
            (
                "",
                "ReplicationController",
                &["spec", "template", "spec"][..],
            ),
            ("", "PodTemplate", &["template", "spec"][..]),
            ("apps", "Deployment", &["spec", "template", "spec"][..]),
            ("apps", "ReplicaSet", &["spec", "template", "spec"][..]),
            ("apps", "StatefulSet", &["spec", "template", "spec"][..]),
            ("apps", "DaemonSet", &["spec", "template", "spec"][..]),
            ("batch", "Job", &["spec", "template", "spec"][..]),
            (
                "batch",
                "CronJob",
                &["spec", "jobTemplate", "spec", "template", "spec"][..],
            ),
        ];
        for (group, kind, path) in templated {
            let spec = resolve(group, kind, path).and_then(|f| f.schema);
            assert!(
                spec.is_some_and(|s| std::ptr::eq(s, &POD_SPEC)),
                "{group}/{kind}"
            );
        }
    }

    /// Group, kind, field path, and the strategy, merge key and `retainKeys` expected there.
    type Expectation = (
        &'static str,
        &'static str,
        &'static [&'static str],
        Strategy,
        &'static str,
        bool,
    );

    #[test]
    fn tagged_fields_carry_upstream_strategy_and_key() {
        let cases: &[Expectation] = &[
            (
                "",
                "Pod",
                &["spec", "containers"],
                Strategy::Merge,
                "name",
                false,
            ),
            (
                "",
                "Pod",
                &["spec", "containers", "ports"],
                Strategy::Merge,
                "containerPort",
                false,
            ),
            (
                "",
                "Pod",
                &["spec", "containers", "env"],
                Strategy::Merge,
                "name",
                false,
            ),
            (
                "",
                "Pod",
                &["spec", "initContainers", "volumeMounts"],
                Strategy::Merge,
                "mountPath",
                false,
            ),
            (
                "",
                "Pod",
                &["spec", "volumes"],
                Strategy::Merge,
                "name",
                true,
            ),
            (
                "",
                "Pod",
                &["spec", "tolerations"],
                Strategy::Default,
                "",
                false,
            ),
            (
                "",
                "Pod",
                &["status", "conditions"],
                Strategy::Merge,
                "type",
                false,
            ),
            (
                "",
                "Pod",
                &["metadata", "finalizers"],
                Strategy::Merge,
                "",
                false,
            ),
            (
                "",
                "Pod",
                &["metadata", "ownerReferences"],
                Strategy::Merge,
                "uid",
                false,
            ),
            (
                "",
                "Service",
                &["spec", "ports"],
                Strategy::Merge,
                "port",
                false,
            ),
            (
                "",
                "Node",
                &["status", "addresses"],
                Strategy::Merge,
                "type",
                false,
            ),
            (
                "",
                "Node",
                &["spec", "podCIDRs"],
                Strategy::Merge,
                "",
                false,
            ),
            (
                "apps",
                "Deployment",
                &["spec", "strategy"],
                Strategy::Default,
                "",
                true,
            ),
            (
                "apps",
                "StatefulSet",
                &["status", "conditions"],
                Strategy::Merge,
                "type",
                false,
            ),
            (
                "policy",
                "PodDisruptionBudget",
                &["spec", "selector"],
                Strategy::Replace,
                "",
                false,
            ),
            (
                "admissionregistration.k8s.io",
                "MutatingWebhookConfiguration",
                &["webhooks", "matchConditions"],
                Strategy::Merge,
                "name",
                false,
            ),
            (
                "rbac.authorization.k8s.io",
                "Role",
                &["metadata", "finalizers"],
                Strategy::Merge,
                "",
                false,
            ),
        ];
        for (group, kind, path, strategy, key, retain) in cases {
            let got = resolve(group, kind, path);
            let got = got.map(|f| (f.strategy, f.merge_key, f.retain_keys));
            let expected = if *strategy == Strategy::Default && !retain {
                None
            } else {
                Some((*strategy, *key, *retain))
            };
            assert_eq!(got, expected, "{kind} {path:?}");
        }
    }
}
