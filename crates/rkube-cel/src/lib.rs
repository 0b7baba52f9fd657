//! CEL evaluation for Kubernetes: the expression language of CRD validation rules
//! (`x-kubernetes-validations`), ValidatingAdmissionPolicies and webhook match conditions.
//!
//! Parsing and the standard library come from the `cel` crate; this crate adds what the
//! Kubernetes apiserver adds on top (the `lists`, `regex`, `url`, `ip`/`cidr` and `quantity`
//! libraries and the strings extension), checks at compile time that an expression only
//! names the variables and functions its environment declares, converts JSON objects to CEL
//! values and back, and refuses expressions whose cost exceeds the per-call limit. It also
//! estimates an expression's worst-case cost statically from the schema of the node it runs
//! on, as upstream does when a CustomResourceDefinition is written.

mod convert;
mod cost;
mod library;
mod static_cost;

use std::fmt;
use std::sync::{Arc, OnceLock};

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use thiserror::Error;

pub use cel::Value;
pub use convert::{from_json, from_json_typed, optional, to_json};
pub use cost::PER_CALL_LIMIT;
pub use static_cost::SchemaType;

/// Why an expression did not compile.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct CompileError(String);

/// Why an expression failed to evaluate.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// The evaluation would cost more than [`PER_CALL_LIMIT`].
    #[error("operation cancelled: actual cost limit exceeded")]
    CostLimitExceeded,
    /// The expression failed while it ran (a missing key, no matching overload…).
    #[error("{0}")]
    Runtime(String),
}

/// The namespaces whose functions are called as `namespace.function(…)`.
const NAMESPACES: &[&str] = &["optional", "strings", "lists", "sets", "ip"];

/// The variables an expression may name: every Kubernetes CEL environment declares its
/// own (`self`/`oldSelf` for CRD rules, `object`/`request`/`params`… for policies).
#[derive(Debug, Clone)]
pub struct Environment {
    variables: Vec<String>,
}

impl Environment {
    /// An environment that declares `variables`.
    pub fn new<S: AsRef<str>>(variables: &[S]) -> Self {
        Self {
            variables: variables.iter().map(|v| v.as_ref().to_owned()).collect(),
        }
    }

    /// Parses `source` and checks that it only names declared variables and known
    /// functions; messages are cel-go's (`ERROR: <input>:1:1: undeclared reference to …`).
    pub fn compile(&self, source: &str) -> Result<Program, CompileError> {
        let program = shared_env()
            .compile(source)
            .map_err(|e| CompileError(e.to_string()))?;
        let mut problems = Vec::new();
        let mut scope = Vec::new();
        self.check(&program, program.expression(), &mut scope, &mut problems);
        if !problems.is_empty() {
            return Err(CompileError(problems.join("\n")));
        }
        Ok(Program {
            program,
            source: source.to_owned(),
        })
    }

    fn check(
        &self,
        program: &cel::Program,
        expr: &IdedExpr,
        scope: &mut Vec<String>,
        problems: &mut Vec<String>,
    ) {
        let position = |id: u64| {
            let source = &program.source_info().source;
            let start = program.source_info().offset_for(id).map_or(0, |(s, _)| s);
            let before = source
                .get(..usize::try_from(start).unwrap_or(0))
                .unwrap_or("");
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let snippet = source.lines().nth(line - 1).unwrap_or("");
            (
                format!("ERROR: <input>:{line}:{column}"),
                format!("\n | {snippet}\n | {}^", ".".repeat(column - 1)),
            )
        };
        match &expr.expr {
            Expr::Ident(name) => {
                if !scope.iter().any(|s| s == name)
                    && !self.variables.iter().any(|v| v == name)
                    && !is_type_name(name)
                {
                    let (at, snippet) = position(expr.id);
                    problems.push(format!(
                        "{at}: undeclared reference to '{name}' (in container ''){snippet}"
                    ));
                }
            }
            Expr::Call(call) => {
                let namespaced = match call.target.as_deref() {
                    Some(IdedExpr {
                        expr: Expr::Ident(ns),
                        ..
                    }) if NAMESPACES.contains(&ns.as_str())
                        && !self.variables.iter().any(|v| v == ns) =>
                    {
                        Some(format!("{ns}.{}", call.func_name))
                    }
                    _ => None,
                };
                let known = match &namespaced {
                    Some(name) => library::is_function(name),
                    None => library::is_function(&call.func_name),
                };
                if !known {
                    let name = namespaced.as_deref().unwrap_or(&call.func_name);
                    let (at, snippet) = position(expr.id);
                    problems.push(format!(
                        "{at}: undeclared reference to '{name}' (in container ''){snippet}"
                    ));
                }
                if namespaced.is_none()
                    && let Some(target) = &call.target
                {
                    self.check(program, target, scope, problems);
                }
                for arg in &call.args {
                    self.check(program, arg, scope, problems);
                }
            }
            Expr::Comprehension(c) => {
                self.check(program, &c.iter_range, scope, problems);
                self.check(program, &c.accu_init, scope, problems);
                let pushed = 2 + usize::from(c.iter_var2.is_some());
                scope.push(c.iter_var.clone());
                scope.push(c.accu_var.clone());
                if let Some(v) = &c.iter_var2 {
                    scope.push(v.clone());
                }
                self.check(program, &c.loop_cond, scope, problems);
                self.check(program, &c.loop_step, scope, problems);
                // The result sees the accumulator only.
                self.check(program, &c.result, scope, problems);
                scope.truncate(scope.len() - pushed);
            }
            Expr::List(list) => {
                for e in &list.elements {
                    self.check(program, e, scope, problems);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(e) = &entry.expr {
                        self.check(program, &e.key, scope, problems);
                        self.check(program, &e.value, scope, problems);
                    }
                }
            }
            Expr::Select(select) => self.check(program, &select.operand, scope, problems),
            Expr::Struct(s) => {
                for entry in &s.entries {
                    if let EntryExpr::StructField(f) = &entry.expr {
                        self.check(program, &f.value, scope, problems);
                    }
                }
            }
            Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
}

/// Type names an expression may use as values (`type(x) == string`).
fn is_type_name(name: &str) -> bool {
    matches!(
        name,
        "int"
            | "uint"
            | "double"
            | "bool"
            | "string"
            | "bytes"
            | "list"
            | "map"
            | "null_type"
            | "type"
            | "duration"
            | "timestamp"
            | "optional_type"
    )
}

/// The one `cel::Env` every program runs in: the standard library, the strings and lists
/// extensions and the Kubernetes libraries.
fn shared_env() -> &'static Arc<cel::Env> {
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(library::environment()))
}

/// A compiled expression.
pub struct Program {
    program: cel::Program,
    source: String,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Program").field(&self.source).finish()
    }
}

impl Program {
    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression names the variable `name` (a CRD rule naming `oldSelf` is a
    /// transition rule).
    pub fn references(&self, name: &str) -> bool {
        self.program.references().has_variable(name)
    }

    /// The largest cost upstream's static estimate gives this expression when it runs on a
    /// node of type `node` (as `self`, and as `oldSelf` in a transition rule): what a
    /// CustomResourceDefinition's rules are checked against when it is written.
    pub fn static_cost(&self, node: &SchemaType) -> u64 {
        static_cost::estimate(self.program.expression(), node)
    }

    /// Evaluates the expression with `variables` bound, refusing it when its estimated
    /// cost for these inputs exceeds [`PER_CALL_LIMIT`].
    pub fn evaluate(&self, variables: &[(&str, Value)]) -> Result<Value, EvalError> {
        let bounds = variables
            .iter()
            .fold(cost::Bounds::default(), |b, (_, v)| b.include(v));
        if cost::estimate(self.program.expression(), bounds) > PER_CALL_LIMIT {
            return Err(EvalError::CostLimitExceeded);
        }
        let mut context = cel::Context::with_env(shared_env().clone());
        for (name, value) in variables {
            context.add_variable_from_value(*name, value.clone());
        }
        self.program
            .execute(&context)
            .map_err(|e| EvalError::Runtime(runtime_message(&e)))
    }
}

/// The message cel-go gives for a failed evaluation, where the interpreter here words it
/// differently (rule failures quote it: `no such key: options evaluating rule: …`).
fn runtime_message(err: &cel::ExecutionError) -> String {
    use cel::ExecutionError as E;
    match err {
        E::NoSuchKey(key) => format!("no such key: {key}"),
        E::DivisionByZero(_) => "division by zero".to_owned(),
        E::RemainderByZero(_) => "modulus by zero".to_owned(),
        E::Overflow(..) => "integer overflow".to_owned(),
        other => other.to_string(),
    }
}

/// Upstream's name for a value's type in messages (`int`, `string`, `map`…).
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::List(_) => "list",
        Value::Map(_) => "map",
        Value::Function(..) => "function",
        Value::Int(_) => "int",
        Value::UInt(_) => "uint",
        Value::Float(_) => "double",
        Value::String(_) => "string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "bool",
        Value::Duration(_) => "google.protobuf.Duration",
        Value::Timestamp(_) => "google.protobuf.Timestamp",
        Value::Opaque(_) => "opaque",
        Value::Struct(_) => "object",
        Value::Null => "null_type",
    }
}

#[cfg(test)]
mod tests;
