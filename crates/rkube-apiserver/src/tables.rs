//! Table output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), as `kubectl get`
//! asks for it: the columns come from `rkube_api::table`.

use http::{HeaderValue, Response, header};
use rkube_api::registry::ResourceType;
use rkube_api::table;
use serde_json::{Value, json};

use crate::encode::{Accept, Body, full};
use crate::request::Query;

/// The JSON response for a get or list, as a Table when the client asked for one.
pub fn respond(accept: Accept, rt: &ResourceType, value: Value, query: &Query) -> Response<Body> {
    let body = match accept {
        Accept::Table => table_value(rt, value, query),
        Accept::Metadata => metadata_value(value),
        Accept::Protobuf | Accept::Yaml => {
            return crate::encode::object_response(accept, 200, &value);
        }
        Accept::Json => value,
    };
    let mut response = Response::new(full(serde_json::to_vec(&body).unwrap_or_default()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An object as `PartialObjectMetadata`, or a list as `PartialObjectMetadataList`.
pub fn metadata_value(value: Value) -> Value {
    let partial = |item: &Value| {
        json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": item.get("metadata").cloned().unwrap_or(json!({})),
        })
    };
    match value.get("items").and_then(Value::as_array) {
        Some(items) => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": value.get("metadata").cloned().unwrap_or(json!({})),
            "items": items.iter().map(partial).collect::<Vec<_>>(),
        }),
        None => partial(&value),
    }
}

/// An object or a list as a `meta.k8s.io/v1` Table.
pub fn table_value(rt: &ResourceType, value: Value, query: &Query) -> Value {
    let now = jiff::Timestamp::now();
    let include = query.get("includeObject").unwrap_or("Metadata");
    let (items, list_meta) = match value.get("items").and_then(Value::as_array) {
        Some(items) => (
            items.clone(),
            value.get("metadata").cloned().unwrap_or(json!({})),
        ),
        None => {
            let rv = value["metadata"]["resourceVersion"].clone();
            (vec![value], json!({"resourceVersion": rv}))
        }
    };
    let columns: Vec<Value> = match &rt.custom {
        Some(custom) => custom.table_columns(),
        None => table::columns(rt.group, rt.kind)
            .iter()
            .map(|c| json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority}))
            .collect(),
    };
    let rows: Vec<Value> = items
        .into_iter()
        .map(|mut item| {
            if item.get("kind").is_none() {
                item["kind"] = json!(rt.kind);
                item["apiVersion"] = json!(rt.api_version());
            }
            let cells = match &rt.custom {
                Some(custom) => custom.table_cells(&item, now),
                None => table::cells(rt.group, rt.kind, &item, now),
            };
            let object = match include {
                "None" => Value::Null,
                "Object" => item,
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": item.get("metadata").cloned().unwrap_or(json!({})),
                }),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": columns, "rows": rows})
}
