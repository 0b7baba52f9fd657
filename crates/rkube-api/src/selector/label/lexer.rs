//! The label selector lexer. It works on bytes, as upstream's does: identifiers are whatever
//! lies between whitespace and the operator characters, and key and value validation rejects
//! what does not belong.

/// A token of the label selector syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Token {
    /// Operator characters that form no operator. Every operator character is an operator on
    /// its own, so the lexer never produces this; it is kept to mirror upstream.
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// A token and the text it was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Item {
    pub(super) token: Token,
    pub(super) literal: String,
}

pub(super) struct Lexer<'a> {
    input: &'a [u8],
    position: usize,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn operator_token(text: &[u8]) -> Option<Token> {
    Some(match text {
        b")" => Token::ClosedPar,
        b"," => Token::Comma,
        b"!" => Token::DoesNotExist,
        b"==" => Token::DoubleEquals,
        b"=" => Token::Equals,
        b">" => Token::GreaterThan,
        b"<" => Token::LessThan,
        b"!=" => Token::NotEquals,
        b"(" => Token::OpenPar,
        _ => return None,
    })
}

fn text(bytes: &[u8]) -> String {
    // Tokens split only at ASCII bytes, so every slice is whole UTF-8.
    String::from_utf8_lossy(bytes).into_owned()
}

impl<'a> Lexer<'a> {
    pub(super) fn new(input: &'a str) -> Self {
        Self {
            input: input.as_bytes(),
            position: 0,
        }
    }

    /// Every token up to and including the end of the string.
    pub(super) fn scan(mut self) -> Vec<Item> {
        let mut items = Vec::new();
        loop {
            let item = self.lex();
            let done = item.token == Token::EndOfString;
            items.push(item);
            if done {
                return items;
            }
        }
    }

    /// The next byte, or 0 at the end. Upstream reads a NUL byte in the input as the end too
    /// (while still stepping over it), and so does this.
    fn read(&mut self) -> u8 {
        match self.input.get(self.position) {
            Some(&b) => {
                self.position += 1;
                b
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.position = self.position.saturating_sub(1);
    }

    fn lex(&mut self) -> Item {
        let mut b = self.read();
        while is_whitespace(b) {
            b = self.read();
        }
        if b == 0 {
            return Item {
                token: Token::EndOfString,
                literal: String::new(),
            };
        }
        self.unread();
        if is_special(b) {
            self.operator()
        } else {
            self.word()
        }
    }

    /// A key, a value, or the keywords `in` and `notin`.
    fn word(&mut self) -> Item {
        let start = self.position;
        let mut end = start;
        loop {
            let b = self.read();
            if b == 0 {
                break;
            }
            if is_special(b) || is_whitespace(b) {
                self.unread();
                break;
            }
            end = self.position;
        }
        let literal = text(self.input.get(start..end).unwrap_or_default());
        let token = match literal.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Identifier,
        };
        Item { token, literal }
    }

    /// The longest run of operator characters that still forms an operator.
    fn operator(&mut self) -> Item {
        let start = self.position;
        let mut longest: Option<(Token, usize)> = None;
        loop {
            let b = self.read();
            if b == 0 {
                break;
            }
            if !is_special(b) {
                self.unread();
                break;
            }
            let run = self.input.get(start..self.position).unwrap_or_default();
            match operator_token(run) {
                Some(token) => longest = Some((token, self.position)),
                None if longest.is_some() => {
                    self.unread();
                    break;
                }
                None => {}
            }
        }
        match longest {
            Some((token, end)) => Item {
                token,
                literal: text(self.input.get(start..end).unwrap_or_default()),
            },
            None => Item {
                token: Token::Error,
                literal: format!(
                    "error expected: keyword found '{}'",
                    text(self.input.get(start..self.position).unwrap_or_default())
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> Vec<(Token, String)> {
        Lexer::new(s)
            .scan()
            .into_iter()
            .map(|i| (i.token, i.literal))
            .collect()
    }

    #[test]
    fn the_lexer_splits_words_operators_and_whitespace_as_upstream() {
        use Token::*;
        let cases: &[(&str, &[(Token, &str)])] = &[
            ("", &[(EndOfString, "")]),
            (" \t\r\n", &[(EndOfString, "")]),
            ("x", &[(Identifier, "x"), (EndOfString, "")]),
            (
                "x==y",
                &[
                    (Identifier, "x"),
                    (DoubleEquals, "=="),
                    (Identifier, "y"),
                    (EndOfString, ""),
                ],
            ),
            (
                "x!=y",
                &[
                    (Identifier, "x"),
                    (NotEquals, "!="),
                    (Identifier, "y"),
                    (EndOfString, ""),
                ],
            ),
            (
                "x===y",
                &[
                    (Identifier, "x"),
                    (DoubleEquals, "=="),
                    (Equals, "="),
                    (Identifier, "y"),
                    (EndOfString, ""),
                ],
            ),
            (
                "!!x",
                &[
                    (DoesNotExist, "!"),
                    (DoesNotExist, "!"),
                    (Identifier, "x"),
                    (EndOfString, ""),
                ],
            ),
            (
                "x in(a)",
                &[
                    (Identifier, "x"),
                    (In, "in"),
                    (OpenPar, "("),
                    (Identifier, "a"),
                    (ClosedPar, ")"),
                    (EndOfString, ""),
                ],
            ),
            (
                "x>=1",
                &[
                    (Identifier, "x"),
                    (GreaterThan, ">"),
                    (Equals, "="),
                    (Identifier, "1"),
                    (EndOfString, ""),
                ],
            ),
            (
                "a\0b",
                &[(Identifier, "a"), (Identifier, "b"), (EndOfString, "")],
            ),
            // A NUL that ends an operator is stepped over; one where a token starts ends it all.
            (
                "a,\0b",
                &[
                    (Identifier, "a"),
                    (Comma, ","),
                    (Identifier, "b"),
                    (EndOfString, ""),
                ],
            ),
            (
                "a, \0b",
                &[(Identifier, "a"), (Comma, ","), (EndOfString, "")],
            ),
            (
                "é=ü",
                &[
                    (Identifier, "é"),
                    (Equals, "="),
                    (Identifier, "ü"),
                    (EndOfString, ""),
                ],
            ),
        ];
        for (input, want) in cases {
            let want: Vec<(Token, String)> =
                want.iter().map(|(t, l)| (*t, (*l).to_owned())).collect();
            assert_eq!(tokens(input), want, "{input:?}");
        }
    }
}
