//! The wardle server's OpenAPI documents: small, but shaped as upstream's generic API server
//! writes them, so that kubectl finds what it looks for. Each operation carries
//! `x-kubernetes-group-version-kind` and `x-kubernetes-action`; create and patch take the
//! `fieldValidation` query parameter (which tells kubectl it validates fields server-side);
//! the Flunder schema carries its kind. The schemas include an `ObjectMeta` of its own, with
//! the name upstream's has and less in it, as an extension server built against another
//! release would publish one.

use serde_json::{Map, Value, json};

/// The Flunder schema's name in both documents.
pub const FLUNDER: &str = "com.example.wardle.v1alpha1.Flunder";
/// The `ObjectMeta` schema's name in both documents.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

const FLUNDERS: &str = "/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders";

/// Which document is being written.
#[derive(Clone, Copy, PartialEq)]
enum Version {
    V2,
    V3,
}

impl Version {
    fn reference(self, name: &str) -> Value {
        match self {
            Version::V2 => json!({"$ref": format!("#/definitions/{name}")}),
            Version::V3 => json!({"$ref": format!("#/components/schemas/{name}")}),
        }
    }

    /// A property that is another schema: a plain reference in v2, wrapped in `allOf` in v3
    /// (where a reference cannot have siblings).
    fn property(self, name: &str, description: &str) -> Value {
        let mut property = match self {
            Version::V2 => self.reference(name),
            Version::V3 => json!({"allOf": [self.reference(name)]}),
        };
        property["description"] = json!(description);
        property["default"] = json!({});
        property
    }

    fn parameter(self, name: &str, location: &str, description: &str) -> Value {
        let mut parameter = json!({"name": name, "in": location, "description": description});
        if location == "path" {
            parameter["required"] = json!(true);
        }
        match self {
            Version::V2 => parameter["type"] = json!("string"),
            Version::V3 => parameter["schema"] = json!({"type": "string"}),
        }
        parameter
    }
}

fn gvk() -> Value {
    json!({"group": "wardle.example.com", "kind": "Flunder", "version": "v1alpha1"})
}

fn schemas(v: Version) -> Value {
    let gvks = json!([gvk()]);
    json!({
        FLUNDER: {
            "description": "Flunder is an example type with a spec and a status.",
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                "metadata": v.property(OBJECT_META, "Standard object's metadata."),
                "spec": v.property("com.example.wardle.v1alpha1.FlunderSpec", "What the flunder refers to."),
                "status": v.property("com.example.wardle.v1alpha1.FlunderStatus", "What the server last saw of it."),
            },
            "x-kubernetes-group-version-kind": gvks,
        },
        "com.example.wardle.v1alpha1.FlunderList": {
            "description": "FlunderList is a list of Flunder objects.",
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                "items": {"type": "array", "items": v.reference(FLUNDER)},
                "metadata": v.property("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta", "Standard list metadata."),
            },
            "x-kubernetes-group-version-kind": [{"group": "wardle.example.com", "kind": "FlunderList", "version": "v1alpha1"}],
        },
        "com.example.wardle.v1alpha1.FlunderSpec": {
            "type": "object",
            "properties": {
                "reference": {"type": "string", "description": "A name of another flunder or fischer, depending on the reference type."},
                "referenceType": {"type": "string", "description": "The reference type, Flunder or Fischer; Flunder when a reference is set."},
            },
        },
        "com.example.wardle.v1alpha1.FlunderStatus": {"type": "object"},
        OBJECT_META: {
            "description": "ObjectMeta is metadata that all persisted resources must have.",
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "Name must be unique within a namespace."},
                "namespace": {"type": "string", "description": "Namespace defines the space within which each name must be unique."},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "default": ""}, "description": "Map of string keys and values."},
                "annotations": {"type": "object", "additionalProperties": {"type": "string", "default": ""}, "description": "Annotations is an unstructured key value map."},
                "resourceVersion": {"type": "string", "description": "An opaque value that represents the internal version of this object."},
                "creationTimestamp": {"type": "string", "format": "date-time", "description": "When this object was created."},
            },
        },
        "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta": {
            "description": "ListMeta describes metadata that synthetic resources must have.",
            "type": "object",
            "properties": {
                "resourceVersion": {"type": "string", "description": "The version of the list."},
            },
        },
    })
}

/// One operation on flunders.
fn operation(
    v: Version,
    action: &str,
    id: &str,
    body: Option<Value>,
    code: &str,
    response: &str,
) -> Value {
    let mut params = Vec::new();
    let mut op = json!({
        "description": format!("{action} Flunder"),
        "operationId": format!("{id}WardleExampleComV1alpha1NamespacedFlunder"),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(),
    });
    if let Some(schema) = body {
        let media = if action == "patch" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        match v {
            Version::V2 => {
                params.push(
                    json!({"name": "body", "in": "body", "required": true, "schema": schema}),
                );
                op["consumes"] = json!([media]);
            }
            Version::V3 => {
                op["requestBody"] =
                    json!({"required": true, "content": {media: {"schema": schema}}});
            }
        }
        params.push(v.parameter(
            "fieldValidation",
            "query",
            "How the server treats fields it does not know or finds twice: Ignore, Warn or Strict.",
        ));
    }
    op["parameters"] = Value::Array(params);
    let schema = v.reference(response);
    op["responses"] = match v {
        Version::V2 => {
            op["produces"] = json!(["application/json"]);
            op["schemes"] = json!(["https"]);
            json!({code: {"description": "OK", "schema": schema}})
        }
        Version::V3 => {
            json!({code: {"description": "OK", "content": {"application/json": {"schema": schema}}}})
        }
    };
    op
}

fn paths(v: Version) -> Value {
    let namespace = v.parameter("namespace", "path", "object name and auth scope");
    let name = v.parameter("name", "path", "name of the Flunder");
    let list = "com.example.wardle.v1alpha1.FlunderList";
    let mut paths = Map::new();
    paths.insert(
        FLUNDERS.to_owned(),
        json!({
            "get": operation(v, "list", "list", None, "200", list),
            "post": operation(v, "post", "create", Some(v.reference(FLUNDER)), "201", FLUNDER),
            "parameters": [namespace.clone()],
        }),
    );
    paths.insert(
        format!("{FLUNDERS}/{{name}}"),
        json!({
            "get": operation(v, "get", "read", None, "200", FLUNDER),
            "patch": operation(v, "patch", "patch", Some(json!({"type": "object"})), "200", FLUNDER),
            "parameters": [name, namespace],
        }),
    );
    Value::Object(paths)
}

/// The Swagger 2.0 document at `/openapi/v2`.
pub fn v2() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Wardle", "version": "v0.1"},
        "paths": paths(Version::V2),
        "definitions": schemas(Version::V2),
    })
}

/// The OpenAPI 3 document of `wardle.example.com/v1alpha1`.
pub fn v3() -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Wardle", "version": "v0.1"},
        "paths": paths(Version::V3),
        "components": {"schemas": schemas(Version::V3)},
    })
}

/// The `/openapi/v3` root: the group version's document, and (as upstream's lists every
/// path it serves) one that is not a group version's.
pub fn v3_root() -> Value {
    json!({"paths": {
        "apis/wardle.example.com/v1alpha1": {"serverRelativeURL": "/openapi/v3/apis/wardle.example.com/v1alpha1?hash=WARDLE1"},
        "version": {"serverRelativeURL": "/openapi/v3/version?hash=WARDLE2"},
    }})
}
