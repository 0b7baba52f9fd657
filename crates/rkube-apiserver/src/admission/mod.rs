//! The admission stage: every plugin, built-in, webhook or policy, in one chain with one
//! order, run the same way for creates, updates and deletes. Mutating plugins run first, in
//! order, each seeing what the one before made; then the resource's own defaulting and
//! validation; then the validating plugins. The order is upstream's (kube-apiserver's
//! `AllOrderedPlugins`), restricted to the plugins rkube has.

mod strategy;

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde_json::Value;

use crate::app::App;
pub(crate) use crate::webhook::{Attributes, Operation};

/// What the built-in plugins read of the cluster, as upstream's plugins read their
/// informers: current objects from the watch cache once it has loaded, else from the store.
pub(crate) trait Informers: Sync {
    /// Every object of `rt` (in `ns`).
    fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Value>, ApiError>> + Send;

    /// One object (404 when there is none).
    fn get(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;

    /// One object as the cache holds it, without asking the store.
    fn cached(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> impl Future<Output = Option<Value>> + Send;

    /// One object from the store, bypassing the cache.
    fn stored(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send;
}

impl Informers for App {
    async fn list(&self, rt: &ResourceType, ns: Option<&str>) -> Result<Vec<Value>, ApiError> {
        self.list_current(rt, ns).await
    }

    async fn get(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.lookup(rt, ns, name).await
    }

    async fn cached(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Option<Value> {
        self.cached_object(rt, ns, name).await
    }

    async fn stored(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.objects.get(rt, ns, name).await
    }
}

/// The resource type of a built-in kind.
pub(crate) fn kind(group: &str, kind: &str) -> Result<&'static ResourceType, ApiError> {
    rkube_api::registry::all()
        .by_kind(group, kind)
        .ok_or_else(|| {
            ApiError::Internal(format!("no resource for kind {kind} in group {group:?}"))
        })
}

/// An admission plugin, by upstream's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Plugin {
    /// Nothing new in a namespace that is missing or terminating.
    NamespaceLifecycle,
    /// A namespace's LimitRanges: default requests and limits, then bounds.
    LimitRanger,
    /// A pod's service account and its token volume.
    ServiceAccount,
    /// A pod's priority from its PriorityClass; PriorityClass rules.
    Priority,
    /// A pod's overhead and scheduling from its RuntimeClass.
    RuntimeClass,
    /// MutatingWebhookConfigurations.
    MutatingAdmissionWebhook,
    /// ValidatingAdmissionPolicies and their bindings.
    ValidatingAdmissionPolicy,
    /// ValidatingWebhookConfigurations.
    ValidatingAdmissionWebhook,
    /// ResourceQuota: charged last, once everything else has admitted the object.
    ResourceQuota,
}

/// The mutating plugins, in the order they run.
const MUTATING: &[Plugin] = &[
    Plugin::NamespaceLifecycle,
    Plugin::LimitRanger,
    Plugin::ServiceAccount,
    Plugin::Priority,
    Plugin::RuntimeClass,
    Plugin::MutatingAdmissionWebhook,
];

/// The validating plugins, in the order they run.
const VALIDATING: &[Plugin] = &[
    Plugin::LimitRanger,
    Plugin::ValidatingAdmissionPolicy,
    Plugin::ValidatingAdmissionWebhook,
    Plugin::ResourceQuota,
];

/// One request to admit: what is being done to which object.
pub(crate) struct Request<'a> {
    /// The operation, resource, namespace and name (empty while a name is yet to be
    /// generated), as webhooks and policies are told.
    pub attrs: Attributes<'a>,
    /// The name plugins refer to the object by: the client's name, or its `generateName`.
    pub admitted_as: &'a str,
    /// The object before the change (updates and deletes).
    pub old: Option<&'a Value>,
    /// The scheme's defaults were applied already (the write tracks managed fields).
    pub scheme_defaulted: bool,
    /// The resource's own validation has passed on the object as it stands now (an update
    /// validates before mutating admission, to refuse from the store's copy only).
    pub validated: bool,
}

impl Request<'_> {
    fn is(&self, operation: Operation) -> bool {
        self.attrs.operation == operation
    }

    fn namespace(&self) -> Option<&str> {
        self.attrs.namespace
    }
}

impl App {
    /// Admits `object` (none for a delete): mutating plugins, the resource's defaulting and
    /// validation, validating plugins. Refusals are errors as the refusing plugin words them.
    pub(crate) async fn admit(
        &self,
        request: &Request<'_>,
        mut object: Option<&mut Value>,
    ) -> Result<(), ApiError> {
        let mut changed = false;
        for plugin in MUTATING {
            changed |= self.mutate(*plugin, request, object.as_deref_mut()).await?;
        }
        // A connect request's object is its options, which the resource does not validate.
        if let Some(object) = object.as_deref_mut()
            && (changed || !request.validated)
            && !request.is(Operation::Connect)
        {
            let base = request
                .old
                .map(|old| crate::rest::validation_base(request.attrs.subresource, object, old));
            self::strategy::admit(
                request.attrs.rt,
                object,
                base.as_deref(),
                request.scheme_defaulted,
            )?;
        }
        let object = object.as_deref();
        for plugin in VALIDATING {
            self.validate(*plugin, request, object).await?;
        }
        Ok(())
    }

    /// The resource's own defaulting and validation alone, outside the chain: an update runs
    /// it first on every attempt, so that a refusal is decided on the store's copy.
    pub(crate) fn admit_by_strategy(
        &self,
        rt: &rkube_api::registry::ResourceType,
        object: &mut Value,
        old: Option<&Value>,
        scheme_defaulted: bool,
    ) -> Result<(), ApiError> {
        self::strategy::admit(rt, object, old, scheme_defaulted)
    }

    /// Whether `plugin` is on (`--disable-admission-plugins` turns some off).
    fn enabled(&self, plugin: Plugin) -> bool {
        !self
            .config
            .disable_admission_plugins
            .contains(&format!("{plugin:?}"))
    }

    /// One mutating plugin; whether it changed the object.
    async fn mutate(
        &self,
        plugin: Plugin,
        request: &Request<'_>,
        object: Option<&mut Value>,
    ) -> Result<bool, ApiError> {
        let rt = request.attrs.rt;
        let ns = request.namespace();
        let name = request.admitted_as;
        let main_resource = request.attrs.subresource.is_none();
        let Some(object) = object else {
            // A delete: only webhooks see it.
            return match plugin {
                Plugin::MutatingAdmissionWebhook => {
                    self.mutate_by_webhooks(&request.attrs, None, request.old)
                        .await
                }
                _ => Ok(false),
            };
        };
        match plugin {
            // Upstream's chain opens with the namespace's lifecycle: content for a missing or
            // terminating namespace is refused before anything looks further.
            Plugin::NamespaceLifecycle => {
                if let Some(ns) = ns
                    && request.is(Operation::Create)
                    && !(rt.group.is_empty() && rt.kind == "Namespace")
                {
                    self.check_namespace_open(ns).await?;
                }
                Ok(false)
            }
            Plugin::LimitRanger if request.is(Operation::Create) => {
                crate::limitranger::defaults(self, rt, ns, object, request.scheme_defaulted)
                    .await?;
                Ok(false)
            }
            Plugin::LimitRanger => {
                if crate::limitranger::on_update(rt, request.attrs.subresource) {
                    crate::limitranger::update_defaults(self, rt, ns, object).await
                } else {
                    Ok(false)
                }
            }
            Plugin::ServiceAccount if request.is(Operation::Create) && self.enabled(plugin) => {
                crate::serviceaccount::admit(self, rt, ns, name, object).await?;
                Ok(false)
            }
            Plugin::Priority if main_resource && self.enabled(plugin) => {
                crate::priority::admit(self, rt, name, object, request.old).await?;
                Ok(false)
            }
            Plugin::RuntimeClass if request.is(Operation::Create) => {
                crate::runtimeclass::admit(self, rt, name, object).await?;
                Ok(false)
            }
            Plugin::MutatingAdmissionWebhook => {
                self.mutate_by_webhooks(&request.attrs, Some(object), request.old)
                    .await
            }
            _ => Ok(false),
        }
    }

    /// NamespaceLifecycle: 403 when the namespace is being terminated (404 when missing).
    async fn check_namespace_open(&self, ns: &str) -> Result<(), ApiError> {
        let namespaces = self.resource("", "Namespace")?;
        // The cached bytes answer without decoding the namespace.
        let terminating = match self.cached_entry(namespaces, None, ns).await {
            Some(cached) => {
                crate::cache::raw_member(&cached.value, &["status", "phase"])
                    == Some(&b"\"Terminating\""[..])
            }
            None => {
                self.objects.get(namespaces, None, ns).await?["status"]["phase"] == "Terminating"
            }
        };
        if terminating {
            return Err(ApiError::Forbidden(format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            )));
        }
        Ok(())
    }

    /// One validating plugin.
    async fn validate(
        &self,
        plugin: Plugin,
        request: &Request<'_>,
        object: Option<&Value>,
    ) -> Result<(), ApiError> {
        let rt = request.attrs.rt;
        let ns = request.namespace();
        match (plugin, object) {
            (Plugin::LimitRanger, Some(object))
                if request.is(Operation::Create)
                    || crate::limitranger::on_update(rt, request.attrs.subresource) =>
            {
                crate::limitranger::validate(self, rt, ns, request.admitted_as, object).await
            }
            // Policies, like webhooks, never see the configuration of admission itself.
            (Plugin::ValidatingAdmissionPolicy, _)
                if !crate::webhook::matching::exempt(rt.group, rt.plural) =>
            {
                self.validate_by_policies(&request.attrs, object, request.old)
                    .await
            }
            (Plugin::ValidatingAdmissionWebhook, _) => {
                self.validate_by_webhooks(&request.attrs, object, request.old)
                    .await
            }
            // A dry run charges nothing.
            (Plugin::ResourceQuota, Some(object))
                if request.is(Operation::Create) && !request.attrs.dry_run =>
            {
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or(request.admitted_as);
                // Boxed: charging writes the quota's status, an update admitted in turn.
                Box::pin(self.charge_quota(rt, ns, name, object)).await
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_lifecycle_opens_the_chain_and_quota_closes_it() {
        assert_eq!(MUTATING.first(), Some(&Plugin::NamespaceLifecycle));
        assert_eq!(VALIDATING.last(), Some(&Plugin::ResourceQuota));
        let webhook_after_builtins = MUTATING
            .iter()
            .position(|p| *p == Plugin::MutatingAdmissionWebhook)
            == Some(MUTATING.len() - 1);
        assert!(webhook_after_builtins);
        // Policies run before validating webhooks, as upstream orders them.
        let policy = VALIDATING
            .iter()
            .position(|p| *p == Plugin::ValidatingAdmissionPolicy);
        let webhook = VALIDATING
            .iter()
            .position(|p| *p == Plugin::ValidatingAdmissionWebhook);
        assert!(policy < webhook);
    }
}
