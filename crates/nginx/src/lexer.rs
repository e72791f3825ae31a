//! Tokenizer for nginx configuration text.
//!
//! This module turns one file's text into [`Token`]s and nothing more: it knows nothing
//! about directives, blocks or includes (that is [`crate::config`]).
//!
//! The rules follow nginx's own `ngx_conf_read_token` (crossplane follows the same ones,
//! with small differences noted here):
//! - whitespace is space, tab, CR and LF; line numbers count LF;
//! - `#` at the start of a token starts a comment that runs to the end of the line; inside a
//!   word it is an ordinary character (`a#b` is one word);
//! - `;`, `{` and `}` are tokens of their own, except that inside an unquoted word only
//!   whitespace, `;` and `{` end the word (`a}b` is one word, as in nginx), and a `{` right
//!   after `$` is part of the word (`${var}`);
//! - a word that starts with `'` or `"` runs to the matching quote; after the closing quote
//!   there must be whitespace, `;`, `{`, `)` or the end of the text;
//! - a quote inside a word is an ordinary character;
//! - in every word `\"`, `\'` and `\\` stand for the character, `\t`, `\r` and `\n` for tab,
//!   CR and LF, and any other `\x` is kept as written (so regexes like `\.php$` survive);
//! - the body of a directive whose name ends in `_by_lua_block` is captured raw, from its
//!   `{` to the matching `}`, skipping Lua strings, long brackets and `--` comments.

/// One token of configuration text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// The 1-based line the token starts on.
    pub line: u32,
}

/// The kinds of token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenKind {
    /// A directive name or argument, with escapes resolved and quotes removed.
    Word {
        /// The text of the word.
        text: String,
        /// Whether the word was written in quotes.
        quoted: bool,
    },
    /// `;`, the end of a simple directive.
    Semicolon,
    /// `{`, the start of a block.
    BlockStart,
    /// `}`, the end of a block.
    BlockEnd,
    /// The raw body of a `*_by_lua_block` directive, without the outer braces.
    LuaBlock(String),
}

/// A problem that stops tokenizing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LexError {
    /// A quoted word never ends.
    #[error("line {line}: unexpected end of file in a quoted string")]
    UnterminatedQuote {
        /// The line the quoted string starts on.
        line: u32,
    },
    /// A closing quote is followed by something other than a separator.
    #[error("line {line}: unexpected \"{found}\" after a quoted string")]
    AfterQuote {
        /// The line of the offending character.
        line: u32,
        /// The offending character.
        found: char,
    },
    /// A `*_by_lua_block` body never ends.
    #[error("line {line}: unexpected end of file in a Lua block")]
    UnterminatedLuaBlock {
        /// The line of the block's opening `{`.
        line: u32,
    },
}

impl LexError {
    /// The line the error refers to.
    pub fn line(&self) -> u32 {
        match self {
            Self::UnterminatedQuote { line }
            | Self::AfterQuote { line, .. }
            | Self::UnterminatedLuaBlock { line } => *line,
        }
    }
}

/// The suffix that marks directives whose block is Lua code.
const LUA_BLOCK_SUFFIX: &str = "_by_lua_block";

/// Splits the whole text into tokens, stopping at the first error.
pub fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    Lexer::new(text).collect()
}

/// An iterator over the tokens of one text. After an error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u32,
    /// The next word starts a directive (the previous token ended one).
    at_statement_start: bool,
    /// The current directive's name ends in `_by_lua_block`.
    in_lua_directive: bool,
    failed: bool,
}

impl<'a> Lexer<'a> {
    /// A lexer over `text`, starting at line 1.
    pub fn new(text: &'a str) -> Self {
        Self {
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
            at_statement_start: true,
            in_lua_directive: false,
            failed: false,
        }
    }

    /// The line the lexer is at: after the last token read, or the last line at the end.
    pub fn line(&self) -> u32 {
        self.line
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos.saturating_add(offset)).copied()
    }

    /// Consumes one byte, counting lines.
    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line = self.line.saturating_add(1);
        }
        Some(b)
    }

    /// Skips whitespace and comments. Each iteration consumes at least one byte.
    fn skip_blanks(&mut self) {
        while let Some(b) = self.peek() {
            if is_space(b) {
                self.bump();
            } else if b == b'#' {
                while let Some(c) = self.peek() {
                    if c == b'\n' {
                        break;
                    }
                    self.bump();
                }
            } else {
                break;
            }
        }
    }

    fn next_token(&mut self) -> Option<Result<Token, LexError>> {
        self.skip_blanks();
        let line = self.line;
        let b = self.peek()?;
        let kind = match b {
            b';' => {
                self.bump();
                TokenKind::Semicolon
            }
            b'{' if self.in_lua_directive => match self.lua_block() {
                Ok(body) => TokenKind::LuaBlock(body),
                Err(e) => return Some(Err(e)),
            },
            b'{' => {
                self.bump();
                TokenKind::BlockStart
            }
            b'}' => {
                self.bump();
                TokenKind::BlockEnd
            }
            b'"' | b'\'' => match self.quoted_word(b) {
                Ok(text) => TokenKind::Word { text, quoted: true },
                Err(e) => return Some(Err(e)),
            },
            _ => TokenKind::Word {
                text: self.plain_word(),
                quoted: false,
            },
        };
        match &kind {
            TokenKind::Word { text, .. } => {
                if self.at_statement_start {
                    self.in_lua_directive = text.ends_with(LUA_BLOCK_SUFFIX);
                }
                self.at_statement_start = false;
            }
            _ => {
                self.at_statement_start = true;
                self.in_lua_directive = false;
            }
        }
        Some(Ok(Token { kind, line }))
    }

    /// Reads an unquoted word; the current byte is its first one.
    fn plain_word(&mut self) -> String {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            match b {
                b'\\' => {
                    self.bump();
                    self.escape(&mut out);
                }
                b'$' if self.peek_at(1) == Some(b'{') => {
                    out.extend_from_slice(b"${");
                    self.bump();
                    self.bump();
                }
                b';' | b'{' => break,
                _ if is_space(b) => break,
                _ => {
                    out.push(b);
                    self.bump();
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads a quoted word; the current byte is the opening `quote`.
    fn quoted_word(&mut self, quote: u8) -> Result<String, LexError> {
        let start_line = self.line;
        self.bump();
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err(LexError::UnterminatedQuote { line: start_line }),
                Some(b'\\') => self.escape(&mut out),
                Some(b) if b == quote => break,
                Some(b) => out.push(b),
            }
        }
        match self.peek() {
            None | Some(b';' | b'{' | b')') => {}
            Some(b) if is_space(b) => {}
            Some(_) => {
                let rest = self.bytes.get(self.pos..).unwrap_or_default();
                let found = String::from_utf8_lossy(rest.get(..4).unwrap_or(rest))
                    .chars()
                    .next()
                    .unwrap_or('?');
                return Err(LexError::AfterQuote {
                    line: self.line,
                    found,
                });
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Handles the byte after a backslash (already consumed) the way nginx does.
    fn escape(&mut self, out: &mut Vec<u8>) {
        match self.peek() {
            Some(c @ (b'"' | b'\'' | b'\\')) => {
                out.push(c);
                self.bump();
            }
            Some(b't') => {
                out.push(b'\t');
                self.bump();
            }
            Some(b'r') => {
                out.push(b'\r');
                self.bump();
            }
            Some(b'n') => {
                out.push(b'\n');
                self.bump();
            }
            Some(c) => {
                out.push(b'\\');
                out.push(c);
                self.bump();
            }
            None => out.push(b'\\'),
        }
    }

    /// Captures a Lua body; the current byte is the opening `{`.
    fn lua_block(&mut self) -> Result<String, LexError> {
        let start_line = self.line;
        self.bump();
        let start = self.pos;
        let mut depth: usize = 1;
        // Each iteration consumes at least one byte, so the loop ends with the input.
        while let Some(b) = self.peek() {
            match b {
                b'{' => {
                    depth += 1;
                    self.bump();
                }
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        let body = self.bytes.get(start..self.pos).unwrap_or_default();
                        self.bump();
                        return Ok(String::from_utf8_lossy(body).into_owned());
                    }
                    self.bump();
                }
                b'"' | b'\'' => self.lua_short_string(b),
                b'-' if self.peek_at(1) == Some(b'-') => {
                    self.bump();
                    self.bump();
                    if !self.lua_long_bracket() {
                        while let Some(c) = self.peek() {
                            if c == b'\n' {
                                break;
                            }
                            self.bump();
                        }
                    }
                }
                b'[' => {
                    if !self.lua_long_bracket() {
                        self.bump();
                    }
                }
                _ => {
                    self.bump();
                }
            }
        }
        Err(LexError::UnterminatedLuaBlock { line: start_line })
    }

    /// Skips a Lua quoted string; it ends at the matching quote or, leniently, at the end
    /// of the line (a real Lua string cannot span lines without an escape).
    fn lua_short_string(&mut self, quote: u8) {
        self.bump();
        while let Some(b) = self.peek() {
            if b == b'\n' {
                return;
            }
            self.bump();
            if b == b'\\' {
                self.bump();
            } else if b == quote {
                return;
            }
        }
    }

    /// If a Lua long bracket (`[[`, `[==[`) starts here, skips it to its closing bracket
    /// and returns true; otherwise consumes nothing and returns false.
    fn lua_long_bracket(&mut self) -> bool {
        if self.peek() != Some(b'[') {
            return false;
        }
        let mut level = 0usize;
        while self.peek_at(1 + level) == Some(b'=') {
            level += 1;
        }
        if self.peek_at(1 + level) != Some(b'[') {
            return false;
        }
        for _ in 0..level + 2 {
            self.bump();
        }
        while let Some(b) = self.bump() {
            if b == b']' {
                let mut eq = 0usize;
                while self.peek_at(eq) == Some(b'=') {
                    eq += 1;
                }
                if eq == level && self.peek_at(eq) == Some(b']') {
                    for _ in 0..=eq {
                        self.bump();
                    }
                    return true;
                }
            }
        }
        true
    }
}

impl Iterator for Lexer<'_> {
    type Item = Result<Token, LexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_token();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokenize(text)
            .unwrap_or_default()
            .into_iter()
            .map(|t| match t.kind {
                TokenKind::Word { text, .. } => text,
                TokenKind::Semicolon => ";".into(),
                TokenKind::BlockStart => "{".into(),
                TokenKind::BlockEnd => "}".into(),
                TokenKind::LuaBlock(body) => format!("LUA[{body}]"),
            })
            .collect()
    }

    #[test]
    fn words_and_punctuation() {
        assert_eq!(
            words("a b;c{d}"),
            ["a", "b", ";", "c", "{", "d}"].map(String::from)
        );
    }

    #[test]
    fn lua_long_comment_with_brace() {
        assert_eq!(
            words("x_by_lua_block { --[[ } ]] a = [==[ } ]==] }"),
            ["x_by_lua_block", "LUA[ --[[ } ]] a = [==[ } ]==] ]"].map(String::from)
        );
    }
}
