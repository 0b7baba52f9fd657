//! Kubernetes' lists library: `isSorted`, `sum`, `min`, `max`, `indexOf`, `lastIndexOf` on
//! lists of comparable elements.

use std::cmp::Ordering;

use cel::common::types::{DYN_TYPE, LIST_TYPE};
use cel::{DeclarationError, Env, ExecutionError};

use super::overload;
use crate::Value;

pub(super) const FUNCTIONS: &[&str] = &["isSorted", "sum", "min", "max", "indexOf", "lastIndexOf"];

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload("isSorted", "list_is_sorted", LIST_TYPE, vec![], is_sorted)?;
    env.add_member_overload("sum", "list_sum", LIST_TYPE, vec![], sum)?;
    env.add_member_overload("min", "list_min", LIST_TYPE, vec![], min)?;
    env.add_member_overload("max", "list_max", LIST_TYPE, vec![], max)?;
    env.add_member_overload(
        "indexOf",
        "list_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        index_of,
    )?;
    env.add_member_overload(
        "lastIndexOf",
        "list_last_index_of",
        LIST_TYPE,
        vec![DYN_TYPE],
        last_index_of,
    )
}

fn list<'a>(function: &str, args: &'a [Value]) -> Result<&'a [Value], ExecutionError> {
    match args.first() {
        Some(Value::List(items)) => Ok(items.as_slice()),
        other => Err(ExecutionError::function_error(
            function,
            format!("expected a list, got {other:?}"),
        )),
    }
}

fn compare(function: &str, a: &Value, b: &Value) -> Result<Ordering, ExecutionError> {
    a.partial_cmp(b)
        .ok_or_else(|| ExecutionError::ValuesNotComparable(a.clone(), b.clone()))
        .map_err(|e| ExecutionError::function_error(function, e))
}

overload!(is_sorted, |args| {
    let items = list("isSorted", args)?;
    for pair in items.windows(2) {
        if compare("isSorted", &pair[0], &pair[1])? == Ordering::Greater {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
});

overload!(sum, |args| {
    let items = list("sum", args)?;
    let mut total = match items.first() {
        Some(Value::Float(_)) => Value::Float(0.0),
        Some(Value::UInt(_)) => Value::UInt(0),
        Some(Value::Duration(_)) => Value::Duration(Default::default()),
        _ => Value::Int(0),
    };
    for item in items {
        total = match (&total, item) {
            (Value::Int(a), Value::Int(b)) => Value::Int(
                a.checked_add(*b)
                    .ok_or_else(|| ExecutionError::function_error("sum", "integer overflow"))?,
            ),
            (Value::UInt(a), Value::UInt(b)) => Value::UInt(
                a.checked_add(*b)
                    .ok_or_else(|| ExecutionError::function_error("sum", "integer overflow"))?,
            ),
            (Value::Float(a), Value::Float(b)) => Value::Float(a + b),
            (Value::Duration(a), Value::Duration(b)) => Value::Duration(*a + *b),
            (_, other) => {
                return Err(ExecutionError::function_error(
                    "sum",
                    format!("cannot add {other:?}"),
                ));
            }
        };
    }
    Ok(total)
});

fn extreme(function: &str, args: &[Value], keep: Ordering) -> Result<Value, ExecutionError> {
    let items = list(function, args)?;
    let Some(mut best) = items.first() else {
        return Err(ExecutionError::function_error(
            function,
            format!("{function} called on empty list"),
        ));
    };
    for item in &items[1..] {
        if compare(function, item, best)? == keep {
            best = item;
        }
    }
    Ok(best.clone())
}

overload!(min, |args| extreme("min", args, Ordering::Less));
overload!(max, |args| extreme("max", args, Ordering::Greater));

overload!(index_of, |args| {
    let items = list("indexOf", args)?;
    let position = items.iter().position(|i| Some(i) == args.get(1));
    Ok(Value::Int(position.map_or(-1, |p| p as i64)))
});

overload!(last_index_of, |args| {
    let items = list("lastIndexOf", args)?;
    let position = items.iter().rposition(|i| Some(i) == args.get(1));
    Ok(Value::Int(position.map_or(-1, |p| p as i64)))
});
