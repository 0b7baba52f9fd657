//! Controller references: which object controls which (the ownerReference with
//! `controller: true`), and adoption and release as upstream's `ControllerRefManager` does
//! them: an object matching a controller's selector with no controller is adopted; an object
//! it controls that no longer matches is released; objects controlled by someone else are
//! never touched.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// The controlling ownerReference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// An ownerReference making `owner` the controller of a dependent, with
/// `blockOwnerDeletion` so foreground deletion waits for the dependent.
pub fn controller_reference<K>(owner: &K) -> OwnerReference
where
    K: Resource<DynamicType = ()>,
{
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `meta` is controlled by an object of kind `K` (any name).
pub fn controlled_by_kind<K: Resource<DynamicType = ()>>(meta: &ObjectMeta) -> Option<&str> {
    controller_of(meta)
        .filter(|r| r.kind == K::kind(&()) && r.api_version == K::api_version(&()))
        .map(|r| r.name.as_str())
}

/// What to do with one candidate dependent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Already ours and still matching.
    Owned,
    /// An orphan that matches: adopt it.
    Adopt,
    /// Ours but no longer matching: release it.
    Release,
    /// Not ours to touch.
    Ignore,
}

/// Decides what a controller with `owner_uid` (being deleted when `owner_deleting`) does with
/// a dependent whose metadata is `meta` and whose labels match its selector when `matches`.
pub fn decide(owner_uid: &str, owner_deleting: bool, meta: &ObjectMeta, matches: bool) -> Claim {
    match controller_of(meta) {
        Some(r) if r.uid != owner_uid => Claim::Ignore,
        Some(_) if matches => Claim::Owned,
        Some(_) if owner_deleting => Claim::Ignore,
        Some(_) => Claim::Release,
        None if !matches || owner_deleting || meta.deletion_timestamp.is_some() => Claim::Ignore,
        None => Claim::Adopt,
    }
}

/// Errors of adoption and release.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API refused or failed.
    #[error("{action} {name}: {source}")]
    Api {
        /// adopting or releasing
        action: &'static str,
        /// the dependent's name
        name: String,
        /// the API error
        #[source]
        source: kube::Error,
    },
}

/// Sorts `candidates` into what `owner` controls, adopting matching orphans and releasing
/// controlled objects that stopped matching. Returns the objects it controls afterwards.
/// Patches carry the dependent's resourceVersion, so a concurrent change is never
/// overwritten (the write fails and the next reconcile decides again).
pub async fn claim<O, K>(
    api: &Api<K>,
    owner: &O,
    matches: impl Fn(&K) -> bool,
    candidates: Vec<Arc<K>>,
) -> Result<Vec<Arc<K>>, Error>
where
    O: Resource<DynamicType = ()>,
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let owner_uid = owner.meta().uid.clone().unwrap_or_default();
    let deleting = owner.meta().deletion_timestamp.is_some();
    let mut claimed = Vec::new();
    for obj in candidates {
        match decide(&owner_uid, deleting, obj.meta(), matches(&obj)) {
            Claim::Owned => claimed.push(obj),
            Claim::Ignore => {}
            Claim::Adopt => {
                let mut refs = obj.meta().owner_references.clone().unwrap_or_default();
                refs.push(controller_reference(owner));
                match patch_refs(api, obj.as_ref(), refs).await {
                    Ok(adopted) => claimed.push(Arc::new(adopted)),
                    Err(err) if is_gone_or_conflict(&err) => {}
                    Err(source) => {
                        return Err(Error::Api {
                            action: "adopting",
                            name: obj.name_any(),
                            source,
                        });
                    }
                }
            }
            Claim::Release => {
                let refs: Vec<_> = obj
                    .meta()
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| r.uid != owner_uid)
                    .collect();
                match patch_refs(api, obj.as_ref(), refs).await {
                    Ok(_) => {}
                    Err(err) if is_gone_or_conflict(&err) => {}
                    Err(source) => {
                        return Err(Error::Api {
                            action: "releasing",
                            name: obj.name_any(),
                            source,
                        });
                    }
                }
            }
        }
    }
    Ok(claimed)
}

fn is_gone_or_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404 || s.code == 409)
}

async fn patch_refs<K>(api: &Api<K>, obj: &K, refs: Vec<OwnerReference>) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let patch = serde_json::json!({
        "metadata": {
            "ownerReferences": if refs.is_empty() { serde_json::Value::Null } else { serde_json::json!(refs) },
            "resourceVersion": obj.meta().resource_version,
            "uid": obj.meta().uid,
        }
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(controller_uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            owner_references: controller_uid.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn orphans_that_match_are_adopted_and_mismatches_released() {
        assert_eq!(decide("me", false, &meta(None), true), Claim::Adopt);
        assert_eq!(decide("me", false, &meta(None), false), Claim::Ignore);
        assert_eq!(decide("me", false, &meta(Some("me")), true), Claim::Owned);
        assert_eq!(
            decide("me", false, &meta(Some("me")), false),
            Claim::Release
        );
        assert_eq!(
            decide("me", false, &meta(Some("other")), true),
            Claim::Ignore
        );
        assert_eq!(decide("me", true, &meta(None), true), Claim::Ignore);
        assert_eq!(decide("me", true, &meta(Some("me")), false), Claim::Ignore);
    }
}
