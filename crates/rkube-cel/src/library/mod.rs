//! The Kubernetes CEL libraries, registered on top of the standard library.
//!
//! Upstream: staging/src/k8s.io/apiserver/pkg/cel/library (lists, regex, urls, ip, cidr,
//! quantity) and cel-go's strings, lists and sets extensions.

mod lists;
mod net;
mod quantity;
mod regexp;
mod sets;
mod url;

use cel::ExecutionError;
use cel::common::value::{CowVal, Val};

use crate::Value;

/// The environment: standard library, cel-go's strings and lists extensions, Kubernetes'
/// libraries.
pub(crate) fn environment() -> cel::Env {
    let mut env = cel::Env::stdlib();
    // These registrations only fail on a name declared twice, which is a programming error
    // caught by every test that compiles an expression.
    let registered = env
        .add_extension(cel::extensions::strings)
        .and_then(|()| env.add_extension(cel::extensions::lists))
        .and_then(|()| lists::register(&mut env))
        .and_then(|()| regexp::register(&mut env))
        .and_then(|()| sets::register(&mut env))
        .and_then(|()| url::register(&mut env))
        .and_then(|()| net::register(&mut env))
        .and_then(|()| quantity::register(&mut env));
    if let Err(e) = registered {
        panic!("registering the Kubernetes CEL libraries: {e}");
    }
    env
}

/// The functions the environment declares, for the compile-time check. Operators (`_+_`,
/// `@in`, `!_`…) are always known.
pub(crate) fn is_function(name: &str) -> bool {
    if name.starts_with(['_', '@', '!']) {
        return true;
    }
    const STANDARD: &[&str] = &[
        "size",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "type",
        "dyn",
        "duration",
        "timestamp",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "getFullYear",
        "getMonth",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
        // optional types
        "optional.of",
        "optional.none",
        "optional.ofNonZeroValue",
        "hasValue",
        "value",
        "or",
        "orValue",
        // cel-go strings extension
        "charAt",
        "indexOf",
        "lastIndexOf",
        "join",
        "lowerAscii",
        "upperAscii",
        "trim",
        "replace",
        "split",
        "substring",
        "format",
        "strings.quote",
        "reverse",
        // cel-go lists extension
        "slice",
        "flatten",
        "distinct",
        "sort",
        "sortBy",
        "lists.range",
    ];
    STANDARD.contains(&name)
        || lists::FUNCTIONS.contains(&name)
        || regexp::FUNCTIONS.contains(&name)
        || sets::FUNCTIONS.contains(&name)
        || url::FUNCTIONS.contains(&name)
        || net::FUNCTIONS.contains(&name)
        || quantity::FUNCTIONS.contains(&name)
}

/// The overload arguments as `Value`s.
pub(crate) fn values(args: &[CowVal<'_, '_>]) -> Result<Vec<Value>, ExecutionError> {
    args.iter().map(|a| Value::try_from(a.as_ref())).collect()
}

/// A `Value` as an overload's result.
pub(crate) fn owned<'b, 'v>(value: Value) -> Result<CowVal<'b, 'v>, ExecutionError> {
    let boxed: Box<dyn Val> = value.try_into()?;
    Ok(CowVal::Owned(boxed))
}

/// Declares `fn $name` as an overload that takes and returns `Value`s through `$body`.
macro_rules! overload {
    ($name:ident, $body:expr) => {
        fn $name<'b, 'v>(
            args: Vec<cel::common::value::CowVal<'b, 'v>>,
        ) -> Result<cel::common::value::CowVal<'b, 'v>, cel::ExecutionError> {
            let args = $crate::library::values(&args)?;
            let body: fn(&[$crate::Value]) -> Result<$crate::Value, cel::ExecutionError> = $body;
            $crate::library::owned(body(&args)?)
        }
    };
}
pub(crate) use overload;

/// The argument at `index` as a string.
pub(crate) fn string_arg<'a>(
    function: &str,
    args: &'a [Value],
    index: usize,
) -> Result<&'a str, ExecutionError> {
    match args.get(index) {
        Some(Value::String(s)) => Ok(s.as_str()),
        other => Err(ExecutionError::function_error(
            function,
            format!("expected a string argument, got {other:?}"),
        )),
    }
}

/// The opaque value at `index` as a `T`.
pub(crate) fn opaque_arg<'a, T: 'static>(
    function: &str,
    args: &'a [Value],
    index: usize,
) -> Result<&'a T, ExecutionError> {
    match args.get(index) {
        Some(Value::Opaque(o)) => o.downcast_ref::<T>().ok_or_else(|| {
            ExecutionError::function_error(
                function,
                format!("no such overload for {}", o.runtime_type_name()),
            )
        }),
        other => Err(ExecutionError::function_error(
            function,
            format!("no such overload for {other:?}"),
        )),
    }
}
