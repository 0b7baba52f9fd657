//! The errors of an apply, with the status upstream answers them with.

use serde_json::{Value, json};

use crate::error::ApiError;

/// One field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The owner as upstream names it: `"kubectl-client-side-apply" using apps/v1`.
    pub manager: String,
    /// The field: `.spec.replicas`, `.spec.template.spec.containers[name="web"].image`.
    pub field: String,
}

/// Why an apply (or, rarely, update tracking) failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// 409 Conflict: fields owned by other managers; upstream's message, e.g.
    /// `Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using
    /// apps/v1: .spec.replicas`.
    #[error("{message}")]
    Conflicts {
        /// The whole message.
        message: String,
        /// Each conflicting field, sorted by manager then field.
        conflicts: Vec<Conflict>,
    },
    /// 400 BadRequest: an apply configuration that cannot be applied (wrong version or
    /// kind, `managedFields` set, duplicate list keys…).
    #[error("{0}")]
    BadRequest(String),
    /// 500: the stored object cannot be handled.
    #[error("{0}")]
    Internal(String),
}

impl ApplyError {
    /// The `details.causes` of the status, one `FieldManagerConflict` per conflict.
    pub fn causes(&self) -> Vec<Value> {
        match self {
            ApplyError::Conflicts { conflicts, .. } => conflicts
                .iter()
                .map(|c| {
                    json!({
                        "reason": "FieldManagerConflict",
                        "message": format!("conflict with {}", c.manager),
                        "field": c.field,
                    })
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The whole `metav1.Status` upstream answers with. A conflict needs this rather than
    /// [`ApiError`], which has no way to carry its message verbatim nor its causes.
    pub fn to_status(&self) -> Value {
        let (code, reason) = match self {
            ApplyError::Conflicts { .. } => (409, "Conflict"),
            ApplyError::BadRequest(_) => (400, "BadRequest"),
            ApplyError::Internal(_) => (500, "InternalError"),
        };
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code,
        });
        let causes = self.causes();
        if !causes.is_empty() {
            status["details"] = json!({ "causes": causes });
        }
        status
    }

    /// The nearest [`ApiError`], for callers that only speak that (a conflict loses its
    /// causes and gains the "Operation cannot be fulfilled" prefix: prefer [`Self::to_status`]).
    pub fn to_api_error(&self, resource: &str, name: &str) -> ApiError {
        match self {
            ApplyError::Conflicts { message, .. } => ApiError::Conflict {
                group: String::new(),
                resource: resource.to_owned(),
                name: name.to_owned(),
                message: message.clone(),
            },
            ApplyError::BadRequest(message) => ApiError::BadRequest(message.clone()),
            ApplyError::Internal(message) => ApiError::Internal(message.clone()),
        }
    }
}

/// Upstream's conflict message: one conflict inline, several grouped by manager.
pub(super) fn conflict_error(mut conflicts: Vec<Conflict>) -> ApplyError {
    conflicts.sort_by(|a, b| {
        a.manager
            .cmp(&b.manager)
            .then_with(|| a.field.cmp(&b.field))
    });
    let message = match conflicts.as_slice() {
        [one] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager, one.field
        ),
        many => {
            let mut lines = Vec::new();
            let mut current: Option<&str> = None;
            for c in many {
                if current != Some(c.manager.as_str()) {
                    lines.push(format!("conflicts with {}:", c.manager));
                    current = Some(&c.manager);
                }
                lines.push(format!("- {}", c.field));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                many.len(),
                lines.join("\n")
            )
        }
    };
    ApplyError::Conflicts { message, conflicts }
}
