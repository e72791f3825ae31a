//! "Never panics": random text, truncated and mutated fixtures fed to the lexer, the parser,
//! include expansion, the `nginx -T` splitter and the view. A deterministic generator keeps
//! failures reproducible; a panic anywhere fails the test.

use std::path::{Path, PathBuf};

use fix502_nginx::config::{Config, ConfigError};
use fix502_nginx::dump::{DumpSource, DumpedFile, split_dump};
use fix502_nginx::lexer::tokenize;
use fix502_nginx::view::ConfigView;

/// xorshift64*: small, deterministic, good enough to shuffle fragments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces of nginx syntax (and of its trouble spots) that random text is built from.
const FRAGMENTS: &[&str] = &[
    "{",
    "}",
    ";",
    " ",
    "\n",
    "\t",
    "\r\n",
    "\"",
    "'",
    "\\",
    "#",
    "$",
    "${",
    "x",
    "80",
    "server",
    "location",
    "http",
    "upstream",
    "include ",
    "include *.conf;",
    "include a;",
    "include /etc/nginx/nginx.conf;",
    "proxy_pass ",
    "http://",
    "https://",
    "unix:",
    "[::1]",
    "[",
    "]",
    ":",
    "/",
    "*",
    "?",
    "content_by_lua_block",
    "set_by_lua_block $v ",
    "--",
    "--[[",
    "]]",
    "[==[",
    "]==]",
    "listen ",
    "fastcgi_pass ",
    "grpc_pass grpc://",
    "uwsgi_pass ",
    "stream",
    "mail",
    "if (",
    ")",
    "error_log ",
    "access_log ",
    "user ",
    "é",
    "\u{0}",
    "=",
    "~*",
    "^~",
    "@",
    "65536",
    "0",
    "backend",
    "# configuration file /etc/nginx/x.conf:\n",
];

fn random_text(rng: &mut Rng) -> String {
    let pieces = rng.below(60);
    let mut out = String::new();
    for _ in 0..pieces {
        if rng.below(10) == 0 {
            // A few raw bytes, decoded the way FsSource decodes files.
            let bytes: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
            out.push_str(&String::from_utf8_lossy(&bytes));
        } else {
            out.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
        }
    }
    out
}

/// Runs every entry point on `text` and checks what must hold whatever the input.
fn exercise(text: &str) {
    let lines = u32::try_from(text.matches('\n').count() + 1).unwrap_or(u32::MAX);
    match tokenize(text) {
        Ok(tokens) => assert!(tokens.iter().all(|t| t.line >= 1 && t.line <= lines)),
        Err(e) => assert!(e.line() >= 1 && e.line() <= lines, "{e} in {text:?}"),
    }
    let file = Path::new("/etc/nginx/nginx.conf");
    let (directives, error) = Config::parse_str_partial(text, file);
    assert_eq!(error.is_some(), Config::parse_str(text, file).is_err());
    if let Some(ConfigError::Syntax { line, .. }) = &error {
        assert!(*line >= 1 && *line <= lines, "{error:?} in {text:?}");
    }
    assert!(directives.iter().all(|d| d.span.line <= lines));

    // The same text as a whole configuration (its includes may point at itself).
    let source = DumpSource::from_files(vec![
        DumpedFile {
            path: file.to_path_buf(),
            content: text.to_string(),
        },
        DumpedFile {
            path: PathBuf::from("/etc/nginx/a"),
            content: text.to_string(),
        },
    ]);
    let config = Config::load_from(file, &source).expect("the main file is always readable");
    for err in &config.errors {
        // Display and location must work for every error.
        assert!(!err.to_string().is_empty());
        let _ = err.location();
    }
    let view = ConfigView::new(&config);
    for target in &view.targets {
        let _ = view.peers_of(target);
        assert!(target.server.is_none_or(|s| s < view.servers.len()));
    }
    for server in &view.servers {
        for listen in &server.listens {
            let _ = listen.addr.port();
        }
    }

    // The text as an `nginx -T` dump.
    let files = split_dump(text);
    let dump = DumpSource::from_files(files);
    if let Some(main) = dump.main_file() {
        let main = main.to_path_buf();
        let config = Config::load_from(&main, &dump).expect("dumped main file is readable");
        let _ = ConfigView::new(&config);
    }
}

#[test]
fn random_fragments_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let text = random_text(&mut rng);
        exercise(&text);
    }
}

fn fixture_texts() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let paths = [
        root.join("small-nginx-T.txt"),
        root.join("debian-nginx-T.txt"),
        root.join("small/nginx.conf"),
        root.join("debian/etc/nginx/sites-enabled/default"),
        root.join("debian/etc/nginx/conf.d/app.conf"),
    ];
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("fixture"))
        .collect()
}

#[test]
fn truncated_fixtures_never_panic() {
    for text in fixture_texts() {
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let step = (boundaries.len() / 400).max(1);
        for &cut in boundaries.iter().step_by(step) {
            exercise(&text[..cut]);
        }
    }
}

#[test]
fn mutated_fixtures_never_panic() {
    let mut rng = Rng(42);
    let texts = fixture_texts();
    for round in 0..400 {
        let mut text = texts[round % texts.len()].clone();
        for _ in 0..1 + rng.below(4) {
            let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
            let at = boundaries
                .get(rng.below(boundaries.len()))
                .copied()
                .unwrap_or(0);
            text.insert_str(at, FRAGMENTS[rng.below(FRAGMENTS.len())]);
        }
        exercise(&text);
    }
}

#[test]
fn pathological_inputs_never_panic() {
    let inputs = [
        "{".repeat(10_000),
        "}".repeat(10_000),
        "a{".repeat(10_000),
        format!("x_by_lua_block {}", "{".repeat(10_000)),
        "\"".repeat(9_999),
        "\\".repeat(10_001),
        "#".repeat(10_000),
        "include a;\n".repeat(2_000),
        "$".repeat(10_000) + "{",
        "[".repeat(10_000),
        "http { server { location / { proxy_pass http://[".to_string(),
    ];
    for text in &inputs {
        exercise(text);
    }
}
