//! Kubernetes' regex library: `find` and `findAll` (`matches` is in the standard library).

use std::sync::Arc;

use cel::common::types::{INT_TYPE, STRING_TYPE};
use cel::{DeclarationError, Env, ExecutionError};

use super::{overload, string_arg};
use crate::Value;

pub(super) const FUNCTIONS: &[&str] = &["find", "findAll"];

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    env.add_member_overload(
        "find",
        "string_find_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string",
        STRING_TYPE,
        vec![STRING_TYPE],
        find_all,
    )?;
    env.add_member_overload(
        "findAll",
        "string_find_all_string_int",
        STRING_TYPE,
        vec![STRING_TYPE, INT_TYPE],
        find_all,
    )
}

fn compile(function: &str, pattern: &str) -> Result<regex::Regex, ExecutionError> {
    regex::Regex::new(pattern).map_err(|e| ExecutionError::function_error(function, e))
}

overload!(find, |args| {
    let text = string_arg("find", args, 0)?;
    let re = compile("find", string_arg("find", args, 1)?)?;
    let found = re.find(text).map_or("", |m| m.as_str());
    Ok(Value::String(Arc::new(found.to_owned())))
});

overload!(find_all, |args| {
    let text = string_arg("findAll", args, 0)?;
    let re = compile("findAll", string_arg("findAll", args, 1)?)?;
    let limit = match args.get(2) {
        Some(Value::Int(n)) if *n >= 0 => usize::try_from(*n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    let found: Vec<Value> = re
        .find_iter(text)
        .take(limit)
        .map(|m| Value::String(Arc::new(m.as_str().to_owned())))
        .collect();
    Ok(Value::List(Arc::new(found)))
});
