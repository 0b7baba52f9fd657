//! `componentstatuses` (deprecated upstream since v1.19, still served): the health of the
//! scheduler, the controller manager and the store, answered by the server and never stored.
//! rkube runs the first two in its own process, so when the server answers they are up.

use rkube_api::ApiError;
use serde_json::{Value, json};

use crate::request::RequestInfo;

/// The components upstream reports, in its order.
const COMPONENTS: &[&str] = &["controller-manager", "scheduler", "etcd-0"];

fn status(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ComponentStatus",
        "metadata": {"name": name},
        "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}],
    })
}

/// GET one ComponentStatus or the list, with upstream's deprecation warning.
pub fn serve(info: &RequestInfo, name: Option<&str>) -> Result<Value, ApiError> {
    crate::warnings::warn("v1 ComponentStatus is deprecated in v1.19+".into());
    match name {
        Some(name) if COMPONENTS.contains(&name) => Ok(status(name)),
        Some(name) => Err(ApiError::NotFound {
            group: String::new(),
            resource: "componentstatus".into(),
            name: name.into(),
        }),
        None if info.verb == "list" => Ok(json!({
            "apiVersion": "v1",
            "kind": "ComponentStatusList",
            "metadata": {},
            "items": COMPONENTS.iter().map(|n| status(n)).collect::<Vec<_>>(),
        })),
        None => Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({} componentstatuses)",
            info.verb
        ))),
    }
}
