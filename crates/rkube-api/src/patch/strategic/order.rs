//! List order and `$setElementOrder`: where upstream puts each item of a merged list.

use serde_json::Value;

use super::{
    DIRECTIVE, Kind, Object, Result, SET_ELEMENT_ORDER, bad_arg_type, element_kind, extract_key,
    field_meta, internal, merge_key_of, merge_list_field, remove_directives,
};
use crate::patch::go_format;
use crate::patch::schema::Schema;

/// Takes a field's list out of a map, if present; it must be a list.
fn take_list(map: &mut Object, field: &str) -> Result<Option<Vec<Value>>> {
    match map.remove(field) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(other) => Err(bad_arg_type("[]interface {}", &other)),
    }
}

/// `$setElementOrder/<field>`: merges the field's list now, then orders it by the directive.
pub(super) fn apply_element_orders(
    original: &mut Object,
    patch: &mut Object,
    schema: Option<&'static Schema>,
) -> Result<()> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order) = patch.remove(&directive) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let field = extract_key(&directive, SET_ELEMENT_ORDER)?;
        let original_list = take_list(original, &field)?;
        let patch_list = take_list(patch, &field)?;
        let meta = field_meta(schema, &field);
        validate_element_order(patch_list.as_deref(), &order, meta.merge_key)?;

        let element_kind = element_kind(
            original_list.as_deref().unwrap_or_default(),
            patch_list.as_deref().unwrap_or_default(),
        )?;
        let by_key = element_kind == Some(Kind::Map) && !meta.merge_key.is_empty();
        let mut server_keys = match &original_list {
            Some(items) => order_keys(items, meta.merge_key, by_key)?,
            None => Vec::new(),
        };
        let merged = match (original_list, patch_list) {
            (Some(original_list), None) => original_list,
            (None, Some(patch_list)) => patch_list
                .into_iter()
                .filter_map(remove_directives)
                .collect(),
            (Some(original_list), Some(patch_list)) => merge_list_field(
                original_list,
                patch_list,
                &meta,
                false,
                Some(&mut server_keys),
            )?,
            (None, None) => continue,
        };
        // Both lists empty: upstream fails to find an element type; an empty list is the
        // only sensible answer, and objects serialized by rkube may carry `[]`.
        let ordered = if element_kind.is_none() {
            merged
        } else {
            let order_keys = order_keys(&order, meta.merge_key, by_key)?;
            order_items(merged, &order_keys, &server_keys, meta.merge_key, by_key)?
        };
        original.insert(field, Value::Array(ordered));
    }
    Ok(())
}

/// The patch list's items (deletions and other directives aside) must appear in the
/// `$setElementOrder` list, in the same relative order.
fn validate_element_order(
    patch_list: Option<&[Value]>,
    order: &[Value],
    merge_key: &str,
) -> Result<()> {
    let Some(patch_list) = patch_list else {
        return Ok(());
    };
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut kept = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if merge_key.is_empty() {
            kept.push(item);
            continue;
        }
        let Value::Object(map) = item else {
            return Err(bad_arg_type("map[string]interface {}", item));
        };
        if map.get(DIRECTIVE).and_then(Value::as_str) != Some("delete") {
            kept.push(item);
        }
    }
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        let item = kept[p];
        if item.get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        let same = if merge_key.is_empty() {
            item == &order[o]
        } else {
            merge_key_of(item, merge_key)? == merge_key_of(&order[o], merge_key)?
        };
        if same {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() {
        return Err(internal(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            go_format(&Value::Array(patch_list.to_vec())),
            go_format(&Value::Array(order.to_vec()))
        )));
    }
    Ok(())
}

/// The in-place view of the original list described at [`merge_list_field`]: the keys in
/// the backing array and the length of the slice over it.
pub(super) struct ServerView<'v> {
    pub(super) keys: &'v mut Vec<Value>,
    pub(super) len: usize,
    /// False once the slice no longer shares the array (a `$patch: replace`).
    pub(super) shared: bool,
}

impl ServerView<'_> {
    /// Go's `append(s[:i], s[i+1:]...)`: the tail shifts left, the last slot keeps its value.
    pub(super) fn delete(&mut self, index: usize) {
        if self.shared && index < self.len && self.len <= self.keys.len() {
            for j in index..self.len - 1 {
                self.keys[j] = self.keys[j + 1].clone();
            }
            self.len -= 1;
        }
    }

    /// Go's `append(s, v)` within the array's capacity (the original length).
    pub(super) fn append(&mut self, key: &Value) {
        if self.shared && self.len < self.keys.len() {
            self.keys[self.len] = key.clone();
        }
        self.len += 1;
    }
}

/// What orders a list's items: their merge key for maps, the item itself for scalars.
pub(super) fn order_keys(items: &[Value], merge_key: &str, by_key: bool) -> Result<Vec<Value>> {
    items
        .iter()
        .map(|item| order_key(item, merge_key, by_key).cloned())
        .collect()
}

fn order_key<'a>(item: &'a Value, merge_key: &str, by_key: bool) -> Result<&'a Value> {
    if by_key {
        merge_key_of(item, merge_key)
    } else {
        Ok(item)
    }
}

/// Upstream's order for a merged list: items named by `patch_keys` in that order, the
/// server's other items in their `server_keys` order, interleaved so that a server item
/// goes first only when both are on the server and it was there earlier.
pub(super) fn order_items(
    merged: Vec<Value>,
    patch_keys: &[Value],
    server_keys: &[Value],
    merge_key: &str,
    by_key: bool,
) -> Result<Vec<Value>> {
    let mut from_patch: Vec<(usize, usize, Value)> = Vec::new();
    let mut server_only: Vec<(usize, Value)> = Vec::new();
    for item in merged {
        let key = order_key(&item, merge_key, by_key)?;
        let on_server = server_keys
            .iter()
            .position(|k| k == key)
            .unwrap_or(usize::MAX);
        match patch_keys.iter().position(|k| k == key) {
            Some(in_patch) => from_patch.push((in_patch, on_server, item)),
            None => server_only.push((on_server, item)),
        }
    }
    from_patch.sort_by_key(|(in_patch, _, _)| *in_patch);
    server_only.sort_by_key(|(on_server, _)| *on_server);

    let mut ordered = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut server_only = server_only.into_iter().peekable();
    let mut from_patch = from_patch.into_iter().peekable();
    loop {
        let server_first = match (server_only.peek(), from_patch.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((s, _)), Some((_, p, _))) => *s != usize::MAX && *p != usize::MAX && s < p,
        };
        let next = if server_first {
            server_only.next().map(|(_, item)| item)
        } else {
            from_patch.next().map(|(_, _, item)| item)
        };
        ordered.extend(next);
    }
    Ok(ordered)
}
