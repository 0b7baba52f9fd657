//! Duplicate mapping keys in a YAML body, as upstream's strict YAML decoding reports them
//! (go-yaml's `line N: key "k" already set in map`, N the line of the repeated key).
//!
//! The YAML parser does not tell a visitor where a key is, so two passes are made: the
//! parser's own reading of the text says which keys some mapping repeats (nothing else is
//! ever reported), and a scan of the text's block mappings — indentation, sequence dashes,
//! block and multi-line scalars skipped, flow collections (`{a: 1, b: [x]}`, JSON text)
//! read key by key — finds the lines of those repeats.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// The repeated keys of `body`, one message each, in text order. Empty when the body
/// repeats none (or is not YAML).
pub fn duplicate_keys(body: &[u8]) -> Vec<String> {
    let mut repeated = BTreeSet::new();
    let parsed =
        RepeatedKeys(&mut repeated).deserialize(serde_norway::Deserializer::from_slice(body));
    if parsed.is_err() || repeated.is_empty() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(body);
    scan(&text)
        .into_iter()
        .filter(|(_, key)| repeated.contains(key))
        .map(|(line, key)| {
            let quoted = serde_json::to_string(&key).unwrap_or_default();
            format!("line {line}: key {quoted} already set in map")
        })
        .collect()
}

/// Collects the string keys some mapping of the document holds twice.
struct RepeatedKeys<'a>(&'a mut BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for RepeatedKeys<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RepeatedKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    ignore_scalars!();
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(RepeatedKeys(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<serde_norway::Value>()? {
            if let serde_norway::Value::String(key) = key
                && !seen.insert(key.clone())
            {
                self.0.insert(key);
            }
            map.next_value_seed(RepeatedKeys(&mut *self.0))?;
        }
        Ok(())
    }
}

/// A block mapping being read: the column of its keys and the keys seen.
struct Scope {
    column: usize,
    keys: HashSet<String>,
}

/// What the lines after a key belong to, when not to the mapping structure.
enum Skip {
    /// A block scalar (`|`, `>`): lines indented past the key's column.
    Block(usize),
    /// A quoted scalar still open.
    Quoted(char),
    /// A flow collection still open.
    Flow(Flow),
}

/// One open flow collection of a flow collection being read.
struct Frame {
    /// A mapping's keys so far; `None` for a sequence.
    keys: Option<HashSet<String>>,
    /// Whether a mapping's next scalar is a key.
    expect_key: bool,
}

/// A flow collection being read, possibly over several lines: the collections open, and the
/// scalar being read (its text, the line it started on, the quote it is in, whether it was
/// quoted).
#[derive(Default)]
struct Flow {
    stack: Vec<Frame>,
    token: String,
    token_line: usize,
    quote: Option<char>,
    quoted: bool,
}

impl Flow {
    fn start_token(&mut self, line: usize) {
        self.token.clear();
        self.token_line = line;
        self.quoted = false;
    }

    /// Reads `text`, line `line` of the document, recording the keys a mapping repeats;
    /// true once every collection opened is closed.
    fn feed(&mut self, text: &str, line: usize, found: &mut Vec<(usize, String)>) -> bool {
        let mut chars = text.chars().peekable();
        let mut after_space = true;
        while let Some(c) = chars.next() {
            if let Some(quote) = self.quote {
                if quote == '"' && c == '\\' {
                    if let Some(escaped) = chars.next() {
                        self.token.push(escaped);
                    }
                } else if c == quote {
                    if quote == '\'' && chars.peek() == Some(&'\'') {
                        chars.next();
                        self.token.push('\'');
                    } else {
                        self.quote = None;
                        self.quoted = true;
                    }
                } else {
                    self.token.push(c);
                }
                continue;
            }
            match c {
                '"' | '\'' if self.token.trim().is_empty() => {
                    self.start_token(line);
                    self.quote = Some(c);
                }
                '{' | '[' => {
                    self.stack.push(Frame {
                        keys: (c == '{').then(HashSet::new),
                        expect_key: c == '{',
                    });
                    self.start_token(line);
                }
                '}' | ']' => {
                    self.stack.pop();
                    self.start_token(line);
                    if self.stack.is_empty() {
                        return true;
                    }
                }
                ',' => {
                    if let Some(frame) = self.stack.last_mut() {
                        frame.expect_key = frame.keys.is_some();
                    }
                    self.start_token(line);
                }
                // A colon ends a key when a space, the line's end or a flow indicator
                // follows it, or straight after a quoted key (JSON's `"a":1`).
                ':' if self.quoted
                    || matches!(chars.peek(), None | Some(' ' | '\t' | ',' | '}' | ']')) =>
                {
                    if let Some(frame) = self.stack.last_mut()
                        && frame.expect_key
                    {
                        let key = self.token.trim().to_owned();
                        if let Some(keys) = &mut frame.keys
                            && !keys.insert(key.clone())
                        {
                            found.push((self.token_line, key));
                        }
                        frame.expect_key = false;
                    }
                    self.start_token(line);
                }
                '#' if after_space => break,
                ' ' | '\t' if self.token.is_empty() => {}
                c => {
                    if self.token.is_empty() {
                        self.token_line = line;
                    }
                    self.token.push(c);
                }
            }
            after_space = c == ' ' || c == '\t';
        }
        self.stack.is_empty()
    }

    /// Starts reading a flow collection at the start of `text`; `None` once it is closed on
    /// this line.
    fn open(text: &str, line: usize, found: &mut Vec<(usize, String)>) -> Option<Flow> {
        let mut flow = Flow::default();
        (!flow.feed(text, line, found)).then_some(flow)
    }
}

/// The (1-based line, key) of every key a block mapping repeats, in text order.
fn scan(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut scopes: Vec<Scope> = Vec::new();
    let mut skip: Option<Skip> = None;
    for (n, line) in text.lines().enumerate() {
        if let Some(Skip::Flow(flow)) = &mut skip {
            if flow.feed(line, n + 1, &mut found) {
                skip = None;
            }
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        match skip {
            Some(Skip::Block(column)) if rest.is_empty() || indent > column => continue,
            Some(Skip::Quoted(quote)) => {
                if closes_quote(line, quote) {
                    skip = None;
                }
                continue;
            }
            _ => skip = None,
        }
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if rest.starts_with("---") || rest.starts_with("...") {
            scopes.clear();
            continue;
        }
        // Sequence dashes: each item opens a new mapping two columns on.
        let mut column = indent;
        let mut rest = rest;
        while rest == "-" || rest.starts_with("- ") {
            let after = rest[1..].trim_start_matches(' ');
            column += rest.len() - after.len();
            rest = after;
            scopes.retain(|s| s.column < column);
            scopes.push(Scope {
                column,
                keys: HashSet::new(),
            });
        }
        if rest.starts_with(['{', '[']) {
            skip = Flow::open(rest, n + 1, &mut found).map(Skip::Flow);
            continue;
        }
        let Some((key, value)) = split_key(rest) else {
            continue;
        };
        scopes.retain(|s| s.column <= column);
        match scopes.last_mut() {
            Some(scope) if scope.column == column => {
                if !scope.keys.insert(key.clone()) {
                    found.push((n + 1, key));
                }
            }
            _ => scopes.push(Scope {
                column,
                keys: HashSet::from([key]),
            }),
        }
        let value = value.trim_start();
        skip = match value.chars().next() {
            Some('|' | '>') => Some(Skip::Block(column)),
            Some(quote @ ('"' | '\'')) if !closes_quote(&value[1..], quote) => {
                Some(Skip::Quoted(quote))
            }
            Some('[' | '{') => Flow::open(value, n + 1, &mut found).map(Skip::Flow),
            _ => None,
        };
    }
    found
}

/// A `key: value` line's key (unquoted) and the text after the colon.
fn split_key(rest: &str) -> Option<(String, &str)> {
    let first = rest.chars().next()?;
    if matches!(first, '"' | '\'') {
        let body = &rest[1..];
        let mut key = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == first {
                if first == '\'' && body[i + 1..].starts_with('\'') {
                    key.push('\'');
                    chars.next();
                    continue;
                }
                let after = body[i + 1..].trim_start_matches(' ');
                let value = after.strip_prefix(':')?;
                return (value.is_empty() || value.starts_with([' ', '\t']))
                    .then_some((key, value));
            }
            if c == '\\' && first == '"' {
                let (_, escaped) = chars.next()?;
                key.push(escaped);
                continue;
            }
            key.push(c);
        }
        return None;
    }
    if matches!(
        first,
        '{' | '[' | '&' | '*' | '!' | '|' | '>' | '?' | '%' | '@' | '`' | '#'
    ) {
        return None;
    }
    let colon = rest
        .match_indices(':')
        .map(|(i, _)| i)
        .find(|&i| rest[i + 1..].is_empty() || rest[i + 1..].starts_with([' ', '\t']))?;
    let key = rest[..colon].trim_end();
    if key.contains(" #") || key == "<<" {
        return None;
    }
    Some((key.to_owned(), &rest[colon + 1..]))
}

/// Whether `text` holds the closing `quote` of a scalar opened before it.
fn closes_quote(text: &str, quote: char) -> bool {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && chars.peek() == Some(&'\'') {
                chars.next();
            } else {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_reported_with_their_lines_in_text_order() {
        let body = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\n  name: b\n  \
                    labels:\n    app: x\nspec:\n  paused: true\n  paused: false\n  template:\n    \
                    spec:\n      containers:\n      - name: c\n        image: i\n        image: j\n      \
                    - name: d\n        image: i\n";
        assert_eq!(
            duplicate_keys(body.as_bytes()),
            [
                "line 5: key \"name\" already set in map",
                "line 10: key \"paused\" already set in map",
                "line 16: key \"image\" already set in map",
            ]
        );
    }

    #[test]
    fn keys_in_other_mappings_scalars_and_items_are_not_repeats() {
        for body in [
            "a:\n  x: 1\nb:\n  x: 2\n",
            "items:\n- name: a\n- name: b\n",
            "script: |\n  name: a\n  name: b\nname: c\n",
            "q: \"multi\n  name: a\n  name: b\"\nname: c\n",
            "f: {name: a,\n  other: b}\nname: c\n",
            "a: 1\n---\na: 2\n",
            "- - a: 1\n  - a: 2\n",
        ] {
            assert_eq!(
                duplicate_keys(body.as_bytes()),
                Vec::<String>::new(),
                "{body}"
            );
        }
    }

    #[test]
    fn keys_repeated_in_flow_mappings_and_json_text_are_reported() {
        assert_eq!(
            duplicate_keys(
                b"metadata:\n  labels: {a: 1, b: 2,\n    a: 3}\nspec: {x: [1, {y: 1, y: 2}]}\n"
            ),
            [
                "line 3: key \"a\" already set in map",
                "line 4: key \"y\" already set in map",
            ]
        );
        assert_eq!(
            duplicate_keys(br#"{"metadata":{"name":"a","name":"b"},"data":{"k":"x: y","k2":"{"}}"#),
            ["line 1: key \"name\" already set in map"]
        );
        assert_eq!(
            duplicate_keys(b"- {a: 1, a: 2}\n- {a: 1}\n"),
            ["line 1: key \"a\" already set in map"]
        );
        assert_eq!(
            duplicate_keys(b"u: {a: http://x, b: 'it''s: a'}\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn quoted_keys_are_read_unquoted() {
        assert_eq!(
            duplicate_keys(b"data:\n  \"k\": 1\n  'k': 2\n"),
            ["line 3: key \"k\" already set in map"]
        );
    }
}
