//! Field selectors: the syntax of `?fieldSelector=`, which field labels each kind accepts, and
//! matching them against objects.
//!
//! Parsing follows upstream's `k8s.io/apimachinery/pkg/fields`. Unlike label selectors there is
//! no lexer: the string is split at unescaped commas and each term at its first operator, and
//! nothing is trimmed, so `a = b` selects the field `a ` (which no kind has).

use std::fmt;

use serde_json::Value;

use super::kinds;
use crate::ApiError;

/// How a term compares a field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldOperator {
    /// `field=value` or `field==value`: the field has this value.
    Equals,
    /// `field!=value`: the field has another value.
    NotEquals,
}

/// One `field=value` or `field!=value` condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldTerm {
    field: String,
    operator: FieldOperator,
    value: String,
}

impl FieldTerm {
    /// The field label, e.g. `spec.nodeName`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The operator.
    pub fn operator(&self) -> FieldOperator {
        self.operator
    }

    /// The value, unescaped.
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for FieldTerm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            FieldOperator::Equals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_value(&self.value))
    }
}

/// A parsed field selector: every term must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// In the order of the sorted raw terms, as upstream keeps them.
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses `?fieldSelector=`: terms `a=b`, `a==b` or `a!=b`, separated by commas. In a value
    /// `\,`, `\=` and `\\` stand for `,`, `=` and `\`; any other escape, or a bare `,` or `=`,
    /// is an error. The empty string selects everything. Bad syntax is a 400 with upstream's
    /// message, e.g. `invalid selector: 'a'; can't understand 'a'`.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut parts = split_terms(s);
        // Upstream sorts the raw terms before parsing them, which fixes both the order of the
        // terms and which bad term an error names.
        parts.sort_unstable();
        let mut terms = Vec::with_capacity(parts.len());
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((field, operator, raw_value)) = split_term(part) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape_value(raw_value).map_err(ApiError::BadRequest)?;
            // Upstream's parse runs each term through an identity transform that drops terms
            // whose field and value are both empty, so `=` alone selects everything.
            if field.is_empty() && value.is_empty() {
                continue;
            }
            terms.push(FieldTerm {
                field: field.to_owned(),
                operator,
                value,
            });
        }
        Ok(Self { terms })
    }

    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the selector does not restrict anything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, in upstream's order (sorted by their text as written).
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// Rejects field labels that `kind` in `group` ("" for core) does not support, as the API
    /// server does when it converts the selector for the kind: a 400 whose message is the
    /// kind's own, e.g. `field label not supported: spec.foo` for pods or `"spec.foo" is not
    /// a known field selector: only "metadata.name", "metadata.namespace"` for kinds without
    /// field labels of their own. The first unsupported term in order is reported.
    pub fn check_supported(&self, group: &str, kind: &str) -> Result<(), ApiError> {
        self.for_kind(group, kind).map(|_| ())
    }

    /// The selector as the API server keeps it after converting it for `kind`: unsupported
    /// labels rejected as in [`FieldSelector::check_supported`], and legacy or
    /// version-specific spellings replaced by the label the kind's field set uses (a pod's
    /// `spec.host` becomes `spec.nodeName`, an events.k8s.io Event's `regarding.name` becomes
    /// `involvedObject.name`).
    pub fn for_kind(&self, group: &str, kind: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::with_capacity(self.terms.len());
        for term in &self.terms {
            let field = kinds::convert(group, kind, &term.field).map_err(ApiError::BadRequest)?;
            terms.push(FieldTerm {
                field: field.to_owned(),
                ..term.clone()
            });
        }
        Ok(Self { terms })
    }

    /// Whether a full JSON object of `kind` in `group` satisfies every term, reading each field
    /// as upstream's per-kind field set does: booleans as `true`/`false`, counts as decimal
    /// numbers (`0` when absent), anything else as its string, and a field the object lacks —
    /// or the kind's field set lacks — as the empty string. Accepted spellings are read as the
    /// label they stand for, so an unconverted selector matches as a converted one.
    pub fn matches(&self, group: &str, kind: &str, object: &Value) -> bool {
        self.terms.iter().all(|term| {
            let field = kinds::canonical(group, kind, &term.field);
            let actual = kinds::value(group, kind, field, object);
            match term.operator {
                FieldOperator::Equals => actual == term.value,
                FieldOperator::NotEquals => actual != term.value,
            }
        })
    }

    /// The value an `=` term requires of `field`, if there is one (upstream's
    /// `RequiresExactMatch`): for fast paths such as the pods bound to one node.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.operator == FieldOperator::Equals && t.field == field)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical string, as upstream's `String()`: terms joined by commas, `==` printed as
    /// `=`, and `\`, `,` and `=` in values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, term) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{term}")?;
        }
        Ok(())
    }
}

/// Splits at commas not preceded by an escaping backslash; escapes stay in the terms.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(s.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    terms.push(s.get(start..).unwrap_or_default());
    terms
}

/// Splits a term at the first place an operator starts, trying `!=`, then `==`, then `=`. The
/// field cannot escape anything, so `a\=b=c` splits after `a\`.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::Equals),
        ("=", FieldOperator::Equals),
    ];
    for (i, _) in term.char_indices() {
        let rest = term.get(i..).unwrap_or_default();
        for (text, operator) in OPERATORS {
            if let Some(value) = rest.strip_prefix(text) {
                return Some((term.get(..i).unwrap_or_default(), operator, value));
            }
        }
    }
    None
}

/// Undoes [`escape_value`], with upstream's errors for anything else.
fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            out.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            // Upstream prints the character with `%v`, which shows a Go rune as its number.
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                ));
            }
            c => out.push(c),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".to_owned());
    }
    Ok(out)
}

/// Escapes `\`, `,` and `=` with a backslash, as upstream's `fields.EscapeValue`.
fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
