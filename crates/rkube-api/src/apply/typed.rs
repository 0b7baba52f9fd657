//! The walks over typed values that server-side apply is made of, as structured-merge-diff's
//! `typed` package does them: the set of fields a value sets, merging a configuration into
//! a live object, comparing two objects, and removing a set of fields from an object.
//!
//! Callers check nesting depth first (`super::within_depth`), so recursion is bounded.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::fieldset::{FieldSet, PathElement, values_equal};
use super::schema::{ListKind, Ty};

/// Whether a list of this type is associative (its items tracked one by one).
fn associative(ty: Ty) -> bool {
    matches!(ty, Ty::List(_))
}

/// The path element naming one item of an associative list.
pub(super) fn item_element(ty: Ty, item: &Value) -> Result<PathElement, String> {
    let Ty::List(spec) = ty else {
        return Err("invalid indexing of non-associative list".to_owned());
    };
    match &spec.kind {
        ListKind::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".to_owned())
            }
            Value::Array(_) => {
                Err("not supported: associative list with lists as elements".to_owned())
            }
            Value::Null => Err(
                "associative list without keys has an element that's an explicit null".to_owned(),
            ),
            scalar => Ok(PathElement::Value(scalar.clone())),
        },
        ListKind::Map(keys) => {
            let Value::Object(map) = item else {
                return Err(if item.is_null() {
                    "associative list with keys may not have a null element".to_owned()
                } else {
                    "associative list with keys may not have non-map elements".to_owned()
                });
            };
            let mut fields: Vec<(String, Value)> = keys
                .iter()
                .filter_map(|key| {
                    let value = map
                        .get(key.name)
                        .cloned()
                        .or_else(|| key.default.map(|d| Value::String(d.to_owned())))?;
                    Some((key.name.to_owned(), value))
                })
                .collect();
            if fields.is_empty() {
                let names: Vec<&str> = keys.iter().map(|k| k.name).collect();
                return Err(format!(
                    "associative list with keys has an element that omits all key fields {names:?} (and doesn't have default values for any key fields)"
                ));
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(PathElement::Key(fields))
        }
    }
}

/// The set of fields `value` sets, as upstream's `ToFieldSet`: every scalar, every atomic
/// value, every list item, every empty or null map field, and every map key that is not a
/// declared struct field.
pub(super) fn to_field_set(value: &Value, ty: Ty) -> Result<FieldSet, String> {
    let mut set = FieldSet::new();
    walk_fields(value, ty, &mut Vec::new(), &mut set)?;
    Ok(set)
}

fn walk_fields(
    value: &Value,
    ty: Ty,
    path: &mut Vec<PathElement>,
    set: &mut FieldSet,
) -> Result<(), String> {
    match value {
        Value::Array(items) if associative(ty) => {
            let elements = items
                .iter()
                .map(|item| item_element(ty, item))
                .collect::<Result<Vec<_>, _>>()?;
            let mut seen: BTreeMap<&PathElement, usize> = BTreeMap::new();
            for element in &elements {
                *seen.entry(element).or_default() += 1;
            }
            for (element, item) in elements.iter().zip(items) {
                path.push(element.clone());
                // A duplicated item is owned as a whole, never field by field.
                if seen.get(element).copied().unwrap_or(0) < 2 {
                    walk_fields(item, ty.item(), path, set)?;
                }
                set.insert(path);
                path.pop();
            }
        }
        Value::Object(map) if !matches!(ty, Ty::Atomic) => {
            for (key, child) in map {
                path.push(PathElement::Field(key.clone()));
                walk_fields(child, ty.field(key), path, set)?;
                let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                if empty || !ty.declares_fields() {
                    set.insert(path);
                }
                path.pop();
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

/// Merges `config` into `live` as upstream's typed merge: scalars and atomic values are
/// replaced, maps merge key by key, associative lists item by item, keeping the live
/// items' order and placing the configuration's new items where it has them.
pub(super) fn merge(
    live: Option<&Value>,
    config: Option<&Value>,
    ty: Ty,
) -> Result<Option<Value>, String> {
    let (live, config) = match (live, config) {
        (None, None) => return Ok(None),
        (Some(l), None) => return Ok(Some(l.clone())),
        (None, Some(c)) => return Ok(Some(c.clone())),
        (Some(l), Some(c)) => (l, c),
    };
    match (live, config) {
        (Value::Object(l), Value::Object(c))
            if !(matches!(ty, Ty::Atomic) || l.is_empty() && c.is_empty()) =>
        {
            let mut out = Map::new();
            for (key, lv) in l {
                if let Some(merged) = merge(Some(lv), c.get(key), ty.field(key))? {
                    out.insert(key.clone(), merged);
                }
            }
            for (key, cv) in c {
                if !l.contains_key(key) {
                    out.insert(key.clone(), cv.clone());
                }
            }
            Ok(Some(Value::Object(out)))
        }
        (Value::Array(l), Value::Array(c))
            if associative(ty) && !(l.is_empty() && c.is_empty()) =>
        {
            merge_list(l, c, ty).map(|items| Some(Value::Array(items)))
        }
        _ => Ok(Some(config.clone())),
    }
}

/// Upstream's ordering of a merged associative list: live items stay in place; items the
/// configuration shares with the live list follow the configuration's order; items only in
/// the configuration come where the configuration puts them.
fn merge_list(live: &[Value], config: &[Value], ty: Ty) -> Result<Vec<Value>, String> {
    let config_elements = config
        .iter()
        .map(|item| item_element(ty, item))
        .collect::<Result<Vec<_>, _>>()?;
    let mut config_index: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (i, element) in config_elements.iter().enumerate() {
        if config_index.insert(element, i).is_some() {
            return Err(format!("duplicate entries for key {element}"));
        }
    }
    let live_elements = live
        .iter()
        .map(|item| item_element(ty, item))
        .collect::<Result<Vec<_>, _>>()?;
    let mut live_index: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (i, element) in live_elements.iter().enumerate() {
        live_index.entry(element).or_insert(i);
    }
    let mut shared = config_elements
        .iter()
        .filter(|e| live_index.contains_key(e))
        .peekable();
    let mut next_shared = shared.next();
    let mut merged_config: Vec<&PathElement> = Vec::new();
    let mut out = Vec::with_capacity(live.len().max(config.len()));
    let item = |element: &PathElement| -> Result<Option<Value>, String> {
        let l = live_index.get(element).map(|&i| &live[i]);
        let c = config_index.get(element).map(|&i| &config[i]);
        merge(l, c, ty.item())
    };
    let (mut li, mut ri) = (0, 0);
    while li < live_elements.len() || ri < config_elements.len() {
        if li < live_elements.len() && ri < config_elements.len() {
            let element = &live_elements[li];
            if *element == config_elements[ri] {
                merged_config.push(element);
                out.extend(item(element)?);
                li += 1;
                ri += 1;
                next_shared = shared.next();
                continue;
            }
            if config_index.contains_key(element) && next_shared.is_some_and(|n| n != element) {
                li += 1;
                continue;
            }
        }
        if li < live_elements.len() {
            let element = &live_elements[li];
            if !config_index.contains_key(element) {
                out.extend(merge(Some(&live[li]), None, ty.item())?);
                li += 1;
                continue;
            } else if merged_config.contains(&element) {
                li += 1;
            }
        }
        if ri < config_elements.len() {
            let element = &config_elements[ri];
            merged_config.push(element);
            out.extend(item(element)?);
            ri += 1;
            if next_shared == Some(element) {
                next_shared = shared.next();
            }
        }
    }
    Ok(out)
}

/// What changed between two objects, as upstream's `Comparison`.
#[derive(Debug, Default)]
pub(super) struct Comparison {
    /// Paths present in both with different values.
    pub(super) modified: FieldSet,
    /// Paths only in the new object.
    pub(super) added: FieldSet,
    /// Paths only in the old object.
    pub(super) removed: FieldSet,
}

impl Comparison {
    /// Drops the paths in `ignored` and everything below them.
    pub(super) fn exclude(self, ignored: &FieldSet) -> Comparison {
        Comparison {
            modified: self.modified.recursive_difference(ignored),
            added: self.added.recursive_difference(ignored),
            removed: self.removed.recursive_difference(ignored),
        }
    }
}

/// Compares `old` with `new`.
pub(super) fn compare(old: &Value, new: &Value, ty: Ty) -> Result<Comparison, String> {
    let mut out = Comparison::default();
    compare_at(Some(old), Some(new), ty, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn compare_at(
    old: Option<&Value>,
    new: Option<&Value>,
    ty: Ty,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) -> Result<(), String> {
    // A null on one side reads as an empty map or list (upstream derefs it to nil), so a
    // field the old object had as `null` is not "added" when it gets items.
    let objects = [old, new].map(|v| v.filter(|v| !v.is_null()).map(Value::as_object));
    let arrays = [old, new].map(|v| v.filter(|v| !v.is_null()).map(Value::as_array));
    let granular_map = !matches!(ty, Ty::Atomic)
        && objects.iter().all(|o| !matches!(o, Some(None)))
        && objects
            .iter()
            .any(|o| matches!(o, Some(Some(m)) if !m.is_empty()));
    let granular_list = associative(ty)
        && arrays.iter().all(|a| !matches!(a, Some(None)))
        && arrays
            .iter()
            .any(|a| matches!(a, Some(Some(l)) if !l.is_empty()));
    if granular_map {
        let empty = Map::new();
        let [o, n] = objects.map(|o| o.flatten().unwrap_or(&empty));
        // Both maps iterate in key order: walk them side by side.
        let (mut o, mut n) = (o.iter().peekable(), n.iter().peekable());
        loop {
            let (key, ov, nv) = match (o.peek(), n.peek()) {
                (None, None) => break,
                (Some(&(ok, ov)), Some(&(nk, nv))) => match ok.cmp(nk) {
                    std::cmp::Ordering::Less => {
                        o.next();
                        (ok, Some(ov), None)
                    }
                    std::cmp::Ordering::Greater => {
                        n.next();
                        (nk, None, Some(nv))
                    }
                    std::cmp::Ordering::Equal => {
                        o.next();
                        n.next();
                        (ok, Some(ov), Some(nv))
                    }
                },
                (Some(&(ok, ov)), None) => {
                    o.next();
                    (ok, Some(ov), None)
                }
                (None, Some(&(nk, nv))) => {
                    n.next();
                    (nk, None, Some(nv))
                }
            };
            path.push(PathElement::Field(key.clone()));
            compare_at(ov, nv, ty.field(key), path, out)?;
            path.pop();
        }
    } else if granular_list {
        let [o, n] = arrays.map(|a| a.flatten().map_or(&[][..], Vec::as_slice));
        compare_lists(o, n, ty, path, out)?;
    } else {
        match (old, new) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(o), Some(n)) if !values_equal(o, n) => out.modified.insert(path),
            _ => {}
        }
        return Ok(());
    }
    match (old, new) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
    Ok(())
}

/// What creating `new` sets, as [`compare`] of `zero` (the kind's empty object) with `new`
/// filled with `zero`'s fields ([`super::zero::with_zero_values`]) finds it, without building
/// the filled copy: a key only `zero` has compares equal and changes nothing, and nothing
/// is filled below a key `zero` lacks. The paths go to `out.added` and `out.modified`;
/// `out.removed` gets what a create never uses.
pub(super) fn compare_created(
    zero: Option<&Value>,
    new: &Value,
    ty: Ty,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) -> Result<(), String> {
    let Some(zero) = zero else {
        return compare_at(None, Some(new), ty, path, out);
    };
    let non_null = |v: &Value| !v.is_null();
    let z_map = Some(zero).filter(|v| non_null(v)).map(Value::as_object);
    let n_map = Some(new).filter(|v| non_null(v)).map(Value::as_object);
    let non_empty =
        |m: Option<Option<&Map<String, Value>>>| matches!(m, Some(Some(m)) if !m.is_empty());
    let granular_map = !matches!(ty, Ty::Atomic)
        && !matches!(z_map, Some(None))
        && !matches!(n_map, Some(None))
        && (non_empty(z_map) || non_empty(n_map));
    if granular_map {
        if let Some(Some(n)) = n_map {
            let z = z_map.flatten();
            for (key, child) in n {
                path.push(PathElement::Field(key.clone()));
                compare_created(z.and_then(|z| z.get(key)), child, ty.field(key), path, out)?;
                path.pop();
            }
        }
        return Ok(());
    }
    let z_list = Some(zero).filter(|v| non_null(v)).map(Value::as_array);
    let n_list = Some(new).filter(|v| non_null(v)).map(Value::as_array);
    let non_empty = |l: Option<Option<&Vec<Value>>>| matches!(l, Some(Some(l)) if !l.is_empty());
    let granular_list = associative(ty)
        && !matches!(z_list, Some(None))
        && !matches!(n_list, Some(None))
        && (non_empty(z_list) || non_empty(n_list));
    if granular_list {
        fn items(l: Option<Option<&Vec<Value>>>) -> &[Value] {
            l.flatten().map_or(&[][..], Vec::as_slice)
        }
        return compare_lists(items(z_list), items(n_list), ty, path, out);
    }
    let filled;
    let new = if zero.is_object() && new.is_object() {
        filled = super::zero::with_zero_values(new, zero);
        &filled
    } else {
        new
    };
    if !values_equal(zero, new) {
        out.modified.insert(path);
    }
    Ok(())
}

fn compare_lists(
    old: &[Value],
    new: &[Value],
    ty: Ty,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) -> Result<(), String> {
    let mut order: Vec<PathElement> = Vec::new();
    let mut olds: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
    let mut news: BTreeMap<PathElement, Vec<&Value>> = BTreeMap::new();
    for item in old {
        let element = item_element(ty, item)?;
        if !olds.contains_key(&element) {
            order.push(element.clone());
        }
        olds.entry(element).or_default().push(item);
    }
    for item in new {
        let element = item_element(ty, item)?;
        if !olds.contains_key(&element) && !news.contains_key(&element) {
            order.push(element.clone());
        }
        news.entry(element).or_default().push(item);
    }
    for element in order {
        let o = olds.get(&element).map_or(&[][..], Vec::as_slice);
        let n = news.get(&element).map_or(&[][..], Vec::as_slice);
        path.push(element);
        match (o.len(), n.len()) {
            (0..=1, 0..=1) => {
                compare_at(o.first().copied(), n.first().copied(), ty.item(), path, out)?
            }
            (2.., 2..) => {
                let same = o.len() == n.len() && o.iter().zip(n).all(|(a, b)| values_equal(a, b));
                if !same {
                    out.modified.insert(path);
                }
            }
            (2.., _) => {
                if let Some(first) = n.first() {
                    compare_at(None, Some(first), ty.item(), path, out)?;
                }
                out.removed.insert(path);
            }
            (_, _) => {
                if let Some(first) = o.first() {
                    compare_at(Some(first), None, ty.item(), path, out)?;
                }
                out.added.insert(path);
            }
        }
        path.pop();
    }
    Ok(())
}

/// `value` without the paths in `remove` (a member goes whole, with everything below it).
/// `None` when nothing is left of a map or list.
pub(super) fn remove_items(value: &Value, remove: &FieldSet, ty: Ty) -> Option<Value> {
    match value {
        Value::Object(map) if !map.is_empty() && !matches!(ty, Ty::Atomic) => {
            let mut out = Map::new();
            for (key, child) in map {
                let element = PathElement::Field(key.clone());
                if remove.has_member(&element) {
                    continue;
                }
                let kept = match remove.child(&element) {
                    Some(below) => remove_items(child, below, ty.field(key)),
                    None => Some(child.clone()),
                };
                if let Some(kept) = kept {
                    out.insert(key.clone(), kept);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) if !items.is_empty() && associative(ty) => {
            let mut out = Vec::new();
            for item in items {
                let Ok(element) = item_element(ty, item) else {
                    out.push(item.clone());
                    continue;
                };
                if remove.has_member(&element) {
                    continue;
                }
                let kept = match remove.child(&element) {
                    Some(below) => remove_items(item, below, ty.item()),
                    None => Some(item.clone()),
                };
                out.extend(kept);
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        _ => Some(value.clone()),
    }
}
