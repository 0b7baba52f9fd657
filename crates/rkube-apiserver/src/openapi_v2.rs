//! OpenAPI v2 (Swagger 2.0) at `/openapi/v2`: one document for every group version, built from
//! the same paths and schemas as the v3 documents (so it carries the same
//! `x-kubernetes-group-version-kind` and patch strategy / merge key extensions).
//!
//! Only JSON is served. Clients that want the protobuf form (client-go's `OpenAPISchema`,
//! which sends only `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) get 406, on
//! which they fall back to the legacy path, find nothing there, and go on without the v2
//! document — as they do with servers that do not publish it.

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// The media type of the protobuf form.
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// Whether the client accepts JSON (or anything) for `/openapi/v2`.
pub fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return true;
    };
    accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or("").trim();
        matches!(media, "application/json" | "*/*" | "application/*" | "")
    })
}

/// The document as JSON, built once.
pub fn document() -> &'static [u8] {
    static DOC: OnceLock<Vec<u8>> = OnceLock::new();
    DOC.get_or_init(|| serde_json::to_vec(&build()).unwrap_or_default())
}

fn build() -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for doc in crate::openapi::v3_documents() {
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
        let doc: Value = serde_json::from_slice(document()).unwrap();
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
        let text = String::from_utf8_lossy(document());
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
    fn only_the_protobuf_form_is_refused() {
        assert!(accepts_json(None));
        assert!(accepts_json(Some("application/json")));
        assert!(accepts_json(Some(&format!("{PROTOBUF}, application/json"))));
        assert!(!accepts_json(Some(PROTOBUF)));
    }
}
