//! DELETE: preconditions, propagation policy finalizers, finalizers and deletionTimestamp,
//! graceful pod deletion, namespaces going Terminating, and deletecollection.

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde_json::{Value, json};

use crate::admission::{Attributes, Operation};
use crate::app::App;
use crate::objects::{self, meta_str};
use crate::request::{Query, RequestInfo};
use crate::rest::{dry_run, metadata_mut, same_object};

impl App {
    /// DELETE one object.
    pub async fn delete(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        name: &str,
        options: Value,
    ) -> Result<(u16, Value), ApiError> {
        let ns = self.namespace_of(rt, info);
        let dry = dry_run(query)?
            || options["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|v| v == "All"));
        let grace = options["gracePeriodSeconds"]
            .as_i64()
            .or_else(|| query.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
        let propagation = options["propagationPolicy"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| query.get("propagationPolicy").map(str::to_owned))
            .or_else(|| match options["orphanDependents"].as_bool() {
                Some(true) => Some("Orphan".to_owned()),
                Some(false) => Some("Background".to_owned()),
                None => None,
            });
        let finalizer = match propagation.as_deref() {
            None | Some("Background") => None,
            Some("Orphan") => Some("orphan"),
            Some("Foreground") => Some("foregroundDeletion"),
            Some(other) => {
                return Err(ApiError::Invalid {
                    kind: "DeleteOptions".into(),
                    name: String::new(),
                    causes: vec![rkube_api::FieldError::not_supported(
                        "propagationPolicy",
                        other,
                        &["Foreground", "Background", "Orphan"],
                    )],
                });
            }
        };
        for _ in 0..16 {
            let current = self.objects.get(rt, ns, name).await?;
            let rv = objects::resource_version(&current);
            check_preconditions(rt, name, &options["preconditions"], &current)?;
            let admission = crate::admission::Request {
                attrs: Attributes {
                    rt,
                    subresource: None,
                    namespace: ns,
                    name,
                    operation: Operation::Delete,
                    dry_run: dry,
                },
                admitted_as: name,
                old: Some(&current),
                scheme_defaulted: false,
                validated: true,
            };
            self.admit(&admission, None).await?;
            let mut marked = current.clone();
            let mut needs_mark = false;
            {
                let meta = metadata_mut(&mut marked)?;
                let mut finalizers: Vec<Value> = meta
                    .get("finalizers")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                if let Some(f) = finalizer
                    && !finalizers.iter().any(|x| x == f)
                {
                    finalizers.push(json!(f));
                    meta.insert("finalizers".into(), json!(finalizers.clone()));
                }
                if !finalizers.is_empty() {
                    needs_mark = true;
                }
            }
            let graceful = rt.group.is_empty()
                && rt.kind == "Pod"
                && pod_needs_graceful_deletion(&current, grace);
            let namespace = rt.group.is_empty()
                && rt.kind == "Namespace"
                && current["spec"]["finalizers"]
                    .as_array()
                    .is_some_and(|f| !f.is_empty());
            if namespace {
                marked["status"]["phase"] = json!("Terminating");
                needs_mark = true;
            }
            if App::mark_definition_deleted(rt, &mut marked) {
                needs_mark = true;
            }
            if needs_mark || graceful {
                let already = current["metadata"]
                    .get("deletionTimestamp")
                    .is_some_and(|t| !t.is_null());
                let meta = metadata_mut(&mut marked)?;
                if !already {
                    let seconds = if graceful {
                        grace_period(&current, grace)
                    } else {
                        0
                    };
                    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(seconds);
                    meta.insert(
                        "deletionTimestamp".into(),
                        json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    );
                    meta.insert("deletionGracePeriodSeconds".into(), json!(seconds));
                }
                if dry || same_object(&marked, &current) {
                    return Ok((200, marked));
                }
                match self
                    .objects
                    .update(rt, ns, name, marked, rv.unwrap_or(0))
                    .await
                {
                    Ok(updated) => return Ok((200, updated)),
                    Err(ApiError::Conflict { .. }) => continue,
                    Err(err) => return Err(err),
                }
            }
            if dry {
                return Ok((200, current));
            }
            match self.objects.delete(rt, ns, name, rv).await {
                Ok(deleted) => {
                    self.release(rt, &deleted).await;
                    if rt.group.is_empty() && rt.kind == "Pod" {
                        return Ok((200, deleted));
                    }
                    let uid = meta_str(&deleted, "uid");
                    return Ok((200, crate::status::success(rt.group, rt.plural, name, uid)));
                }
                Err(ApiError::Conflict { .. }) => continue,
                Err(err) => return Err(err),
            }
        }
        Err(crate::objects::conflict(
            rt,
            name,
            "too many concurrent updates; please retry",
        ))
    }

    /// DELETE a collection: every object the selectors pick, one by one.
    pub async fn delete_collection(
        &self,
        rt: &ResourceType,
        info: &RequestInfo,
        query: &Query,
        options: Value,
    ) -> Result<Value, ApiError> {
        let listed = self.list(rt, info, query).await?;
        let ns = info.namespace.clone();
        for item in listed["items"].as_array().cloned().unwrap_or_default() {
            let Some(name) = meta_str(&item, "name") else {
                continue;
            };
            let mut one = info.clone();
            one.namespace = meta_str(&item, "namespace")
                .map(str::to_owned)
                .or(ns.clone());
            match self.delete(rt, &one, query, name, options.clone()).await {
                Ok(_) | Err(ApiError::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(listed)
    }
}

fn check_preconditions(
    rt: &ResourceType,
    name: &str,
    preconditions: &Value,
    current: &Value,
) -> Result<(), ApiError> {
    let conflict = |message: String| crate::objects::conflict(rt, name, message);
    if let Some(uid) = preconditions["uid"].as_str() {
        let actual = meta_str(current, "uid").unwrap_or("");
        if uid != actual {
            return Err(conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
            )));
        }
    }
    if let Some(rv) = preconditions["resourceVersion"].as_str() {
        let actual = meta_str(current, "resourceVersion").unwrap_or("");
        if rv != actual {
            return Err(conflict(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"
            )));
        }
    }
    Ok(())
}

/// A pod bound to a node and still running is deleted gracefully: marked, and removed by its
/// kubelet (or after the grace period). Unbound or finished pods go at once.
fn pod_needs_graceful_deletion(pod: &Value, grace: Option<i64>) -> bool {
    let bound = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    bound && !finished && grace_period(pod, grace) > 0
}

fn grace_period(pod: &Value, grace: Option<i64>) -> i64 {
    grace
        .unwrap_or_else(|| {
            pod["spec"]["terminationGracePeriodSeconds"]
                .as_i64()
                .unwrap_or(30)
        })
        .max(0)
}
