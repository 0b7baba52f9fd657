//! The static cost estimate of an expression from the schema of the node it runs on, as
//! upstream computes it when a CustomResourceDefinition is written: cel-go's
//! `checker.Cost` (checker/cost.go) with the Kubernetes libraries' call costs
//! (apiserver/pkg/cel/library/cost.go) and apiextensions' size estimator, which reads the size
//! of a value from the schema node its field path leads to.
//!
//! Only the worst case is kept. Each node costs what cel-go charges for it: an identifier or a
//! field selection 1, a literal 0, a list literal 10, a map literal 30, most calls 1 plus their
//! arguments; string functions a tenth of the string's largest size (`matches` that times a
//! quarter of the pattern's size); a comprehension (`all`, `exists`, `map`, `filter`…) its
//! step and condition once per element of its range's largest size. There is no type checker
//! here, so an operand's type is inferred from the schema and the literals, which is all the
//! overload choices below need.
//!
//! Upstream quirks kept so that estimates agree: sizes come from the schema node a path
//! leads to before any other source, and a path with no root variable has its first step
//! dropped (so an element of a computed list is sized as the rule's own node).

mod schema;
#[cfg(test)]
mod tests;

use cel::common::ast::{CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue};

pub use schema::SchemaType;
use schema::{Kind, Segment};

/// cel-go's `StringTraversalCostFactor`: walking a string costs a tenth per byte.
const STRING_TRAVERSAL: f64 = 0.1;
/// cel-go's `RegexStringLengthCostFactor`: a regular expression costs a quarter per byte.
const REGEX_LENGTH: f64 = 0.25;
/// Upstream's `MaxNameFormatRegexSize`, the pattern size of the `format` library's names.
const NAME_FORMAT_REGEX_SIZE: f64 = 128.0;

/// The smallest and largest size of a value (bytes of a string, elements of a list or map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    min: u64,
    max: u64,
}

const UNKNOWN: Size = Size {
    min: 0,
    max: u64::MAX,
};

impl Size {
    fn fixed(n: u64) -> Size {
        Size { min: n, max: n }
    }

    fn union(self, other: Size) -> Size {
        Size {
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    fn add(self, other: Size) -> Size {
        Size {
            min: self.min.saturating_add(other.min),
            max: self.max.saturating_add(other.max),
        }
    }

    fn mul(self, other: Size) -> Size {
        Size {
            min: self.min.saturating_mul(other.min),
            max: self.max.saturating_mul(other.max),
        }
    }
}

/// cel-go's `multiplyByCostFactor`: the product rounded up, saturating.
fn factor(x: u64, f: f64) -> u64 {
    let product = x as f64 * f;
    if product >= 18_446_744_073_709_551_616.0 {
        u64::MAX
    } else {
        product.ceil() as u64
    }
}

/// The inferred type of an expression: enough to choose among overloads.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Duration,
    Timestamp,
    List(Box<Ty>),
    Map(Box<Ty>),
    Object,
    Dyn,
}

impl Ty {
    fn of(node: &SchemaType) -> Ty {
        match &node.kind {
            Kind::Object(_) => Ty::Object,
            Kind::List(e) => Ty::List(Box::new(Ty::of(e))),
            Kind::Map(v) => Ty::Map(Box::new(Ty::of(v))),
            Kind::String => Ty::String,
            Kind::Bytes => Ty::Bytes,
            Kind::Duration => Ty::Duration,
            Kind::Timestamp => Ty::Timestamp,
            Kind::Int => Ty::Int,
            Kind::Double => Ty::Double,
            Kind::Bool => Ty::Bool,
            Kind::Dyn => Ty::Dyn,
        }
    }

    /// cel-go's `isScalar`: a value whose size is always 1.
    fn is_scalar(&self) -> bool {
        matches!(
            self,
            Ty::Bool | Ty::Int | Ty::Uint | Ty::Double | Ty::Duration | Ty::Timestamp
        )
    }

    fn element(&self) -> Ty {
        match self {
            Ty::List(e) | Ty::Map(e) => (**e).clone(),
            _ => Ty::Dyn,
        }
    }

    fn is_stringish(&self) -> bool {
        matches!(self, Ty::String | Ty::Bytes)
    }
}

/// Upstream's field path of an expression, resolved against the schema.
#[derive(Debug, Clone, Copy)]
enum Path<'s> {
    /// No path (a literal, a call result, the accumulator).
    None,
    /// A path the schema does not lead along.
    Unresolved,
    /// The schema node the path leads to.
    At(&'s SchemaType),
}

/// One estimated expression.
#[derive(Debug, Clone)]
struct Est<'s> {
    /// The largest cost of evaluating it.
    cost: u64,
    ty: Ty,
    path: Path<'s>,
    /// A size known from the expression itself (literals, call results), which wins.
    size: Option<Size>,
    /// A size known from a local variable's binding, used last.
    var_size: Option<Size>,
    /// The size of the elements of a list (or keys of a map) built in the expression.
    elements: Option<Size>,
    /// The value of an integer literal.
    int_literal: Option<i64>,
}

impl<'s> Est<'s> {
    fn new(cost: u64, ty: Ty) -> Self {
        Est {
            cost,
            ty,
            path: Path::None,
            size: None,
            var_size: None,
            elements: None,
            int_literal: None,
        }
    }

    /// cel-go's `computeSize` falling back to unknown: a computed size, then the schema
    /// node's bound, then 1 for a scalar, then the variable's binding.
    fn size(&self) -> Size {
        if let Some(size) = self.size {
            return size;
        }
        match self.path {
            Path::At(node) => Size {
                min: 0,
                max: node.max_elements,
            },
            _ if self.ty.is_scalar() => Size::fixed(1),
            _ => self.var_size.unwrap_or(UNKNOWN),
        }
    }
}

/// A variable bound by a comprehension.
#[derive(Debug, Clone)]
struct Var<'s> {
    name: String,
    ty: Ty,
    path: Path<'s>,
    size: Option<Size>,
    elements: Option<Size>,
}

/// Namespaces whose functions are called as `namespace.function(…)`.
const NAMESPACES: &[&str] = &[
    "optional", "strings", "lists", "sets", "ip", "format", "math",
];

struct Estimator<'s> {
    root: &'s SchemaType,
    scope: Vec<Var<'s>>,
}

/// The largest estimated cost of `expr` run on a node of type `root` (`self`, and `oldSelf`
/// of a transition rule).
pub(crate) fn estimate(expr: &IdedExpr, root: &SchemaType) -> u64 {
    Estimator {
        root,
        scope: Vec::new(),
    }
    .expr(expr)
    .cost
}

impl<'s> Estimator<'s> {
    /// Where a path leads after one more step. A path without a root variable gets its first
    /// step dropped by upstream's estimator, which then starts from the rule's node.
    fn step(&self, path: Path<'s>, segment: Segment<'_>) -> Path<'s> {
        match path {
            Path::None => Path::At(self.root),
            Path::Unresolved => Path::Unresolved,
            Path::At(node) => node.child(segment).map_or(Path::Unresolved, Path::At),
        }
    }

    fn var(&self, name: &str) -> Option<&Var<'s>> {
        self.scope.iter().rev().find(|v| v.name == name)
    }

    fn expr(&mut self, e: &IdedExpr) -> Est<'s> {
        match &e.expr {
            Expr::Literal(lit) => literal(lit),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(select) => {
                let operand = self.expr(&select.operand);
                if select.test {
                    // Kubernetes turns off cel-go's charge for a presence test
                    // (`PresenceTestHasCost(false)`).
                    return Est::new(operand.cost, Ty::Bool);
                }
                let charged = matches!(operand.ty, Ty::Object | Ty::Map(_));
                let ty = match (&operand.ty, operand.path) {
                    (Ty::Map(v), _) => (**v).clone(),
                    (_, Path::At(node)) => node
                        .child(Segment::Field(&select.field))
                        .map_or(Ty::Dyn, Ty::of),
                    _ => Ty::Dyn,
                };
                let mut est = Est::new(operand.cost.saturating_add(u64::from(charged)), ty);
                est.path = self.step(operand.path, Segment::Field(&select.field));
                est
            }
            Expr::Call(call) => self.call(call),
            Expr::List(list) => {
                let mut cost = 10u64;
                let mut elements: Option<Size> = None;
                let mut ty = Ty::Dyn;
                for (i, element) in list.elements.iter().enumerate() {
                    let est = self.expr(element);
                    cost = cost.saturating_add(est.cost);
                    let size = est.size();
                    elements = Some(elements.map_or(size, |s| s.union(size)));
                    if i == 0 {
                        ty = est.ty;
                    }
                }
                let mut est = Est::new(cost, Ty::List(Box::new(ty)));
                est.size = Some(Size::fixed(list.elements.len() as u64));
                est.elements = Some(elements.unwrap_or(Size::fixed(0)));
                est
            }
            Expr::Map(map) => {
                let mut cost = 30u64;
                let mut keys: Option<Size> = None;
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        let key = self.expr(&m.key);
                        let value = self.expr(&m.value);
                        cost = cost.saturating_add(key.cost).saturating_add(value.cost);
                        let size = key.size();
                        keys = Some(keys.map_or(size, |s| s.union(size)));
                    }
                }
                let mut est = Est::new(cost, Ty::Map(Box::new(Ty::Dyn)));
                est.size = Some(Size::fixed(map.entries.len() as u64));
                est.elements = Some(keys.unwrap_or(Size::fixed(0)));
                est
            }
            Expr::Struct(s) => {
                let mut cost = 40u64;
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        cost = cost.saturating_add(self.expr(&f.value).cost);
                    }
                }
                Est::new(cost, Ty::Object)
            }
            Expr::Comprehension(c) => self.comprehension(c),
            Expr::Unspecified => Est::new(0, Ty::Dyn),
        }
    }

    fn ident(&self, name: &str) -> Est<'s> {
        if let Some(var) = self.var(name) {
            let mut est = Est::new(1, var.ty.clone());
            est.path = var.path;
            est.var_size = var.size;
            est.elements = var.elements;
            return est;
        }
        // Any other name is a root of upstream's paths: `self` and `oldSelf` are the rule's
        // node, and so, by the dropped first step, is every other name.
        let mut est = Est::new(1, Ty::of(self.root));
        if !matches!(name, "self" | "oldSelf") {
            est.ty = Ty::Dyn;
        }
        est.path = Path::At(self.root);
        est
    }

    fn comprehension(&mut self, c: &ComprehensionExpr) -> Est<'s> {
        let range = self.expr(&c.iter_range);
        let init = self.expr(&c.accu_init);
        let init_is_list = matches!(c.accu_init.expr, Expr::List(_) | Expr::Map(_));
        self.scope.push(Var {
            name: c.accu_var.clone(),
            ty: init.ty.clone(),
            path: Path::None,
            size: Some(init.size()),
            elements: init.elements,
        });
        let over_map = matches!(range.ty, Ty::Map(_)) || matches!(c.iter_range.expr, Expr::Map(_));
        let pushed = if let Some(second) = &c.iter_var2 {
            // Two variables: index and item of a list, key and value of a map.
            let (key_ty, key_path) = if over_map {
                (Ty::String, self.step(range.path, Segment::Keys))
            } else {
                (Ty::Int, Path::Unresolved)
            };
            self.scope.push(Var {
                name: c.iter_var.clone(),
                ty: key_ty,
                path: key_path,
                size: None,
                elements: None,
            });
            self.scope.push(Var {
                name: second.clone(),
                ty: range.ty.element(),
                path: self.step(range.path, Segment::Elements),
                size: None,
                elements: None,
            });
            2
        } else {
            let (ty, segment) = if over_map {
                (Ty::String, Segment::Keys)
            } else {
                (range.ty.element(), Segment::Elements)
            };
            self.scope.push(Var {
                name: c.iter_var.clone(),
                ty,
                path: self.step(range.path, segment),
                size: range.elements,
                elements: None,
            });
            1
        };
        let condition = self.expr(&c.loop_cond);
        let step = self.expr(&c.loop_step);
        self.scope.truncate(self.scope.len() - pushed);
        let result = self.expr(&c.result);
        self.scope.pop();

        let count = range.size();
        let per_element = step.cost.saturating_add(condition.cost);
        let cost = range
            .cost
            .saturating_add(init.cost)
            .saturating_add(result.cost)
            .saturating_add(count.max.saturating_mul(per_element));
        let mut est = Est::new(cost, result.ty);
        if init_is_list {
            est.size = Some(count);
            est.elements = step.elements;
        } else if matches!(c.accu_init.expr, Expr::Literal(_)) {
            est.size = Some(init.size());
        }
        est
    }

    fn call(&mut self, call: &CallExpr) -> Est<'s> {
        let namespaced = match call.target.as_deref() {
            Some(IdedExpr {
                expr: Expr::Ident(ns),
                ..
            }) if NAMESPACES.contains(&ns.as_str()) && self.var(ns).is_none() => {
                Some(format!("{ns}.{}", call.func_name))
            }
            _ => None,
        };
        let args: Vec<Est<'s>> = call.args.iter().map(|a| self.expr(a)).collect();
        let target = match (&namespaced, call.target.as_deref()) {
            (None, Some(t)) => Some(self.expr(t)),
            _ => None,
        };
        let name = namespaced.as_deref().unwrap_or(&call.func_name);
        let arg_cost = args.iter().fold(0u64, |sum, a| sum.saturating_add(a.cost));
        let target_cost = target.as_ref().map_or(0, |t| t.cost);
        let mut est = self.function(name, target.as_ref(), &args, arg_cost);
        est.cost = est.cost.saturating_add(target_cost);
        est
    }

    /// The cost of one call, its arguments included (its target is added by the caller).
    fn function(
        &self,
        name: &str,
        target: Option<&Est<'s>>,
        args: &[Est<'s>],
        arg_cost: u64,
    ) -> Est<'s> {
        let arg = |i: usize| args.get(i);
        let size_of = |i: usize| args.get(i).map_or(UNKNOWN, Est::size);
        let plus_args = |cost: u64| cost.saturating_add(arg_cost);
        let default = |ty: Ty| Est::new(plus_args(1), ty);
        match (name, target) {
            ("_&&_" | "_||_", _) => Est::new(arg_cost, Ty::Bool),
            ("_?_:_", _) if args.len() == 3 => {
                let cost = args[0].cost.saturating_add(args[1].cost.max(args[2].cost));
                let mut est = Est::new(cost, args[1].ty.clone());
                est.size = Some(args[1].size().union(args[2].size()));
                est.elements = match (args[1].elements, args[2].elements) {
                    (Some(a), Some(b)) => Some(a.union(b)),
                    _ => None,
                };
                est
            }
            ("_==_" | "_!=_", _) => Est::new(plus_args(self.compare(args)), Ty::Bool),
            ("_<_" | "_<=_" | "_>_" | "_>=_", _) if arg(0).is_some_and(|a| a.ty.is_stringish()) => {
                Est::new(plus_args(self.compare(args)), Ty::Bool)
            }
            ("_+_", _) if args.len() == 2 => {
                let ty = if args[0].ty == Ty::Dyn {
                    args[1].ty.clone()
                } else {
                    args[0].ty.clone()
                };
                let sum = args[0].size().add(args[1].size());
                match ty {
                    Ty::String | Ty::Bytes => {
                        let mut est = Est::new(plus_args(factor(sum.max, STRING_TRAVERSAL)), ty);
                        est.size = Some(sum);
                        est
                    }
                    Ty::List(_) => {
                        // Concatenation is constant time; its size is tracked.
                        let mut est = Est::new(plus_args(1), ty);
                        est.size = Some(sum);
                        est.elements = match (args[0].elements, args[1].elements) {
                            (Some(a), Some(b)) => Some(a.union(b)),
                            _ => None,
                        };
                        est
                    }
                    other => default(other),
                }
            }
            ("_[_]" | "_[?_]", _) if !args.is_empty() => {
                let container = &args[0];
                let mut est = default(container.ty.element());
                est.path = self.step(container.path, Segment::Elements);
                est.size = container
                    .elements
                    .filter(|_| matches!(container.ty, Ty::List(_)));
                est
            }
            ("@in", _) if args.len() == 2 => {
                let cost = if matches!(args[1].ty, Ty::Map(_)) {
                    1
                } else {
                    args[1].size().max
                };
                Est::new(plus_args(cost), Ty::Bool)
            }
            ("matches", _) => {
                let (text, pattern) = match target {
                    Some(t) => (Some(t.size()), arg(0).map(Est::size)),
                    None => (arg(0).map(Est::size), arg(1).map(Est::size)),
                };
                match (text, pattern) {
                    (Some(text), Some(pattern)) => {
                        Est::new(plus_args(regex_cost(text, pattern)), Ty::Bool)
                    }
                    _ => default(Ty::Bool),
                }
            }
            ("contains", Some(t)) if args.len() == 1 => Est::new(
                plus_args(
                    factor(t.size().max, STRING_TRAVERSAL)
                        .saturating_mul(factor(size_of(0).max, STRING_TRAVERSAL)),
                ),
                Ty::Bool,
            ),
            ("startsWith" | "endsWith", Some(_)) if args.len() == 1 => Est::new(
                plus_args(factor(size_of(0).max, STRING_TRAVERSAL)),
                Ty::Bool,
            ),
            ("string", None) if arg(0).is_some_and(|a| a.ty == Ty::Bytes) => {
                let size = size_of(0);
                let mut est = Est::new(plus_args(factor(size.max, STRING_TRAVERSAL)), Ty::String);
                est.size = Some(Size {
                    min: size.min / 4,
                    max: size.max,
                });
                est
            }
            ("bytes", None) if arg(0).is_some_and(|a| a.ty == Ty::String) => {
                let size = size_of(0);
                let mut est = Est::new(plus_args(factor(size.max, STRING_TRAVERSAL)), Ty::Bytes);
                est.size = Some(Size {
                    min: size.min,
                    max: size.max.saturating_mul(4),
                });
                est
            }
            ("format", Some(t)) if t.ty == Ty::String => Est::new(
                plus_args(factor(t.size().max, STRING_TRAVERSAL)),
                Ty::String,
            ),
            ("strings.quote", None) if args.len() == 1 => {
                let size = size_of(0);
                let mut est = Est::new(plus_args(factor(size.max, STRING_TRAVERSAL)), Ty::String);
                est.size = Some(Size {
                    min: size.min.saturating_add(2),
                    max: size.max.saturating_mul(2).saturating_add(2),
                });
                est
            }
            // The Kubernetes libraries (library/cost.go), then cel-go's default.
            ("isSorted" | "sum" | "max" | "min" | "indexOf" | "lastIndexOf", Some(t)) => {
                let cost = match &t.ty {
                    Ty::List(element) => {
                        let mut per_element = 1u64;
                        if element.is_stringish() {
                            // The elements' size comes from the list's path, if it has one.
                            let element_size = match t.path {
                                Path::None => UNKNOWN,
                                path => match self.step(path, Segment::Elements) {
                                    Path::At(node) => Size {
                                        min: 0,
                                        max: node.max_elements,
                                    },
                                    _ => UNKNOWN,
                                },
                            };
                            per_element = per_element
                                .saturating_add(factor(element_size.max, STRING_TRAVERSAL));
                        }
                        t.size().max.saturating_mul(per_element)
                    }
                    _ => factor(t.size().max, STRING_TRAVERSAL),
                };
                let ty = match name {
                    "isSorted" => Ty::Bool,
                    "indexOf" | "lastIndexOf" => Ty::Int,
                    _ => t.ty.element(),
                };
                Est::new(plus_args(cost), ty)
            }
            ("url", None) if args.len() == 1 => {
                let size = size_of(0);
                let mut est = Est::new(plus_args(factor(size.max, STRING_TRAVERSAL)), Ty::Dyn);
                est.size = Some(size);
                est
            }
            ("lowerAscii" | "upperAscii" | "substring" | "trim", Some(t)) => {
                let size = t.size();
                let mut est = Est::new(plus_args(factor(size.max, STRING_TRAVERSAL)), Ty::String);
                est.size = Some(size);
                est
            }
            ("replace", Some(t)) if args.len() >= 2 => {
                let size = t.size();
                let mut est = Est::new(
                    plus_args(factor(size.max, 2.0 * STRING_TRAVERSAL)),
                    Ty::String,
                );
                est.size = Some(replaced_size(size, size_of(0), size_of(1)));
                est
            }
            ("split", Some(t)) => {
                let size = t.size();
                // A literal limit bounds the parts; else each byte may be one.
                let limit = match arg(1).and_then(|a| a.int_literal) {
                    Some(n) => n.max(0) as u64,
                    None => size.max,
                };
                let mut est = Est::new(
                    plus_args(factor(size.max, 2.0 * STRING_TRAVERSAL)),
                    Ty::List(Box::new(Ty::String)),
                );
                est.size = Some(Size { min: 0, max: limit });
                est
            }
            ("join", Some(t)) => {
                let count = t.size();
                let element = match t.path {
                    Path::None => UNKNOWN,
                    path => match self.step(path, Segment::Elements) {
                        Path::At(node) => Size {
                            min: 0,
                            max: node.max_elements,
                        },
                        _ => UNKNOWN,
                    },
                };
                let mut size = count.mul(element);
                if let Some(separator) = arg(0) {
                    let separators = Size {
                        min: count.min.saturating_sub(1),
                        max: count.max.saturating_sub(1),
                    };
                    size = size.add(separator.size().mul(separators));
                }
                let mut est = Est::new(plus_args(factor(size.max, STRING_TRAVERSAL)), Ty::String);
                est.size = Some(size);
                est
            }
            ("find" | "findAll", Some(t)) if !args.is_empty() => {
                let size = t.size();
                let ty = if name == "find" {
                    Ty::String
                } else {
                    Ty::List(Box::new(Ty::String))
                };
                let mut est = Est::new(plus_args(regex_cost(size, size_of(0))), ty);
                est.size = Some(Size {
                    min: 0,
                    max: size.max,
                });
                est
            }
            (
                "cidr" | "isIP" | "isCIDR" | "quantity" | "isQuantity" | "semver" | "isSemver",
                Some(_),
            ) if !args.is_empty() => {
                Est::new(plus_args(factor(size_of(0).max, STRING_TRAVERSAL)), Ty::Dyn)
            }
            ("ip", Some(_)) => {
                let cost = if args.is_empty() {
                    1
                } else {
                    factor(size_of(0).max, STRING_TRAVERSAL)
                };
                Est::new(plus_args(cost), Ty::Dyn)
            }
            ("containsIP", Some(_)) if !args.is_empty() => {
                let mut cost = factor(32, STRING_TRAVERSAL);
                if args[0].ty == Ty::String {
                    cost = cost.saturating_add(factor(size_of(0).max, STRING_TRAVERSAL));
                }
                Est::new(plus_args(cost), Ty::Bool)
            }
            ("containsCIDR", Some(_)) if !args.is_empty() => {
                let mut cost = factor(32, STRING_TRAVERSAL)
                    .saturating_add(factor(16, STRING_TRAVERSAL))
                    .saturating_add(1);
                if args[0].ty == Ty::String {
                    cost = cost.saturating_add(factor(size_of(0).max, STRING_TRAVERSAL));
                }
                Est::new(plus_args(cost), Ty::Bool)
            }
            ("validate", Some(_)) if !args.is_empty() => {
                let cost = factor(
                    factor(size_of(0).max, STRING_TRAVERSAL),
                    NAME_FORMAT_REGEX_SIZE * REGEX_LENGTH,
                );
                Est::new(plus_args(cost), Ty::Dyn)
            }
            ("sets.contains" | "sets.equivalent" | "sets.intersects", None) if args.len() == 2 => {
                // Every element of one list is looked for in the other.
                let cost = size_of(0).max.saturating_mul(size_of(1).max);
                Est::new(plus_args(cost), Ty::Bool)
            }
            ("dyn", None) if args.len() == 1 => {
                let mut est = args[0].clone();
                est.cost = plus_args(1);
                est
            }
            (
                "size" | "int" | "charAt" | "getMilliseconds" | "getSeconds" | "getMinutes"
                | "getHours" | "getDayOfWeek" | "getDayOfMonth" | "getDayOfYear" | "getMonth"
                | "getFullYear",
                _,
            ) => default(if name == "charAt" {
                Ty::String
            } else {
                Ty::Int
            }),
            ("uint", _) => default(Ty::Uint),
            ("double", _) => default(Ty::Double),
            ("string", _) => default(Ty::String),
            (
                "bool"
                | "!_"
                | "@not_strictly_false"
                | "has"
                | "hasValue"
                | "_<_"
                | "_<=_"
                | "_>_"
                | "_>=_",
                _,
            ) => default(Ty::Bool),
            ("duration", _) => default(Ty::Duration),
            ("timestamp", _) => default(Ty::Timestamp),
            ("-_" | "_-_" | "_*_" | "_/_" | "_%_", _) => {
                default(arg(0).map_or(Ty::Dyn, |a| a.ty.clone()))
            }
            ("check", _) => Est::new(plus_args(350_000), Ty::Dyn),
            _ => default(Ty::Dyn),
        }
    }

    /// cel-go's equality and string ordering: a tenth of the smaller operand's largest size.
    fn compare(&self, args: &[Est<'s>]) -> u64 {
        let smallest = args.iter().map(|a| a.size().max).min().unwrap_or(0);
        factor(smallest, STRING_TRAVERSAL)
    }
}

/// A regular expression over a string: a tenth of the string's size (plus one, so that an
/// empty string still costs the pattern) times a quarter of the pattern's size.
fn regex_cost(text: Size, pattern: Size) -> u64 {
    factor(text.max.saturating_add(1), STRING_TRAVERSAL)
        .saturating_mul(factor(pattern.max, REGEX_LENGTH))
}

/// The size of `replace`'s result, as the Kubernetes strings library bounds it.
fn replaced_size(text: Size, from: Size, to: Size) -> Size {
    let mut count = Size::fixed(0);
    let mut retained = Size::fixed(0);
    if from.min == 0 {
        count.max = text.max.saturating_add(u64::from(text.max < u64::MAX));
        retained.max = text.max;
    } else if to.max <= from.min {
        retained.max = text.max;
    } else {
        count.max = (text.max as f64 / from.min as f64).ceil() as u64;
    }
    if from.max == 0 {
        count.min = text.min.saturating_add(u64::from(text.min < u64::MAX));
        retained.min = text.min;
    } else if from.max <= to.min {
        retained.min = text.min;
    } else {
        count.min = (text.min as f64 / from.max as f64).ceil() as u64;
    }
    count.mul(to).add(retained)
}

fn literal<'s>(lit: &LiteralValue) -> Est<'s> {
    let (ty, size) = match lit {
        LiteralValue::String(s) => (Ty::String, s.inner().chars().count() as u64),
        LiteralValue::Bytes(b) => (Ty::Bytes, b.inner().len() as u64),
        LiteralValue::Boolean(_) => (Ty::Bool, 1),
        LiteralValue::Int(_) => (Ty::Int, 1),
        LiteralValue::UInt(_) => (Ty::Uint, 1),
        LiteralValue::Double(_) => (Ty::Double, 1),
        LiteralValue::Null => (Ty::Null, 1),
    };
    let mut est = Est::new(0, ty);
    est.size = Some(Size::fixed(size));
    if let LiteralValue::Int(i) = lit {
        est.int_literal = Some(*i.inner());
    }
    est
}
