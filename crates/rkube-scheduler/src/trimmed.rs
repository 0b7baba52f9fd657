//! Objects decoded without `metadata.managedFields`: upstream's scheduler drops that field
//! from every object its informers keep; here it is skipped while decoding
//! ([`rkube_api::trim`]).

use std::borrow::Cow;

use kube::Resource;
use kube::api::ObjectMeta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `K` as decoded with `metadata.managedFields` left out.
#[derive(Clone, Debug, PartialEq)]
pub struct Trimmed<K>(pub K);

impl<'de, K: Deserialize<'de>> Deserialize<'de> for Trimmed<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        rkube_api::trim::without_managed_fields(deserializer).map(Trimmed)
    }
}

impl<K: Serialize> Serialize for Trimmed<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<K: Resource> Resource for Trimmed<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        self.0.meta_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    #[test]
    fn a_pod_decodes_whole_but_for_its_managed_fields() {
        let text = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "d", "labels": {"a": "b"}, "resourceVersion": "7",
                "managedFields": [{"manager": "m", "operation": "Update", "apiVersion": "v1",
                                   "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}],
                "annotations": {"managedFields": "kept"},
            },
            "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": "n"},
            "status": {"phase": "Pending"},
        })
        .to_string();
        let trimmed: Trimmed<Pod> = serde_json::from_str(&text).unwrap();
        let mut whole: Pod = serde_json::from_str(&text).unwrap();
        assert!(whole.metadata.managed_fields.take().is_some());
        assert_eq!(trimmed.0, whole);
    }

    #[test]
    fn a_pod_that_is_not_an_object_is_refused() {
        assert!(serde_json::from_str::<Trimmed<Pod>>("[1]").is_err());
        assert!(serde_json::from_str::<Trimmed<Pod>>(r#"{"metadata": 3}"#).is_err());
    }
}
