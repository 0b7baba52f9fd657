//! Versions served from another version's storage (autoscaling/v1 HorizontalPodAutoscalers
//! kept as autoscaling/v2): bodies are checked against the served version's type and
//! converted to the stored form before the ordinary handlers see them; what the handlers
//! answer is converted back. Patches apply to the served form of the stored object, as
//! upstream's patcher works in the request's version.

use std::sync::Arc;

use http::Response;
use rkube_api::ApiError;
use rkube_api::convert::Conversion;
use rkube_api::registry::{self, ResourceType};
use serde_json::Value;

use crate::app::App;
use crate::decode::{FieldValidation, Incoming};
use crate::encode::{Accept, Body, object_response};
use crate::request::{Query, RequestInfo};

/// One request to a version served from another's storage.
pub(crate) struct ServedRequest<'a> {
    /// The version named in the URL.
    pub served: &'static ResourceType,
    /// How it converts.
    pub conversion: &'static Conversion,
    pub info: &'a RequestInfo,
    pub query: &'a Query,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    pub accept: Accept,
}

impl ServedRequest<'_> {
    fn storage(&self) -> &'static ResourceType {
        registry::all().storage_of(self.served)
    }

    /// A stored object (or a list of them) in the served form; other answers (a Status) pass.
    fn to_served(&self, mut value: Value) -> Result<Value, ApiError> {
        if let Some(items) = value.get_mut("items").and_then(Value::as_array_mut) {
            for item in items.iter_mut() {
                let mut converted = (self.conversion.from_storage)(std::mem::take(item))?;
                // Upstream's list items carry no type meta.
                if let Some(o) = converted.as_object_mut() {
                    o.remove("apiVersion");
                    o.remove("kind");
                }
                *item = converted;
            }
            value["apiVersion"] = Value::from(self.served.api_version());
            return Ok(value);
        }
        if value["kind"] == self.served.kind {
            return (self.conversion.from_storage)(value);
        }
        Ok(value)
    }

    /// A request body of the served version, checked against its type (unknown fields
    /// reported as the request asks), in the stored form.
    fn body_to_storage(&self) -> Result<Value, ApiError> {
        let incoming = crate::decode::decode_incoming(self.served, self.content_type, self.body)?;
        let object = self.accept_served(incoming)?;
        (self.conversion.to_storage)(object)
    }

    fn accept_served(&self, incoming: Incoming) -> Result<Value, ApiError> {
        let validation = FieldValidation::from_query(self.query)?;
        let rt = self.served;
        match incoming {
            Incoming::Parsed(mut object) => {
                crate::rest::check_type(&mut object, rt)?;
                crate::decode::normalize(rt, object, validation)
            }
            Incoming::Yaml(mut object, duplicates) => {
                crate::rest::check_type(&mut object, rt)?;
                crate::decode::normalize_yaml(rt, object, duplicates, validation)
            }
            Incoming::Known(object, unknown) => {
                crate::decode::report_unknown(rt, unknown, validation)?;
                Ok(object)
            }
        }
    }

    fn respond(&self, code: u16, value: Value) -> Result<Response<Body>, ApiError> {
        Ok(object_response(self.accept, code, &self.to_served(value)?))
    }

    /// A get or list answer: a Table is computed from the stored form.
    fn respond_read(&self, value: Value) -> Result<Response<Body>, ApiError> {
        if self.accept == Accept::Table {
            return Ok(crate::tables::respond(
                self.accept,
                self.storage(),
                value,
                self.query,
            ));
        }
        Ok(crate::tables::respond(
            self.accept,
            self.served,
            self.to_served(value)?,
            self.query,
        ))
    }
}

impl App {
    /// Serves a request to a version kept in another version's storage.
    pub(crate) async fn serve_converted(
        self: &Arc<Self>,
        request: ServedRequest<'_>,
    ) -> Result<Response<Body>, ApiError> {
        let storage = request.storage();
        let info = request.info;
        let query = request.query;
        let name = info.name.as_deref();
        match (info.verb.as_str(), name, info.subresource.as_deref()) {
            ("create", None, None) => {
                let object = request.body_to_storage()?;
                let (code, created) = self
                    .create_object(storage, info, query, object, true)
                    .await?;
                request.respond(code, created)
            }
            ("get", Some(name), None | Some("status")) => {
                request.respond_read(self.get_for_client(storage, info, query, name).await?)
            }
            ("list", None, None) => request.respond_read(self.list(storage, info, query).await?),
            ("watch", _, None) => {
                crate::watch::serve(self.clone(), request.served, info, query, request.accept).await
            }
            ("update", Some(name), None | Some("status")) => {
                let object = Incoming::Known(request.body_to_storage()?, Vec::new());
                let (code, updated) = self.update(storage, info, query, name, object).await?;
                request.respond(code, updated)
            }
            ("patch", Some(name), None | Some("status")) => {
                // The patch applies to the served form (see `patch`).
                let patch = crate::decode::decode_body(request.content_type, request.body)?;
                let (code, patched) = self
                    .patch(
                        request.served,
                        info,
                        query,
                        name,
                        request.content_type,
                        patch,
                        request.body,
                    )
                    .await?;
                request.respond(code, patched)
            }
            ("delete", Some(name), None) => {
                let options = if request.body.is_empty() {
                    Value::Object(Default::default())
                } else {
                    crate::decode::decode_body(request.content_type, request.body)?
                };
                let (code, deleted) = self.delete(storage, info, query, name, options).await?;
                request.respond(code, deleted)
            }
            ("deletecollection", None, None) => {
                let options = if request.body.is_empty() {
                    Value::Object(Default::default())
                } else {
                    crate::decode::decode_body(request.content_type, request.body)?
                };
                let deleted = self
                    .delete_collection(storage, info, query, options)
                    .await?;
                request.respond(200, deleted)
            }
            (verb, _, sub) => Err(ApiError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource ({verb} {}{})",
                request.served.qualified_plural(),
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            ))),
        }
    }
}
