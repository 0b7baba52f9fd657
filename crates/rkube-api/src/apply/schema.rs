//! What server-side apply needs to know about the shape of the built-in kinds: which lists
//! are associative (`x-kubernetes-list-type: map`, keyed by `x-kubernetes-list-map-keys`, or
//! `set`), and which structs and maps are atomic (`x-kubernetes-map-type: atomic`), as the
//! `+listType`, `+listMapKey`, `+mapType` and `+structType` markers in upstream's
//! `k8s.io/api/*/v1/types.go` and `k8s.io/apimachinery/pkg/apis/meta/v1/types.go` say.
//!
//! These differ from the strategic-merge-patch tags in `patch/schema.rs`: ports are keyed
//! by port *and* protocol, topology spread constraints by key and `whenUnsatisfiable`,
//! label selectors and several selector maps are atomic, and lists upstream leaves without a
//! marker (tolerations, container statuses…) are atomic.
//!
//! Every list not named here is atomic; every object is a struct whose fields merge one by
//! one. Kinds the registry does not know (custom resources) get the same treatment below
//! their standard `metadata`, which is what upstream derives from a structural schema
//! without list or map markers.

/// The shape of one value.
#[derive(Clone, Copy, Debug)]
pub(super) enum Ty {
    /// A built-in struct; `None` when its fields are not modelled (all of them are then
    /// plain fields: structs merge, lists are atomic).
    Struct(Option<&'static Schema>),
    /// A value replaced whole: an atomic struct or map, or a scalar.
    Atomic,
    /// An associative list.
    List(&'static ListSpec),
}

/// How an associative list identifies its items.
#[derive(Debug)]
pub(super) enum ListKind {
    /// `x-kubernetes-list-type: set`: scalar items identified by value.
    Set,
    /// `x-kubernetes-list-type: map`: items identified by these key fields.
    Map(&'static [Key]),
}

/// A key field of an associative list, with the default upstream's schema gives it.
#[derive(Debug)]
pub(super) struct Key {
    /// The field name.
    pub(super) name: &'static str,
    /// The default (a string), used when an item leaves the field out.
    pub(super) default: Option<&'static str>,
}

/// An associative list and the struct type of its items.
#[derive(Debug)]
pub(super) struct ListSpec {
    /// How items are identified.
    pub(super) kind: ListKind,
    /// The struct type of the items, when it has anything worth modelling.
    pub(super) items: Option<&'static Schema>,
}

/// A struct type: the fields that are not plain structs or atomic lists.
#[derive(Debug)]
pub(super) struct Schema {
    /// JSON name and shape of each modelled field.
    pub(super) fields: &'static [(&'static str, Ty)],
}

impl Ty {
    /// The type of field `name` of a value of this type.
    pub(super) fn field(self, name: &str) -> Ty {
        match self {
            Ty::Struct(Some(schema)) => schema
                .fields
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(Ty::Struct(None), |(_, ty)| *ty),
            Ty::Struct(None) => Ty::Struct(None),
            Ty::Atomic | Ty::List(_) => Ty::Atomic,
        }
    }

    /// The type of the items of a list of this type.
    pub(super) fn item(self) -> Ty {
        match self {
            Ty::List(spec) => Ty::Struct(spec.items),
            _ => Ty::Atomic,
        }
    }

    /// Whether the keys of a map of this type are declared struct fields (upstream inserts
    /// undeclared keys into field sets even when their values are maps or lists; the keys of
    /// the maps we do not model only ever hold scalars, which are members anyway).
    pub(super) fn declares_fields(self) -> bool {
        matches!(self, Ty::Struct(_))
    }
}

const fn key(name: &'static str) -> Key {
    Key {
        name,
        default: None,
    }
}

static SET: ListSpec = ListSpec {
    kind: ListKind::Set,
    items: None,
};

macro_rules! list {
    ($items:expr; $($key:expr),+) => {{
        static SPEC: ListSpec = ListSpec {
            kind: ListKind::Map(&[$($key),+]),
            items: $items,
        };
        Ty::List(&SPEC)
    }};
}

const BY_NAME: Ty = list!(None; key("name"));
const BY_TYPE: Ty = list!(None; key("type"));
const BY_IP: Ty = list!(None; key("ip"));
const SET_OF: Ty = Ty::List(&SET);

// meta/v1

static OBJECT_META: Schema = Schema {
    fields: &[
        ("finalizers", SET_OF),
        ("ownerReferences", list!(None; key("uid"))),
    ],
};

// core/v1

/// `EnvVar`: the selectors under `valueFrom` are `+structType=atomic`.
static ENV_VAR: Schema = Schema {
    fields: &[(
        "valueFrom",
        Ty::Struct(Some(&Schema {
            fields: &[
                ("configMapKeyRef", Ty::Atomic),
                ("secretKeyRef", Ty::Atomic),
                ("fieldRef", Ty::Atomic),
                ("resourceFieldRef", Ty::Atomic),
            ],
        })),
    )],
};

static CONTAINER: Schema = Schema {
    fields: &[
        (
            "ports",
            list!(None; key("containerPort"), Key { name: "protocol", default: Some("TCP") }),
        ),
        ("env", list!(Some(&ENV_VAR); key("name"))),
        (
            "resources",
            Ty::Struct(Some(&Schema {
                fields: &[("claims", BY_NAME)],
            })),
        ),
        ("volumeMounts", list!(None; key("mountPath"))),
        ("volumeDevices", list!(None; key("devicePath"))),
    ],
};

static POD_SPEC: Schema = Schema {
    fields: &[
        ("volumes", BY_NAME),
        ("initContainers", list!(Some(&CONTAINER); key("name"))),
        ("containers", list!(Some(&CONTAINER); key("name"))),
        ("ephemeralContainers", list!(Some(&CONTAINER); key("name"))),
        ("imagePullSecrets", BY_NAME),
        ("hostAliases", BY_IP),
        (
            "topologySpreadConstraints",
            list!(Some(&WITH_LABEL_SELECTOR); key("topologyKey"), key("whenUnsatisfiable")),
        ),
        (
            "affinity",
            Ty::Struct(Some(&Schema {
                fields: &[(
                    "nodeAffinity",
                    Ty::Struct(Some(&Schema {
                        // A `NodeSelector` is `+structType=atomic`.
                        fields: &[("requiredDuringSchedulingIgnoredDuringExecution", Ty::Atomic)],
                    })),
                )],
            })),
        ),
        ("schedulingGates", BY_NAME),
        ("resourceClaims", BY_NAME),
        ("nodeSelector", Ty::Atomic),
    ],
};

/// A struct whose `labelSelector` is a `LabelSelector`, atomic.
static WITH_LABEL_SELECTOR: Schema = Schema {
    fields: &[("labelSelector", Ty::Atomic)],
};

static POD_STATUS: Schema = Schema {
    fields: &[
        ("conditions", BY_TYPE),
        ("hostIPs", BY_IP),
        ("podIPs", BY_IP),
        ("resourceClaimStatuses", BY_NAME),
    ],
};

static POD: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        ("spec", Ty::Struct(Some(&POD_SPEC))),
        ("status", Ty::Struct(Some(&POD_STATUS))),
    ],
};

static POD_TEMPLATE_SPEC: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        ("spec", Ty::Struct(Some(&POD_SPEC))),
    ],
};

static CONDITIONS_STATUS: Schema = Schema {
    fields: &[("conditions", BY_TYPE)],
};

/// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job and ReplicationController specs: an
/// atomic selector (a `LabelSelector`, or for a ReplicationController an atomic map) and a
/// pod template.
static WORKLOAD_SPEC: Schema = Schema {
    fields: &[
        ("selector", Ty::Atomic),
        ("template", Ty::Struct(Some(&POD_TEMPLATE_SPEC))),
    ],
};

static WORKLOAD: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        ("spec", Ty::Struct(Some(&WORKLOAD_SPEC))),
        ("status", Ty::Struct(Some(&CONDITIONS_STATUS))),
    ],
};

static POD_TEMPLATE: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        ("template", Ty::Struct(Some(&POD_TEMPLATE_SPEC))),
    ],
};

static JOB_TEMPLATE_SPEC: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        ("spec", Ty::Struct(Some(&WORKLOAD_SPEC))),
    ],
};

static CRON_JOB: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        (
            "spec",
            Ty::Struct(Some(&Schema {
                fields: &[("jobTemplate", Ty::Struct(Some(&JOB_TEMPLATE_SPEC)))],
            })),
        ),
    ],
};

static SERVICE: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        (
            "spec",
            Ty::Struct(Some(&Schema {
                fields: &[
                    (
                        "ports",
                        list!(None; key("port"), Key { name: "protocol", default: Some("TCP") }),
                    ),
                    ("selector", Ty::Atomic),
                ],
            })),
        ),
        ("status", Ty::Struct(Some(&CONDITIONS_STATUS))),
    ],
};

static NODE: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        (
            "spec",
            Ty::Struct(Some(&Schema {
                fields: &[("podCIDRs", SET_OF)],
            })),
        ),
        (
            "status",
            Ty::Struct(Some(&Schema {
                fields: &[("conditions", BY_TYPE), ("addresses", BY_TYPE)],
            })),
        ),
    ],
};

static WITH_CONDITIONS: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        ("status", Ty::Struct(Some(&CONDITIONS_STATUS))),
    ],
};

/// A disruption budget's label selector is atomic, as every `LabelSelector` is.
static POD_DISRUPTION_BUDGET: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        (
            "spec",
            Ty::Struct(Some(&Schema {
                fields: &[("selector", Ty::Atomic)],
            })),
        ),
        ("status", Ty::Struct(Some(&CONDITIONS_STATUS))),
    ],
};

static PERSISTENT_VOLUME_CLAIM: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        (
            "spec",
            Ty::Struct(Some(&Schema {
                fields: &[("selector", Ty::Atomic)],
            })),
        ),
        ("status", Ty::Struct(Some(&CONDITIONS_STATUS))),
    ],
};

// networking.k8s.io/v1

static NETWORK_POLICY: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        (
            "spec",
            Ty::Struct(Some(&Schema {
                fields: &[("podSelector", Ty::Atomic)],
            })),
        ),
    ],
};

// admissionregistration.k8s.io/v1

static WEBHOOK: Schema = Schema {
    fields: &[
        ("matchConditions", BY_NAME),
        ("namespaceSelector", Ty::Atomic),
        ("objectSelector", Ty::Atomic),
    ],
};

static WEBHOOK_CONFIGURATION: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        ("webhooks", list!(Some(&WEBHOOK); key("name"))),
    ],
};

static VALIDATING_ADMISSION_POLICY: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        (
            "spec",
            Ty::Struct(Some(&Schema {
                fields: &[("matchConditions", BY_NAME), ("variables", BY_NAME)],
            })),
        ),
        ("status", Ty::Struct(Some(&CONDITIONS_STATUS))),
    ],
};

// storage.k8s.io/v1

static CSI_NODE: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        (
            "spec",
            Ty::Struct(Some(&Schema {
                fields: &[("drivers", BY_NAME)],
            })),
        ),
    ],
};

static SERVICE_ACCOUNT: Schema = Schema {
    fields: &[
        ("metadata", Ty::Struct(Some(&OBJECT_META))),
        ("secrets", BY_NAME),
    ],
};

static OBJECT: Schema = Schema {
    fields: &[("metadata", Ty::Struct(Some(&OBJECT_META)))],
};

/// The type of a whole object of a kind.
pub(super) fn for_kind(group: &str, kind: &str) -> Ty {
    let schema: &'static Schema = match (group, kind) {
        ("", "Pod") => &POD,
        ("", "PodTemplate") => &POD_TEMPLATE,
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => &WORKLOAD,
        ("batch", "CronJob") => &CRON_JOB,
        ("", "Service") => &SERVICE,
        ("", "Node") => &NODE,
        ("", "Namespace") | ("autoscaling", "HorizontalPodAutoscaler") => &WITH_CONDITIONS,
        ("", "PersistentVolumeClaim") => &PERSISTENT_VOLUME_CLAIM,
        ("networking.k8s.io", "NetworkPolicy") => &NETWORK_POLICY,
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => &WEBHOOK_CONFIGURATION,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            &VALIDATING_ADMISSION_POLICY
        }
        ("storage.k8s.io", "CSINode") => &CSI_NODE,
        ("policy", "PodDisruptionBudget") => &POD_DISRUPTION_BUDGET,
        ("", "ServiceAccount") => &SERVICE_ACCOUNT,
        _ => &OBJECT,
    };
    Ty::Struct(Some(schema))
}
