//! OpenAPI v2 (Swagger 2.0) at `/openapi/v2`: one document for every group version, built from
//! the same paths and schemas as the v3 documents (so it carries the same
//! `x-kubernetes-group-version-kind` and patch strategy / merge key extensions).
//!
//! Served in JSON and in gnostic's protobuf form (`gnostic`), which client-go's
//! `OpenAPISchema()` asks for, as upstream's kube-openapi handler does: the first media type
//! of the client's `Accept` (by quality) that names either, both forms tagged with one
//! `ETag` (the SHA-512 of the JSON, in upper-case hex) and answered 304 when the client
//! already holds it. The protobuf form is also served at the legacy `/swagger-2.0.0.pb-v1`
//! that old clients fall back to.

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

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

    /// The document's bytes in this form.
    pub fn bytes(self) -> bytes::Bytes {
        let doc = current();
        match self {
            Form::Json => doc.json.clone(),
            Form::Protobuf => doc
                .protobuf
                .get_or_init(|| {
                    let value: Value = serde_json::from_slice(&doc.json).unwrap_or(Value::Null);
                    bytes::Bytes::from(crate::gnostic::encode(&value))
                })
                .clone(),
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

/// One build of the document: for the built-in resources and the custom resources served
/// when it was built.
struct Built {
    /// Which set of custom resources it describes (`registry::custom_generation`).
    generation: u64,
    json: bytes::Bytes,
    protobuf: OnceLock<bytes::Bytes>,
    etag: String,
}

/// The document for what is served now, built again only when custom resources change.
fn current() -> Arc<Built> {
    static CURRENT: Mutex<Option<Arc<Built>>> = Mutex::new(None);
    let generation = rkube_api::registry::custom_generation();
    let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(built) = current.as_ref().filter(|b| b.generation == generation) {
        return built.clone();
    }
    let json = bytes::Bytes::from(serde_json::to_vec(&build()).unwrap_or_default());
    let digest = ring::digest::digest(&ring::digest::SHA512, &json);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    let built = Arc::new(Built {
        generation,
        json,
        protobuf: OnceLock::new(),
        etag: format!("\"{hex}\""),
    });
    *current = Some(built.clone());
    built
}

/// The `ETag` both forms carry, quoted.
pub fn etag() -> String {
    current().etag.clone()
}

/// Whether an `If-None-Match` header names the current tag (or `*`).
pub fn not_modified(if_none_match: Option<&str>) -> bool {
    let etag = etag();
    if_none_match.is_some_and(|header| {
        header.split(',').any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag
        })
    })
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
        let doc: Value = serde_json::from_slice(&Form::Json.bytes()).unwrap();
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
        let json = Form::Json.bytes();
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
        let tag = etag();
        assert_eq!(tag.len(), 128 + 2);
        assert!(tag.starts_with('"') && tag.ends_with('"'));
        assert!(not_modified(Some(&tag)));
        assert!(not_modified(Some(&format!("\"x\", W/{tag}"))));
        assert!(!not_modified(Some("\"x\"")));
        assert!(!not_modified(None));
    }
}
