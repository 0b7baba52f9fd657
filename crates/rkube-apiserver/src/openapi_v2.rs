//! OpenAPI v2 (Swagger 2.0) at `/openapi/v2`: one document for every group version, built from
//! the same paths and schemas as the v3 documents (so it carries the same
//! `x-kubernetes-group-version-kind` and patch strategy / merge key extensions).
//!
//! Served in JSON and in gnostic's protobuf form (`gnostic`), which client-go's
//! `OpenAPISchema()` asks for, as upstream's kube-openapi handler does: the first media type
//! of the client's `Accept` (by quality) that names either, both forms tagged with one
//! `ETag` (the SHA-512 of the JSON, in upper-case hex) and answered 304 when the client
//! already holds it. The protobuf form is also served at the legacy `/swagger-2.0.0.pb-v1`
//! that old clients fall back to. The documents of available extension API servers are
//! merged in (`aggregator::openapi`), which changes the tag.

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

use crate::aggregator::openapi::RemoteSpecs;
use crate::encode::{Body, full};

/// The media type client-go asks for (the deprecated spelling, still accepted).
pub const PROTOBUF_DEPRECATED: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The protobuf form's media type, answered for either spelling.
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A form of the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `application/json`.
    Json,
    /// gnostic's `openapi.v2.Document` message.
    Protobuf,
}

impl Form {
    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Form::Json => "application/json",
            Form::Protobuf => PROTOBUF,
        }
    }
}

/// The form to answer `accept` with (none fits: 406). Clauses are taken by quality, the more
/// specific first among equals, as goautoneg orders them; a missing header is `*/*`.
pub fn negotiate(accept: Option<&str>) -> Option<Form> {
    let accept = accept
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .unwrap_or("*/*");
    let mut clauses: Vec<(f32, usize, &str)> = accept
        .split(',')
        .map(|part| {
            let mut pieces = part.split(';');
            let media = pieces.next().unwrap_or("").trim();
            let q = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (q, media.matches('*').count(), media)
        })
        .filter(|(q, _, media)| *q > 0.0 && !media.is_empty())
        .collect();
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    clauses.iter().find_map(|(_, _, media)| {
        let (ty, sub) = media.split_once('/').unwrap_or((media, ""));
        if ty != "application" && ty != "*" {
            return None;
        }
        let full = format!("application/{sub}");
        match sub {
            "*" | "json" => Some(Form::Json),
            _ if full == PROTOBUF || full == PROTOBUF_DEPRECATED => Some(Form::Protobuf),
            _ => None,
        }
    })
}

/// One build of the document.
pub(crate) struct Built {
    json: bytes::Bytes,
    protobuf: OnceLock<bytes::Bytes>,
    etag: String,
}

impl Built {
    fn new(doc: &Value) -> Self {
        let json = bytes::Bytes::from(serde_json::to_vec(doc).unwrap_or_default());
        let digest = ring::digest::digest(&ring::digest::SHA512, &json);
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Self {
            json,
            protobuf: OnceLock::new(),
            etag: format!("\"{hex}\""),
        }
    }

    /// The document's bytes in `form`.
    pub fn bytes(&self, form: Form) -> bytes::Bytes {
        match form {
            Form::Json => self.json.clone(),
            Form::Protobuf => self
                .protobuf
                .get_or_init(|| {
                    let value: Value = serde_json::from_slice(&self.json).unwrap_or(Value::Null);
                    bytes::Bytes::from(crate::gnostic::encode(&value))
                })
                .clone(),
        }
    }

    /// The `ETag` both forms carry, quoted: the SHA-512 of the JSON.
    pub fn etag(&self) -> &str {
        &self.etag
    }

    /// Whether an `If-None-Match` header names this document's tag (or `*`).
    pub fn not_modified(&self, if_none_match: Option<&str>) -> bool {
        if_none_match.is_some_and(|header| {
            header.split(',').any(|tag| {
                let tag = tag.trim();
                tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == self.etag
            })
        })
    }
}

/// The document of what this server serves itself, built again only when custom resources
/// change; with the custom-resource generation it describes.
fn local() -> (u64, Arc<Built>) {
    static CURRENT: Mutex<Option<(u64, Arc<Built>)>> = Mutex::new(None);
    let generation = rkube_api::registry::custom_generation();
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((built_for, built)) = current.as_ref()
        && *built_for == generation
    {
        return (generation, built.clone());
    }
    let built = Arc::new(Built::new(&build()));
    *current = Some((generation, built.clone()));
    (generation, built)
}

/// The document now: this server's, with the remote APIServices' merged in after it as
/// upstream's aggregator merges them (see `aggregator::spec_merge`).
pub(crate) fn current(remote: &RemoteSpecs) -> Arc<Built> {
    let (local_generation, local) = local();
    let (remote_generation, remote_docs) = remote.v2_documents();
    if remote_docs.is_empty() {
        return local;
    }
    remote.merged_v2(local_generation, remote_generation, || {
        let mut merged: Value = serde_json::from_slice(&local.json).unwrap_or(Value::Null);
        for doc in &remote_docs {
            crate::aggregator::spec_merge::merge_into(&mut merged, doc);
        }
        Built::new(&merged)
    })
}

/// Answers `/openapi/v2` (and the legacy `/swagger-2.0.0.pb-v1`, always protobuf) in the
/// negotiated form, tagged with the document's `ETag`; 304 when the client's `If-None-Match`
/// names it, 406 when the client takes neither form.
pub(crate) fn response(
    path: &str,
    headers: &http::HeaderMap,
    remote: &RemoteSpecs,
) -> http::Response<Body> {
    use http::{HeaderValue, StatusCode, header};
    let form = if path == "/openapi/v2" {
        negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
    } else {
        Some(Form::Protobuf)
    };
    let mut response = match form {
        None => {
            let mut response = http::Response::new(full(Vec::new()));
            *response.status_mut() = StatusCode::NOT_ACCEPTABLE;
            response
        }
        Some(form) => {
            let doc = current(remote);
            let if_none_match = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok());
            let mut response = if doc.not_modified(if_none_match) {
                let mut response = http::Response::new(full(Vec::new()));
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                response
            } else {
                http::Response::new(full(doc.bytes(form)))
            };
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(form.content_type()),
            );
            response.headers_mut().insert(
                header::ETAG,
                HeaderValue::from_str(doc.etag())
                    .unwrap_or_else(|_| HeaderValue::from_static("\"\"")),
            );
            response
        }
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

fn build() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for doc in crate::openapi::v3_documents().chain(crate::openapi::custom_v3_documents()) {
        if let Some(schemas) = doc["components"]["schemas"].as_object() {
            for (name, schema) in schemas {
                definitions
                    .entry(name.clone())
                    .or_insert_with(|| schema_v2(schema));
            }
        }
        if let Some(items) = doc["paths"].as_object() {
            for (path, item) in items {
                paths.insert(path.clone(), path_item_v2(item));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::KUBERNETES_VERSION},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    })
}

/// A v3 schema in v2 terms: references point into `definitions`, and `nullable` (which
/// v2 lacks) goes.
fn schema_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| k.as_str() != "nullable")
                .map(|(k, v)| {
                    let v = match (k.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => {
                            json!(r.replace("#/components/schemas/", "#/definitions/"))
                        }
                        _ => schema_v2(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(schema_v2).collect()),
        other => other.clone(),
    }
}

/// A v3 parameter as v2 writes it: the schema's type and format inline.
fn parameter_v2(param: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in param.as_object().into_iter().flatten() {
        if k == "schema" {
            for (sk, sv) in v.as_object().into_iter().flatten() {
                out.insert(sk.clone(), sv.clone());
            }
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn path_item_v2(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        if key == "parameters" {
            out.insert(key.clone(), parameters_v2(value));
            continue;
        }
        let mut op = Map::new();
        let mut params = parameters_v2(&value["parameters"]);
        for (k, v) in value.as_object().into_iter().flatten() {
            match k.as_str() {
                "parameters" => {}
                "requestBody" => {
                    let schema = v["content"]
                        .as_object()
                        .and_then(|c| c.values().next())
                        .map(|c| schema_v2(&c["schema"]))
                        .unwrap_or(json!({}));
                    if let Some(params) = params.as_array_mut() {
                        params.insert(
                            0,
                            json!({"name": "body", "in": "body", "required": true, "schema": schema}),
                        );
                    }
                }
                "responses" => {
                    let responses: Map<String, Value> = v
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(code, response)| {
                            let mut r = json!({"description": response["description"].clone()});
                            if let Some(schema) = response["content"]
                                .as_object()
                                .and_then(|c| c.values().next())
                            {
                                r["schema"] = schema_v2(&schema["schema"]);
                            }
                            (code.clone(), r)
                        })
                        .collect();
                    op.insert(k.clone(), Value::Object(responses));
                }
                _ => {
                    op.insert(k.clone(), v.clone());
                }
            }
        }
        op.insert("parameters".into(), params);
        op.insert(
            "consumes".into(),
            json!([
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf"
            ]),
        );
        op.insert(
            "produces".into(),
            json!([
                "application/json",
                "application/yaml",
                "application/vnd.kubernetes.protobuf"
            ]),
        );
        op.insert("schemes".into(), json!(["https"]));
        out.insert(key.clone(), Value::Object(op));
    }
    Value::Object(out)
}

fn parameters_v2(params: &Value) -> Value {
    Value::Array(
        params
            .as_array()
            .into_iter()
            .flatten()
            .map(parameter_v2)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_v2_document_has_definitions_kinds_and_patch_strategies() {
        let doc: Value = serde_json::from_slice(&local().1.bytes(Form::Json)).unwrap();
        assert_eq!(doc["swagger"], "2.0");
        let deployment = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let containers =
            &doc["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let json = local().1.bytes(Form::Json);
        let text = String::from_utf8_lossy(&json);
        assert!(!text.contains("#/components/schemas/"));
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        let params = patch["parameters"].as_array().unwrap();
        assert!(params.iter().any(|p| p["in"] == "body"
            && p["schema"]["$ref"] == "#/definitions/io.k8s.api.apps.v1.Deployment"));
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["type"] == "string")
        );
    }

    #[test]
    fn accept_picks_the_form_by_quality_and_both_protobuf_spellings() {
        assert_eq!(negotiate(None), Some(Form::Json));
        assert_eq!(negotiate(Some("application/json")), Some(Form::Json));
        assert_eq!(negotiate(Some(PROTOBUF_DEPRECATED)), Some(Form::Protobuf));
        assert_eq!(negotiate(Some(PROTOBUF)), Some(Form::Protobuf));
        assert_eq!(
            negotiate(Some(&format!("application/json;q=0.5, {PROTOBUF}"))),
            Some(Form::Protobuf)
        );
        assert_eq!(
            negotiate(Some(&format!("*/*;q=0.8, {PROTOBUF_DEPRECATED}"))),
            Some(Form::Protobuf)
        );
        assert_eq!(negotiate(Some("text/html")), None);
    }

    #[test]
    fn the_etag_is_the_quoted_sha512_of_the_json() {
        let doc = local().1;
        let tag = doc.etag();
        assert_eq!(tag.len(), 128 + 2);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert!(doc.not_modified(Some(tag)));
        assert!(doc.not_modified(Some(&format!("\"x\", W/{tag}"))));
        assert!(!doc.not_modified(Some("\"x\"")));
        assert!(!doc.not_modified(None));
    }
}
