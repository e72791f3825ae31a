//! The directive tree of an nginx configuration, with `include` expanded.
//!
//! This module owns: the generic [`Directive`] tree and its [`Span`]s, the parser that turns
//! [`crate::lexer`] tokens into that tree, include expansion (paths relative to the main
//! file's directory, glob(3)-style sorted globs, cycle and size limits), the [`Source`]
//! abstraction over where files come from, and [`ConfigError`].
//!
//! It knows no directive semantics except `include`; the meaning of `server`, `proxy_pass`
//! and friends lives in [`crate::view`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::lexer::{Lexer, TokenKind};

/// Files larger than this are refused by [`FsSource`].
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;
/// How deep `include` may nest (an included file including another is depth 2).
pub const MAX_INCLUDE_DEPTH: usize = 64;
/// How many distinct files one configuration may read.
pub const MAX_FILES: usize = 4096;
/// How many bytes of configuration text one load may read in total.
pub const MAX_TOTAL_BYTES: usize = 256 * 1024 * 1024;
/// How many directives the expanded tree may hold.
pub const MAX_DIRECTIVES: usize = 1_000_000;
/// How deeply blocks may nest, counting blocks across included files.
pub const MAX_NESTING: usize = 100;

/// The bounds of one load ([`Config::load_limited`]); the default is the `MAX_*` constants.
/// A load that reaches one keeps what it read so far and records the limit as an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How many directives the expanded tree may hold.
    pub directives: usize,
    /// How many distinct files may be read.
    pub files: usize,
    /// How deep `include` may nest.
    pub include_depth: usize,
    /// How many bytes of configuration text may be read in total.
    pub total_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            directives: MAX_DIRECTIVES,
            files: MAX_FILES,
            include_depth: MAX_INCLUDE_DEPTH,
            total_bytes: MAX_TOTAL_BYTES,
        }
    }
}

/// Where a directive was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Span {
    /// The file, as nginx would name it (include paths joined to the conf prefix).
    pub file: Arc<Path>,
    /// The 1-based line of the directive's name.
    pub line: u32,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One directive: a name, its arguments and, for block directives, its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The directive name, e.g. `proxy_pass`.
    pub name: String,
    /// The arguments, quotes removed and escapes resolved. For a `*_by_lua_block`
    /// directive the raw Lua body is the last argument.
    pub args: Vec<String>,
    /// The children of a block directive (`server { ... }`); `None` for simple ones.
    pub block: Option<Vec<Self>>,
    /// Where the directive was written.
    pub span: Span,
}

/// A loaded configuration: every file read and one directive tree.
#[derive(Debug)]
pub struct Config {
    /// The main file, as given.
    pub main: PathBuf,
    /// Every file read, each once, in the order nginx reads them (main first).
    pub files: Vec<PathBuf>,
    /// The directive tree, `include` directives replaced by the included directives.
    pub directives: Vec<Directive>,
    /// Problems that did not stop loading: syntax errors, missing includes, cycles...
    pub errors: Vec<ConfigError>,
}

/// Where configuration files come from.
pub trait Source {
    /// The text of one file.
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The paths matching a glob(3) pattern, sorted byte-wise; empty when none match.
    fn glob(&self, pattern: &Path) -> std::io::Result<Vec<PathBuf>>;
}

/// The real filesystem. Non-UTF-8 bytes are decoded lossily; files larger than
/// [`MAX_FILE_SIZE`] are refused.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsSource;

impl Source for FsSource {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let file = std::fs::File::open(path)?;
        let too_big = || {
            std::io::Error::other(format!(
                "file is larger than {} MiB",
                MAX_FILE_SIZE / (1024 * 1024)
            ))
        };
        if file.metadata()?.len() > MAX_FILE_SIZE {
            return Err(too_big());
        }
        let mut bytes = Vec::new();
        file.take(MAX_FILE_SIZE + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_FILE_SIZE {
            return Err(too_big());
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn glob(&self, pattern: &Path) -> std::io::Result<Vec<PathBuf>> {
        let text = pattern.to_string_lossy();
        let paths = glob::glob_with(&text, glob_options())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        // Like glob(3) without GLOB_ERR, directories that cannot be read are skipped.
        let mut out: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
        sort_like_glob(&mut out);
        Ok(out)
    }
}

/// Glob matching options close to glob(3) with no flags: `*` never crosses `/`, and a
/// leading `.` must be matched literally.
pub fn glob_options() -> glob::MatchOptions {
    glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    }
}

/// Sorts paths the way glob(3) does in the C locale: byte-wise over the whole path.
pub fn sort_like_glob(paths: &mut [PathBuf]) {
    paths.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
}

/// A problem reading or parsing the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read (for the main file this is fatal).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file included by name could not be read (nginx refuses to start).
    #[error("{}:{line}: cannot read included file {}: {source}", file.display(), target.display())]
    Include {
        /// The file holding the `include`.
        file: PathBuf,
        /// The line of the `include`.
        line: u32,
        /// The included path.
        target: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A glob pattern in `include` could not be expanded.
    #[error("{}:{line}: cannot expand include pattern {}: {message}", file.display(), pattern.display())]
    Glob {
        /// The file holding the `include`.
        file: PathBuf,
        /// The line of the `include`.
        line: u32,
        /// The pattern.
        pattern: PathBuf,
        /// Why.
        message: String,
    },
    /// A syntax error; the directives before it are kept.
    #[error("{}:{line}: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// The line.
        line: u32,
        /// What is wrong, in nginx's words where possible.
        message: String,
    },
    /// A file includes itself, directly or through others; the include is skipped.
    #[error("{}:{line}: include cycle: {} is already being included", file.display(), target.display())]
    IncludeCycle {
        /// The file holding the `include`.
        file: PathBuf,
        /// The line of the `include`.
        line: u32,
        /// The file that would be included again.
        target: PathBuf,
    },
    /// A limit protecting against runaway configurations was reached; the rest of what
    /// it guards is skipped.
    #[error("{}:{line}: {what} (limit {limit}); the rest is skipped", file.display())]
    Limit {
        /// The file where the limit was reached.
        file: PathBuf,
        /// The line where the limit was reached.
        line: u32,
        /// Which limit.
        what: &'static str,
        /// The limit's value.
        limit: usize,
    },
}

impl ConfigError {
    /// The file and line the error points at, when it has one (`Io` has no line).
    pub fn location(&self) -> Option<(PathBuf, u32)> {
        match self {
            Self::Io { .. } => None,
            Self::Include { file, line, .. }
            | Self::Glob { file, line, .. }
            | Self::Syntax { file, line, .. }
            | Self::IncludeCycle { file, line, .. }
            | Self::Limit { file, line, .. } => Some((file.clone(), *line)),
        }
    }
}

/// Calls `f` with `directives` and then with every block nested in them, outer blocks
/// first: each directive is in exactly one of the slices `f` sees, beside its siblings.
pub fn each_block<'a>(directives: &'a [Directive], f: &mut impl FnMut(&'a [Directive])) {
    f(directives);
    for d in directives {
        if let Some(block) = &d.block {
            each_block(block, f);
        }
    }
}

impl Config {
    /// Loads `main` and everything it includes from the filesystem.
    pub fn load(main: &Path) -> Result<Self, ConfigError> {
        Self::load_from(main, &FsSource)
    }

    /// Loads `main` and everything it includes from `source`. Only an unreadable main
    /// file is an `Err`; every other problem is recorded in [`Config::errors`].
    pub fn load_from(main: &Path, source: &dyn Source) -> Result<Self, ConfigError> {
        Self::load_limited(main, source, Limits::default())
    }

    /// [`Config::load_from`] within other bounds than the default ones.
    pub fn load_limited(
        main: &Path,
        source: &dyn Source,
        limits: Limits,
    ) -> Result<Self, ConfigError> {
        let text = source.read(main).map_err(|e| ConfigError::Io {
            path: main.to_path_buf(),
            source: e,
        })?;
        let prefix = main.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut loader = Loader {
            source,
            prefix,
            files: Vec::new(),
            parsed: HashMap::new(),
            errors: Vec::new(),
            stack: Vec::new(),
            total_bytes: 0,
            directive_count: 0,
            limit_hit: false,
            globs: HashMap::new(),
            reported: HashSet::new(),
            limits,
        };
        loader.add_parsed(main, &text);
        let directives = loader.expand_file(main, 0);
        Ok(Self {
            main: main.to_path_buf(),
            files: loader.files,
            directives,
            errors: loader.errors,
        })
    }

    /// A configuration of one file given as text (includes are not expanded); the first
    /// syntax error is an `Err`. For tools and tests that already hold the text.
    pub fn from_text(text: &str, file: &Path) -> Result<Self, ConfigError> {
        Ok(Self {
            main: file.to_path_buf(),
            files: vec![file.to_path_buf()],
            directives: Self::parse_str(text, file)?,
            errors: Vec::new(),
        })
    }

    /// Parses one file's text without expanding includes; the first syntax error is
    /// an `Err`.
    pub fn parse_str(text: &str, file: &Path) -> Result<Vec<Directive>, ConfigError> {
        match Self::parse_str_partial(text, file) {
            (directives, None) => Ok(directives),
            (_, Some(err)) => Err(err),
        }
    }

    /// Parses one file's text without expanding includes, keeping everything parsed
    /// before the first syntax error (open blocks are closed where the error is).
    pub fn parse_str_partial(text: &str, file: &Path) -> (Vec<Directive>, Option<ConfigError>) {
        let file_arc: Arc<Path> = Arc::from(file);
        let (directives, error) = parse_tokens(text, &file_arc);
        let error = error.map(|(line, message)| ConfigError::Syntax {
            file: file.to_path_buf(),
            line,
            message,
        });
        (directives, error)
    }
}

/// A block being built by the parser.
struct Frame {
    name: String,
    args: Vec<String>,
    line: u32,
    children: Vec<Directive>,
}

/// Parses text into directives; on a syntax error returns what was built so far and the
/// error's line and message.
fn parse_tokens(text: &str, file: &Arc<Path>) -> (Vec<Directive>, Option<(u32, String)>) {
    let span = |line| Span {
        file: Arc::clone(file),
        line,
    };
    let mut top: Vec<Directive> = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // The words of the directive being read, with the line of the first.
    let mut words: Vec<String> = Vec::new();
    let mut first_line = 0u32;
    let mut error: Option<(u32, String)> = None;

    let mut lexer = Lexer::new(text);
    // The lexer consumes input on every call and stops at the end or after an error.
    for token in lexer.by_ref() {
        let token = match token {
            Ok(t) => t,
            Err(e) => {
                error = Some((e.line(), strip_line_prefix(&e.to_string())));
                break;
            }
        };
        let level = stack.last_mut().map_or(&mut top, |f| &mut f.children);
        match token.kind {
            TokenKind::Word { text, .. } => {
                if words.is_empty() {
                    first_line = token.line;
                }
                words.push(text);
            }
            TokenKind::Semicolon => {
                let mut it = std::mem::take(&mut words).into_iter();
                let Some(name) = it.next() else {
                    error = Some((token.line, "unexpected \";\"".into()));
                    break;
                };
                level.push(Directive {
                    name,
                    args: it.collect(),
                    block: None,
                    span: span(first_line),
                });
            }
            TokenKind::LuaBlock(body) => {
                let mut it = std::mem::take(&mut words).into_iter();
                let Some(name) = it.next() else {
                    error = Some((token.line, "unexpected \"{\"".into()));
                    break;
                };
                let mut args: Vec<String> = it.collect();
                args.push(body);
                level.push(Directive {
                    name,
                    args,
                    block: None,
                    span: span(first_line),
                });
            }
            TokenKind::BlockStart => {
                let mut it = std::mem::take(&mut words).into_iter();
                let Some(name) = it.next() else {
                    error = Some((token.line, "unexpected \"{\"".into()));
                    break;
                };
                if stack.len() >= MAX_NESTING {
                    error = Some((
                        token.line,
                        format!("blocks nested deeper than {MAX_NESTING} levels"),
                    ));
                    break;
                }
                stack.push(Frame {
                    name,
                    args: it.collect(),
                    line: first_line,
                    children: Vec::new(),
                });
            }
            TokenKind::BlockEnd => {
                if !words.is_empty() {
                    error = Some((token.line, "unexpected \"}\"".into()));
                    break;
                }
                let Some(frame) = stack.pop() else {
                    error = Some((token.line, "unexpected \"}\"".into()));
                    break;
                };
                let directive = Directive {
                    name: frame.name,
                    args: frame.args,
                    block: Some(frame.children),
                    span: span(frame.line),
                };
                stack
                    .last_mut()
                    .map_or(&mut top, |f| &mut f.children)
                    .push(directive);
            }
        }
    }

    if error.is_none() {
        // Like nginx, end-of-file errors point at the last line.
        let last_line = lexer.line();
        if !words.is_empty() {
            error = Some((
                last_line,
                "unexpected end of file, expecting \";\" or \"}\"".into(),
            ));
        } else if !stack.is_empty() {
            error = Some((last_line, "unexpected end of file, expecting \"}\"".into()));
        }
    }
    // Close the blocks left open so that what was parsed is kept.
    while let Some(frame) = stack.pop() {
        let directive = Directive {
            name: frame.name,
            args: frame.args,
            block: Some(frame.children),
            span: span(frame.line),
        };
        stack
            .last_mut()
            .map_or(&mut top, |f| &mut f.children)
            .push(directive);
    }
    (top, error)
}

/// `"line 3: message"` → `"message"` (the line is carried separately).
fn strip_line_prefix(text: &str) -> String {
    match text.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest.to_string(),
        _ => text.to_string(),
    }
}

/// State of one [`Config::load_from`].
struct Loader<'a> {
    source: &'a dyn Source,
    /// nginx's conf prefix: relative includes are joined to it.
    prefix: PathBuf,
    files: Vec<PathBuf>,
    /// Each file read so far, parsed but with its includes not yet expanded.
    parsed: HashMap<PathBuf, Arc<Vec<Directive>>>,
    errors: Vec<ConfigError>,
    /// The files being expanded, outermost first (for cycle detection).
    stack: Vec<PathBuf>,
    total_bytes: usize,
    directive_count: usize,
    /// Set once the directive limit is reached, so the error is recorded only once.
    limit_hit: bool,
    /// The targets of each glob pattern, expanded once per load.
    globs: HashMap<PathBuf, Result<Vec<PathBuf>, String>>,
    /// The text of each problem recorded: a line that includes bring in again and again
    /// is reported once.
    reported: HashSet<String>,
    /// The bounds of this load.
    limits: Limits,
}

impl Loader<'_> {
    /// Records a file as read and parses it.
    fn add_parsed(&mut self, path: &Path, text: &str) {
        self.total_bytes = self.total_bytes.saturating_add(text.len());
        self.files.push(path.to_path_buf());
        let (directives, error) = Config::parse_str_partial(text, path);
        if let Some(error) = error {
            self.errors.push(error);
        }
        self.parsed.insert(path.to_path_buf(), Arc::new(directives));
    }

    /// The expanded directives of an already parsed file.
    fn expand_file(&mut self, path: &Path, nesting: usize) -> Vec<Directive> {
        let Some(directives) = self.parsed.get(path).cloned() else {
            return Vec::new();
        };
        self.stack.push(path.to_path_buf());
        let out = self.expand_list(&directives, nesting);
        self.stack.pop();
        out
    }

    /// Copies `directives`, replacing includes and descending into blocks. `nesting` is the
    /// number of blocks around them in the final tree.
    fn expand_list(&mut self, directives: &[Directive], nesting: usize) -> Vec<Directive> {
        let mut out = Vec::with_capacity(directives.len());
        for directive in directives {
            // Includes count too, so that files including each other many times cannot
            // make the work explode even when they hold nothing else.
            if !self.count_directive(&directive.span) {
                break;
            }
            if directive.name == "include" && directive.block.is_none() {
                self.include(directive, nesting, &mut out);
                continue;
            }
            let block = match &directive.block {
                Some(children) if nesting + 1 >= MAX_NESTING => {
                    if !children.is_empty() {
                        self.limit(
                            &directive.span,
                            "blocks nested too deeply across includes",
                            MAX_NESTING,
                        );
                    }
                    Some(Vec::new())
                }
                Some(children) => Some(self.expand_list(children, nesting + 1)),
                None => None,
            };
            out.push(Directive {
                name: directive.name.clone(),
                args: directive.args.clone(),
                block,
                span: directive.span.clone(),
            });
        }
        out
    }

    /// Counts one more directive; false once the limit is reached.
    fn count_directive(&mut self, span: &Span) -> bool {
        if self.directive_count >= self.limits.directives {
            if !self.limit_hit {
                self.limit_hit = true;
                self.limit(span, "too many directives", self.limits.directives);
            }
            return false;
        }
        self.directive_count += 1;
        true
    }

    fn limit(&mut self, span: &Span, what: &'static str, limit: usize) {
        self.record(ConfigError::Limit {
            file: span.file.to_path_buf(),
            line: span.line,
            what,
            limit,
        });
    }

    /// Expands one `include` directive into `out`.
    fn include(&mut self, directive: &Directive, nesting: usize, out: &mut Vec<Directive>) {
        let file = directive.span.file.to_path_buf();
        let line = directive.span.line;
        let [arg] = directive.args.as_slice() else {
            self.record(ConfigError::Syntax {
                file,
                line,
                message: "invalid number of arguments in \"include\" directive".into(),
            });
            return;
        };
        let target = self.prefix.join(arg);
        let targets = if arg.contains(['*', '?', '[']) {
            let source = self.source;
            let globbed = self
                .globs
                .entry(target.clone())
                .or_insert_with(|| source.glob(&target).map_err(|e| e.to_string()));
            match globbed.clone() {
                Ok(paths) => paths,
                Err(message) => {
                    self.record(ConfigError::Glob {
                        file,
                        line,
                        pattern: target,
                        message,
                    });
                    return;
                }
            }
        } else {
            vec![target]
        };
        for target in targets {
            // Every file brought in counts, and so does every cycle: files that include
            // each other (`include *;` in each) have factorially many include paths.
            if !self.count_directive(&directive.span) {
                return;
            }
            if self.stack.contains(&target) {
                self.record(ConfigError::IncludeCycle {
                    file: file.clone(),
                    line,
                    target,
                });
                continue;
            }
            if self.stack.len() > self.limits.include_depth {
                self.limit(
                    &directive.span,
                    "includes nested too deeply",
                    self.limits.include_depth,
                );
                return;
            }
            if !self.parsed.contains_key(&target) && !self.read_new(&target, &directive.span) {
                continue;
            }
            let expanded = self.expand_file(&target, nesting);
            out.extend(expanded);
        }
    }

    /// Records a problem, unless the same one (same text) was recorded already.
    fn record(&mut self, error: ConfigError) {
        if self.reported.insert(error.to_string()) {
            self.errors.push(error);
        }
    }

    /// Reads and parses a file not seen before; false (with an error recorded) if that
    /// failed.
    fn read_new(&mut self, target: &Path, span: &Span) -> bool {
        if self.files.len() >= self.limits.files {
            // Once: the rest is skipped, as the error says.
            if !self.limit_hit {
                self.limit_hit = true;
                self.limit(span, "too many files", self.limits.files);
            }
            return false;
        }
        match self.source.read(target) {
            Ok(text) => {
                if self.total_bytes.saturating_add(text.len()) > self.limits.total_bytes {
                    self.limit(
                        span,
                        "too many bytes of configuration",
                        self.limits.total_bytes,
                    );
                    return false;
                }
                self.add_parsed(target, &text);
                true
            }
            Err(source) => {
                self.record(ConfigError::Include {
                    file: span.file.to_path_buf(),
                    line: span.line,
                    target: target.to_path_buf(),
                    source,
                });
                false
            }
        }
    }
}
