//! Review resources: created, answered at once, never stored (`kubectl auth whoami`,
//! `kubectl auth can-i`).

use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde_json::{Value, json};

use crate::auth::UserInfo;

fn user_info(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "uid": user.uid, "groups": user.groups});
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

/// Answers a review for `user`.
pub fn review(rt: &ResourceType, mut object: Value, user: &UserInfo) -> Result<Value, ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    object["apiVersion"] = json!(rt.api_version());
    object["kind"] = json!(rt.kind);
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]["creationTimestamp"] = json!(crate::rest::now_rfc3339());
    match rt.kind {
        "SelfSubjectReview" => object["status"] = json!({"userInfo": user_info(user)}),
        // Every authenticated user may do everything until RBAC arrives.
        "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            object["status"] =
                json!({"allowed": true, "reason": "every authenticated user is allowed"});
        }
        "SelfSubjectRulesReview" => {
            object["status"] = json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            });
        }
        other => {
            return Err(ApiError::MethodNotAllowed(format!(
                "{other} is not served yet"
            )));
        }
    }
    Ok(object)
}
