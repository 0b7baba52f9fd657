//! Kubernetes' quantity library (upstream library/quantity.go).

use std::cmp::Ordering;
use std::sync::Arc;

use cel::common::types::{DYN_TYPE, STRING_TYPE};
use cel::objects::Opaque;
use cel::{DeclarationError, Env, ExecutionError};
use rkube_api::quota::{Milli, parse_quantity};

use super::{opaque_arg, overload, string_arg};
use crate::Value;

pub(super) const FUNCTIONS: &[&str] = &[
    "quantity",
    "isQuantity",
    "isInteger",
    "asInteger",
    "asApproximateFloat",
    "sign",
    "add",
    "sub",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
];

/// A quantity, in thousandths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Quantity(Milli);

impl Opaque for Quantity {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.Quantity"
    }
}

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_overload(
        "quantity",
        "string_to_quantity",
        vec![STRING_TYPE],
        to_quantity,
    )?;
    env.add_overload(
        "isQuantity",
        "is_quantity_string",
        vec![STRING_TYPE],
        is_quantity,
    )?;
    for (name, op) in [
        ("isInteger", is_integer as cel::common::functions::Function),
        ("asInteger", as_integer),
        ("asApproximateFloat", as_approximate_float),
        ("sign", sign),
    ] {
        env.add_member_overload(name, &format!("quantity_{name}"), DYN_TYPE, vec![], op)?;
    }
    for (name, op) in [
        ("add", add as cel::common::functions::Function),
        ("sub", sub),
        ("isGreaterThan", is_greater_than),
        ("isLessThan", is_less_than),
        ("compareTo", compare_to),
    ] {
        env.add_member_overload(
            name,
            &format!("quantity_{name}"),
            DYN_TYPE,
            vec![DYN_TYPE],
            op,
        )?;
    }
    Ok(())
}

fn milli(function: &str, args: &[Value], index: usize) -> Result<i128, ExecutionError> {
    match args.get(index) {
        Some(Value::Int(i)) => Ok(i128::from(*i) * 1000),
        _ => opaque_arg::<Quantity>(function, args, index).map(|q| q.0.0),
    }
}

fn quantity(m: i128) -> Value {
    Value::Opaque(Arc::new(Quantity(Milli(m))))
}

overload!(to_quantity, |args| {
    let text = string_arg("quantity", args, 0)?;
    let (m, _) = parse_quantity(text).ok_or_else(|| {
        ExecutionError::function_error(
            "quantity",
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        )
    })?;
    Ok(quantity(m.0))
});

overload!(is_quantity, |args| Ok(Value::Bool(
    parse_quantity(string_arg("isQuantity", args, 0)?).is_some()
)));

overload!(is_integer, |args| {
    let m = milli("isInteger", args, 0)?;
    Ok(Value::Bool(
        m % 1000 == 0 && i64::try_from(m / 1000).is_ok(),
    ))
});

overload!(as_integer, |args| {
    let m = milli("asInteger", args, 0)?;
    if m % 1000 != 0 {
        return Err(ExecutionError::function_error(
            "asInteger",
            "cannot convert value to integer",
        ));
    }
    i64::try_from(m / 1000)
        .map(Value::Int)
        .map_err(|_| ExecutionError::function_error("asInteger", "cannot convert value to integer"))
});

overload!(as_approximate_float, |args| Ok(Value::Float(
    milli("asApproximateFloat", args, 0)? as f64 / 1000.0
)));

overload!(sign, |args| Ok(Value::Int(
    milli("sign", args, 0)?.signum() as i64
)));

overload!(add, |args| Ok(quantity(
    milli("add", args, 0)? + milli("add", args, 1)?
)));

overload!(sub, |args| Ok(quantity(
    milli("sub", args, 0)? - milli("sub", args, 1)?
)));

fn ordering(function: &str, args: &[Value]) -> Result<Ordering, ExecutionError> {
    Ok(milli(function, args, 0)?.cmp(&milli(function, args, 1)?))
}

overload!(is_greater_than, |args| Ok(Value::Bool(
    ordering("isGreaterThan", args)? == Ordering::Greater
)));

overload!(is_less_than, |args| Ok(Value::Bool(
    ordering("isLessThan", args)? == Ordering::Less
)));

overload!(compare_to, |args| Ok(Value::Int(
    ordering("compareTo", args)? as i64
)));
