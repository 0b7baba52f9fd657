//! Admission webhooks (admissionregistration.k8s.io/v1): the Mutating- and
//! ValidatingWebhookConfigurations' webhooks called from the admission chain, as upstream's
//! `plugin/webhook` does. Mutating webhooks run after the built-in mutating plugins, one at a
//! time in configuration name order, their JSON patches applied as they answer; validating
//! webhooks run after validation, all at once, and any refusal refuses the request.
//!
//! The configurations are read from the watch cache and compiled again only when the cache's
//! copy of them changes (or from the store when the cache is not serving).

pub(crate) mod client;
pub(crate) mod conditions;
pub(crate) mod matching;
mod validation;

use std::sync::{Arc, Mutex};

use base64::Engine;
use rkube_api::ApiError;
use rkube_api::registry::{self, ResourceType};
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::UserInfo;
use crate::cache::Freshness;
pub(crate) use matching::Operation;
use matching::{Matched, Selected, Target, Webhook};

tokio::task_local! {
    /// Who is making the request being admitted.
    static USER: UserInfo;
}

/// Runs `handle` as `user`'s request: webhooks are told who asks.
pub(crate) async fn as_user<T>(user: UserInfo, handle: impl Future<Output = T>) -> T {
    USER.scope(user, handle).await
}

pub(crate) fn current_user() -> UserInfo {
    USER.try_with(UserInfo::clone)
        .unwrap_or_else(|_| UserInfo::loopback())
}

/// The compiled webhooks of one configuration kind, and which state of the cache they were
/// compiled from.
struct Compiled {
    /// The cache's load generation and the resource's last event revision.
    from: (u64, i64),
    webhooks: Arc<Vec<Webhook>>,
}

/// The webhooks currently configured, compiled from the configurations on demand.
#[derive(Default)]
pub(crate) struct Configurations {
    validating: Mutex<Option<Compiled>>,
    mutating: Mutex<Option<Compiled>>,
}

/// What a request being admitted is about.
pub(crate) struct Attributes<'a> {
    pub rt: &'a ResourceType,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub operation: Operation,
    pub dry_run: bool,
}

impl Attributes<'_> {
    pub(crate) fn target(&self) -> Target<'_> {
        Target {
            operation: self.operation,
            group: self.rt.group,
            version: self.rt.version,
            resource: self.rt.plural,
            subresource: self.subresource.unwrap_or(""),
            namespace: self.namespace.unwrap_or(""),
        }
    }

    /// The `AdmissionReview` for one call.
    fn review(&self, delivery: &Delivery) -> (String, Value) {
        let uid = uuid::Builder::from_random_bytes(rand::random())
            .into_uuid()
            .to_string();
        let user = current_user();
        let kind =
            |rt: &ResourceType| json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
        let resource = |rt: &ResourceType| json!({"group": rt.group, "version": rt.version, "resource": rt.plural});
        let sent_as = delivery.sent_as.unwrap_or(self.rt);
        let (object, old) = delivery.objects();
        // A connect request's object is its options (PodExecOptions, …), and so is its kind.
        let (kind, request_kind) = match (self.operation, object) {
            (Operation::Connect, Some(options)) => {
                let options_kind = json!({"group": "", "version": "v1", "kind": options["kind"]});
                (options_kind.clone(), options_kind)
            }
            _ => (kind(sent_as), kind(self.rt)),
        };
        let mut request = json!({
            "uid": uid,
            "kind": kind,
            "resource": resource(sent_as),
            "requestKind": request_kind,
            "requestResource": resource(self.rt),
            "name": self.name,
            "operation": self.operation.as_str(),
            "userInfo": {"username": user.name, "groups": user.groups},
            "object": object.cloned().unwrap_or(Value::Null),
            "oldObject": old.cloned().unwrap_or(Value::Null),
            "dryRun": self.dry_run,
            "options": {"kind": self.operation.options_kind(), "apiVersion": "meta.k8s.io/v1"},
        });
        if self.operation == Operation::Connect {
            request["options"] = Value::Null;
        }
        if !user.uid.is_empty() {
            request["userInfo"]["uid"] = json!(user.uid);
        }
        if let Some(sub) = self.subresource {
            request["subResource"] = json!(sub);
            request["requestSubResource"] = json!(sub);
        }
        if let Some(ns) = self.namespace {
            request["namespace"] = json!(ns);
        }
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        });
        (uid, review)
    }
}

/// A webhook configuration being written is held to upstream's rules for it (which its
/// schema does not express), as its strategy's validation does.
fn check_configuration(attrs: &Attributes<'_>, object: Option<&Value>) -> Result<(), ApiError> {
    let mutating = match attrs.rt.kind {
        "MutatingWebhookConfiguration" => Some(true),
        "ValidatingWebhookConfiguration" => Some(false),
        "ValidatingAdmissionPolicy" => None,
        _ => return Ok(()),
    };
    let Some(object) = object.filter(|_| attrs.operation != Operation::Delete) else {
        return Ok(());
    };
    let causes = match mutating {
        Some(mutating) => validation::check(object, mutating),
        None => crate::policy::check_policy(object),
    };
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        kind: attrs.rt.qualified_kind(),
        name: object["metadata"]["name"].as_str().unwrap_or("").to_owned(),
        causes,
    })
}

/// What one webhook is sent: the request's objects, or copies converted to the version the
/// webhook matched.
struct Delivery<'v> {
    /// The version the webhook matched when not the request's own.
    sent_as: Option<&'static ResourceType>,
    object: Option<&'v Value>,
    old: Option<&'v Value>,
    /// The object and old object in `sent_as`.
    converted: (Option<Value>, Option<Value>),
}

impl Delivery<'_> {
    /// The objects as the webhook sees them.
    fn objects(&self) -> (Option<&Value>, Option<&Value>) {
        match self.sent_as {
            Some(_) => (self.converted.0.as_ref(), self.converted.1.as_ref()),
            None => (self.object, self.old),
        }
    }
}

/// Why a webhook call did not give an answer, or refused.
enum Failure {
    /// The call failed (subject to the webhook's failurePolicy).
    Call(String),
    /// The request is refused whatever the failurePolicy says.
    Refused(ApiError),
}

/// A webhook's answer.
struct Answer {
    allowed: bool,
    status: Value,
    /// The JSON patch of a mutating webhook.
    patch: Option<Value>,
    warnings: Vec<String>,
}

/// Upstream's refusal for a webhook's `allowed: false`: its status, the code at least 400,
/// the message naming the webhook (`ToStatusErr`).
fn denied(name: &str, status: &Value) -> ApiError {
    let by = format!("admission webhook \"{name}\" denied the request");
    let code = status["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(400);
    let message = match (status["message"].as_str(), status["reason"].as_str()) {
        (Some(m), _) if !m.is_empty() => format!("{by}: {m}"),
        (_, Some(r)) if !r.is_empty() => format!("{by}: {r}"),
        _ => format!("{by} without explanation"),
    };
    ApiError::Rejected { code, message }
}

/// Checks a webhook's answer as upstream's `VerifyAdmissionResponse` does.
fn read_answer(uid: &str, mutating: bool, review: &Value) -> Result<Answer, String> {
    let (api_version, kind) = (
        review["apiVersion"].as_str().unwrap_or(""),
        review["kind"].as_str().unwrap_or(""),
    );
    if api_version != "admission.k8s.io/v1" || kind != "AdmissionReview" {
        return Err(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {api_version}, Kind={kind}"
        ));
    }
    let Some(response) = review.get("response").filter(|r| r.is_object()) else {
        return Err("webhook response was absent".to_owned());
    };
    let got = response["uid"].as_str().unwrap_or("");
    if got != uid {
        return Err(format!("expected response.uid=\"{uid}\", got \"{got}\""));
    }
    let patch = match (response["patch"].as_str(), response["patchType"].as_str()) {
        (None | Some(""), _) => None,
        (Some(_), _) if !mutating => {
            return Err("validating webhooks may not return patches".to_owned());
        }
        (Some(_), None) => {
            return Err("webhook returned response.patch but not response.patchType".to_owned());
        }
        (Some(p), Some("JSONPatch")) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(p)
                .map_err(|e| format!("decoding the patch: {e}"))?;
            Some(serde_json::from_slice(&bytes).map_err(|e| format!("decoding the patch: {e}"))?)
        }
        (Some(_), Some(other)) => {
            return Err(format!(
                "webhook returned invalid response.patchType of \"{other}\""
            ));
        }
    };
    Ok(Answer {
        allowed: response["allowed"].as_bool().unwrap_or(false),
        status: response.get("status").cloned().unwrap_or(Value::Null),
        patch,
        warnings: response["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w.as_str().map(str::to_owned))
            .collect(),
    })
}

impl App {
    /// The configured webhooks of one kind, compiled again only when the configurations
    /// changed.
    async fn webhooks(&self, mutating: bool) -> Result<Arc<Vec<Webhook>>, ApiError> {
        let (kind, slot) = if mutating {
            ("MutatingWebhookConfiguration", &self.webhooks.mutating)
        } else {
            ("ValidatingWebhookConfiguration", &self.webhooks.validating)
        };
        let rt = self.resource("admissionregistration.k8s.io", kind)?;
        let compile = |objects: &[Value]| {
            Arc::new(if mutating {
                matching::mutating(objects)
            } else {
                matching::validating(objects)
            })
        };
        let Some(resource) = self.cache.ready_for(rt, Freshness::Any).await? else {
            let page = self
                .objects
                .list(rt, None, &crate::objects::ListParams::default(), &|_| true)
                .await?;
            return Ok(compile(&page.items));
        };
        let (from, cached) = {
            let state = resource.read();
            let from = (state.generation, state.last);
            if let Some(compiled) = slot.lock().unwrap_or_else(|p| p.into_inner()).as_ref()
                && compiled.from == from
            {
                return Ok(compiled.webhooks.clone());
            }
            (from, state.objects.values().cloned().collect::<Vec<_>>())
        };
        let objects = cached
            .iter()
            .map(|o| o.to_value(o.revision))
            .collect::<Result<Vec<_>, _>>()?;
        let webhooks = compile(&objects);
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(Compiled {
            from,
            webhooks: webhooks.clone(),
        });
        Ok(webhooks)
    }

    /// What `hook` is sent for this request, if it is for it: its rules (the version it
    /// matched, the object converted to it), namespace and object selectors, and match
    /// conditions.
    async fn is_for<'v>(
        &self,
        hook: &Webhook,
        attrs: &Attributes<'_>,
        object: Option<&'v Value>,
        old: Option<&'v Value>,
    ) -> Result<Option<Delivery<'v>>, Failure> {
        let call_failed = |reason: String| Failure::Call(reason);
        let target = attrs.target();
        let equivalents = equivalent_versions(attrs.rt);
        let sent_as = match hook.matched(&target, &equivalents) {
            None => return Ok(None),
            Some(Matched::AsRequested) => None,
            Some(Matched::Equivalent(version)) => {
                registry::all().by_path(attrs.rt.group, version, attrs.rt.plural)
            }
        };
        if hook.namespace_needed(&target) {
            let namespace = if target.group.is_empty() && target.resource == "namespaces" {
                object.or(old).cloned().unwrap_or(Value::Null)
            } else {
                let namespaces = self
                    .resource("", "Namespace")
                    .map_err(|e| call_failed(e.to_string()))?;
                self.lookup(namespaces, None, target.namespace)
                    .await
                    .map_err(|e| call_failed(e.to_string()))?
            };
            match hook.selects_namespace(&namespace) {
                Selected::Yes => {}
                Selected::No => return Ok(None),
                Selected::Error(e) => return Err(call_failed(e)),
            }
        }
        match hook.selects_object(object, old) {
            Selected::Yes => {}
            Selected::No => return Ok(None),
            Selected::Error(e) => return Err(call_failed(e)),
        }
        let mut delivery = Delivery {
            sent_as,
            object,
            old,
            converted: (None, None),
        };
        if let Some(to) = sent_as {
            // Upstream refuses with 500 when the object does not convert, whatever the
            // failure policy.
            let mut converted = [None, None];
            for (slot, value) in converted.iter_mut().zip([object, old]) {
                if let Some(value) = value {
                    let value = self
                        .in_version(attrs.rt, to, value)
                        .await
                        .map_err(|e| Failure::Refused(ApiError::Internal(e)))?;
                    *slot = Some(value);
                }
            }
            let [object, old] = converted;
            delivery.converted = (object, old);
        }
        let (object, old) = delivery.objects();
        if conditions::all_hold(&hook.match_conditions, attrs, object, old).map_err(call_failed)? {
            Ok(Some(delivery))
        } else {
            Ok(None)
        }
    }

    /// `object`, of `from`, as `to`: another served version of the same resource.
    async fn in_version(
        &self,
        from: &ResourceType,
        to: &ResourceType,
        object: &Value,
    ) -> Result<Value, String> {
        if let Some(custom) = &from.custom {
            let mut objects = [object.clone()];
            self.convert_custom(custom, &mut objects, &to.api_version(), None)
                .await?;
            let [object] = objects;
            return Ok(object);
        }
        // Built-in versions served from another's storage: admission sees the stored form.
        match (from.conversion, to.conversion) {
            (None, Some(c)) => (c.from_storage)(object.clone()).map_err(|e| e.to_string()),
            (Some(c), None) => (c.to_storage)(object.clone()).map_err(|e| e.to_string()),
            _ => Err(format!(
                "no conversion from {} to {}",
                from.api_version(),
                to.api_version()
            )),
        }
    }

    /// Where a webhook's client configuration points: its URL, or its Service's first ready
    /// endpoint (upstream's endpoint routing), verified as `<service>.<namespace>.svc`.
    pub(crate) async fn endpoint(
        &self,
        config: &k8s_openapi::api::admissionregistration::v1::WebhookClientConfig,
    ) -> Result<client::Endpoint, String> {
        if let Some(url) = &config.url {
            return client::Endpoint::from_url(url);
        }
        let Some(service) = &config.service else {
            return Err("webhook has neither a url nor a service".to_owned());
        };
        let port = service.port.unwrap_or(443);
        let (host, target_port) = self
            .service_endpoint(&service.namespace, &service.name, port)
            .await?;
        let path = service.path.clone().unwrap_or_else(|| "/".to_owned());
        Ok(client::Endpoint {
            host,
            port: target_port,
            server_name: format!("{}.{}.svc", service.name, service.namespace),
            path: if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            },
        })
    }

    /// A ready address and the target port behind port `port` of a Service, from its
    /// EndpointSlices (or, without any, its Endpoints).
    pub(crate) async fn service_endpoint(
        &self,
        namespace: &str,
        name: &str,
        port: i32,
    ) -> Result<(String, u16), String> {
        let not_found =
            || format!("service {namespace}/{name} has no ready endpoint for port {port}");
        let services = self.resource("", "Service").map_err(|e| e.to_string())?;
        let svc = self
            .lookup(services, Some(namespace), name)
            .await
            .map_err(|e| e.to_string())?;
        let svc_port = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["port"].as_i64() == Some(i64::from(port)))
            .ok_or_else(|| format!("service {namespace}/{name} has no port {port}"))?;
        let port_name = svc_port["name"].as_str().unwrap_or("");
        let slices = self
            .resource("discovery.k8s.io", "EndpointSlice")
            .map_err(|e| e.to_string())?;
        for slice in self
            .list_current(slices, Some(namespace))
            .await
            .map_err(|e| e.to_string())?
        {
            if slice["metadata"]["labels"]["kubernetes.io/service-name"].as_str() != Some(name) {
                continue;
            }
            let Some(target) = slice["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str().unwrap_or("") == port_name)
                .and_then(|p| p["port"].as_u64())
                .and_then(|p| u16::try_from(p).ok())
            else {
                continue;
            };
            let ready = slice["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["conditions"]["ready"].as_bool() != Some(false))
                .find_map(|e| e["addresses"][0].as_str());
            if let Some(address) = ready {
                return Ok((address.to_owned(), target));
            }
        }
        let endpoints = self.resource("", "Endpoints").map_err(|e| e.to_string())?;
        let Ok(endpoints) = self.lookup(endpoints, Some(namespace), name).await else {
            return Err(not_found());
        };
        for subset in endpoints["subsets"].as_array().into_iter().flatten() {
            let target = subset["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str().unwrap_or("") == port_name)
                .and_then(|p| p["port"].as_u64())
                .and_then(|p| u16::try_from(p).ok());
            if let (Some(target), Some(address)) = (target, subset["addresses"][0]["ip"].as_str()) {
                return Ok((address.to_owned(), target));
            }
        }
        Err(not_found())
    }

    /// Calls one webhook and checks its answer.
    async fn call(
        &self,
        hook: &Webhook,
        mutating: bool,
        attrs: &Attributes<'_>,
        delivery: &Delivery<'_>,
    ) -> Result<Answer, Failure> {
        if attrs.dry_run && !matches!(hook.side_effects.as_str(), "None" | "NoneOnDryRun") {
            return Err(Failure::Refused(ApiError::BadRequest(format!(
                "admission webhook \"{}\" does not support dry run",
                hook.name
            ))));
        }
        let endpoint = self.endpoint(&hook.client).await.map_err(Failure::Call)?;
        let (uid, review) = attrs.review(delivery);
        let ca_bundle = hook
            .client
            .ca_bundle
            .as_ref()
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        let answer = client::post(&endpoint, ca_bundle, &review, hook.timeout)
            .await
            .map_err(Failure::Call)?;
        read_answer(&uid, mutating, &answer).map_err(Failure::Call)
    }

    /// What a failed call means: nothing under failurePolicy Ignore, else upstream's 500
    /// `failed calling webhook "…": …`.
    fn call_failed(hook: &Webhook, reason: &str) -> Result<(), ApiError> {
        let message = format!("failed calling webhook \"{}\": {reason}", hook.name);
        if hook.ignore_failures {
            tracing::warn!(
                webhook = %hook.name,
                configuration = %hook.configuration,
                "{message} (failurePolicy Ignore)"
            );
            return Ok(());
        }
        Err(ApiError::Internal(message))
    }

    /// Runs one mutating webhook if it is for the request; whether it changed the object.
    async fn mutate_once(
        &self,
        hook: &Webhook,
        attrs: &Attributes<'_>,
        object: &mut Option<&mut Value>,
        old: Option<&Value>,
    ) -> Result<bool, ApiError> {
        let current = object.as_deref();
        let delivery = match self.is_for(hook, attrs, current, old).await {
            Ok(Some(delivery)) => delivery,
            Ok(None) => return Ok(false),
            Err(Failure::Refused(err)) => return Err(err),
            Err(Failure::Call(reason)) => return Self::call_failed(hook, &reason).map(|()| false),
        };
        let answer = match self.call(hook, true, attrs, &delivery).await {
            Ok(answer) => answer,
            Err(Failure::Refused(err)) => return Err(err),
            Err(Failure::Call(reason)) => return Self::call_failed(hook, &reason).map(|()| false),
        };
        for warning in answer.warnings {
            crate::warnings::warn(warning);
        }
        if !answer.allowed {
            return Err(denied(&hook.name, &answer.status));
        }
        let Some(patch) = answer.patch else {
            return Ok(false);
        };
        let (sent_as, sent) = (delivery.sent_as, delivery.objects().0.cloned());
        drop(delivery);
        let (Some(sent), Some(object)) = (sent, object.as_deref_mut()) else {
            return Ok(false);
        };
        let patched = rkube_api::patch::json_patch(&sent, &patch).map_err(|e| {
            ApiError::Internal(format!(
                "failed calling webhook \"{}\": applying its patch: {e}",
                hook.name
            ))
        })?;
        if patched == sent {
            return Ok(false);
        }
        // What the webhook patched in its version goes back to the request's.
        let patched = match sent_as {
            Some(sent_as) => self
                .in_version(sent_as, attrs.rt, &patched)
                .await
                .map_err(ApiError::Internal)?,
            None => patched,
        };
        *object = patched;
        Ok(true)
    }

    /// Mutating admission by webhooks. Those with reinvocationPolicy IfNeeded run once more
    /// if a later webhook changed the object after they ran. Returns whether the object
    /// changed. `object` is `None` for a delete, whose webhooks are called but patch nothing.
    pub(crate) async fn mutate_by_webhooks(
        &self,
        attrs: &Attributes<'_>,
        mut object: Option<&mut Value>,
        old: Option<&Value>,
    ) -> Result<bool, ApiError> {
        if matching::exempt(attrs.rt.group, attrs.rt.plural) {
            return Ok(false);
        }
        let hooks = self.webhooks(true).await?;
        if hooks.is_empty() {
            return Ok(false);
        }
        // How many changes the object had seen when each webhook last ran.
        let mut changes = 0usize;
        let mut seen: Vec<Option<usize>> = vec![None; hooks.len()];
        for (i, hook) in hooks.iter().enumerate() {
            if self.mutate_once(hook, attrs, &mut object, old).await? {
                changes += 1;
            }
            seen[i] = Some(changes);
        }
        for (i, hook) in hooks.iter().enumerate() {
            if hook.reinvoke
                && seen[i].is_some_and(|at| at < changes)
                && self.mutate_once(hook, attrs, &mut object, old).await?
            {
                changes += 1;
            }
        }
        Ok(changes > 0)
    }

    /// Validating admission by webhooks: every webhook for the request is called at once;
    /// the first refusal (in configuration order) refuses the request.
    pub(crate) async fn validate_by_webhooks(
        &self,
        attrs: &Attributes<'_>,
        object: Option<&Value>,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        if matching::exempt(attrs.rt.group, attrs.rt.plural) {
            return check_configuration(attrs, object);
        }
        let hooks = self.webhooks(false).await?;
        if hooks.is_empty() {
            return Ok(());
        }
        let calls = hooks.iter().map(|hook| async move {
            let delivery = match self.is_for(hook, attrs, object, old).await {
                Ok(Some(delivery)) => delivery,
                Ok(None) => return Ok(()),
                Err(Failure::Refused(err)) => return Err(err),
                Err(Failure::Call(reason)) => return Self::call_failed(hook, &reason),
            };
            let answer = match self.call(hook, false, attrs, &delivery).await {
                Ok(answer) => answer,
                Err(Failure::Refused(err)) => return Err(err),
                Err(Failure::Call(reason)) => return Self::call_failed(hook, &reason),
            };
            for warning in answer.warnings {
                crate::warnings::warn(warning);
            }
            if answer.allowed {
                Ok(())
            } else {
                Err(denied(&hook.name, &answer.status))
            }
        });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, ApiError>>()
            .map(|_| ())
    }
}

/// The other served versions of `rt`'s resource, preferred first: the equivalents a webhook
/// under matchPolicy Equivalent may have asked for.
fn equivalent_versions(rt: &ResourceType) -> Vec<&'static str> {
    let registry = registry::all();
    registry
        .versions_of(rt.group)
        .into_iter()
        .filter(|v| *v != rt.version && registry.by_path(rt.group, v, rt.plural).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_webhook_and_keeps_its_code() {
        let err = denied("deny.example.com", &json!({"code": 403, "message": "no"}));
        assert_eq!(
            err.to_string(),
            "admission webhook \"deny.example.com\" denied the request: no"
        );
        assert!(matches!(err, ApiError::Rejected { code: 403, .. }));
        let bare = denied("d.example.com", &Value::Null);
        assert_eq!(
            bare.to_string(),
            "admission webhook \"d.example.com\" denied the request without explanation"
        );
        assert!(matches!(bare, ApiError::Rejected { code: 400, .. }));
    }

    #[test]
    fn answers_are_checked_as_upstream_does() {
        let review = |response: Value| json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response});
        assert!(read_answer("u", false, &review(json!({"uid": "u", "allowed": true}))).is_ok());
        let wrong = read_answer("u", false, &review(json!({"uid": "x", "allowed": true})));
        assert_eq!(
            wrong.err().unwrap(),
            "expected response.uid=\"u\", got \"x\""
        );
        let patch = base64::engine::general_purpose::STANDARD.encode("[]");
        let patched =
            json!({"uid": "u", "allowed": true, "patch": patch, "patchType": "JSONPatch"});
        assert_eq!(
            read_answer("u", false, &review(patched.clone()))
                .err()
                .unwrap(),
            "validating webhooks may not return patches"
        );
        assert_eq!(
            read_answer("u", true, &review(patched)).ok().unwrap().patch,
            Some(json!([]))
        );
        assert_eq!(
            read_answer("u", true, &json!({})).err().unwrap(),
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got , Kind="
        );
    }
}
