//! The REST verbs on stored resources, with upstream's rules for metadata, status,
//! resource versions, preconditions and finalizers.

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde_json::{Map, Value, json};

use http::{HeaderValue, Response, header};

use crate::admission::{Attributes, Operation};
use crate::app::App;
use crate::cache::{CachedList, Freshness, list_json};
use crate::decode::{FieldValidation, Incoming, normalize, normalize_yaml, report_unknown};
use crate::encode::{Accept, Body, full};
use crate::objects::{self, ListParams, MODIFIED, meta_str};
use crate::request::{Query, RequestInfo};

/// Kinds whose strategy sets and bumps `metadata.generation`.
const GENERATION_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Ingress",
    "NetworkPolicy",
    "ValidatingAdmissionPolicy",
    "CustomResourceDefinition",
];

/// The current time as Kubernetes writes timestamps (seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Checks that the body's apiVersion and kind agree with the URL, filling them if absent.
pub(crate) fn check_type(object: &mut Value, rt: &ResourceType) -> Result<(), ApiError> {
    let want_version = rt.api_version();
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    match object.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != want_version => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({v}) does not match the expected API version ({want_version})"
            )));
        }
        _ => object["apiVersion"] = json!(want_version),
    }
    match object.get("kind").and_then(Value::as_str) {
        Some(k) if k != rt.kind => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        _ => object["kind"] = json!(rt.kind),
    }
    Ok(())
}

/// Sets the namespace from the URL, refusing a body that names another.
fn check_namespace(
    object: &mut Value,
    rt: &ResourceType,
    ns: Option<&str>,
) -> Result<(), ApiError> {
    let meta = metadata_mut(object)?;
    if !rt.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let ns =
        ns.ok_or_else(|| ApiError::bad_request("a namespace is required for this resource"))?;
    match meta.get("namespace").and_then(Value::as_str) {
        Some(body_ns) if !body_ns.is_empty() && body_ns != ns => Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        )),
        _ => {
            meta.insert("namespace".into(), json!(ns));
            Ok(())
        }
    }
}

/// Upstream's random suffix alphabet for generateName (no vowels, no confusable characters).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

pub(crate) fn generate_name(base: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let base: String = base.chars().take(58).collect();
    let suffix: String = (0..5)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// A created object: its JSON as stored (with its resource version), the object itself when
/// the caller asked to keep it, or only the object for a dry run.
pub enum Created {
    Stored {
        json: Vec<u8>,
        object: Option<Value>,
    },
    DryRun(Value),
}

impl Created {
    /// The created object.
    pub(crate) fn into_value(self) -> Result<Value, ApiError> {
        match self {
            Created::Stored {
                object: Some(object),
                ..
            }
            | Created::DryRun(object) => Ok(object),
            Created::Stored { json, object: None } => serde_json::from_slice(&json)
                .map_err(|e| ApiError::Internal(format!("decoding the created object: {e}"))),
        }
    }

    /// The 201 response: the stored JSON as it is for JSON clients, else the object encoded.
    pub(crate) fn response(self, accept: Accept) -> Response<Body> {
        let object = match self {
            Created::Stored { json, .. } if accept == Accept::Json => {
                return crate::encode::json_bytes_response(201, json);
            }
            Created::Stored {
                object: Some(object),
                ..
            }
            | Created::DryRun(object) => object,
            Created::Stored { json, object: None } => match serde_json::from_slice(&json) {
                Ok(object) => object,
                Err(e) => {
                    return crate::encode::error_response(&ApiError::Internal(format!(
                        "decoding the created object: {e}"
                    )));
                }
            },
        };
        crate::encode::object_response(accept, 201, &object)
    }
}

/// System fields and initial status on create.
/// What the create strategy sets that no writer owns.
fn finish_create(rt: &ResourceType, object: &mut Value) {
    if rt.group.is_empty() && rt.kind == "Namespace" {
        object["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    if rt.group.is_empty() && rt.kind == "Pod" {
        crate::pod_strategy::finish_create(object, now_rfc3339);
    }
}

/// A random (version 4) UUID for a new object, from the thread's cryptographically secure
/// generator rather than a system call per object.
fn new_uid() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// Whether the kind's strategy keeps `metadata.generation` (every custom resource does).
fn sets_generation(rt: &ResourceType) -> bool {
    rt.custom.is_some() || GENERATION_KINDS.contains(&rt.kind)
}

/// Whether an update changed what moves `metadata.generation`: the spec, or for a custom
/// resource everything but metadata (and status, when that is a subresource).
fn generation_moves(rt: &ResourceType, new: &Value, old: &Value) -> bool {
    if rt.custom.is_none() {
        return new.get("spec") != old.get("spec");
    }
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            if rt.has_subresource("status") {
                o.remove("status");
            }
        }
        v
    };
    strip(new) != strip(old)
}

fn prepare_for_create(rt: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
    let generation = sets_generation(rt);
    {
        let meta = metadata_mut(object)?;
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "resourceVersion",
            "generation",
        ] {
            meta.remove(field);
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if generation {
            meta.insert("generation".into(), json!(1));
        }
    }
    match (rt.group, rt.kind) {
        ("", "Pod") => {
            let qos = rkube_api::defaults::qos_class(&object["spec"]);
            object["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        // Its spec's finalizer is set after the writer's fields are recorded
        // (`finish_create`), as upstream's strategy sets it after its field manager.
        ("", "Namespace") => object["status"] = json!({"phase": "Active"}),
        ("", "PersistentVolumeClaim") | ("", "PersistentVolume") => {
            object["status"] = json!({"phase": "Pending"});
        }
        ("", "Service") => object["status"] = json!({"loadBalancer": {}}),
        ("", "Node") => {}
        _ if rt.has_subresource("status") => {
            if let Some(o) = object.as_object_mut() {
                o.remove("status");
            }
        }
        _ => {}
    }
    Ok(())
}

/// Upstream's update rules: system fields come from the stored object; the main resource
/// cannot change status and the status subresource cannot change anything else; generation
/// moves when the spec does.
fn prepare_for_update(
    rt: &ResourceType,
    subresource: Option<&str>,
    new: Value,
    old: &Value,
) -> Result<Value, ApiError> {
    let mut result = if subresource == Some("approval") {
        // A CSR's approval changes its conditions and metadata; spec and the rest of the
        // status (an issued certificate) stay (upstream's csrApprovalStrategy).
        let conditions = new["status"]["conditions"].clone();
        let mut merged = crate::status_strategy::keep_spec(new, old);
        merged["status"] = old.get("status").cloned().unwrap_or_else(|| json!({}));
        if !conditions.is_null() {
            merged["status"]["conditions"] = conditions;
        } else if let Some(status) = merged["status"].as_object_mut() {
            status.remove("conditions");
        }
        merged
    } else if subresource == Some("ephemeralcontainers") {
        // Only ephemeral containers change, and only by being added (upstream's
        // ValidatePodEphemeralContainersUpdate).
        let added = new["spec"]["ephemeralContainers"].clone();
        for existing in old["spec"]["ephemeralContainers"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = existing["name"].as_str().unwrap_or_default();
            let kept = added
                .as_array()
                .and_then(|l| l.iter().find(|c| c["name"].as_str() == Some(name)));
            if kept != Some(existing) {
                return Err(ApiError::Invalid {
                    kind: "Pod".into(),
                    name: old["metadata"]["name"].as_str().unwrap_or_default().into(),
                    causes: vec![rkube_api::FieldError::forbidden(
                        "spec.ephemeralContainers",
                        &format!("existing ephemeral containers \"{name}\" may not be changed"),
                    )],
                });
            }
        }
        let mut merged = old.clone();
        merged["spec"]["ephemeralContainers"] = added;
        merged
    } else if subresource == Some("resize") {
        crate::pod_strategy::resize_update(new, old)
    } else if subresource == Some("status") {
        crate::status_strategy::status_update(rt, new, old)
    } else {
        let mut updated = new;
        // A pod's ephemeral containers change only through pods/ephemeralcontainers.
        if rt.kind == "Pod" && rt.group.is_empty() {
            match old["spec"].get("ephemeralContainers") {
                Some(list) => updated["spec"]["ephemeralContainers"] = list.clone(),
                None => {
                    if let Some(spec) = updated.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove("ephemeralContainers");
                    }
                }
            }
        }
        if rt.has_subresource("status") && rt.kind != "Node" {
            match old.get("status") {
                Some(status) => updated["status"] = status.clone(),
                None => {
                    if let Some(o) = updated.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        updated
    };
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let spec_changed = generation_moves(rt, &result, old);
    let meta = metadata_mut(&mut result)?;
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    if sets_generation(rt) && spec_changed && subresource.is_none() {
        let generation = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        meta.insert("generation".into(), json!(generation));
    }
    Ok(result)
}

/// The old object an update is validated against. A resize may change what a pod's own
/// update may not (its containers' resources), so it is validated against the stored pod
/// with the requested resources: the rest of the pod is unchanged, and the new resources
/// still go through the pod's own checks.
pub(crate) fn validation_base<'a>(
    subresource: Option<&str>,
    new: &Value,
    current: &'a Value,
) -> std::borrow::Cow<'a, Value> {
    if subresource == Some("resize") {
        std::borrow::Cow::Owned(crate::pod_strategy::resize_update(new.clone(), current))
    } else {
        std::borrow::Cow::Borrowed(current)
    }
}

/// Records a write in `metadata.managedFields` (operation Update) for `manager`.
pub(crate) fn track_update(
    rt: &ResourceType,
    subresource: Option<&str>,
    manager: &str,
    old: Option<&Value>,
    new: Value,
) -> Result<Value, ApiError> {
    let now = now_rfc3339();
    let write = rkube_api::apply::Write::new(rt.group, rt.version, rt.kind, manager, &now)
        .to_subresource(subresource.unwrap_or(""));
    match old {
        Some(old) => rkube_api::apply::track_update(&write, Some(old), &new)
            .map_err(|e| apply_error(rt, new["metadata"]["name"].as_str().unwrap_or(""), e)),
        None => {
            let name = new["metadata"]["name"].as_str().unwrap_or("").to_owned();
            rkube_api::apply::track_create(&write, new).map_err(|e| apply_error(rt, &name, e))
        }
    }
}

/// Maps an apply failure to the API error (409 conflicts keep their field causes).
pub(crate) fn apply_error(
    rt: &ResourceType,
    name: &str,
    err: rkube_api::apply::ApplyError,
) -> ApiError {
    use rkube_api::apply::ApplyError;
    match &err {
        ApplyError::Conflicts { message, .. } => ApiError::FieldManagerConflict {
            message: message.clone(),
            causes: err.causes(),
        },
        ApplyError::BadRequest(message) => ApiError::BadRequest(message.clone()),
        ApplyError::Internal(_) => err.to_api_error(&rt.qualified_plural(), name),
    }
}

/// Whether two objects differ other than in their resource version.
pub(crate) fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

pub(crate) fn dry_run(query: &Query) -> Result<bool, ApiError> {
    match query.get("dryRun") {
        None => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "unsupported dryRun value {other:?}; only \"All\" is supported"
        ))),
    }
}

impl App {
    pub(crate) fn namespace_of<'a>(
        &self,
        rt: &ResourceType,
        info: &'a RequestInfo,
    ) -> Option<&'a str> {
        info.namespace.as_deref().filter(|_| rt.namespaced)
    }

    /// What the watch cache holds of one object right now, without waiting for it to catch
    /// up: a suggestion that a compare-and-swap write or a store read must confirm.
    pub(crate) async fn cached_object(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        self.cached(rt, ns, name, false).await
    }

    /// The watch cache's copy of one object, as it keeps it.
    pub(crate) async fn cached_entry(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Option<std::sync::Arc<crate::cache::CachedObject>> {
        let resource = self.cache.ready_for(rt, Freshness::Any).await.ok()??;
        self.cache.get(resource, ns, name).0
    }

    async fn cached(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        trimmed: bool,
    ) -> Option<Value> {
        let object = self.cached_entry(rt, ns, name).await?;
        if trimmed {
            object.to_trimmed_value(object.revision).ok()
        } else {
            object.to_value(object.revision).ok()
        }
    }

    /// Every object of `rt` (in `ns`), from the watch cache when it has loaded (as
    /// upstream's admission plugins read their informers), else from the store.
    pub(crate) async fn list_current(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        if let Some(resource) = self.cache.ready_for(rt, Freshness::Any).await? {
            let request = CachedList {
                namespace: ns,
                start: None,
                at: None,
                limit: None,
            };
            if let Some(page) = self.cache.list(resource, &request, &|_| true) {
                return page
                    .items
                    .iter()
                    .map(|object| object.to_value(object.revision))
                    .collect();
            }
        }
        let page = self
            .objects
            .list(rt, ns, &ListParams::default(), &|_| true)
            .await?;
        Ok(page.items)
    }

    /// The object to base an update on: on the first attempt the watch cache's copy when it
    /// has one (the write's resource-version precondition catches a stale copy, as upstream's
    /// cached GuaranteedUpdate does), otherwise the store's. The flag tells which it is.
    pub(crate) async fn current_for_update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        first_attempt: bool,
    ) -> Result<(Value, bool), ApiError> {
        if first_attempt && let Some(cached) = self.cached_object(rt, ns, name).await {
            return Ok((cached, true));
        }
        Ok((self.objects.get(rt, ns, name).await?, false))
    }

    /// One object for admission: the cache's copy (without `metadata.managedFields`), or the
    /// store's when the cache does not know it (yet), as upstream's plugins fall back to a
    /// live lookup.
    pub(crate) async fn lookup(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        match self.cached(rt, ns, name, true).await {
            Some(object) => Ok(object),
            None => self.objects.get(rt, ns, name).await,
        }
    }

    /// Refuses writes into a namespace that does not exist or is being deleted (upstream's
    /// lifecycle admission).
    /// POST: create an object.
    pub(crate) async fn create(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        object: impl Into<Incoming>,
    ) -> Result<Created, ApiError> {
        self.create_encoded(rt, info, query, object.into(), true, false)
            .await
    }

    /// Creates an object; `track` records the write in managedFields (server-side apply has
    /// recorded its own entry already).
    pub(crate) async fn create_object(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        object: Value,
        track: bool,
    ) -> Result<(u16, Value), ApiError> {
        match self
            .create_encoded(rt, info, query, object.into(), track, true)
            .await?
        {
            Created::Stored {
                object: Some(object),
                ..
            }
            | Created::DryRun(object) => Ok((201, object)),
            Created::Stored { object: None, .. } => Err(ApiError::Internal(
                "the created object was not kept".to_owned(),
            )),
        }
    }

    /// As [`App::create_object`], keeping the created object's JSON too; the object itself
    /// is kept only if `keep` (otherwise it is freed before the store is awaited, on the
    /// thread that built it).
    async fn create_encoded(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        object: Incoming,
        track: bool,
        keep: bool,
    ) -> Result<Created, ApiError> {
        let ns = self.namespace_of(rt, info);
        let validation = FieldValidation::from_query(query)?;
        let mut object = match object {
            Incoming::Parsed(mut object) => {
                check_type(&mut object, rt)?;
                check_namespace(&mut object, rt, ns)?;
                normalize(rt, object, validation)?
            }
            Incoming::Yaml(mut object, duplicates) => {
                check_type(&mut object, rt)?;
                check_namespace(&mut object, rt, ns)?;
                normalize_yaml(rt, object, duplicates, validation)?
            }
            // Its type and kind were checked by decoding it.
            Incoming::Known(mut object, unknown) => {
                check_namespace(&mut object, rt, ns)?;
                report_unknown(rt, unknown, validation)?;
                object
            }
        };
        // Mutating admission names the object as the client did: upstream generates the name
        // after it, so its refusals name a generated object by its `generateName`.
        let (name, admitted_as) = match meta_str(&object, "name").filter(|n| !n.is_empty()) {
            Some(name) => (name.to_owned(), name.to_owned()),
            None => match meta_str(&object, "generateName").filter(|n| !n.is_empty()) {
                Some(base) => {
                    let base = base.to_owned();
                    let name = generate_name(&base);
                    metadata_mut(&mut object)?.insert("name".into(), json!(name));
                    (name, base)
                }
                None => {
                    return Err(ApiError::Invalid {
                        kind: rt.qualified_kind(),
                        name: String::new(),
                        causes: vec![rkube_api::FieldError::required(
                            "metadata.name",
                            "name or generateName is required",
                        )],
                    });
                }
            },
        };
        prepare_for_create(rt, &mut object)?;
        let mut object = if track {
            // As upstream: the scheme's defaults are part of what the writer sent; what
            // admission adds later is nobody's.
            rkube_api::defaults::scheme_defaults(rt.group, rt.kind, &mut object);
            track_update(rt, None, &info.field_manager, None, object)?
        } else {
            object
        };
        finish_create(rt, &mut object);
        if self.terminating_definition(rt) {
            return Err(ApiError::MethodNotAllowed(
                "create not allowed while custom resource definition is terminating".into(),
            ));
        }
        let dry = dry_run(query)?;
        let admission = crate::admission::Request {
            attrs: Attributes {
                rt,
                subresource: None,
                namespace: ns,
                // As upstream, a name yet to be generated is empty in admission.
                name: if name == admitted_as { &name } else { "" },
                operation: Operation::Create,
                dry_run: dry,
            },
            admitted_as: &admitted_as,
            old: None,
            scheme_defaulted: track,
            validated: false,
        };
        self.admit(&admission, Some(&mut object)).await?;
        if dry {
            // Upstream's dry run fills in addresses and ports that are free, claiming none.
            self.allocate(rt, &mut object, true).await?;
            return Ok(Created::DryRun(object));
        }
        let mut object = self.to_storage_version(rt, object).await?;
        self.allocate(rt, &mut object, false).await?;
        // A generated name that is taken is generated again, as upstream's
        // RetryGenerateName does (up to eight attempts in all).
        let generated = name != admitted_as;
        let mut name = name;
        let mut attempts = 1;
        loop {
            let bytes = crate::objects::encode(&object)?;
            match self.objects.create(rt, ns, &name, bytes).await {
                Ok((json, rev)) => {
                    let object = keep.then(|| {
                        crate::objects::set_resource_version(&mut object, rev);
                        object
                    });
                    return Ok(Created::Stored { json, object });
                }
                Err(ApiError::AlreadyExists { .. }) if generated && attempts < 8 => {
                    attempts += 1;
                    name = generate_name(&admitted_as);
                    metadata_mut(&mut object)?.insert("name".into(), json!(name));
                }
                Err(err) => {
                    // What a failed write must release (a Service's addresses and ports) is
                    // read from the object.
                    self.release(rt, &object).await;
                    return Err(err);
                }
            }
        }
    }

    /// GET one object from the store.
    pub async fn get(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.objects
            .get(rt, self.namespace_of(rt, info), name)
            .await
    }

    /// GET one object for a client: from the watch cache when it is loaded, honouring the
    /// request's `resourceVersion` (none: consistent; `0`: any; `N`: not older than N).
    pub(crate) async fn get_for_client(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        name: &str,
    ) -> Result<Value, ApiError> {
        let freshness = read_freshness(query.get("resourceVersion"))?;
        let ns = self.namespace_of(rt, info);
        if let Some(resource) = self.cache.ready_for(rt, freshness).await? {
            return match self.cache.get(resource, ns, name).0 {
                Some(object) => object.to_value(object.revision),
                None => Err(ApiError::NotFound {
                    group: rt.group.into(),
                    resource: rt.qualified_plural(),
                    name: name.into(),
                }),
            };
        }
        self.get(rt, info, name).await
    }

    /// GET a collection for a client: from the watch cache under upstream's rules (a list
    /// without a resourceVersion is consistent, `0` takes what the cache has, `N` waits for
    /// the cache to reach N; Exact reads and continue tokens whose revision the cache can no
    /// longer serve go to the store), in the negotiated format.
    pub(crate) async fn list_response(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        accept: Accept,
    ) -> Result<Response<Body>, ApiError> {
        if let Some(response) = self.list_from_cache(rt, info, query, accept).await? {
            return Ok(response);
        }
        Ok(crate::tables::respond(
            accept,
            rt,
            self.list(rt, info, query).await?,
            query,
        ))
    }

    /// A page of the watch cache for a list request, when the cache can serve it: the page,
    /// its continue token and the count of what is left.
    async fn cached_page(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
    ) -> Result<Option<(crate::cache::CachedPage, Option<String>, Option<i64>)>, ApiError> {
        let exact = list_revision(query)?;
        let limit = parse_limit(query)?;
        let rv = query.get("resourceVersion").filter(|rv| !rv.is_empty());
        let legacy_exact = query.get("resourceVersionMatch").is_none()
            && limit.is_some_and(|l| l > 0)
            && rv.is_some_and(|rv| rv != "0");
        if exact.is_some() || legacy_exact {
            return Ok(None);
        }
        let (freshness, at, start) = match query.get("continue") {
            Some(token) => {
                let (at, start) = objects::decode_continue(token)?;
                (Freshness::Any, Some(at), Some(start))
            }
            None => (read_freshness(rv)?, None, None),
        };
        let Some(resource) = self.cache.ready_for(rt, freshness).await? else {
            return Ok(None);
        };
        let filter = self.filter(rt, query)?;
        let request = CachedList {
            namespace: self.namespace_of(rt, info),
            start: start.as_deref(),
            at,
            limit,
        };
        let Some(page) = self
            .cache
            .list(resource, &request, &|o| filter.matches_cached(o))
        else {
            return Ok(None);
        };
        let token = page
            .continue_start
            .as_deref()
            .map(|start| objects::encode_continue(page.revision, start));
        // Like upstream, the count is only given without a filter.
        let remaining =
            (token.is_some() && filter.is_empty() && page.remaining > 0).then_some(page.remaining);
        Ok(Some((page, token, remaining)))
    }

    async fn list_from_cache(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        accept: Accept,
    ) -> Result<Option<Response<Body>>, ApiError> {
        let Some((page, token, remaining)) = self.cached_page(rt, info, query).await? else {
            return Ok(None);
        };
        if accept == Accept::Json {
            let body = list_json(
                rt.list_kind,
                &rt.api_version(),
                &page,
                token.as_deref(),
                remaining,
            )?;
            let mut response = Response::new(full(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(Some(response));
        }
        let list = page_value(rt, &page, token, remaining)?;
        Ok(Some(crate::tables::respond(accept, rt, list, query)))
    }

    /// GET a collection as a value: from the watch cache under the rules
    /// [`App::list_response`] follows, else from the store.
    pub(crate) async fn list_value(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
    ) -> Result<Value, ApiError> {
        match self.cached_page(rt, info, query).await? {
            Some((page, token, remaining)) => page_value(rt, &page, token, remaining),
            None => self.list(rt, info, query).await,
        }
    }

    /// GET a collection.
    pub async fn list(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
    ) -> Result<Value, ApiError> {
        let ns = self.namespace_of(rt, info);
        let filter = self.filter(rt, query)?;
        let params = ListParams {
            limit: parse_limit(query)?,
            continue_token: query.get("continue").map(str::to_owned),
            exact_revision: list_revision(query)?,
        };
        let page = self
            .objects
            .list(rt, ns, &params, &|o| filter.matches(o))
            .await?;
        let mut meta = json!({"resourceVersion": page.revision.to_string()});
        if let Some(token) = page.continue_token {
            meta["continue"] = json!(token);
        }
        if let Some(remaining) = page.remaining.filter(|r| *r > 0 && filter.is_empty()) {
            meta["remainingItemCount"] = json!(remaining);
        }
        let items: Vec<Value> = page
            .items
            .into_iter()
            .map(|mut item| {
                strip_item_type(rt, &mut item);
                item
            })
            .collect();
        Ok(
            json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": meta, "items": items}),
        )
    }

    /// PUT: replace an object (or its status).
    pub(crate) async fn update(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        name: &str,
        mut object: Incoming,
    ) -> Result<(u16, Value), ApiError> {
        if !matches!(object, Incoming::Known(..)) {
            // A body decoded into the type had its type and kind checked then.
            check_type(object.object_mut(), rt)?;
        }
        let ns = self.namespace_of(rt, info);
        check_namespace(object.object_mut(), rt, ns)?;
        match meta_str(object.object_mut(), "name") {
            Some(body_name) if body_name != name => {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
            Some(_) => {}
            None => {
                metadata_mut(object.object_mut())?.insert("name".into(), json!(name));
            }
        }
        let validation = FieldValidation::from_query(query)?;
        let object = match object {
            Incoming::Parsed(object) => normalize(rt, object, validation)?,
            Incoming::Yaml(object, duplicates) => {
                normalize_yaml(rt, object, duplicates, validation)?
            }
            Incoming::Known(object, findings) => {
                report_unknown(rt, findings, validation)?;
                object
            }
        };
        let wanted_rv = objects::resource_version(&object);
        let dry = dry_run(query)?;
        self.guaranteed_update(
            rt,
            ns,
            name,
            info.subresource.as_deref(),
            dry,
            wanted_rv,
            validation,
            Some(&info.field_manager),
            |_| Ok(object.clone()),
        )
        .await
    }

    /// Reads, transforms and writes an object, retrying on conflicts when the caller did not
    /// pin a resource version.
    #[allow(clippy::too_many_arguments)]
    pub async fn guaranteed_update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        dry: bool,
        wanted_rv: Option<i64>,
        validation: FieldValidation,
        manager: Option<&str>,
        transform: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<(u16, Value), ApiError> {
        let mut first = true;
        for _ in 0..16 {
            let (current, cached) = self.current_for_update(rt, ns, name, first).await?;
            first = false;
            // A custom resource is changed in the version the request names.
            let current = self.stored_in_request_version(rt, current).await?;
            let current_rv = objects::resource_version(&current).unwrap_or(0);
            if let Some(wanted) = wanted_rv
                && wanted != current_rv
            {
                if cached {
                    continue;
                }
                return Err(crate::objects::conflict(rt, name, MODIFIED));
            }
            let prepared = (|| {
                let mut new = transform(&current)?;
                check_type(&mut new, rt)?;
                let mut new = normalize(rt, new, validation)?;
                if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                    // The round trip may drop an explicit resource version; keep the caller's.
                    if let Some(rv) = current["metadata"].get("resourceVersion") {
                        meta.entry("resourceVersion").or_insert(rv.clone());
                    }
                }
                let mut new = prepare_for_update(rt, subresource, new, &current)?;
                if subresource.is_none() && crate::alloc::is_service(rt) {
                    crate::service_strategy::prepare_for_update(&mut new, &current);
                }
                if let Some(manager) = manager {
                    rkube_api::defaults::scheme_defaults(rt.group, rt.kind, &mut new);
                    new = track_update(rt, subresource, manager, Some(&current), new)?;
                }
                let base = validation_base(subresource, &new, &current);
                self.admit_by_strategy(rt, &mut new, Some(&base), manager.is_some())?;
                Ok::<_, ApiError>(new)
            })();
            let mut new = match prepared {
                Ok(new) => new,
                // Refusals are decided on the store's copy, never on a cached one.
                Err(_) if cached => continue,
                Err(err) => return Err(err),
            };
            let admission = crate::admission::Request {
                attrs: Attributes {
                    rt,
                    subresource,
                    namespace: ns,
                    name,
                    operation: Operation::Update,
                    dry_run: dry,
                },
                admitted_as: name,
                old: Some(&current),
                scheme_defaulted: manager.is_some(),
                validated: true,
            };
            self.admit(&admission, Some(&mut new)).await?;
            if same_object(&new, &current) || dry {
                if cached {
                    // A no-op against a copy that may be stale proves nothing: ask the store.
                    continue;
                }
                if dry {
                    // What the update would get, claiming nothing.
                    self.allocate_update(rt, &mut new, &current, true).await?;
                    return Ok((200, new));
                }
                return Ok((200, current));
            }
            let claims = match self.allocate_update(rt, &mut new, &current, false).await {
                Ok(claims) => claims,
                Err(_) if cached => continue,
                Err(err) => return Err(err),
            };
            let new = match self.to_storage_version(rt, new).await {
                Ok(new) => new,
                Err(err) => {
                    self.abandon_update(claims).await;
                    return Err(err);
                }
            };
            match self.objects.update(rt, ns, name, new, current_rv).await {
                Ok(updated) => {
                    self.finish_update(claims).await;
                    self.finish_if_finalized(rt, ns, name, &updated).await?;
                    return Ok((200, updated));
                }
                Err(ApiError::Conflict { .. }) if wanted_rv.is_none() => {
                    self.abandon_update(claims).await;
                    continue;
                }
                Err(err) => {
                    self.abandon_update(claims).await;
                    return Err(err);
                }
            }
        }
        Err(crate::objects::conflict(
            rt,
            name,
            "too many concurrent updates; please retry",
        ))
    }

    /// An object marked for deletion whose last finalizer was just removed is deleted.
    pub(crate) async fn finish_if_finalized(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        object: &Value,
    ) -> Result<(), ApiError> {
        let marked = object["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        let spec_finalizers = rt.kind == "Namespace"
            && object["spec"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
        if marked && !finalizers && !spec_finalizers {
            match self
                .objects
                .delete(rt, ns, name, objects::resource_version(object))
                .await
            {
                Ok(deleted) => self.release(rt, &deleted).await,
                Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}

/// Upstream's list items of built-in kinds carry no type meta; custom resources keep theirs
/// (each item says the version it is in).
fn strip_item_type(rt: &ResourceType, item: &mut Value) {
    if rt.custom.is_none()
        && let Some(o) = item.as_object_mut()
    {
        o.remove("apiVersion");
        o.remove("kind");
    }
}

/// A page of the watch cache as a list value.
fn page_value(
    rt: &ResourceType,
    page: &crate::cache::CachedPage,
    token: Option<String>,
    remaining: Option<i64>,
) -> Result<Value, ApiError> {
    let mut meta = json!({"resourceVersion": page.revision.to_string()});
    if let Some(token) = token {
        meta["continue"] = json!(token);
    }
    if let Some(remaining) = remaining {
        meta["remainingItemCount"] = json!(remaining);
    }
    let items = page
        .items
        .iter()
        .map(|object| {
            let mut item = object.to_value(object.revision)?;
            strip_item_type(rt, &mut item);
            Ok(item)
        })
        .collect::<Result<Vec<Value>, ApiError>>()?;
    Ok(
        json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": meta, "items": items}),
    )
}

fn parse_limit(query: &Query) -> Result<Option<usize>, ApiError> {
    match query.get("limit") {
        Some(l) => l
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid limit {l:?}"))),
        None => Ok(None),
    }
}

/// What a read's `resourceVersion` asks of the cache.
pub(crate) fn read_freshness(rv: Option<&str>) -> Result<Freshness, ApiError> {
    match rv.filter(|rv| !rv.is_empty()) {
        None => Ok(Freshness::Consistent),
        Some("0") => Ok(Freshness::Any),
        Some(rv) => rv
            .parse::<i64>()
            .ok()
            .filter(|r| *r > 0)
            .map(Freshness::NotOlderThan)
            .ok_or_else(|| ApiError::BadRequest(format!("invalid resourceVersion {rv:?}"))),
    }
}

/// `resourceVersion` + `resourceVersionMatch` of a list: only `Exact` reads the past; every
/// other form is served at the latest revision, which satisfies "not older than".
fn list_revision(query: &Query) -> Result<Option<i64>, ApiError> {
    let rv = query.get("resourceVersion");
    match (query.get("resourceVersionMatch"), rv) {
        (Some("Exact"), Some(rv)) => rv
            .parse::<i64>()
            .ok()
            .filter(|r| *r > 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "invalid resourceVersion {rv:?} for resourceVersionMatch=Exact"
                ))
            }),
        (Some("Exact"), None) => Err(ApiError::BadRequest(
            "resourceVersionMatch=Exact requires a resourceVersion".into(),
        )),
        (Some("NotOlderThan") | None, _) => {
            if let Some(rv) = rv
                && rv.parse::<u64>().is_err()
            {
                return Err(ApiError::BadRequest(format!(
                    "invalid resourceVersion {rv:?}"
                )));
            }
            Ok(None)
        }
        (Some(other), _) => Err(ApiError::BadRequest(format!(
            "invalid resourceVersionMatch {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_uids_are_distinct_version_4_uuids() {
        let uids: std::collections::HashSet<String> = (0..1000).map(|_| new_uid()).collect();
        assert_eq!(uids.len(), 1000);
        for uid in &uids {
            let parsed = uuid::Uuid::parse_str(uid).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{uid}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{uid}");
            assert_eq!(uid.len(), 36);
        }
    }

    #[test]
    fn generated_names_keep_the_base_and_add_five_characters() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-") && n.len() == 9, "{n}");
    }

    #[test]
    fn status_cannot_change_through_the_main_resource() {
        let rt = rkube_api::registry::all()
            .by_kind("apps", "Deployment")
            .unwrap();
        let old = json!({"metadata": {"name": "d", "uid": "u1", "generation": 1}, "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"metadata": {"name": "d", "uid": "other"}, "spec": {"replicas": 3}, "status": {"replicas": 9}});
        let out = prepare_for_update(rt, None, new.clone(), &old).unwrap();
        assert_eq!(out["status"]["replicas"], 1);
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["metadata"]["uid"], "u1");
        assert_eq!(out["metadata"]["generation"], 2);
        let status = prepare_for_update(rt, Some("status"), new, &old).unwrap();
        assert_eq!(
            (
                status["spec"]["replicas"].clone(),
                status["status"]["replicas"].clone()
            ),
            (json!(1), json!(9))
        );
        assert_eq!(status["metadata"]["generation"], 1);
    }

    #[test]
    fn status_writes_keep_metadata_changes_except_what_the_kind_holds() {
        let registry = rkube_api::registry::all();
        let old = json!({
            "metadata": {"name": "x", "labels": {"a": "1"}, "ownerReferences": [{"uid": "o"}]},
            "spec": {"replicas": 1},
            "status": {"qosClass": "BestEffort"},
        });
        let new = json!({
            "metadata": {"name": "x", "labels": {"a": "2"}, "annotations": {"n": "v"}, "ownerReferences": []},
            "spec": {"replicas": 7},
            "status": {"phase": "Running"},
        });
        let cronjobs = registry.by_kind("batch", "CronJob").unwrap();
        let out = prepare_for_update(cronjobs, Some("status"), new.clone(), &old).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "2"}));
        assert_eq!(out["metadata"]["annotations"], json!({"n": "v"}));
        assert_eq!(out["spec"], json!({"replicas": 1}));

        let deployments = registry.by_kind("apps", "Deployment").unwrap();
        let out = prepare_for_update(deployments, Some("status"), new.clone(), &old).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(out["metadata"]["annotations"], json!({"n": "v"}));

        let pods = registry.by_kind("", "Pod").unwrap();
        let out = prepare_for_update(pods, Some("status"), new.clone(), &old).unwrap();
        assert_eq!(out["metadata"]["ownerReferences"], json!([{"uid": "o"}]));
        assert_eq!(out["metadata"]["labels"], json!({"a": "2"}));
        assert_eq!(out["status"]["qosClass"], "BestEffort");

        let attachments = registry
            .by_kind("storage.k8s.io", "VolumeAttachment")
            .unwrap();
        let out = prepare_for_update(attachments, Some("status"), new, &old).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
        assert!(out["metadata"].get("annotations").is_none());
    }

    #[test]
    fn an_approval_changes_conditions_and_metadata_only() {
        let csrs = rkube_api::registry::all()
            .by_kind("certificates.k8s.io", "CertificateSigningRequest")
            .unwrap();
        let old = json!({
            "metadata": {"name": "c"},
            "spec": {"signerName": "s"},
            "status": {"certificate": "Y2VydA=="},
        });
        let new = json!({
            "metadata": {"name": "c", "annotations": {"reviewed": "yes"}},
            "spec": {"signerName": "other"},
            "status": {"certificate": "", "conditions": [{"type": "Approved", "status": "True"}]},
        });
        let out = prepare_for_update(csrs, Some("approval"), new, &old).unwrap();
        assert_eq!(out["metadata"]["annotations"], json!({"reviewed": "yes"}));
        assert_eq!(out["spec"]["signerName"], "s");
        assert_eq!(out["status"]["certificate"], "Y2VydA==");
        assert_eq!(out["status"]["conditions"][0]["type"], "Approved");
    }
}
