//! Which webhooks a request is for: the configurations read into [`Webhook`]s, and upstream's
//! rule matching (`predicates/rules`), object selector (`predicates/object`) and namespace
//! selector (`predicates/namespace`) decisions, without I/O.

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1 as admission;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiLabelSelector;
use rkube_api::selector::LabelSelector;
use serde_json::Value;

/// Upstream's default `timeoutSeconds`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The admission operation of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Update,
    Delete,
    /// exec, attach, port-forward and proxy requests.
    Connect,
}

impl Operation {
    /// The name rules and `AdmissionReview` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }

    /// The options kind sent along (`CreateOptions`, …).
    pub fn options_kind(self) -> &'static str {
        match self {
            Operation::Create => "CreateOptions",
            Operation::Update => "UpdateOptions",
            Operation::Delete => "DeleteOptions",
            // Upstream sends no options with a connect: its object is the options.
            Operation::Connect => "",
        }
    }
}

/// What a request is about, as rules see it.
#[derive(Clone, Debug)]
pub(crate) struct Target<'a> {
    pub operation: Operation,
    pub group: &'a str,
    pub version: &'a str,
    /// The resource (plural).
    pub resource: &'a str,
    /// The subresource, empty for the main resource.
    pub subresource: &'a str,
    /// The namespace, empty for cluster-scoped objects.
    pub namespace: &'a str,
}

impl Target<'_> {
    fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.resource == "namespaces"
    }
}

/// Which version a webhook is called with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Matched<'v> {
    /// The version the request names.
    AsRequested,
    /// Another served version of the same resource, which the object is converted to.
    Equivalent(&'v str),
}

/// One rule of a webhook.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Rule {
    pub operations: Vec<String>,
    pub api_groups: Vec<String>,
    pub api_versions: Vec<String>,
    pub resources: Vec<String>,
    /// `Cluster`, `Namespaced` or `*` (the default).
    pub scope: String,
}

impl Rule {
    fn from_api(rule: &admission::RuleWithOperations) -> Self {
        Self {
            operations: rule.operations.clone().unwrap_or_default(),
            api_groups: rule.api_groups.clone().unwrap_or_default(),
            api_versions: rule.api_versions.clone().unwrap_or_default(),
            resources: rule.resources.clone().unwrap_or_default(),
            scope: rule.scope.clone().unwrap_or_else(|| "*".to_owned()),
        }
    }

    /// Whether the rule covers the request, as upstream's `rules.Matcher`. `any_version`:
    /// under matchPolicy Equivalent a rule naming another version of the same group and
    /// resource matches too (rkube serves one version of each resource, so every other
    /// version is an equivalent one).
    pub fn matches(&self, target: &Target<'_>, any_version: bool) -> bool {
        let listed = |list: &[String], value: &str| list.iter().any(|v| v == "*" || v == value);
        listed(&self.operations, target.operation.as_str())
            && listed(&self.api_groups, target.group)
            && (any_version && !self.api_versions.is_empty()
                || listed(&self.api_versions, target.version))
            && self.resource_matches(target)
            && self.scope_matches(target)
    }

    fn resource_matches(&self, target: &Target<'_>) -> bool {
        self.resources.iter().any(|entry| {
            let (resource, sub) = entry.split_once('/').unwrap_or((entry, ""));
            (resource == "*" || resource == target.resource)
                && (sub == "*" || sub == target.subresource)
        })
    }

    fn scope_matches(&self, target: &Target<'_>) -> bool {
        // A Namespace is cluster-scoped even though its requests name a namespace.
        match self.scope.as_str() {
            "Namespaced" => !target.is_namespace() && !target.namespace.is_empty(),
            "Cluster" => target.is_namespace() || target.namespace.is_empty(),
            _ => true,
        }
    }
}

/// A compiled selector, or why it does not compile (which makes calling its webhook fail).
pub(crate) type Selector = Result<LabelSelector, String>;

fn selector(api: Option<&ApiLabelSelector>) -> Selector {
    match api {
        None => Ok(LabelSelector::everything()),
        Some(s) => LabelSelector::from_api(s).map_err(|e| e.to_string()),
    }
}

/// One webhook of a configuration, with its defaults applied.
#[derive(Clone, Debug)]
pub(crate) struct Webhook {
    pub name: String,
    /// The configuration it belongs to.
    pub configuration: String,
    pub client: admission::WebhookClientConfig,
    pub rules: Vec<Rule>,
    /// failurePolicy Ignore (the default is Fail).
    pub ignore_failures: bool,
    /// matchPolicy Exact (the default is Equivalent).
    pub exact: bool,
    pub namespace_selector: Selector,
    pub object_selector: Selector,
    /// The sideEffects value, which decides whether dry-run requests may be sent.
    pub side_effects: String,
    pub timeout: Duration,
    /// reinvocationPolicy IfNeeded (mutating webhooks only).
    pub reinvoke: bool,
    /// The matchConditions' CEL expressions, by name.
    pub match_conditions: Vec<(String, String)>,
}

impl Webhook {
    /// A webhook of either kind: a validating webhook has the fields of a mutating one but
    /// `reinvocationPolicy`, which is ignored for it.
    fn new(configuration: &str, hook: &admission::MutatingWebhook, mutating: bool) -> Self {
        Self {
            name: hook.name.clone(),
            configuration: configuration.to_owned(),
            client: hook.client_config.clone(),
            rules: hook.rules.iter().flatten().map(Rule::from_api).collect(),
            ignore_failures: hook.failure_policy.as_deref() == Some("Ignore"),
            exact: hook.match_policy.as_deref() == Some("Exact"),
            namespace_selector: selector(hook.namespace_selector.as_ref()),
            object_selector: selector(hook.object_selector.as_ref()),
            side_effects: hook.side_effects.clone(),
            timeout: hook
                .timeout_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map_or(DEFAULT_TIMEOUT, Duration::from_secs),
            reinvoke: mutating && hook.reinvocation_policy.as_deref() == Some("IfNeeded"),
            match_conditions: hook
                .match_conditions
                .iter()
                .flatten()
                .map(|c| (c.name.clone(), c.expression.clone()))
                .collect(),
        }
    }

    /// The version of the requested resource the webhook is to be called with, if one of
    /// its rules covers the request: the request's own when a rule names it; else, under
    /// matchPolicy Equivalent, the first of `equivalents` (the resource's other served
    /// versions, preferred first) a rule names — as upstream's matcher tries the equivalent
    /// resources and converts the object for the webhook.
    pub fn matched<'v>(&self, target: &Target<'_>, equivalents: &[&'v str]) -> Option<Matched<'v>> {
        if self.rules.iter().any(|r| r.matches(target, false)) {
            return Some(Matched::AsRequested);
        }
        if self.exact {
            return None;
        }
        equivalents
            .iter()
            .find(|version| {
                let other = Target {
                    version,
                    ..target.clone()
                };
                self.rules.iter().any(|r| r.matches(&other, false))
            })
            .map(|version| Matched::Equivalent(version))
    }

    /// Whether the object selector selects the new or the old object (upstream asks both,
    /// so a label being removed still reaches the webhook).
    pub fn selects_object(&self, object: Option<&Value>, old: Option<&Value>) -> Selected {
        let selector = match &self.object_selector {
            Ok(s) => s,
            Err(e) => return Selected::Error(format!("invalid object selector: {e}")),
        };
        if selector.is_empty() {
            return Selected::Yes;
        }
        let selected = [object, old]
            .into_iter()
            .flatten()
            .any(|o| selector.matches_object(o));
        if selected {
            Selected::Yes
        } else {
            Selected::No
        }
    }

    /// Whether the namespace selector selects the namespace with these labels.
    pub fn selects_namespace(&self, namespace: &Value) -> Selected {
        match &self.namespace_selector {
            Ok(s) if s.matches_object(namespace) => Selected::Yes,
            Ok(_) => Selected::No,
            Err(e) => Selected::Error(format!("invalid namespace selector: {e}")),
        }
    }

    /// Whether the namespace selector can skip the namespace lookup: it selects everything,
    /// or the object is cluster-scoped (other than a Namespace, which is its own namespace).
    pub fn namespace_needed(&self, target: &Target<'_>) -> bool {
        let everything = self
            .namespace_selector
            .as_ref()
            .is_ok_and(LabelSelector::is_empty);
        !everything && (target.is_namespace() || !target.namespace.is_empty())
    }
}

/// A selector's answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Selected {
    Yes,
    No,
    /// The selector is invalid: calling the webhook fails.
    Error(String),
}

/// The webhooks of a list of ValidatingWebhookConfigurations, in upstream's order:
/// configurations by name, webhooks as listed.
pub(crate) fn validating(configurations: &[Value]) -> Vec<Webhook> {
    compile(configurations, false)
}

/// The webhooks of a list of MutatingWebhookConfigurations, in upstream's order.
pub(crate) fn mutating(configurations: &[Value]) -> Vec<Webhook> {
    compile(configurations, true)
}

fn compile(configurations: &[Value], mutating: bool) -> Vec<Webhook> {
    let mut named: Vec<(&str, &Value)> = configurations
        .iter()
        .map(|c| (c["metadata"]["name"].as_str().unwrap_or_default(), c))
        .collect();
    named.sort_by_key(|(name, _)| *name);
    named
        .into_iter()
        .flat_map(|(name, config)| {
            config["webhooks"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|hook| serde_json::from_value(hook.clone()).ok())
                .map(move |hook: admission::MutatingWebhook| Webhook::new(name, &hook, mutating))
        })
        .collect()
}

/// Requests for the admission configuration itself never reach webhooks, so a bad webhook
/// cannot lock the cluster out of fixing it (upstream's `IsExemptAdmissionConfigurationResource`).
pub(crate) fn exempt(group: &str, resource: &str) -> bool {
    group == "admissionregistration.k8s.io"
        && matches!(
            resource,
            "validatingwebhookconfigurations"
                | "mutatingwebhookconfigurations"
                | "validatingadmissionpolicies"
                | "validatingadmissionpolicybindings"
                | "mutatingadmissionpolicies"
                | "mutatingadmissionpolicybindings"
        )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(ops: &[&str], groups: &[&str], versions: &[&str], resources: &[&str]) -> Rule {
        let own = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        Rule {
            operations: own(ops),
            api_groups: own(groups),
            api_versions: own(versions),
            resources: own(resources),
            scope: "*".into(),
        }
    }

    fn pod_create(subresource: &'static str) -> Target<'static> {
        Target {
            operation: Operation::Create,
            group: "",
            version: "v1",
            resource: "pods",
            subresource,
            namespace: "default",
        }
    }

    #[test]
    fn a_rule_matches_its_operation_group_version_and_resource() {
        let r = rule(&["CREATE"], &[""], &["v1"], &["pods"]);
        assert!(r.matches(&pod_create(""), false));
        let update = Target {
            operation: Operation::Update,
            ..pod_create("")
        };
        assert!(!r.matches(&update, false));
        let configmaps = Target {
            resource: "configmaps",
            ..pod_create("")
        };
        assert!(!r.matches(&configmaps, false));
        assert!(rule(&["*"], &["*"], &["*"], &["*"]).matches(&update, false));
    }

    #[test]
    fn subresources_match_only_when_named() {
        let status = pod_create("status");
        assert!(!rule(&["*"], &[""], &["v1"], &["pods"]).matches(&status, false));
        assert!(!rule(&["*"], &[""], &["v1"], &["*"]).matches(&status, false));
        assert!(rule(&["*"], &[""], &["v1"], &["pods/status"]).matches(&status, false));
        assert!(rule(&["*"], &[""], &["v1"], &["*/status"]).matches(&status, false));
        assert!(rule(&["*"], &[""], &["v1"], &["pods/*"]).matches(&status, false));
        assert!(rule(&["*"], &[""], &["v1"], &["pods/*"]).matches(&pod_create(""), false));
        assert!(rule(&["*"], &[""], &["v1"], &["*/*"]).matches(&status, false));
        assert!(!rule(&["*"], &[""], &["v1"], &["pods/log"]).matches(&status, false));
    }

    #[test]
    fn scope_separates_namespaced_and_cluster_objects() {
        let mut r = rule(&["*"], &["*"], &["*"], &["*"]);
        r.scope = "Namespaced".into();
        assert!(r.matches(&pod_create(""), false));
        let namespace = Target {
            resource: "namespaces",
            namespace: "team-a",
            ..pod_create("")
        };
        assert!(!r.matches(&namespace, false));
        r.scope = "Cluster".into();
        assert!(r.matches(&namespace, false));
        assert!(!r.matches(&pod_create(""), false));
        let node = Target {
            resource: "nodes",
            namespace: "",
            ..pod_create("")
        };
        assert!(r.matches(&node, false));
    }

    #[test]
    fn equivalent_match_policy_accepts_another_version() {
        let r = rule(&["CREATE"], &["apps"], &["v1beta1"], &["deployments"]);
        let deployment = Target {
            group: "apps",
            version: "v1",
            resource: "deployments",
            ..pod_create("")
        };
        assert!(!r.matches(&deployment, false));
        assert!(r.matches(&deployment, true));
    }

    #[test]
    fn an_equivalent_match_names_the_served_version_a_rule_lists() {
        let hook = |exact: bool| {
            let mut hook = Webhook::new(
                "c",
                &serde_json::from_value(json!({
                    "name": "h.example.com",
                    "clientConfig": {"url": "https://127.0.0.1:1/"},
                    "sideEffects": "None",
                    "admissionReviewVersions": ["v1"],
                    "rules": [{"operations": ["CREATE"], "apiGroups": ["stable.example.com"],
                               "apiVersions": ["v1"], "resources": ["crontabs"]}],
                }))
                .unwrap(),
                true,
            );
            hook.exact = exact;
            hook
        };
        let crontab = |version| Target {
            group: "stable.example.com",
            version,
            resource: "crontabs",
            ..pod_create("")
        };
        assert_eq!(
            hook(false).matched(&crontab("v1"), &["v2"]),
            Some(Matched::AsRequested)
        );
        assert_eq!(
            hook(false).matched(&crontab("v2"), &["v1"]),
            Some(Matched::Equivalent("v1"))
        );
        assert_eq!(hook(true).matched(&crontab("v2"), &["v1"]), None);
        // A version that is not served is no equivalent.
        assert_eq!(hook(false).matched(&crontab("v2"), &[]), None);
    }

    #[test]
    fn webhooks_come_in_configuration_name_order_with_upstream_defaults() {
        let config =
            |name: &str, hooks: Value| json!({"metadata": {"name": name}, "webhooks": hooks});
        let hook = |name: &str| {
            json!({
                "name": name,
                "clientConfig": {"url": "https://127.0.0.1:1/x"},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            })
        };
        let list = [
            config("b", json!([hook("b1.example.com")])),
            config("a", json!([hook("a2.example.com"), hook("a1.example.com")])),
        ];
        let hooks = mutating(&list);
        let names: Vec<&str> = hooks.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["a2.example.com", "a1.example.com", "b1.example.com"]
        );
        assert!(!hooks[0].ignore_failures && !hooks[0].exact && !hooks[0].reinvoke);
        assert_eq!(hooks[0].timeout, Duration::from_secs(10));
    }

    #[test]
    fn object_selector_looks_at_the_new_and_the_old_object() {
        let mut hook = validating(&[json!({
            "metadata": {"name": "c"},
            "webhooks": [{
                "name": "w.example.com",
                "clientConfig": {"url": "https://127.0.0.1:1/x"},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "objectSelector": {"matchLabels": {"watched": "yes"}},
            }],
        })])
        .remove(0);
        let with = json!({"metadata": {"labels": {"watched": "yes"}}});
        let without = json!({"metadata": {}});
        assert_eq!(hook.selects_object(Some(&with), None), Selected::Yes);
        assert_eq!(hook.selects_object(Some(&without), None), Selected::No);
        assert_eq!(
            hook.selects_object(Some(&without), Some(&with)),
            Selected::Yes
        );
        hook.object_selector = Err("bad".into());
        assert!(matches!(
            hook.selects_object(Some(&with), None),
            Selected::Error(_)
        ));
    }

    #[test]
    fn cluster_scoped_objects_skip_the_namespace_selector() {
        let hooks = validating(&[json!({
            "metadata": {"name": "c"},
            "webhooks": [{
                "name": "w.example.com",
                "clientConfig": {"url": "https://127.0.0.1:1/x"},
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "namespaceSelector": {"matchLabels": {"team": "a"}},
            }],
        })]);
        let node = Target {
            resource: "nodes",
            namespace: "",
            ..pod_create("")
        };
        assert!(!hooks[0].namespace_needed(&node));
        assert!(hooks[0].namespace_needed(&pod_create("")));
        let labelled = json!({"metadata": {"labels": {"team": "a"}}});
        assert_eq!(hooks[0].selects_namespace(&labelled), Selected::Yes);
        assert_eq!(hooks[0].selects_namespace(&json!({})), Selected::No);
    }

    #[test]
    fn the_admission_configuration_is_exempt() {
        assert!(exempt(
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations"
        ));
        assert!(!exempt("", "pods"));
    }
}
