//! `kube-system/extension-apiserver-authentication`: what an extension API server reads to
//! trust this server's clients and its front proxy, written at every start with upstream's
//! keys (`client-ca-file`, `requestheader-*`), the lists as JSON.

use rkube_api::ApiError;
use serde_json::{Value, json};

use crate::app::App;
use crate::decode::FieldValidation;
use crate::request::{Query, RequestInfo};
use crate::requestheader::{EXTRA_PREFIX, FrontProxy, GROUP_HEADER, USER_HEADER};

const NAMESPACE: &str = "kube-system";
const NAME: &str = "extension-apiserver-authentication";

/// The ConfigMap's data.
fn data(client_ca: &str, front_proxy: &FrontProxy) -> Value {
    let list = |items: &[&str]| serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned());
    let names: Vec<&str> = front_proxy
        .allowed_names
        .iter()
        .map(String::as_str)
        .collect();
    json!({
        "client-ca-file": client_ca,
        "requestheader-client-ca-file": front_proxy.ca_pem,
        "requestheader-allowed-names": list(&names),
        "requestheader-extra-headers-prefix": list(&[EXTRA_PREFIX]),
        "requestheader-group-headers": list(&[GROUP_HEADER]),
        "requestheader-username-headers": list(&[USER_HEADER]),
    })
}

impl App {
    /// Creates the ConfigMap, or brings its data up to date.
    pub async fn publish_authentication(&self, client_ca: &str) -> Result<(), ApiError> {
        let Some(front_proxy) = &self.config.front_proxy else {
            return Ok(());
        };
        let data = data(client_ca, front_proxy);
        let rt = self.resource("", "ConfigMap")?;
        match self.lookup(rt, Some(NAMESPACE), NAME).await {
            Ok(current) if current["data"] == data => return Ok(()),
            Ok(_) => {}
            Err(ApiError::NotFound { .. }) => {
                let info = RequestInfo {
                    namespace: Some(NAMESPACE.to_owned()),
                    ..Default::default()
                };
                let object =
                    json!({"metadata": {"name": NAME, "namespace": NAMESPACE}, "data": data});
                match self.create(rt, &info, &Query::default(), object).await {
                    Ok(_) => return Ok(()),
                    Err(ApiError::AlreadyExists { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
            Err(err) => return Err(err),
        }
        self.guaranteed_update(
            rt,
            Some(NAMESPACE),
            NAME,
            None,
            false,
            None,
            FieldValidation::Ignore,
            None,
            |current| {
                let mut next = current.clone();
                next["data"] = data.clone();
                Ok(next)
            },
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_json_as_upstream_writes_them() {
        let dir = tempfile::tempdir().unwrap();
        let certs = crate::certs::ensure_front_proxy(dir.path()).unwrap();
        let proxy = FrontProxy::new(&certs).unwrap();
        let data = data("CA", &proxy);
        assert_eq!(
            data["requestheader-allowed-names"],
            "[\"front-proxy-client\"]"
        );
        assert_eq!(
            data["requestheader-username-headers"],
            "[\"X-Remote-User\"]"
        );
        assert_eq!(data["requestheader-group-headers"], "[\"X-Remote-Group\"]");
        assert_eq!(
            data["requestheader-extra-headers-prefix"],
            "[\"X-Remote-Extra-\"]"
        );
        assert_eq!(data["client-ca-file"], "CA");
        assert!(
            data["requestheader-client-ca-file"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
    }
}
