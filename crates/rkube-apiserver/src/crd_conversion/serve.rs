//! Requests for custom resources: the ordinary handlers work in the version the request
//! names (writes are converted to the storage version as they are stored, the object an
//! update starts from to the request's version), and what they answer — objects, lists,
//! watch events — is converted to that version here. Metadata-only answers need no
//! conversion and take the ordinary path.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::Response;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use rkube_api::ApiError;
use rkube_api::registry::ResourceType;
use serde_json::{Value, json};

use crate::app::App;
use crate::encode::{Accept, Body, object_response};
use crate::request::{Query, RequestInfo};

/// One request for a custom resource.
pub(crate) struct CustomRequest<'a> {
    /// The resource at the version named in the URL.
    pub rt: &'static ResourceType,
    pub info: &'a RequestInfo,
    pub query: &'a Query,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    pub accept: Accept,
}

/// The body of a delete or deletecollection: its options.
fn delete_options(content_type: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    if body.is_empty() {
        Ok(json!({}))
    } else {
        crate::decode::decode_body(content_type, body)
    }
}

impl CustomRequest<'_> {
    /// Whether the objects of the resource may be stored in another version than the one
    /// the request names.
    fn stored_elsewhere(&self) -> bool {
        self.rt
            .custom
            .as_ref()
            .is_some_and(|c| c.storage_version != self.rt.version)
    }
}

impl App {
    /// Serves a request for a custom resource in the version it names.
    pub(crate) async fn serve_custom(
        self: &Arc<Self>,
        request: CustomRequest<'_>,
    ) -> Result<Response<Body>, ApiError> {
        let stored_elsewhere = request.stored_elsewhere();
        let CustomRequest {
            rt,
            info,
            query,
            content_type,
            body,
            accept,
        } = request;
        let respond = |code: u16, value: Value| object_response(accept, code, &value);
        match (
            info.verb.as_str(),
            info.name.as_deref(),
            info.subresource.as_deref(),
        ) {
            ("create", None, None) => {
                let object = crate::decode::decode_incoming(rt, content_type, body)?;
                let created = self.create(rt, info, query, object).await?;
                if !stored_elsewhere || accept == Accept::Metadata {
                    return Ok(created.response(accept));
                }
                let value = created.into_value()?;
                Ok(respond(201, self.answer_in_version(rt, value).await?))
            }
            ("get", Some(name), None | Some("status")) => {
                let value = self.get_for_client(rt, info, query, name).await?;
                let value = match accept {
                    Accept::Metadata => value,
                    _ => self.answer_in_version(rt, value).await?,
                };
                Ok(crate::tables::respond(accept, rt, value, query))
            }
            ("list", None, None) if accept == Accept::Metadata => {
                self.list_response(rt, info, query, accept).await
            }
            ("list", None, None) => {
                let list = self.list_value(rt, info, query).await?;
                let list = self.answer_in_version(rt, list).await?;
                Ok(crate::tables::respond(accept, rt, list, query))
            }
            ("watch", _, None) if accept == Accept::Metadata => {
                crate::watch::serve(self.clone(), rt, info, query, accept).await
            }
            ("watch", _, None) => {
                let stored =
                    crate::watch::serve(self.clone(), rt, info, query, Accept::Json).await?;
                Ok(self
                    .clone()
                    .watch_in_version(rt, query.clone(), accept, stored))
            }
            ("update", Some(name), None | Some("status")) => {
                let object = crate::decode::decode_incoming(rt, content_type, body)?;
                let (code, updated) = self.update(rt, info, query, name, object).await?;
                Ok(respond(code, self.answer_in_version(rt, updated).await?))
            }
            ("patch", Some(name), None | Some("status")) => {
                let patch = crate::decode::decode_body(content_type, body)?;
                let (code, patched) = self
                    .patch(rt, info, query, name, content_type, patch, body)
                    .await?;
                Ok(respond(code, self.answer_in_version(rt, patched).await?))
            }
            ("delete", Some(name), None) => {
                let options = delete_options(content_type, body)?;
                let (code, deleted) = self.delete(rt, info, query, name, options).await?;
                Ok(respond(code, self.answer_in_version(rt, deleted).await?))
            }
            ("deletecollection", None, None) => {
                let options = delete_options(content_type, body)?;
                let deleted = self.delete_collection(rt, info, query, options).await?;
                Ok(respond(200, self.answer_in_version(rt, deleted).await?))
            }
            ("get", Some(name), Some("scale")) => {
                Ok(respond(200, self.get_scale(rt, info, name).await?))
            }
            ("update" | "patch", Some(name), Some("scale")) => {
                let body = crate::decode::decode_body(content_type, body)?;
                let change = if info.verb == "update" {
                    crate::scale::ScaleChange::Replace(body)
                } else {
                    let media = content_type
                        .unwrap_or("")
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim();
                    crate::scale::ScaleChange::Patch(media, body)
                };
                Ok(respond(
                    200,
                    self.change_scale(rt, info, query, name, change).await?,
                ))
            }
            (verb, _, sub) => Err(ApiError::MethodNotAllowed(format!(
                "the server does not allow this method on the requested resource ({verb} {}{})",
                rt.qualified_plural(),
                sub.map(|s| format!("/{s}")).unwrap_or_default()
            ))),
        }
    }

    /// A watch of stored objects (JSON lines) as the client asked for it: each event's
    /// object converted to the version watched, as a Table row when a Table was asked for.
    /// Bookmarks and errors pass as they are.
    fn watch_in_version(
        self: Arc<Self>,
        rt: &'static ResourceType,
        query: Query,
        accept: Accept,
        stored: Response<Body>,
    ) -> Response<Body> {
        let (parts, body) = stored.into_parts();
        let lines = body.into_data_stream().then(move |chunk| {
            let app = self.clone();
            let query = query.clone();
            async move {
                let Ok(chunk) = chunk;
                let mut out = Vec::with_capacity(chunk.len());
                for line in chunk.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    out.extend_from_slice(&app.event_in_version(rt, &query, accept, line).await);
                    out.push(b'\n');
                }
                Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(out)))
            }
        });
        Response::from_parts(parts, StreamBody::new(lines).boxed_unsync())
    }

    /// One watch event line in the version watched.
    async fn event_in_version(
        &self,
        rt: &'static ResourceType,
        query: &Query,
        accept: Accept,
        line: &[u8],
    ) -> Vec<u8> {
        let Ok(mut event) = serde_json::from_slice::<Value>(line) else {
            return line.to_vec();
        };
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        if kind == "ERROR" || kind == "BOOKMARK" {
            return line.to_vec();
        }
        let object = event["object"].take();
        let object = match self.answer_in_version(rt, object).await {
            Ok(object) if accept == Accept::Table => crate::tables::table_value(rt, object, query),
            Ok(object) => object,
            Err(err) => {
                event["type"] = json!("ERROR");
                crate::status::status(&err)
            }
        };
        event["object"] = object;
        serde_json::to_vec(&event).unwrap_or_default()
    }
}
