//! The one set of error classes the server side shares. The API server turns each into a
//! `metav1.Status` with the upstream `reason` and HTTP code in exactly one place.

use serde_json::Value;

/// An error a Kubernetes client can act on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400 BadRequest: the request cannot be understood (malformed body, bad selector…).
    #[error("{0}")]
    BadRequest(String),
    /// 401 Unauthorized: no valid credentials.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403 Forbidden.
    #[error("{0}")]
    Forbidden(String),
    /// 404 NotFound: `pods "web" not found`.
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// The API group ("" for core).
        group: String,
        /// The resource, e.g. `pods`.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// 404 for a path that names no resource at all.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    /// 405 MethodNotAllowed: the resource does not support the verb.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 406 NotAcceptable: no response format the client accepts.
    #[error("{0}")]
    NotAcceptable(String),
    /// 409 AlreadyExists: `pods "web" already exists`.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// The API group ("" for core).
        group: String,
        /// The resource.
        resource: String,
        /// The object's name.
        name: String,
    },
    /// 409 Conflict: `Operation cannot be fulfilled on pods "web": <message>`.
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {message}")]
    Conflict {
        /// The API group ("" for core).
        group: String,
        /// The resource.
        resource: String,
        /// The object's name.
        name: String,
        /// Why, e.g. "the object has been modified; please apply your changes to the latest
        /// version and try again".
        message: String,
    },
    /// 409 Conflict of server-side apply: fields other managers own, one cause each
    /// (`{"reason": "FieldManagerConflict", "message": …, "field": …}`).
    #[error("{message}")]
    FieldManagerConflict {
        /// Upstream's message, e.g. `Apply failed with 1 conflict: …`.
        message: String,
        /// The status causes.
        causes: Vec<Value>,
    },
    /// 410 Expired / Gone: a resource version or continue token too old to serve.
    #[error("{0}")]
    Gone(String),
    /// 413 RequestEntityTooLarge.
    #[error("{0}")]
    RequestEntityTooLarge(String),
    /// 415 UnsupportedMediaType.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 Invalid: `Pod "web" is invalid: spec.containers[0].image: Required value`.
    #[error("{}", invalid_message(kind, name, causes))]
    Invalid {
        /// The object's kind, e.g. `Pod` (or `Deployment.apps`).
        kind: String,
        /// The object's name.
        name: String,
        /// What is wrong, field by field.
        causes: Vec<FieldError>,
    },
    /// 429 TooManyRequests, e.g. an eviction a disruption budget forbids.
    #[error("{message}")]
    TooManyRequests {
        /// Why.
        message: String,
        /// Seconds after which a retry may succeed.
        retry_after_seconds: Option<u32>,
    },
    /// 500 InternalError.
    #[error("Internal error occurred: {0}")]
    Internal(String),
    /// 500 without a reason: what upstream answers for a failure that is no API status
    /// (a custom resource that cannot be converted to the version read).
    #[error("{0}")]
    Unclassified(String),
    /// 503 ServiceUnavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 504 Timeout.
    #[error("{0}")]
    Timeout(String),
    /// A refusal carrying the code another party chose, as upstream passes an admission
    /// webhook's status through (a code below 400 is never used: such refusals are 400).
    #[error("{message}")]
    Rejected {
        /// The HTTP code, 400 or above.
        code: u16,
        /// The message.
        message: String,
    },
}

impl ApiError {
    /// A 400 with this message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
}

/// Upstream's message for an invalid object: one cause inline, several in brackets.
fn invalid_message(kind: &str, name: &str, causes: &[FieldError]) -> String {
    let errors: Vec<String> = causes.iter().map(FieldError::to_string).collect();
    match errors.as_slice() {
        [] => format!("{kind} \"{name}\" is invalid"),
        [one] => format!("{kind} \"{name}\" is invalid: {one}"),
        many => format!("{kind} \"{name}\" is invalid: [{}]", many.join(", ")),
    }
}

/// What is wrong with one field, as upstream's `field.Error`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The path, e.g. `spec.containers[0].image` or `metadata.labels`.
    pub field: String,
    /// The kind of problem.
    pub kind: FieldErrorKind,
    /// The offending value, when the message shows it.
    pub value: Option<Value>,
    /// More detail, e.g. the rule a name broke.
    pub detail: String,
}

/// The kinds of field error, with upstream's cause reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// `FieldValueRequired`: "Required value".
    Required,
    /// `FieldValueInvalid`: "Invalid value".
    Invalid,
    /// `FieldValueNotSupported`: "Unsupported value".
    NotSupported,
    /// `FieldValueDuplicate`: "Duplicate value".
    Duplicate,
    /// `FieldValueForbidden`: "Forbidden".
    Forbidden,
    /// `FieldValueTooLong`: "Too long".
    TooLong,
    /// `FieldValueTooMany`: "Too many".
    TooMany,
    /// `FieldValueTypeInvalid`: "Invalid value" (wrong type).
    TypeInvalid,
    /// `FieldValueNotFound`: "Not found".
    NotFound,
    /// `InternalError`: "Internal error".
    Internal,
}

impl FieldErrorKind {
    /// The `reason` of the status cause.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::TypeInvalid => "FieldValueTypeInvalid",
            Self::NotFound => "FieldValueNotFound",
            Self::Internal => "InternalError",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Duplicate => "Duplicate value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::NotFound => "Not found",
            Self::Internal => "Internal error",
        }
    }

    /// Whether upstream shows the bad value in the message.
    fn shows_value(self) -> bool {
        !matches!(
            self,
            Self::Required | Self::Forbidden | Self::TooLong | Self::Internal
        )
    }
}

impl FieldError {
    fn new(
        kind: FieldErrorKind,
        field: impl Into<String>,
        value: Option<Value>,
        detail: &str,
    ) -> Self {
        Self {
            field: field.into(),
            kind,
            value,
            detail: detail.to_owned(),
        }
    }

    /// A required field is missing.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self::new(FieldErrorKind::Required, field, None, detail)
    }

    /// A field has a value it may not have.
    pub fn invalid(field: impl Into<String>, value: impl Into<Value>, detail: &str) -> Self {
        Self::new(FieldErrorKind::Invalid, field, Some(value.into()), detail)
    }

    /// A field's value is not one of the supported ones.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<Value>,
        supported: &[&str],
    ) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let detail = format!("supported values: {}", quoted.join(", "));
        Self::new(
            FieldErrorKind::NotSupported,
            field,
            Some(value.into()),
            &detail,
        )
    }

    /// A value appears twice where it must be unique.
    pub fn duplicate(field: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::new(FieldErrorKind::Duplicate, field, Some(value.into()), "")
    }

    /// A field may not be set (or changed) here.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, None, detail)
    }

    /// A value is longer than allowed.
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        let detail = format!("may not be more than {max} bytes");
        Self::new(FieldErrorKind::TooLong, field, None, &detail)
    }

    /// The message without the field path, as in a status cause: `Required value`,
    /// `Invalid value: "X": must be lowercase`.
    pub fn body(&self) -> String {
        let mut body = self.kind.text().to_owned();
        if self.kind.shows_value()
            && let Some(value) = &self.value
        {
            body.push_str(": ");
            body.push_str(&render_value(value));
        }
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Strings quoted, numbers and booleans bare, as Go's `%q` / `%v` show them.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_messages_read_as_upstream() {
        let one = ApiError::Invalid {
            kind: "Pod".into(),
            name: "web".into(),
            causes: vec![FieldError::required("spec.containers[0].image", "")],
        };
        assert_eq!(
            one.to_string(),
            "Pod \"web\" is invalid: spec.containers[0].image: Required value"
        );
        let two = ApiError::Invalid {
            kind: "ConfigMap".into(),
            name: "Bad".into(),
            causes: vec![
                FieldError::invalid("metadata.name", "Bad", "must be lowercase"),
                FieldError::not_supported("spec.restartPolicy", "Sometimes", &["Always", "Never"]),
            ],
        };
        assert_eq!(
            two.to_string(),
            "ConfigMap \"Bad\" is invalid: [metadata.name: Invalid value: \"Bad\": must be lowercase, \
             spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"Never\"]"
        );
    }

    #[test]
    fn not_found_and_conflict_read_as_upstream() {
        let nf = ApiError::NotFound {
            group: "".into(),
            resource: "pods".into(),
            name: "web".into(),
        };
        assert_eq!(nf.to_string(), "pods \"web\" not found");
        let c = ApiError::Conflict {
            group: "apps".into(),
            resource: "deployments.apps".into(),
            name: "web".into(),
            message: "the object has been modified".into(),
        };
        assert_eq!(
            c.to_string(),
            "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified"
        );
    }
}
