//! A webhook's `matchConditions`: CEL expressions over `object`, `oldObject` and `request`,
//! all of which must hold for the webhook to be called. rkube evaluates a subset of CEL —
//! field selection (`a.b`, `a['b']`), `has(…)`, `==`, `!=`, `!`, `&&`, `||`, parentheses
//! and string, number, boolean and null literals — which covers selecting on names, labels,
//! annotations and the operation. Anything else is an evaluation error, which upstream
//! treats as a failed call (refused under failurePolicy Fail, the webhook skipped under
//! Ignore).

use serde_json::{Value, json};

use super::Attributes;

/// Whether every condition holds; an error names the condition that could not be evaluated.
pub(super) fn all_hold(
    conditions: &[(String, String)],
    attrs: &Attributes<'_>,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<bool, String> {
    if conditions.is_empty() {
        return Ok(true);
    }
    let request = json!({
        "operation": attrs.operation.as_str(),
        "name": attrs.name,
        "namespace": attrs.namespace.unwrap_or(""),
        "subResource": attrs.subresource.unwrap_or(""),
        "dryRun": attrs.dry_run,
        "kind": {"group": attrs.rt.group, "version": attrs.rt.version, "kind": attrs.rt.kind},
        "resource": {"group": attrs.rt.group, "version": attrs.rt.version, "resource": attrs.rt.plural},
    });
    let vars = Vars {
        object: object.cloned().unwrap_or(Value::Null),
        old_object: old.cloned().unwrap_or(Value::Null),
        request,
    };
    for (name, expression) in conditions {
        match evaluate(expression, &vars) {
            Ok(Value::Bool(true)) => {}
            Ok(Value::Bool(false)) => return Ok(false),
            Ok(other) => {
                return Err(format!(
                    "failed to evaluate match condition {name:?}: expected a bool, got {other}"
                ));
            }
            Err(e) => return Err(format!("failed to evaluate match condition {name:?}: {e}")),
        }
    }
    Ok(true)
}

struct Vars {
    object: Value,
    old_object: Value,
    request: Value,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Literal(Value),
    Symbol(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(match word.as_str() {
                "true" => Token::Literal(Value::Bool(true)),
                "false" => Token::Literal(Value::Bool(false)),
                "null" => Token::Literal(Value::Null),
                _ => Token::Ident(word),
            });
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let number: String = chars[start..i].iter().collect();
            let value: f64 = number
                .parse()
                .map_err(|_| format!("invalid number {number}"))?;
            tokens.push(Token::Literal(json!(value)));
        } else if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".to_owned()),
                    Some('\\') => {
                        s.push(*chars.get(i + 1).ok_or("unterminated string")?);
                        i += 2;
                    }
                    Some(q) if *q == c => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        s.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Literal(Value::String(s)));
        } else {
            let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
            let symbol = ["==", "!=", "&&", "||"]
                .into_iter()
                .find(|s| *s == two)
                .or_else(|| {
                    [".", "[", "]", "(", ")", "!"]
                        .into_iter()
                        .find(|s| s.starts_with(c))
                })
                .ok_or_else(|| format!("unsupported character {c:?}"))?;
            i += symbol.len();
            tokens.push(Token::Symbol(symbol));
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    vars: &'a Vars,
}

/// A selected value, or a field that is not there (an error unless `has()` asks).
type Selection = Result<Value, String>;

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn eat(&mut self, symbol: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(s)) if *s == symbol) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, symbol: &str) -> Result<(), String> {
        if self.eat(symbol) {
            Ok(())
        } else {
            Err(format!("expected {symbol:?}"))
        }
    }

    fn or(&mut self) -> Result<Value, String> {
        let mut left = self.and()?;
        while self.eat("||") {
            let right = self.and()?;
            left = Value::Bool(truth(&left)? || truth(&right)?);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Value, String> {
        let mut left = self.unary()?;
        while self.eat("&&") {
            let right = self.unary()?;
            left = Value::Bool(truth(&left)? && truth(&right)?);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Value, String> {
        if self.eat("!") {
            return Ok(Value::Bool(!truth(&self.unary()?)?));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Value, String> {
        let left = self.primary()?;
        let equal = if self.eat("==") {
            true
        } else if self.eat("!=") {
            false
        } else {
            return left;
        };
        let (left, right) = (left?, self.primary()??);
        Ok(Value::Bool(same(&left, &right) == equal))
    }

    /// A primary expression; its `Err` inside `Ok` is a missing field.
    fn primary(&mut self) -> Result<Selection, String> {
        if self.eat("(") {
            let value = self.or()?;
            self.expect(")")?;
            return Ok(Ok(value));
        }
        match self.peek().cloned() {
            Some(Token::Literal(value)) => {
                self.at += 1;
                Ok(Ok(value))
            }
            Some(Token::Ident(name)) if name == "has" => {
                self.at += 1;
                self.expect("(")?;
                let selected = self.path()?;
                self.expect(")")?;
                Ok(Ok(Value::Bool(selected.is_ok())))
            }
            Some(Token::Ident(_)) => self.path(),
            other => Err(format!("unexpected {other:?}")),
        }
    }

    fn path(&mut self) -> Result<Selection, String> {
        let Some(Token::Ident(root)) = self.peek().cloned() else {
            return Err("expected a variable".to_owned());
        };
        self.at += 1;
        let mut current: Selection = match root.as_str() {
            "object" => Ok(self.vars.object.clone()),
            "oldObject" => Ok(self.vars.old_object.clone()),
            "request" => Ok(self.vars.request.clone()),
            other => return Err(format!("undeclared reference to {other:?}")),
        };
        loop {
            let key = if self.eat(".") {
                match self.peek().cloned() {
                    Some(Token::Ident(key)) => {
                        self.at += 1;
                        key
                    }
                    other => return Err(format!("expected a field name, got {other:?}")),
                }
            } else if self.eat("[") {
                let key = match self.peek().cloned() {
                    Some(Token::Literal(Value::String(key))) => key,
                    other => return Err(format!("expected a string key, got {other:?}")),
                };
                self.at += 1;
                self.expect("]")?;
                key
            } else {
                return Ok(current);
            };
            current = current.and_then(|v| match v.get(&key) {
                Some(Value::Null) | None => Err(format!("no such key: {key}")),
                Some(found) => Ok(found.clone()),
            });
        }
    }
}

fn truth(value: &Value) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("no such overload: {value} is not a bool"))
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn evaluate(expression: &str, vars: &Vars) -> Result<Value, String> {
    let mut parser = Parser {
        tokens: tokenize(expression)?,
        at: 0,
        vars,
    };
    let value = parser.or()?;
    if parser.at != parser.tokens.len() {
        return Err(format!("unsupported expression {expression:?}"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            object: json!({"metadata": {"name": "skip-me", "labels": {"app.kubernetes.io/name": "web"}}}),
            old_object: Value::Null,
            request: json!({"operation": "CREATE"}),
        }
    }

    #[test]
    fn conditions_select_on_names_labels_and_operations() {
        let v = vars();
        let holds = |e: &str| evaluate(e, &v).unwrap();
        assert_eq!(holds("object.metadata.name != 'skip-me'"), json!(false));
        assert_eq!(holds("object.metadata.name == \"skip-me\""), json!(true));
        assert_eq!(
            holds("object.metadata.labels['app.kubernetes.io/name'] == 'web'"),
            json!(true)
        );
        assert_eq!(
            holds("request.operation == 'CREATE' && !has(object.metadata.annotations)"),
            json!(true)
        );
        assert_eq!(holds("has(oldObject.metadata) || true"), json!(true));
        assert_eq!(holds("(1 == 1.0)"), json!(true));
    }

    #[test]
    fn what_the_subset_does_not_cover_is_an_error() {
        let v = vars();
        assert!(evaluate("object.metadata.missing == 'x'", &v).is_err());
        assert!(evaluate("object.metadata.name.startsWith('s')", &v).is_err());
        assert!(evaluate("authorizer.requestResource.check('x').allowed()", &v).is_err());
        assert!(evaluate("size(object.metadata.name) > 1", &v).is_err());
    }
}
