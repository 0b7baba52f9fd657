//! An estimate of what evaluating an expression costs, checked against upstream's per-call
//! limit before the expression runs.
//!
//! Upstream counts one unit per evaluation step as the interpreter runs and cancels at
//! `PerCallLimit`. The interpreter used here has no such hook, so the cost is estimated
//! ahead of the run the way upstream's static estimator does: every node costs one unit, a
//! comprehension costs its body once per element, where an element count is bounded by the
//! largest list or map in the inputs, and a function that walks a string costs a tenth of
//! the longest string in the inputs. Nested loops multiply, so a rule that is quadratic over
//! a large list is refused, and a rule over small inputs is not. Strings only weigh on the
//! functions that walk them: a long annotation value does not make a loop over a short map
//! expensive (upstream's actual cost of `self.all(k, k.matches(…))` over a map with 16 keys
//! is 16 times the match of one key).

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

use crate::Value;

/// Upstream's `PerCallLimit`: the most one evaluation may cost.
pub const PER_CALL_LIMIT: u64 = 1_000_000;

/// How large the inputs of an evaluation are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// The most elements of any list or map.
    pub(crate) items: u64,
    /// The most bytes of any string.
    pub(crate) chars: u64,
}

impl Bounds {
    /// The bounds of `value`, widened to cover `self` too.
    pub(crate) fn include(self, value: &Value) -> Bounds {
        match value {
            Value::List(items) => items.iter().fold(
                Bounds {
                    items: self.items.max(items.len() as u64),
                    ..self
                },
                |b, v| b.include(v),
            ),
            Value::Map(map) => map.map.iter().fold(
                Bounds {
                    items: self.items.max(map.map.len() as u64),
                    ..self
                },
                |b, (k, v)| {
                    let key = match k {
                        cel::objects::Key::String(s) => s.len() as u64,
                        _ => 0,
                    };
                    Bounds {
                        chars: b.chars.max(key),
                        ..b
                    }
                    .include(v)
                },
            ),
            Value::String(s) => Bounds {
                chars: self.chars.max(s.len() as u64),
                ..self
            },
            Value::Bytes(b) => Bounds {
                chars: self.chars.max(b.len() as u64),
                ..self
            },
            _ => self,
        }
    }
}

/// The estimated cost of `expr` when every collection it iterates holds at most
/// `bounds.items` elements and every string at most `bounds.chars` bytes.
pub(crate) fn estimate(expr: &IdedExpr, bounds: Bounds) -> u64 {
    let e = |x: &IdedExpr| estimate(x, bounds);
    let strings = bounds.chars / 10 + 1;
    let lists = bounds.items + 1;
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
            // Functions that walk a string or a list cost its size once more.
            let walk = match call.func_name.as_str() {
                "matches" | "find" | "findAll" | "contains" | "startsWith" | "endsWith"
                | "split" | "replace" | "lowerAscii" | "upperAscii" | "trim" | "substring"
                | "charAt" => strings,
                "sum" | "min" | "max" | "isSorted" | "@in" | "distinct" | "flatten" | "reverse"
                | "slice" | "sort" => lists,
                "join" | "indexOf" | "lastIndexOf" => strings.max(lists),
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
                .saturating_add(body.saturating_mul(bounds.items.max(1)))
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
