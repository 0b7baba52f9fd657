//! Label selectors: the string syntax of `?labelSelector=` and `kubectl -l`, and
//! `metav1.LabelSelector` from object specs.
//!
//! The parser follows upstream's `k8s.io/apimachinery/pkg/labels` lexer and parser token for
//! token, so that the same strings are accepted, rejected, and reported with the same words.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::Value;

use super::{aggregate, go_quote};
use crate::ApiError;
use crate::validation::names::{is_qualified_name, is_valid_label_value};

mod lexer;

use lexer::{Item, Lexer, Token};

/// How a requirement relates a label's key to its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelOperator {
    /// `key=value`: the label is present with this value.
    Equals,
    /// `key==value`: the same as [`LabelOperator::Equals`], kept apart to print as written.
    DoubleEquals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`: the label is present with one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
    /// `key>5`: the label is present and, read as an integer, greater.
    GreaterThan,
    /// `key<5`: the label is present and, read as an integer, smaller.
    LessThan,
}

/// One condition of a label selector. Every requirement must hold for a selector to match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelRequirement {
    key: String,
    operator: LabelOperator,
    values: Vec<String>,
}

impl LabelRequirement {
    /// Checks the key and values as upstream's `labels.NewRequirement` does; the error lists
    /// every problem as upstream words it, with upstream's field paths (`key`, `values[0][k]`).
    fn new(key: &str, operator: LabelOperator, values: Vec<String>) -> Result<Self, String> {
        let mut errors = Vec::new();
        if let Some(e) = invalid_key(key, "key") {
            errors.push(e);
        }
        let count_error = match operator {
            LabelOperator::In | LabelOperator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::NotEquals
                if values.len() != 1 =>
            {
                Some("exact-match compatibility requires one single value")
            }
            LabelOperator::Exists | LabelOperator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            LabelOperator::GreaterThan | LabelOperator::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(detail) = count_error {
            errors.push(format!(
                "values: Invalid value: {}: {detail}",
                go_string_slice(&values)
            ));
        }
        if matches!(
            operator,
            LabelOperator::GreaterThan | LabelOperator::LessThan
        ) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errors.push(format!(
                        "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must \
                         be an integer",
                        go_quote(v)
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let problems = is_valid_label_value(v);
            if !problems.is_empty() {
                errors.push(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    problems.join("; ")
                ));
            }
        }
        if errors.is_empty() {
            Ok(Self {
                key: key.to_owned(),
                operator,
                values,
            })
        } else {
            Err(aggregate(errors))
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> LabelOperator {
        self.operator
    }

    /// The values, in the order given (empty for `Exists` and `DoesNotExist`).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn has_value(&self, value: &str) -> bool {
        self.values.iter().any(|v| v == value)
    }

    fn matches<'a>(&self, lookup: &impl Fn(&str) -> Option<&'a str>) -> bool {
        let found = lookup(&self.key);
        match self.operator {
            LabelOperator::In | LabelOperator::Equals | LabelOperator::DoubleEquals => {
                found.is_some_and(|v| self.has_value(v))
            }
            LabelOperator::NotIn | LabelOperator::NotEquals => {
                found.is_none_or(|v| !self.has_value(v))
            }
            LabelOperator::Exists => found.is_some(),
            LabelOperator::DoesNotExist => found.is_none(),
            LabelOperator::GreaterThan | LabelOperator::LessThan => {
                let (Some(label), [wanted]) = (found, self.values.as_slice()) else {
                    return false;
                };
                let (Ok(label), Ok(wanted)) = (label.parse::<i64>(), wanted.parse::<i64>()) else {
                    return false;
                };
                if self.operator == LabelOperator::GreaterThan {
                    label > wanted
                } else {
                    label < wanted
                }
            }
        }
    }
}

impl fmt::Display for LabelRequirement {
    /// Upstream's `Requirement.String()`: values sorted, set operators in parentheses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == LabelOperator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let (op, parens) = match self.operator {
            LabelOperator::Exists | LabelOperator::DoesNotExist => return Ok(()),
            LabelOperator::Equals => ("=", false),
            LabelOperator::DoubleEquals => ("==", false),
            LabelOperator::NotEquals => ("!=", false),
            LabelOperator::In => (" in ", true),
            LabelOperator::NotIn => (" notin ", true),
            LabelOperator::GreaterThan => (">", false),
            LabelOperator::LessThan => ("<", false),
        };
        f.write_str(op)?;
        if parens {
            f.write_str("(")?;
        }
        let mut sorted: Vec<&str> = self.values.iter().map(String::as_str).collect();
        sorted.sort_unstable();
        f.write_str(&sorted.join(","))?;
        if parens {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed, validated label selector: every requirement must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Sorted by key, as upstream sorts them.
    requirements: Vec<LabelRequirement>,
    /// Upstream's `labels.Nothing()`: what a nil `metav1.LabelSelector` means.
    nothing: bool,
}

impl LabelSelector {
    /// Parses the string form used in `?labelSelector=` and `kubectl -l`: equality (`a=b`,
    /// `a==b`, `a!=b`), sets (`a in (x,y)`, `a notin (x)`), existence (`a`, `!a`) and integer
    /// comparison (`a>1`, `a<1`), comma separated, with spaces, tabs and newlines allowed
    /// between tokens. The empty string selects everything. A bad key, value or syntax is a
    /// 400 with upstream's message, e.g. `unable to parse requirement: <nil>: Invalid value:
    /// "a b": ...` or `found 'c', expected: ',' or 'end of string'`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let items = Lexer::new(s).scan();
        let requirements = Parser { items, position: 0 }
            .parse()
            .map_err(ApiError::BadRequest)?;
        Ok(Self::from_requirements(requirements))
    }

    /// Converts a `metav1.LabelSelector` as upstream's `LabelSelectorAsSelector` does:
    /// `matchLabels` become `=` requirements and `matchExpressions` take `In`, `NotIn`,
    /// `Exists` and `DoesNotExist`. `In` and `NotIn` need values, `Exists` and `DoesNotExist`
    /// must have none, and keys and values must be valid; otherwise a 400 with upstream's
    /// message. A selector with neither field selects everything.
    pub fn from_api(selector: &metav1::LabelSelector) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        // Upstream walks a Go map here, so which bad label it reports first is random; walking
        // in key order at least makes rkube's answer stable.
        for (key, value) in selector.match_labels.iter().flatten() {
            let r = LabelRequirement::new(key, LabelOperator::Equals, vec![value.clone()])
                .map_err(ApiError::BadRequest)?;
            requirements.push(r);
        }
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "In" => LabelOperator::In,
                "NotIn" => LabelOperator::NotIn,
                "Exists" => LabelOperator::Exists,
                "DoesNotExist" => LabelOperator::DoesNotExist,
                other => {
                    // Upstream says "pod selector" whatever the selector selects.
                    return Err(ApiError::bad_request(format!(
                        "{} is not a valid pod selector operator",
                        go_quote(other)
                    )));
                }
            };
            let values = expression.values.clone().unwrap_or_default();
            let r = LabelRequirement::new(&expression.key, operator, values)
                .map_err(ApiError::BadRequest)?;
            requirements.push(r);
        }
        Ok(Self::from_requirements(requirements))
    }

    fn from_requirements(mut requirements: Vec<LabelRequirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self {
            requirements,
            nothing: false,
        }
    }

    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object: what upstream makes of a missing (nil)
    /// `metav1.LabelSelector`, e.g. a PodDisruptionBudget without `spec.selector`.
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Whether the selector does not restrict anything (it matches every object).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// Whether the selector matches no object at all, as [`LabelSelector::nothing`].
    pub fn matches_nothing(&self) -> bool {
        self.nothing
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[LabelRequirement] {
        &self.requirements
    }

    /// Whether a set of labels satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_lookup(|key| labels.get(key).map(String::as_str))
    }

    /// Whether a JSON object's `metadata.labels` satisfy every requirement. An object without
    /// labels has none; a label whose value is not a string is treated as absent.
    pub fn matches_object(&self, object: &Value) -> bool {
        let labels = object
            .get("metadata")
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.matches_lookup(|key| labels.and_then(|l| l.get(key)).and_then(Value::as_str))
    }

    /// Whether the labels `lookup` reads (a key to its value, `None` when absent) satisfy
    /// every requirement: for callers that keep labels in their own form.
    pub fn matches_lookup<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(&lookup))
    }

    /// The single value the selector requires for `key` (`key=v`, `key==v` or `key in (v)`),
    /// as upstream's `RequiresExactMatch`; for fast paths such as an index lookup.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (LabelOperator::Equals | LabelOperator::DoubleEquals | LabelOperator::In, [value]) => {
                Some(value)
            }
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string, as upstream's `String()`: requirements sorted by key, joined by
    /// commas without spaces. Both [`LabelSelector::everything`] and
    /// [`LabelSelector::nothing`] print as the empty string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Upstream's key check, with the field path its message names.
fn invalid_key(key: &str, path: &str) -> Option<String> {
    let problems = is_qualified_name(key);
    if problems.is_empty() {
        None
    } else {
        Some(format!(
            "{path}: Invalid value: {}: {}",
            go_quote(key),
            problems.join("; ")
        ))
    }
}

/// A `[]string` as Go's `%#v` prints it; upstream's messages about value counts show it.
fn go_string_slice(values: &[String]) -> String {
    if values.is_empty() {
        // The API conversion hands upstream a nil slice when there are no values.
        return "[]string(nil)".to_owned();
    }
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

/// Where in a requirement the parser is: `in` and `notin` are operators only after a key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

/// The binary operators upstream lists when it expected one.
const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

/// A recursive-descent parser over the scanned tokens, as upstream's.
struct Parser {
    items: Vec<Item>,
    position: usize,
}

impl Parser {
    fn peek(&self, context: Context) -> (Token, &str) {
        match self.items.get(self.position) {
            Some(item) => (adjust(item.token, context), item.literal.as_str()),
            None => (Token::EndOfString, ""),
        }
    }

    fn next(&mut self, context: Context) -> (Token, String) {
        let (token, literal) = match self.items.get(self.position) {
            Some(item) => (adjust(item.token, context), item.literal.clone()),
            None => (Token::EndOfString, String::new()),
        };
        self.position += 1;
        (token, literal)
    }

    fn parse(&mut self) -> Result<Vec<LabelRequirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, literal) = self.peek(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (token, literal) = self.next(Context::Values);
                    match token {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (token, literal) = self.peek(Context::Values);
                            if !matches!(token, Token::Identifier | Token::DoesNotExist) {
                                return Err(format!(
                                    "found '{literal}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!(
                                "found '{literal}', expected: ',' or 'end of string'"
                            ));
                        }
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{literal}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelRequirement, String> {
        let (key, inferred) = self.key_and_inferred_operator()?;
        if let Some(operator) = inferred {
            return LabelRequirement::new(&key, operator, Vec::new());
        }
        let operator = self.operator()?;
        let values = match operator {
            LabelOperator::In | LabelOperator::NotIn => self.value_set()?,
            _ => self.exact_value()?,
        };
        // Upstream collects values into a set: sorted, each once.
        LabelRequirement::new(&key, operator, values.into_iter().collect())
    }

    /// The key, and the operator when it is implied: `!key` is DoesNotExist even when an
    /// operator follows (which then fails as an unexpected token), and a bare `key` is Exists.
    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<LabelOperator>), String> {
        let mut operator = None;
        let (mut token, mut literal) = self.next(Context::Values);
        if token == Token::DoesNotExist {
            operator = Some(LabelOperator::DoesNotExist);
            (token, literal) = self.next(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{literal}', expected: identifier"));
        }
        // Upstream validates the key here with an empty path, which prints as `<nil>`.
        if let Some(e) = invalid_key(&literal, "<nil>") {
            return Err(e);
        }
        let (next, _) = self.peek(Context::Values);
        if matches!(next, Token::EndOfString | Token::Comma) && operator.is_none() {
            operator = Some(LabelOperator::Exists);
        }
        Ok((literal, operator))
    }

    fn operator(&mut self) -> Result<LabelOperator, String> {
        let (token, literal) = self.next(Context::KeyAndOperator);
        Ok(match token {
            Token::In => LabelOperator::In,
            Token::NotIn => LabelOperator::NotIn,
            Token::Equals => LabelOperator::Equals,
            Token::DoubleEquals => LabelOperator::DoubleEquals,
            Token::NotEquals => LabelOperator::NotEquals,
            Token::GreaterThan => LabelOperator::GreaterThan,
            Token::LessThan => LabelOperator::LessThan,
            _ => return Err(format!("found '{literal}', expected: {BINARY_OPERATORS}")),
        })
    }

    /// `(a,b)`. Empty entries are the empty value: `()`, `(,a)`, `(a,)` and `(a,,b)` all
    /// contain "".
    fn value_set(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, literal) = self.next(Context::Values);
        if token != Token::OpenPar {
            // Upstream's message lacks the comma its others have.
            return Err(format!("found '{literal}' expected: '('"));
        }
        let (token, literal) = self.peek(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let literal = literal.to_owned();
                let values = self.value_list()?;
                let (token, _) = self.next(Context::Values);
                if token != Token::ClosedPar {
                    return Err(format!("found '{literal}', expected: ')'"));
                }
                Ok(values)
            }
            Token::ClosedPar => {
                self.next(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!(
                "found '{literal}', expected: ',', ')' or identifier"
            )),
        }
    }

    fn value_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            let (token, literal) = self.next(Context::Values);
            match token {
                Token::Identifier => {
                    values.insert(literal);
                    let (next, next_literal) = self.peek(Context::Values);
                    match next {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{next_literal}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    let (next, _) = self.peek(Context::Values);
                    if next == Token::ClosedPar {
                        values.insert(String::new());
                        return Ok(values);
                    }
                    if next == Token::Comma {
                        values.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{literal}', expected: ',', or identifier")),
            }
        }
    }

    /// The one value after `=`, `==`, `!=`, `>` or `<`; nothing before a comma or the end is
    /// the empty value.
    fn exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, _) = self.peek(Context::Values);
        if matches!(token, Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (token, literal) = self.next(Context::Values);
        if token == Token::Identifier {
            Ok(BTreeSet::from([literal]))
        } else {
            Err(format!("found '{literal}', expected: identifier"))
        }
    }
}

/// In value position `in` and `notin` are plain words: `a in (in,notin)` is valid.
fn adjust(token: Token, context: Context) -> Token {
    match (context, token) {
        (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
        _ => token,
    }
}

#[cfg(test)]
mod tests;
