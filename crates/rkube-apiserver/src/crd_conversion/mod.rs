//! Custom resources across versions, as upstream's apiextensions-apiserver converts them in
//! its storage codec: objects are written in the definition's storage version (converted,
//! then pruned and defaulted by that version's schema) and read in the version a request
//! names (defaulted by the schema of the version they were stored in, then converted).
//! Strategy `None` changes only `apiVersion`; `Webhook` sends a `ConversionReview`
//! ([`review`]). [`serve`] handles requests for custom resources.

mod review;
mod serve;

use rkube_api::ApiError;
use rkube_api::crd::{Conversion, Version};
use rkube_api::registry::{self, ResourceType};
use serde_json::{Value, json};

pub(crate) use serve::CustomRequest;

use crate::app::App;

/// `group/version`.
fn api_version(group: &str, version: &str) -> String {
    format!("{group}/{version}")
}

/// The version name of an object's `apiVersion`.
fn version_of(object: &Value) -> Option<&str> {
    object["apiVersion"]
        .as_str()
        .map(|v| v.rsplit_once('/').map_or(v, |(_, v)| v))
}

impl App {
    /// Converts objects of one custom resource to `desired` (`group/version`): objects
    /// already there stay as they are, the others are converted together. `list_kind`
    /// names the list they are items of (upstream's errors name it). Errors are upstream's
    /// messages.
    pub(crate) async fn convert_custom(
        &self,
        custom: &Version,
        objects: &mut [Value],
        desired: &str,
        list_kind: Option<&str>,
    ) -> Result<(), String> {
        let pending: Vec<usize> = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| o["apiVersion"].as_str() != Some(desired))
            .map(|(i, _)| i)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        match &custom.conversion {
            Conversion::None => {
                for i in pending {
                    objects[i]["apiVersion"] = json!(desired);
                }
                Ok(())
            }
            Conversion::Webhook {
                client_config,
                review_versions,
            } => {
                let call = review::Call {
                    client_config,
                    review_versions,
                    desired,
                    list_kind,
                };
                call.convert(self, objects, &pending).await
            }
        }
    }

    /// An object of a custom resource (in any version) as it is written: in the storage
    /// version, pruned and defaulted by that version's schema. Other kinds pass unchanged.
    pub(crate) async fn to_storage_version(
        &self,
        rt: &ResourceType,
        object: Value,
    ) -> Result<Value, ApiError> {
        let Some(custom) = &rt.custom else {
            return Ok(object);
        };
        let desired = api_version(rt.group, &custom.storage_version);
        if object["apiVersion"].as_str() == Some(desired.as_str()) {
            return Ok(object);
        }
        let mut objects = [object];
        self.convert_custom(custom, &mut objects, &desired, None)
            .await
            .map_err(ApiError::Internal)?;
        let [mut object] = objects;
        if let Some(storage) = registry::all().by_path(rt.group, &custom.storage_version, rt.plural)
            && let Some(schema) = &storage.custom
        {
            schema.prune_and_default(&mut object);
        }
        Ok(object)
    }

    /// A stored custom resource in the version `rt` names, for a write that changes it.
    pub(crate) async fn stored_in_request_version(
        &self,
        rt: &ResourceType,
        object: Value,
    ) -> Result<Value, ApiError> {
        if rt.custom.is_none() {
            return Ok(object);
        }
        let mut objects = [object];
        self.read_in_version(rt, &mut objects, None)
            .await
            .map_err(ApiError::Internal)?;
        let [object] = objects;
        Ok(object)
    }

    /// Stored custom resources in the version `rt` names: each defaulted by the schema of
    /// the version it was stored in, as upstream defaults what it reads, then converted.
    pub(crate) async fn read_in_version(
        &self,
        rt: &ResourceType,
        objects: &mut [Value],
        list_kind: Option<&str>,
    ) -> Result<(), String> {
        let Some(custom) = &rt.custom else {
            return Ok(());
        };
        for object in objects.iter_mut() {
            let stored_as = version_of(object).unwrap_or(rt.version);
            if let Some(stored) = registry::all().by_path(rt.group, stored_as, rt.plural)
                && let Some(schema) = &stored.custom
            {
                schema.default(object);
            }
        }
        self.convert_custom(custom, objects, &rt.api_version(), list_kind)
            .await
    }

    /// What a request for a custom resource answers (an object, a list of them, or a
    /// Status), in the version `rt` names; a failed conversion is upstream's 500.
    pub(crate) async fn answer_in_version(
        &self,
        rt: &ResourceType,
        mut value: Value,
    ) -> Result<Value, ApiError> {
        if value["kind"] == "Status" {
            return Ok(value);
        }
        if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
            self.read_in_version(rt, items, Some(rt.list_kind))
                .await
                .map_err(ApiError::Unclassified)?;
            value["apiVersion"] = json!(rt.api_version());
            return Ok(value);
        }
        let mut objects = [value];
        self.read_in_version(rt, &mut objects, None)
            .await
            .map_err(ApiError::Unclassified)?;
        let [value] = objects;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_objects_version_is_the_last_part_of_its_api_version() {
        assert_eq!(
            version_of(&json!({"apiVersion": "stable.example.com/v2"})),
            Some("v2")
        );
        assert_eq!(version_of(&json!({"apiVersion": "v1"})), Some("v1"));
        assert_eq!(version_of(&json!({})), None);
    }
}
