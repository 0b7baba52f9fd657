//! The one place errors become `metav1.Status` responses with the upstream code and reason.

use rkube_api::ApiError;
use serde_json::{Value, json};

/// The HTTP code and upstream `reason` of an error.
pub fn code_and_reason(err: &ApiError) -> (u16, &'static str) {
    match err {
        ApiError::BadRequest(_) => (400, "BadRequest"),
        ApiError::Unauthorized => (401, "Unauthorized"),
        ApiError::Forbidden(_) => (403, "Forbidden"),
        ApiError::NotFound { .. } | ApiError::NoSuchPath => (404, "NotFound"),
        ApiError::MethodNotAllowed(_) => (405, "MethodNotAllowed"),
        ApiError::NotAcceptable(_) => (406, "NotAcceptable"),
        ApiError::AlreadyExists { .. } => (409, "AlreadyExists"),
        ApiError::Conflict { .. } | ApiError::FieldManagerConflict { .. } => (409, "Conflict"),
        ApiError::Gone(_) => (410, "Expired"),
        ApiError::RequestEntityTooLarge(_) => (413, "RequestEntityTooLarge"),
        ApiError::UnsupportedMediaType(_) => (415, "UnsupportedMediaType"),
        ApiError::Invalid { .. } => (422, "Invalid"),
        ApiError::TooManyRequests { .. } => (429, "TooManyRequests"),
        ApiError::Internal(_) => (500, "InternalError"),
        ApiError::Unclassified(_) => (500, ""),
        ApiError::Unavailable(_) => (503, "ServiceUnavailable"),
        ApiError::Timeout(_) => (504, "Timeout"),
        ApiError::Rejected { code, .. } => (*code, reason_for_code(*code)),
    }
}

/// Upstream's reason for a status code, as `metav1.Status` readers expect it.
fn reason_for_code(code: u16) -> &'static str {
    match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "BadRequest",
    }
}

/// Splits `Deployment.apps` into (`Deployment`, `apps`).
fn kind_and_group(qualified: &str) -> (&str, &str) {
    qualified.split_once('.').unwrap_or((qualified, ""))
}

/// The `metav1.Status` body for an error.
pub fn status(err: &ApiError) -> Value {
    let (code, reason) = code_and_reason(err);
    let details = match err {
        ApiError::NotFound {
            group,
            resource,
            name,
        }
        | ApiError::AlreadyExists {
            group,
            resource,
            name,
        }
        | ApiError::Conflict {
            group,
            resource,
            name,
            ..
        } => {
            // Upstream names the plural resource in details.kind for these.
            let plural = resource.split('.').next().unwrap_or(resource);
            Some(json!({"name": name, "group": group, "kind": plural}))
        }
        ApiError::Invalid { kind, name, causes } => {
            let (kind, group) = kind_and_group(kind);
            let causes: Vec<Value> = causes
                .iter()
                .map(|c| json!({"reason": c.kind.reason(), "message": c.body(), "field": c.field}))
                .collect();
            Some(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
        }
        ApiError::TooManyRequests {
            retry_after_seconds: Some(s),
            ..
        } => Some(json!({"retryAfterSeconds": s})),
        ApiError::Internal(message) => Some(json!({"causes": [{"message": message}]})),
        ApiError::FieldManagerConflict { causes, .. } => Some(json!({"causes": causes})),
        _ => None,
    };
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": err.to_string(),
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    if reason.is_empty()
        && let Some(o) = status.as_object_mut()
    {
        o.remove("reason");
    }
    status
}

/// The `Status` a successful delete of a finalizer-free object answers with.
pub fn success(group: &str, kind: &str, name: &str, uid: Option<&str>) -> Value {
    let mut details = json!({"name": name, "group": group, "kind": kind});
    if let Some(uid) = uid {
        details["uid"] = json!(uid);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

#[cfg(test)]
mod tests {
    use rkube_api::FieldError;

    use super::*;

    #[test]
    fn not_found_reads_as_upstream() {
        let err = ApiError::NotFound {
            group: "apps".into(),
            resource: "deployments".into(),
            name: "web".into(),
        };
        let s = status(&err);
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["message"], "deployments \"web\" not found");
        assert_eq!(
            s["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
    }

    #[test]
    fn invalid_carries_field_causes() {
        let err = ApiError::Invalid {
            kind: "Deployment.apps".into(),
            name: "web".into(),
            causes: vec![FieldError::required("spec.selector", "")],
        };
        let s = status(&err);
        assert_eq!(s["code"], 422);
        assert_eq!(s["details"]["kind"], "Deployment");
        assert_eq!(s["details"]["group"], "apps");
        assert_eq!(
            s["details"]["causes"][0],
            json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.selector"})
        );
    }
}
