//! Custom resources: what a CustomResourceDefinition (apiextensions.k8s.io/v1) makes the
//! API serve. [`resource_types`] turns a definition into one [`ResourceType`] per served
//! version, each carrying its [`Version`] (schema, subresources, printer columns); the
//! submodules prune, default and validate custom resources by the schema ([`schema`]),
//! evaluate the simple JSONPath of printer columns ([`jsonpath`]) and validate definitions
//! themselves ([`definition`]).

pub mod definition;
pub mod formats;
pub mod jsonpath;
pub mod schema;

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::registry::{ResourceType, STANDARD_VERBS};

/// The finalizer that keeps a definition until its custom resources are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// One served version of a custom resource.
#[derive(Debug)]
pub struct Version {
    /// The definition's name, `<plural>.<group>`.
    pub crd: String,
    /// The structural schema (`openAPIV3Schema`), `{}` when the version has none.
    pub schema: Value,
    /// Whether the schema has CEL rules (`x-kubernetes-validations`) anywhere.
    pub has_rules: bool,
    /// Whether the status subresource is enabled.
    pub status: bool,
    /// The scale subresource's paths, if enabled.
    pub scale: Option<ScalePaths>,
    /// `additionalPrinterColumns` (upstream's default Age column when there are none).
    pub columns: Vec<Column>,
    /// `selectableFields`: JSON paths usable in field selectors.
    pub selectable_fields: Vec<String>,
    /// The version objects are stored in.
    pub storage_version: String,
    /// The warning sent with every request to a deprecated version.
    pub warning: Option<String>,
    /// How objects convert between the definition's versions.
    pub conversion: Conversion,
}

/// `spec.conversion`: how a custom resource changes version.
#[derive(Debug, Clone, PartialEq)]
pub enum Conversion {
    /// Only `apiVersion` changes.
    None,
    /// A `ConversionReview` is sent to a webhook.
    Webhook {
        /// `clientConfig` (url or service, caBundle).
        client_config: Value,
        /// `conversionReviewVersions`, in the definition's order of preference.
        review_versions: Vec<String>,
    },
}

impl Conversion {
    /// From a definition's `spec.conversion` (absent or unknown: None).
    pub fn from_spec(conversion: &Value) -> Self {
        if conversion["strategy"].as_str() != Some("Webhook") {
            return Self::None;
        }
        let webhook = &conversion["webhook"];
        Self::Webhook {
            client_config: webhook["clientConfig"].clone(),
            review_versions: webhook["conversionReviewVersions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// Where the scale subresource finds replicas and the selector.
#[derive(Debug, Clone)]
pub struct ScalePaths {
    /// `.spec.replicas`-style path of the desired count.
    pub spec_replicas: String,
    /// Path of the observed count.
    pub status_replicas: String,
    /// Path of the label selector in string form, if any.
    pub label_selector: Option<String>,
}

/// A printer column.
#[derive(Debug, Clone)]
pub struct Column {
    /// Header.
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub type_: String,
    /// Format hint.
    pub format: String,
    /// Description.
    pub description: String,
    /// 0 for the default view, more for `-o wide`.
    pub priority: i64,
    /// Where the value is.
    pub json_path: String,
}

/// Whether `schema` or any schema below it has `x-kubernetes-validations`.
fn has_rules(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            map.contains_key("x-kubernetes-validations")
                || map.iter().any(|(key, child)| match key.as_str() {
                    "properties" => child
                        .as_object()
                        .is_some_and(|props| props.values().any(has_rules)),
                    "items" | "additionalProperties" => has_rules(child),
                    _ => false,
                })
        }
        _ => false,
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn leak_list(v: Option<&Value>) -> &'static [&'static str] {
    let list: Vec<&'static str> = v
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).map(leak).collect())
        .unwrap_or_default();
    if list.is_empty() {
        &[]
    } else {
        Box::leak(list.into_boxed_slice())
    }
}

/// Custom resources keep every field the schema allows: only `metadata` is checked as
/// ObjectMeta here (pruning happens by the schema).
fn normalize(value: &Value) -> Result<Value, serde_json::Error> {
    use serde::de::Error;
    let Value::Object(map) = value else {
        return Err(serde_json::Error::custom("expected an object"));
    };
    let mut out = map.clone();
    if let Some(meta) = map.get("metadata") {
        let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde::Deserialize::deserialize(meta)?;
        out.insert("metadata".into(), serde_json::to_value(meta)?);
    }
    for field in ["apiVersion", "kind"] {
        if let Some(v) = map.get(field)
            && !v.is_string()
        {
            return Err(serde_json::Error::custom(format!(
                "{field} must be a string"
            )));
        }
    }
    Ok(Value::Object(out))
}

fn normalize_json(text: &[u8]) -> Result<Value, serde_json::Error> {
    normalize(&serde_json::from_slice(text)?)
}

fn schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<Value>()
}

fn schema_name() -> std::borrow::Cow<'static, str> {
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON".into()
}

fn path_field(v: &Value, name: &str) -> String {
    v.get(name).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// The resource types a definition serves: one per served version, with the names its spec
/// gives.
pub fn resource_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let group = leak(spec["group"].as_str().unwrap_or_default());
    let kind = leak(names["kind"].as_str().unwrap_or_default());
    let list_kind = match names["listKind"].as_str() {
        Some(l) if !l.is_empty() => leak(l),
        _ => leak(&format!("{kind}List")),
    };
    let plural = leak(names["plural"].as_str().unwrap_or_default());
    let short_names = leak_list(names.get("shortNames"));
    let categories = leak_list(names.get("categories"));
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let crd_name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let conversion = Conversion::from_spec(&spec["conversion"]);
    let storage = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_owned();
    versions
        .iter()
        .filter(|v| v["served"].as_bool() == Some(true))
        .map(|v| {
            let subs = &v["subresources"];
            let status = subs.get("status").is_some_and(Value::is_object);
            let scale = subs
                .get("scale")
                .filter(|s| s.is_object())
                .map(|s| ScalePaths {
                    spec_replicas: path_field(s, "specReplicasPath"),
                    status_replicas: path_field(s, "statusReplicasPath"),
                    label_selector: s["labelSelectorPath"].as_str().map(str::to_owned),
                });
            let subresources: &'static [&'static str] = match (status, scale.is_some()) {
                (true, true) => &["scale", "status"],
                (true, false) => &["status"],
                (false, true) => &["scale"],
                (false, false) => &[],
            };
            // Upstream's table convertor: a column without a description is described by
            // its path, and a version without columns gets an Age column described as
            // metadata.creationTimestamp is.
            let mut columns: Vec<Column> = v["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let json_path = path_field(c, "jsonPath");
                    let description = match c["description"].as_str() {
                        Some(d) if !d.is_empty() => d.to_owned(),
                        _ => format!(
                            "Custom resource definition column (in JSONPath format): {json_path}"
                        ),
                    };
                    Column {
                        name: path_field(c, "name"),
                        type_: path_field(c, "type"),
                        format: path_field(c, "format"),
                        description,
                        priority: c["priority"].as_i64().unwrap_or(0),
                        json_path,
                    }
                })
                .collect();
            if columns.is_empty() {
                columns.push(Column {
                    name: "Age".into(),
                    type_: "date".into(),
                    format: String::new(),
                    description: crate::table::desc::OBJ_CREATED.to_owned(),
                    priority: 0,
                    json_path: ".metadata.creationTimestamp".into(),
                });
            }
            let version_name = v["name"].as_str().unwrap_or_default();
            let warning = (v["deprecated"].as_bool() == Some(true)).then(|| {
                v["deprecationWarning"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{group}/{version_name} {kind} is deprecated"))
            });
            let open_api = v["schema"]["openAPIV3Schema"].clone();
            let custom = Version {
                crd: crd_name.to_owned(),
                has_rules: has_rules(&open_api),
                schema: open_api,
                status,
                scale,
                columns,
                selectable_fields: v["selectableFields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["jsonPath"].as_str())
                    .map(str::to_owned)
                    .collect(),
                storage_version: storage.clone(),
                warning,
                conversion: conversion.clone(),
            };
            ResourceType {
                group,
                version: leak(version_name),
                kind,
                list_kind,
                plural,
                namespaced,
                short_names,
                categories,
                verbs: STANDARD_VERBS,
                subresources,
                normalize,
                normalize_json,
                schema,
                schema_name,
                custom: Some(Arc::new(custom)),
                conversion: None,
            }
        })
        .collect()
}

impl Version {
    /// The schema with nothing in it means "no schema".
    fn has_schema(&self) -> bool {
        self.schema.as_object().is_some_and(|o| !o.is_empty())
    }

    /// Prunes unknown fields (returning their paths) and applies defaults.
    pub fn prune_and_default(&self, object: &mut Value) -> Vec<String> {
        if !self.has_schema() {
            return Vec::new();
        }
        let unknown = schema::prune(&self.schema, object);
        schema::default(&self.schema, object);
        unknown
    }

    /// Applies the schema's defaults (as upstream does to objects read from storage).
    pub fn default(&self, object: &mut Value) {
        if self.has_schema() {
            schema::default(&self.schema, object);
        }
    }

    /// Validates a custom resource by the schema.
    pub fn validate(&self, object: &Value) -> Vec<crate::FieldError> {
        let mut errs = Vec::new();
        if self.has_schema() {
            schema::validate(&self.schema, object, "", &mut errs);
        }
        errs
    }

    /// The table columns: Name, then the printer columns.
    pub fn table_columns(&self) -> Vec<Value> {
        let mut columns = vec![json!({
            "name": "Name", "type": "string", "format": "name", "priority": 0,
            "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        })];
        columns.extend(self.columns.iter().map(|c| {
            json!({"name": c.name, "type": c.type_, "format": c.format,
                   "description": c.description, "priority": c.priority})
        }));
        columns
    }

    /// One object's cells, matching [`Version::table_columns`].
    pub fn table_cells(&self, object: &Value, now: Timestamp) -> Vec<Value> {
        let mut cells = vec![object["metadata"]["name"].clone()];
        for c in &self.columns {
            let found = jsonpath::first(object, &c.json_path);
            cells.push(match found {
                None | Some(Value::Null) => Value::Null,
                Some(v) => cell(&c.type_, v, now),
            });
        }
        cells
    }
}

/// A found value as the column's type shows it (a date as the time since it).
fn cell(type_: &str, value: &Value, now: Timestamp) -> Value {
    match type_ {
        "date" => match value.as_str().and_then(|s| s.parse::<Timestamp>().ok()) {
            Some(t) => {
                let since = now.duration_since(t);
                let secs = since.as_secs().max(0) as u64;
                json!(crate::table::human_duration(
                    std::time::Duration::from_secs(secs)
                ))
            }
            None => Value::Null,
        },
        "integer" => match value {
            Value::Number(n) if n.as_i64().is_some() => value.clone(),
            _ => Value::Null,
        },
        "number" => match value {
            Value::Number(_) => value.clone(),
            _ => Value::Null,
        },
        "boolean" => match value {
            Value::Bool(_) => value.clone(),
            _ => Value::Null,
        },
        _ => match value {
            Value::String(_) => value.clone(),
            other => json!(jsonpath::render(other)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "crontabs.stable.example.com"},
            "spec": {
                "group": "stable.example.com", "scope": "Namespaced",
                "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                          "shortNames": ["ct"], "categories": ["all"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                         "spec": {"type": "object", "properties": {
                             "cronSpec": {"type": "string"}, "replicas": {"type": "integer"}}},
                         "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}},
                     "subresources": {"status": {}, "scale": {
                         "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": [
                         {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                         {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                         {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]},
                    {"name": "v1beta1", "served": true, "storage": false, "deprecated": true},
                    {"name": "v1alpha1", "served": false, "storage": false}
                ]
            }
        })
    }

    #[test]
    fn a_definition_serves_each_served_version() {
        let types = resource_types(&crd());
        assert_eq!(types.len(), 2);
        let v1 = &types[0];
        assert_eq!(
            (
                v1.group,
                v1.version,
                v1.kind,
                v1.list_kind,
                v1.plural,
                v1.namespaced
            ),
            (
                "stable.example.com",
                "v1",
                "CronTab",
                "CronTabList",
                "crontabs",
                true
            )
        );
        assert_eq!(v1.short_names, ["ct"]);
        assert_eq!(v1.subresources, ["scale", "status"]);
        let custom = v1.custom.as_ref().unwrap();
        assert_eq!(custom.storage_version, "v1");
        let beta = types[1].custom.as_ref().unwrap();
        assert_eq!(
            beta.warning.as_deref(),
            Some("stable.example.com/v1beta1 CronTab is deprecated")
        );
        assert_eq!(beta.columns[0].name, "Age");
    }

    #[test]
    fn table_cells_follow_the_printer_columns() {
        let types = resource_types(&crd());
        let custom = types[0].custom.as_ref().unwrap();
        let now: Timestamp = "2024-01-01T01:00:00Z".parse().unwrap();
        let cr = json!({"metadata": {"name": "a", "creationTimestamp": "2024-01-01T00:00:00Z"},
                        "spec": {"cronSpec": "* * * * */5", "replicas": 3}});
        assert_eq!(
            custom.table_cells(&cr, now),
            [json!("a"), json!("* * * * */5"), json!(3), json!("60m")]
        );
        let columns = custom.table_columns();
        assert_eq!(columns.len(), 4);
        assert_eq!(
            columns[1]["description"],
            "Custom resource definition column (in JSONPath format): .spec.cronSpec"
        );
    }
}
