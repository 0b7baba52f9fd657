//! Merging Swagger 2.0 documents the way upstream's aggregator does (kube-openapi's
//! `FilterSpecByPaths` and `MergeSpecsIgnorePathConflictRenamingDefinitionsAndParameters`):
//! an extension server's document keeps only the paths of its group version and what they
//! refer to; a path the document being merged into has already is skipped; a definition (or
//! global parameter) of the same name is shared when it is the same and renamed `<name>_v2`,
//! `<name>_v3`, … when it is not, every reference to it following.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// The named sections references point into, with their reference prefix.
const SECTIONS: [(&str, &str); 2] = [
    ("definitions", "#/definitions/"),
    ("parameters", "#/parameters/"),
];

/// Calls `visit` with every `$ref` string under `value`, letting it replace the string.
fn walk_refs(value: &mut Value, visit: &mut impl FnMut(&mut String)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(reference) if key == "$ref" => visit(reference),
                    _ => walk_refs(child, visit),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                walk_refs(item, visit);
            }
        }
        _ => {}
    }
}

/// Every `$ref` string under `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match child {
                    Value::String(reference) if key == "$ref" => out.push(reference),
                    _ => refs(child, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
        _ => {}
    }
}

/// The entries of each section that the document's paths use, directly or through other
/// entries.
fn used_entries(doc: &Value) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut used: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
    let mut pending = Vec::new();
    refs(&doc["paths"], &mut pending);
    while let Some(reference) = pending.pop() {
        for (section, prefix) in SECTIONS {
            if let Some(name) = reference.strip_prefix(prefix)
                && used.entry(section).or_default().insert(name.to_owned())
            {
                refs(&doc[section][name], &mut pending);
            }
        }
    }
    used
}

/// Keeps the paths starting with one of `prefixes`, and only the definitions and parameters
/// those paths use.
pub(crate) fn filter_by_paths(doc: &mut Value, prefixes: &[&str]) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        paths.retain(|path, _| prefixes.iter().any(|p| path.starts_with(p)));
    }
    prune_unused(doc);
}

fn prune_unused(doc: &mut Value) {
    let used = used_entries(doc);
    for (section, _) in SECTIONS {
        if let Some(entries) = doc.get_mut(section).and_then(Value::as_object_mut) {
            entries.retain(|name, _| used.get(section).is_some_and(|u| u.contains(name)));
        }
    }
}

/// Merges `source` into `dest`: its paths `dest` lacks, and the definitions and parameters
/// they use, renamed where `dest` has a different one of the same name.
pub(crate) fn merge_into(dest: &mut Value, source: &Value) {
    let mut source = source.clone();
    let dest_paths = dest["paths"].as_object().cloned().unwrap_or_default();
    if let Some(paths) = source.get_mut("paths").and_then(Value::as_object_mut) {
        let before = paths.len();
        paths.retain(|path, _| !dest_paths.contains_key(path));
        if paths.len() != before {
            prune_unused(&mut source);
        }
    }
    for (section, prefix) in SECTIONS {
        let existing = dest[section].as_object().cloned().unwrap_or_default();
        let incoming = source[section].as_object().cloned().unwrap_or_default();
        let renames = renames(&existing, &incoming);
        if !renames.is_empty() {
            walk_refs(&mut source, &mut |reference| {
                if let Some(new) = reference
                    .strip_prefix(prefix)
                    .and_then(|name| renames.get(name))
                {
                    *reference = format!("{prefix}{new}");
                }
            });
            if let Some(entries) = source.get_mut(section).and_then(Value::as_object_mut) {
                for (old, new) in &renames {
                    if let Some(entry) = entries.remove(old) {
                        entries.insert(new.clone(), entry);
                    }
                }
            }
        }
        let Some(entries) = source.get(section).and_then(Value::as_object) else {
            continue;
        };
        if !dest[section].is_object() {
            dest[section] = Value::Object(Map::new());
        }
        if let Some(target) = dest[section].as_object_mut() {
            for (name, entry) in entries {
                target.entry(name.clone()).or_insert_with(|| entry.clone());
            }
        }
    }
    if let Some(paths) = source.get("paths").and_then(Value::as_object) {
        if !dest["paths"].is_object() {
            dest["paths"] = Value::Object(Map::new());
        }
        if let Some(target) = dest["paths"].as_object_mut() {
            for (path, item) in paths {
                target.insert(path.clone(), item.clone());
            }
        }
    }
}

/// The new names of the incoming entries that clash with different existing ones: the first
/// `<name>_v<i>` (from 2) neither side uses.
fn renames(
    existing: &Map<String, Value>,
    incoming: &Map<String, Value>,
) -> BTreeMap<String, String> {
    let mut taken: BTreeSet<String> = existing.keys().cloned().collect();
    let mut renames = BTreeMap::new();
    for (name, entry) in incoming {
        match existing.get(name) {
            Some(same) if same == entry => {}
            Some(_) => {
                let mut i = 2;
                let mut candidate = format!("{name}_v{i}");
                while taken.contains(&candidate) || incoming.contains_key(&candidate) {
                    i += 1;
                    candidate = format!("{name}_v{i}");
                }
                taken.insert(candidate.clone());
                renames.insert(name.clone(), candidate);
            }
            None => {}
        }
    }
    renames
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn remote() -> Value {
        json!({
            "swagger": "2.0",
            "paths": {
                "/apis/wardle.example.com/v1alpha1/": {"get": {"responses": {}}},
                "/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders": {
                    "post": {
                        "parameters": [
                            {"$ref": "#/parameters/body-x"},
                            {"in": "body", "name": "body", "schema": {"$ref": "#/definitions/x.Flunder"}},
                        ],
                        "responses": {"200": {"schema": {"$ref": "#/definitions/x.Flunder"}}},
                    },
                },
                "/version/": {"get": {"responses": {"200": {"schema": {"$ref": "#/definitions/x.Info"}}}}},
            },
            "definitions": {
                "x.Flunder": {"properties": {"metadata": {"$ref": "#/definitions/meta.ObjectMeta"}}},
                "meta.ObjectMeta": {"properties": {"name": {"type": "string"}}},
                "meta.Time": {"type": "string"},
                "x.Info": {"type": "object"},
            },
            "parameters": {"body-x": {"in": "query", "name": "x", "type": "string"}, "unused": {}},
        })
    }

    #[test]
    fn a_remote_document_keeps_only_its_group_versions_paths_and_what_they_use() {
        let mut doc = remote();
        filter_by_paths(&mut doc, &["/apis/wardle.example.com/v1alpha1/"]);
        let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        assert_eq!(paths.len(), 2);
        let definitions: Vec<&String> = doc["definitions"].as_object().unwrap().keys().collect();
        assert_eq!(definitions, ["meta.ObjectMeta", "x.Flunder"]);
        let parameters: Vec<&String> = doc["parameters"].as_object().unwrap().keys().collect();
        assert_eq!(parameters, ["body-x"]);
    }

    #[test]
    fn clashing_definitions_are_renamed_and_equal_ones_shared() {
        let mut dest = json!({
            "paths": {"/api/v1/pods": {}},
            "definitions": {
                "meta.ObjectMeta": {"properties": {"name": {"type": "string"}, "uid": {"type": "string"}}},
                "meta.ObjectMeta_v2": {"type": "object"},
                "meta.Time": {"type": "string"},
            },
        });
        let mut source = remote();
        source["definitions"]["x.Flunder"]["properties"]["created"] =
            json!({"$ref": "#/definitions/meta.Time"});
        filter_by_paths(&mut source, &["/apis/wardle.example.com/v1alpha1/"]);
        merge_into(&mut dest, &source);
        let flunder = &dest["definitions"]["x.Flunder"];
        assert_eq!(
            flunder["properties"]["metadata"]["$ref"],
            "#/definitions/meta.ObjectMeta_v3"
        );
        assert_eq!(
            flunder["properties"]["created"]["$ref"],
            "#/definitions/meta.Time"
        );
        assert_eq!(
            dest["definitions"]["meta.ObjectMeta_v3"],
            json!({"properties": {"name": {"type": "string"}}})
        );
        assert!(dest["definitions"]["meta.ObjectMeta"]["properties"]["uid"].is_object());
        assert_eq!(dest["parameters"]["body-x"]["name"], "x");
        assert!(
            dest["paths"]
                .get("/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders")
                .is_some()
        );
    }

    #[test]
    fn a_path_the_document_has_already_is_kept_with_what_it_uses() {
        let mut dest = json!({
            "paths": {"/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders": {"post": {}}},
            "definitions": {},
        });
        let mut source = remote();
        filter_by_paths(&mut source, &["/apis/wardle.example.com/v1alpha1/"]);
        merge_into(&mut dest, &source);
        assert_eq!(
            dest["paths"]["/apis/wardle.example.com/v1alpha1/namespaces/{namespace}/flunders"],
            json!({"post": {}})
        );
        assert!(dest["definitions"].get("x.Flunder").is_none());
        assert!(
            dest["paths"]
                .get("/apis/wardle.example.com/v1alpha1/")
                .is_some()
        );
    }
}
