//! Strategic merge patch, as upstream's `k8s.io/apimachinery/pkg/util/strategicpatch`
//! applies it on the server (`StrategicMergeMapPatch`: parallel lists merged, unmatched
//! nulls ignored).
//!
//! The merge walks the patch and the object together, asking the kind's [`schema`] what each
//! field's strategy is. Maps merge key by key and `null` deletes; lists with the `merge`
//! strategy merge items by their merge key (or, for scalars, form a union); every other
//! list, and every field tagged `replace`, takes the patch value whole.
//!
//! Directives:
//! - `$patch: replace` in a map replaces the map; in a merging list it replaces the list;
//! - `$patch: delete` in a map deletes it; a list item `{<key>: v, $patch: delete}` deletes
//!   the items with that key;
//! - `$patch: merge` is refused, as upstream refuses it (in maps as an unknown patch type,
//!   in lists as "merging lists cannot yet be specified in the patch");
//! - `$retainKeys: [..]` clears every key of the map not listed (and the patch may only set
//!   listed keys);
//! - `$deleteFromPrimitiveList/<field>: [..]` removes those scalars from a list;
//! - `$setElementOrder/<field>: [..]` orders the merged list.
//!
//! Order of merged lists follows upstream exactly: items the patch names come in the
//! patch's order, items only the server has keep theirs, and the two are interleaved by
//! their positions in the server's list — so an item new to the list comes before the
//! server items it was not placed after (upstream puts a new container first).
//!
//! Status codes follow `interpretStrategicMergePatchError` in upstream's patch handler: a
//! patch that is not a JSON object and the malformed-directive errors are 400; lists of lists
//! are 422; every other merge failure (missing merge key, mixed list element types, unknown
//! `$patch` value, `$setElementOrder` out of step with the patch) reaches the client as 500,
//! because upstream returns it as a plain error.

mod order;

use serde_json::{Map, Value};

use self::order::{ServerView, apply_element_orders, order_items, order_keys};
use super::schema::{self, Schema, Strategy};
use super::{check_depth, go_format, go_json_type, unprocessable};
use crate::error::ApiError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// The patch types a kind without a schema accepts, as upstream lists them in the 415.
const SCHEMALESS_PATCH_TYPES: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";

type Object = Map<String, Value>;
type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Applies a strategic merge patch to `doc`, an object of `kind` in API `group` ("" for
/// core).
///
/// Lists tagged `patchStrategy:"merge"` upstream merge by their `patchMergeKey`
/// (`spec.containers` by `name`, `ports` by `containerPort`, service `spec.ports` by
/// `port`, `metadata.ownerReferences` by `uid`, status `conditions` by `type`, …); lists of
/// scalars with that tag (`metadata.finalizers`) are unioned; other lists are replaced.
/// See the module documentation for the directives.
///
/// Errors:
/// - 415 [`ApiError::UnsupportedMediaType`] for a kind the server has no type for, as
///   upstream answers for custom resources;
/// - 400 [`ApiError::BadRequest`] for a patch that is not an object, and for malformed
///   `$retainKeys`, `$deleteFromPrimitiveList` and `$setElementOrder` directives;
/// - 422 [`ApiError::Invalid`] for lists of lists;
/// - 500 [`ApiError::Internal`] for the merge failures upstream does not classify.
pub fn strategic_merge_patch(group: &str, kind: &str, doc: &Value, patch: &Value) -> Result<Value> {
    let Some(root) = schema::for_kind(group, kind) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: \
             {SCHEMALESS_PATCH_TYPES}"
        )));
    };
    check_depth(doc, patch)?;
    let patch = match patch {
        Value::Object(patch) => patch.clone(),
        // Go decodes `null` into an empty map: nothing to do.
        Value::Null => return Ok(doc.clone()),
        other => {
            return Err(ApiError::bad_request(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_json_type(other)
            )));
        }
    };
    let Value::Object(original) = doc else {
        return Err(ApiError::Internal(format!(
            "the object to patch is a JSON {}, not an object",
            go_json_type(doc)
        )));
    };
    merge_map(original.clone(), patch, Some(root)).map(Value::Object)
}

/// The patch metadata of one field, defaulted for fields the schema does not list.
struct FieldMeta {
    strategy: Strategy,
    merge_key: &'static str,
    schema: Option<&'static Schema>,
}

fn field_meta(schema: Option<&'static Schema>, key: &str) -> FieldMeta {
    match schema.and_then(|s| s.field(key)) {
        Some(f) => FieldMeta {
            strategy: f.strategy,
            merge_key: f.merge_key,
            schema: f.schema,
        },
        None => FieldMeta {
            strategy: Strategy::Default,
            merge_key: "",
            schema: None,
        },
    }
}

/// JSON value kinds as Go's decoder types them: integers and floats differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    List,
    Map,
}

fn kind_of(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_f64() => Kind::Float,
        Value::Number(_) => Kind::Int,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::List,
        Value::Object(_) => Kind::Map,
    }
}

/// The Go type name of a decoded value, for upstream's `ErrBadArgType` message.
fn go_type(value: &Value) -> &'static str {
    match kind_of(value) {
        Kind::Null => "%!s(<nil>)",
        Kind::Bool => "bool",
        Kind::Int => "int64",
        Kind::Float => "float64",
        Kind::String => "string",
        Kind::List => "[]interface {}",
        Kind::Map => "map[string]interface {}",
    }
}

fn internal(message: impl Into<String>) -> ApiError {
    ApiError::Internal(message.into())
}

fn bad_arg_type(expected: &str, actual: &Value) -> ApiError {
    internal(format!(
        "expected a {expected}, but received a {}",
        go_type(actual)
    ))
}

fn no_merge_key(item: &Value, key: &str) -> ApiError {
    internal(format!(
        "map: {} does not contain declared merge key: {key}",
        go_format(item)
    ))
}

fn bad_patch_type(directive: &Value, map: &Object) -> ApiError {
    internal(format!(
        "unknown patch type: {} in map: {}",
        go_format(directive),
        go_format(&Value::Object(map.clone()))
    ))
}

/// Merges `patch` into `original`. Recursion follows the patch, whose depth the caller has
/// bounded.
fn merge_map(
    mut original: Object,
    mut patch: Object,
    schema: Option<&'static Schema>,
) -> Result<Object> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Object::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_element_orders(&mut original, &mut patch, schema)?;

    for (key, patch_value) in patch {
        let (key, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (extract_key(&key, DELETE_FROM_PRIMITIVE_LIST)?, true)
        } else {
            (key, false)
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.get_mut(&key) else {
            if !delete_list {
                insert_cleaned(&mut original, key, patch_value);
            }
            continue;
        };
        if kind_of(current) != kind_of(&patch_value) {
            if !delete_list {
                insert_cleaned(&mut original, key, patch_value);
            }
            continue;
        }
        let meta = field_meta(schema, &key);
        match (current, patch_value) {
            (Value::Object(current), Value::Object(patch_value)) => {
                *current = if meta.strategy == Strategy::Replace {
                    patch_value
                } else {
                    merge_map(std::mem::take(current), patch_value, meta.schema)?
                };
            }
            (Value::Array(current), Value::Array(patch_value)) => {
                let current_list = std::mem::take(current);
                *current = merge_list_field(current_list, patch_value, &meta, delete_list, None)?;
            }
            (current, patch_value) => *current = patch_value,
        }
    }
    Ok(original)
}

/// Sets a value the original did not have (or had with another type): nulls inside it are
/// dropped, and maps carrying a `$patch` directive vanish, as upstream does.
fn insert_cleaned(original: &mut Object, key: String, mut value: Value) {
    discard_nulls(&mut value);
    match remove_directives(value) {
        Some(value) => {
            original.insert(key, value);
        }
        None => {
            original.remove(&key);
        }
    }
}

fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

/// Drops every map that carries a `$patch` directive; `None` when `value` itself is one.
fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            let kept = map
                .into_iter()
                .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                .collect();
            Some(Value::Object(kept))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// The field a `$deleteFromPrimitiveList/<field>` or `$setElementOrder/<field>` key names.
fn extract_key(key: &str, prefix: &str) -> Result<String> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field.to_owned()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(ApiError::bad_request(
            "invalid patch format of primitive list",
        )),
        _ => Err(ApiError::bad_request(
            "invalid patch format of setElementOrder list",
        )),
    }
}

/// `$retainKeys`: the patch may set only listed keys, and unlisted keys leave the original.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<()> {
    let Some(retained) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let invalid = || ApiError::bad_request("invalid patch format of retainKeys");
    let Value::Array(retained) = retained else {
        return Err(invalid());
    };
    let retained: Vec<&str> = retained.iter().filter_map(Value::as_str).collect();
    let sets_unlisted_key = patch.iter().any(|(key, value)| {
        !value.is_null()
            && !key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !key.starts_with(SET_ELEMENT_ORDER)
            && !retained.contains(&key.as_str())
    });
    if sets_unlisted_key {
        return Err(invalid());
    }
    original.retain(|key, _| retained.contains(&key.as_str()));
    Ok(())
}

fn merge_key_of<'a>(item: &'a Value, merge_key: &str) -> Result<&'a Value> {
    match item {
        Value::Object(map) => map
            .get(merge_key)
            .ok_or_else(|| no_merge_key(item, merge_key)),
        other => Err(bad_arg_type("map[string]interface {}", other)),
    }
}

/// The kind all items of both lists share; `None` when both are empty.
fn element_kind(original: &[Value], patch: &[Value]) -> Result<Option<Kind>> {
    let mut found = None;
    for item in original.iter().chain(patch) {
        let kind = kind_of(item);
        match found {
            None if kind == Kind::List => {
                return Err(unprocessable("lists of lists are not supported"));
            }
            None => found = Some(kind),
            Some(seen) if seen != kind => {
                let both = Value::Array(vec![
                    Value::Array(original.to_vec()),
                    Value::Array(patch.to_vec()),
                ]);
                return Err(internal(format!(
                    "list element types are not identical: {}",
                    go_format(&both)
                )));
            }
            Some(_) => {}
        }
    }
    Ok(found)
}

/// A list field: merged when its strategy is `merge` (or for a deletion list), else replaced.
///
/// `server_view`, when given, holds the merge keys of `original` and is updated the way
/// upstream's merge overwrites the original list's backing array in place (deletions shift
/// items left, appended items fill the freed tail). Upstream then orders by
/// `$setElementOrder` against that overwritten array, so matching its order needs the same
/// view.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: &FieldMeta,
    delete_list: bool,
    server_view: Option<&mut Vec<Value>>,
) -> Result<Vec<Value>> {
    if meta.strategy == Strategy::Merge || delete_list {
        merge_list(
            original,
            patch,
            meta.schema,
            meta.merge_key,
            delete_list,
            server_view,
        )
    } else {
        Ok(patch)
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Option<&'static Schema>,
    merge_key: &str,
    delete_list: bool,
    server_view: Option<&mut Vec<Value>>,
) -> Result<Vec<Value>> {
    let Some(kind) = element_kind(&original, &patch)? else {
        return Ok(original);
    };
    if kind != Kind::Map {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let server_keys = original.clone();
        let mut union: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for item in original.into_iter().chain(patch.iter().cloned()) {
            if !union.contains(&item) {
                union.push(item);
            }
        }
        return order_items(union, &patch, &server_keys, "", false);
    }
    if merge_key.is_empty() {
        return Err(internal("cannot merge lists without merge key for struct"));
    }
    let mut view = server_view.map(|keys| ServerView {
        len: keys.len(),
        keys,
        shared: true,
    });
    let (original, patch) = apply_list_directives(original, patch, merge_key, view.as_mut())?;
    let patch_keys = order_keys(&patch, merge_key, true)?;
    let server_keys = order_keys(&original, merge_key, true)?;
    let merged = merge_items(original, patch, merge_key, schema, view.as_mut())?;
    order_items(merged, &patch_keys, &server_keys, merge_key, true)
}

/// `$patch` in list items: `delete` removes the items with that key, `replace` makes the
/// rest of the patch list the whole list. Returns the list to merge into and the plain
/// patch items.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    mut view: Option<&mut ServerView<'_>>,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let key = merge_key_of(&item, merge_key)?;
                while let Some(i) = original.iter().position(|o| o.get(merge_key) == Some(key)) {
                    original.remove(i);
                    if let Some(view) = view.as_mut() {
                        view.delete(i);
                    }
                }
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(internal(
                    "merging lists cannot yet be specified in the patch",
                ));
            }
            _ => {
                let map = item.as_object().cloned().unwrap_or_default();
                return Err(bad_patch_type(directive, &map));
            }
        }
    }
    if replace {
        if let Some(view) = view {
            view.shared = false;
        }
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Merges each patch item into the original item with the same key, or appends it.
fn merge_items(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    schema: Option<&'static Schema>,
    mut view: Option<&mut ServerView<'_>>,
) -> Result<Vec<Value>> {
    for item in patch {
        let key = merge_key_of(&item, merge_key)?;
        let found = original.iter().position(|o| o.get(merge_key) == Some(key));
        if found.is_none()
            && let Some(view) = view.as_mut()
        {
            view.append(key);
        }
        match (found, item) {
            (Some(i), Value::Object(item)) => {
                let current = match std::mem::take(&mut original[i]) {
                    Value::Object(current) => current,
                    other => return Err(bad_arg_type("map[string]interface {}", &other)),
                };
                original[i] = Value::Object(merge_map(current, item, schema)?);
            }
            (_, item) => original.push(item),
        }
    }
    Ok(original)
}

#[cfg(test)]
mod tests;
