//! cel-go's sets extension, which Kubernetes includes: `sets.contains`, `sets.equivalent`
//! and `sets.intersects` over lists taken as sets.

use cel::common::types::LIST_TYPE;
use cel::{DeclarationError, Env, ExecutionError};

use super::overload;
use crate::Value;

pub(super) const FUNCTIONS: &[&str] = &["sets.contains", "sets.equivalent", "sets.intersects"];

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    let lists = || vec![LIST_TYPE, LIST_TYPE];
    env.add_overload(
        "sets.contains",
        "list_sets_contains_list",
        lists(),
        contains,
    )?;
    env.add_overload(
        "sets.equivalent",
        "list_sets_equivalent_list",
        lists(),
        equivalent,
    )?;
    env.add_overload(
        "sets.intersects",
        "list_sets_intersects_list",
        lists(),
        intersects,
    )
}

fn pair<'a>(
    function: &str,
    args: &'a [Value],
) -> Result<(&'a [Value], &'a [Value]), ExecutionError> {
    match args {
        [Value::List(a), Value::List(b)] => Ok((a.as_slice(), b.as_slice())),
        _ => Err(ExecutionError::function_error(
            function,
            "expected two lists",
        )),
    }
}

fn covers(a: &[Value], b: &[Value]) -> bool {
    b.iter().all(|x| a.contains(x))
}

overload!(contains, |args| {
    let (a, b) = pair("sets.contains", args)?;
    Ok(Value::Bool(covers(a, b)))
});

overload!(equivalent, |args| {
    let (a, b) = pair("sets.equivalent", args)?;
    Ok(Value::Bool(covers(a, b) && covers(b, a)))
});

overload!(intersects, |args| {
    let (a, b) = pair("sets.intersects", args)?;
    Ok(Value::Bool(b.iter().any(|x| a.contains(x))))
});
