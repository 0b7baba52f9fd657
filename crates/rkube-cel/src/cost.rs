//! An estimate of what evaluating an expression costs, checked against upstream's per-call
//! limit before the expression runs.
//!
//! Upstream counts one unit per evaluation step as the interpreter runs and cancels at
//! `PerCallLimit`. The interpreter used here has no such hook, so the cost is estimated
//! ahead of the run the way upstream's static estimator does: every node costs one unit and
//! a comprehension costs its body once per element, where an element count is bounded by
//! the largest list, map or string in the inputs. Nested loops multiply, so a rule that is
//! quadratic over a large list is refused, and a rule over small inputs is not.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

use crate::Value;

/// Upstream's `PerCallLimit`: the most one evaluation may cost.
pub const PER_CALL_LIMIT: u64 = 1_000_000;

/// The size of the largest list or map (or the longest string) in `value`.
pub(crate) fn largest_collection(value: &Value) -> u64 {
    match value {
        Value::List(items) => items
            .iter()
            .map(largest_collection)
            .max()
            .unwrap_or(0)
            .max(items.len() as u64),
        Value::Map(map) => map
            .map
            .values()
            .map(largest_collection)
            .max()
            .unwrap_or(0)
            .max(map.map.len() as u64),
        Value::String(s) => s.len() as u64,
        _ => 0,
    }
}

/// The estimated cost of `expr` when every collection it iterates holds at most `bound`
/// elements.
pub(crate) fn estimate(expr: &IdedExpr, bound: u64) -> u64 {
    let e = |x: &IdedExpr| estimate(x, bound);
    match &expr.expr {
        Expr::Literal(_) | Expr::Unspecified => 0,
        Expr::Ident(_) => 1,
        Expr::Select(s) => 1u64.saturating_add(e(&s.operand)),
        Expr::Call(call) => {
            let args = call
                .args
                .iter()
                .fold(0u64, |sum, a| sum.saturating_add(e(a)));
            let target = call.target.as_deref().map_or(0, e);
            // Functions that walk a string or list cost its size once more.
            let walk = match call.func_name.as_str() {
                "matches" | "find" | "findAll" | "contains" | "startsWith" | "endsWith"
                | "split" | "replace" | "join" | "indexOf" | "lastIndexOf" | "sum" | "min"
                | "max" | "isSorted" | "@in" => bound / 10 + 1,
                _ => 1,
            };
            args.saturating_add(target).saturating_add(walk)
        }
        Expr::Comprehension(c) => {
            let body = e(&c.loop_cond)
                .saturating_add(e(&c.loop_step))
                .saturating_add(1);
            e(&c.iter_range)
                .saturating_add(e(&c.accu_init))
                .saturating_add(e(&c.result))
                .saturating_add(body.saturating_mul(bound.max(1)))
        }
        Expr::List(list) => list
            .elements
            .iter()
            .fold(1u64, |sum, x| sum.saturating_add(e(x))),
        Expr::Map(map) => map
            .entries
            .iter()
            .fold(1u64, |sum, entry| match &entry.expr {
                EntryExpr::MapEntry(m) => sum.saturating_add(e(&m.key)).saturating_add(e(&m.value)),
                EntryExpr::StructField(f) => sum.saturating_add(e(&f.value)),
            }),
        Expr::Struct(s) => s.entries.iter().fold(1u64, |sum, entry| match &entry.expr {
            EntryExpr::MapEntry(m) => sum.saturating_add(e(&m.key)).saturating_add(e(&m.value)),
            EntryExpr::StructField(f) => sum.saturating_add(e(&f.value)),
        }),
    }
}
