//! OpenAPI v3: `/openapi/v3` lists one document per group version; each document has the
//! paths and operations of its resources (with `x-kubernetes-group-version-kind` and the
//! query parameters the server honours, which is how kubectl learns it validates fields
//! server-side) and the schemas of its kinds, built from k8s-openapi's. Extension API
//! servers' group versions are listed and served beside them (`aggregator::openapi`).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use rkube_api::ApiError;
use rkube_api::registry::{self, ResourceType};
use serde_json::{Map, Value, json};

/// The documents, built once: group-version path (`api/v1`, `apis/apps/v1`) → JSON bytes.
fn documents() -> &'static BTreeMap<String, Arc<Vec<u8>>> {
    static DOCS: OnceLock<BTreeMap<String, Arc<Vec<u8>>>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let reg = registry::all();
        let mut docs = BTreeMap::new();
        // Built-in group versions only: custom ones come and go (`custom_documents`).
        for rt in reg.types() {
            let (group, version) = (rt.group, rt.version);
            let path = gv_path(group, version);
            if docs.contains_key(&path) {
                continue;
            }
            let doc = document(group, version);
            docs.insert(path, Arc::new(serde_json::to_vec(&doc).unwrap_or_default()));
        }
        docs
    })
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable tag for a document's content, for the `hash` clients cache by.
fn hash(bytes: &[u8]) -> String {
    // FNV-1a: deterministic across runs and builds, which is all a cache key needs.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// Every group version's v3 document, parsed (for the v2 document built from them).
pub(crate) fn v3_documents() -> impl Iterator<Item = Value> {
    documents()
        .values()
        .filter_map(|bytes| serde_json::from_slice(bytes).ok())
}

/// The documents of the custom resources served now, per group version.
fn custom_documents() -> BTreeMap<String, Arc<Vec<u8>>> {
    let mut by_gv: BTreeMap<(String, String), Vec<&'static ResourceType>> = BTreeMap::new();
    for rt in registry::custom_types() {
        by_gv
            .entry((rt.group.to_owned(), rt.version.to_owned()))
            .or_default()
            .push(rt);
    }
    by_gv
        .into_iter()
        .map(|((group, version), types)| {
            let doc = custom_document(&types);
            (
                gv_path(&group, &version),
                Arc::new(serde_json::to_vec(&doc).unwrap_or_default()),
            )
        })
        .collect()
}

/// The custom group versions' v3 documents, parsed (for the v2 document).
pub(crate) fn custom_v3_documents() -> impl Iterator<Item = Value> {
    custom_documents()
        .into_values()
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
}

/// Answers `/openapi/v3` and `/openapi/v3/<group-version>`: this server's group versions,
/// then the `remote` ones (extension API servers' documents, by group-version path) it does
/// not serve itself.
pub fn serve(
    path: &str,
    remote: &BTreeMap<String, Arc<Vec<u8>>>,
) -> Result<Arc<Vec<u8>>, ApiError> {
    let rest = path.trim_start_matches("/openapi/v3").trim_matches('/');
    let mut all = custom_documents();
    for (gv, doc) in documents() {
        all.insert(gv.clone(), doc.clone());
    }
    for (gv, doc) in remote {
        all.entry(gv.clone()).or_insert_with(|| doc.clone());
    }
    if rest.is_empty() {
        let paths: Map<String, Value> = all
            .iter()
            .map(|(gv, bytes)| {
                (
                    gv.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={}", hash(bytes))}),
                )
            })
            .collect();
        return Ok(Arc::new(
            serde_json::to_vec(&json!({"paths": paths})).unwrap_or_default(),
        ));
    }
    all.remove(rest).ok_or(ApiError::NoSuchPath)
}

/// The schema name upstream publishes a custom kind under: the group reversed, the version,
/// the kind (`com.example.stable.v1.CronTab`).
fn custom_schema_name(rt: &ResourceType) -> String {
    let mut parts: Vec<&str> = rt.group.split('.').collect();
    parts.reverse();
    format!("{}.{}.{}", parts.join("."), rt.version, rt.kind)
}

/// One custom group version's document: each kind's schema from its definition, with the
/// standard `apiVersion`, `kind` and `metadata`, and its list.
fn custom_document(types: &[&'static ResourceType]) -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>();
    generator.subschema_for::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>();
    let mut paths = Map::new();
    let mut schemas = generator.take_definitions(true);
    for rt in types {
        let Some(custom) = &rt.custom else { continue };
        let name = custom_schema_name(rt);
        paths_for(rt, &name, &mut paths);
        let mut schema = match &custom.schema {
            Value::Object(o) if !o.is_empty() => custom.schema.clone(),
            _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        };
        let gvk = json!([{"group": rt.group, "kind": rt.kind, "version": rt.version}]);
        schema["properties"]["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"});
        schema["properties"]["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"});
        schema["properties"]["metadata"] = json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"});
        schema["x-kubernetes-group-version-kind"] = gvk;
        schemas.insert(name.clone(), schema);
        schemas.insert(
            format!("{}List", name),
            json!({
                "type": "object",
                "required": ["items"],
                "description": format!("{} is a list of {}", rt.list_kind, rt.kind),
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}},
                    "metadata": {"allOf": [{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"}]},
                },
                "x-kubernetes-group-version-kind": [{"group": rt.group, "kind": rt.list_kind, "version": rt.version}],
            }),
        );
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    })
}

fn param(name: &str, location: &str, description: &str) -> Value {
    json!({"name": name, "in": location, "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut params = vec![
        param(
            "dryRun",
            "query",
            "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed",
        ),
        param(
            "fieldManager",
            "query",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        param(
            "fieldValidation",
            "query",
            "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: Ignore, Warn, Strict.",
        ),
    ];
    if patch {
        params.push(json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    params
}

fn list_params() -> Vec<Value> {
    [
        ("allowWatchBookmarks", "boolean"),
        ("continue", "string"),
        ("fieldSelector", "string"),
        ("labelSelector", "string"),
        ("limit", "integer"),
        ("resourceVersion", "string"),
        ("resourceVersionMatch", "string"),
        ("sendInitialEvents", "boolean"),
        ("timeoutSeconds", "integer"),
        ("watch", "boolean"),
    ]
    .iter()
    .map(|(name, ty)| json!({"name": name, "in": "query", "schema": {"type": ty, "uniqueItems": true}}))
    .collect()
}

fn operation(
    rt: &ResourceType,
    action: &str,
    id: &str,
    schema: &str,
    params: Vec<Value>,
    body: bool,
) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{schema}")});
    let mut op = json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference.clone()}}}},
    });
    if body {
        op["requestBody"] = json!({"content": {"*/*": {"schema": reference}}, "required": true});
    }
    op
}

fn paths_for(rt: &ResourceType, schema: &str, paths: &mut Map<String, Value>) {
    let schema = schema.to_owned();
    let base = if rt.group.is_empty() {
        format!("/api/{}", rt.version)
    } else {
        format!("/apis/{}/{}", rt.group, rt.version)
    };
    let scoped = if rt.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", rt.plural)
    } else {
        format!("{base}/{}", rt.plural)
    };
    let name_param = json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
    let ns_param = json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
    let scope_params = |with_name: bool| {
        let mut p = Vec::new();
        if with_name {
            p.push(name_param.clone());
        }
        if rt.namespaced {
            p.push(ns_param.clone());
        }
        p
    };
    let id = |verb: &str| format!("{verb}{}", rt.kind);
    if !rt.is_stored() {
        let mut item = Map::new();
        item.insert(
            "post".into(),
            operation(
                rt,
                "post",
                &id("create"),
                &schema,
                write_params(false),
                true,
            ),
        );
        item.insert("parameters".into(), json!(scope_params(false)));
        paths.insert(scoped, Value::Object(item));
        return;
    }
    let mut collection = Map::new();
    collection.insert(
        "get".into(),
        operation(rt, "list", &id("list"), &schema, list_params(), false),
    );
    collection.insert(
        "post".into(),
        operation(
            rt,
            "post",
            &id("create"),
            &schema,
            write_params(false),
            true,
        ),
    );
    if rt.supports("deletecollection") {
        collection.insert(
            "delete".into(),
            operation(
                rt,
                "deletecollection",
                &id("deletecollection"),
                &schema,
                list_params(),
                false,
            ),
        );
    }
    collection.insert("parameters".into(), json!(scope_params(false)));
    paths.insert(scoped.clone(), Value::Object(collection));

    let mut item = Map::new();
    item.insert(
        "get".into(),
        operation(rt, "get", &id("read"), &schema, vec![], false),
    );
    item.insert(
        "put".into(),
        operation(
            rt,
            "put",
            &id("replace"),
            &schema,
            write_params(false),
            true,
        ),
    );
    item.insert(
        "patch".into(),
        operation(rt, "patch", &id("patch"), &schema, write_params(true), true),
    );
    item.insert(
        "delete".into(),
        operation(rt, "delete", &id("delete"), &schema, vec![], false),
    );
    item.insert("parameters".into(), json!(scope_params(true)));
    paths.insert(format!("{scoped}/{{name}}"), Value::Object(item));

    if rt.has_subresource("status") {
        let mut status = Map::new();
        status.insert(
            "get".into(),
            operation(rt, "get", &id("readStatus"), &schema, vec![], false),
        );
        status.insert(
            "put".into(),
            operation(
                rt,
                "put",
                &id("replaceStatus"),
                &schema,
                write_params(false),
                true,
            ),
        );
        status.insert(
            "patch".into(),
            operation(
                rt,
                "patch",
                &id("patchStatus"),
                &schema,
                write_params(true),
                true,
            ),
        );
        status.insert("parameters".into(), json!(scope_params(true)));
        paths.insert(format!("{scoped}/{{name}}/status"), Value::Object(status));
    }
    if rt.namespaced {
        let mut all = Map::new();
        all.insert(
            "get".into(),
            operation(
                rt,
                "list",
                &id("listForAllNamespaces"),
                &schema,
                list_params(),
                false,
            ),
        );
        paths.insert(format!("{base}/{}", rt.plural), Value::Object(all));
    }
}

/// The component a schema refers to (`$ref`, or the one `$ref` inside `allOf`), if any.
fn referenced(schema: &Value) -> Option<String> {
    let reference = schema
        .get("$ref")
        .or_else(|| schema["allOf"].get(0)?.get("$ref"))?;
    reference
        .as_str()?
        .strip_prefix("#/components/schemas/")
        .map(str::to_owned)
}

/// Adds `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` to the properties the
/// strategic merge patch table knows, walking from the kind's schema through references and
/// list items.
fn annotate_patch_strategies(rt: &ResourceType, schemas: &mut Map<String, Value>) {
    for ext in rkube_api::patch::extensions(rt.group, rt.kind) {
        let mut component = (rt.schema_name)().into_owned();
        let Some((last, parents)) = ext.path.split_last() else {
            continue;
        };
        let mut found = true;
        for name in parents {
            let property = &schemas
                .get(&component)
                .map(|s| s["properties"][*name].clone())
                .unwrap_or(Value::Null);
            let target = referenced(property).or_else(|| referenced(&property["items"]));
            match target {
                Some(next) => component = next,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if !found {
            continue;
        }
        if let Some(property) = schemas
            .get_mut(&component)
            .and_then(|s| s.get_mut("properties"))
            .and_then(|p| p.get_mut(*last))
            .and_then(Value::as_object_mut)
        {
            property.insert("x-kubernetes-patch-strategy".into(), json!(ext.strategy));
            if !ext.merge_key.is_empty() {
                property.insert("x-kubernetes-patch-merge-key".into(), json!(ext.merge_key));
            }
        }
    }
}

fn document(group: &str, version: &str) -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    let mut kinds = Vec::new();
    for rt in registry::all().in_group_version(group, version) {
        (rt.schema)(&mut generator);
        paths_for(rt, &(rt.schema_name)(), &mut paths);
        kinds.push(rt);
    }
    let mut schemas = generator.take_definitions(true);
    for rt in &kinds {
        annotate_patch_strategies(rt, &mut schemas);
    }
    for rt in kinds {
        if let Some(schema) = schemas
            .get_mut((rt.schema_name)().as_ref())
            .and_then(Value::as_object_mut)
        {
            schema.insert(
                "x-kubernetes-group-version-kind".into(),
                json!([{"group": rt.group, "kind": rt.kind, "version": rt.version}]),
            );
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::discovery::KUBERNETES_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"}},
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_lists_every_group_version() {
        let root: Value =
            serde_json::from_slice(&serve("/openapi/v3", &BTreeMap::new()).unwrap()).unwrap();
        assert!(
            root["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
        assert!(root["paths"].get("apis/apps/v1").is_some());
    }

    #[test]
    fn remote_group_versions_are_listed_and_served_but_never_replace_local_ones() {
        let remote = BTreeMap::from([
            (
                "apis/wardle.example.com/v1alpha1".to_owned(),
                Arc::new(br#"{"openapi":"3.0.0"}"#.to_vec()),
            ),
            ("apis/apps/v1".to_owned(), Arc::new(b"{}".to_vec())),
        ]);
        let root: Value = serde_json::from_slice(&serve("/openapi/v3", &remote).unwrap()).unwrap();
        let url = root["paths"]["apis/wardle.example.com/v1alpha1"]["serverRelativeURL"]
            .as_str()
            .unwrap();
        assert!(url.starts_with("/openapi/v3/apis/wardle.example.com/v1alpha1?hash="));
        let wardle = serve("/openapi/v3/apis/wardle.example.com/v1alpha1", &remote).unwrap();
        assert_eq!(wardle.as_slice(), br#"{"openapi":"3.0.0"}"#);
        let apps = serve("/openapi/v3/apis/apps/v1", &remote).unwrap();
        assert_ne!(apps.as_slice(), b"{}");
    }

    #[test]
    fn patch_operations_carry_the_kind_and_field_validation() {
        let doc: Value =
            serde_json::from_slice(&serve("/openapi/v3/apis/apps/v1", &BTreeMap::new()).unwrap())
                .unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        let deployment = &doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert!(
            doc["components"]["schemas"]
                .get("io.k8s.api.core.v1.PodSpec")
                .is_some()
        );
    }
}
