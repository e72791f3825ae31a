//! Tokenizer and single-file parser tests: quoting, escapes, comments, variables, Lua
//! blocks, line numbers and syntax errors.

use std::path::Path;

use fix502_nginx::config::{Config, ConfigError, Directive};
use fix502_nginx::lexer::{LexError, Token, TokenKind, tokenize};

/// Tokens as short strings: words as-is (quoted ones in `«»`), punctuation as itself.
fn show(text: &str) -> Vec<String> {
    tokenize(text)
        .expect("tokenize")
        .into_iter()
        .map(|t| match t.kind {
            TokenKind::Word {
                text,
                quoted: false,
            } => text,
            TokenKind::Word { text, quoted: true } => format!("«{text}»"),
            TokenKind::Semicolon => ";".into(),
            TokenKind::BlockStart => "{".into(),
            TokenKind::BlockEnd => "}".into(),
            TokenKind::LuaBlock(body) => format!("LUA[{body}]"),
            other => format!("{other:?}"),
        })
        .collect()
}

fn parse(text: &str) -> Vec<Directive> {
    Config::parse_str(text, Path::new("/t/nginx.conf")).expect("parse")
}

#[test]
fn punctuation_and_words() {
    assert_eq!(
        show("server{listen 80;location / {}}"),
        [
            "server", "{", "listen", "80", ";", "location", "/", "{", "}", "}"
        ]
    );
}

#[test]
fn quotes_are_removed_and_remembered() {
    assert_eq!(
        show(r#"a "b c" 'd;e{f}' "";"#),
        ["a", "«b c»", "«d;e{f}»", "«»", ";"]
    );
}

#[test]
fn escapes_follow_nginx() {
    // \" \' \\ become the character, \t \n \r control characters, others stay.
    assert_eq!(
        show(r#"x "a\"b" 'it\'s' a\\b "t\tn\nr\r" \.php$ "\d";"#),
        [
            "x",
            "«a\"b»",
            "«it's»",
            r"a\b",
            "«t\tn\nr\r»",
            r"\.php$",
            r"«\d»",
            ";"
        ]
    );
}

#[test]
fn escaped_quote_does_not_end_a_quoted_word() {
    assert_eq!(show(r#"x "a\" b;" ;"#), ["x", "«a\" b;»", ";"]);
}

#[test]
fn comments_are_skipped() {
    let text = "# leading { ; }\nuser www-data; # trailing } {\n  # indented\nworker 1;#x\n";
    assert_eq!(show(text), ["user", "www-data", ";", "worker", "1", ";"]);
}

#[test]
fn hash_inside_a_word_is_not_a_comment() {
    assert_eq!(show("add_header X a#b;"), ["add_header", "X", "a#b", ";"]);
}

#[test]
fn close_brace_inside_a_word_is_part_of_it() {
    // nginx only ends an unquoted word on whitespace, ';' and '{'.
    assert_eq!(show("set $x a}b;"), ["set", "$x", "a}b", ";"]);
    let d = parse("set $x a}b;");
    assert_eq!(d[0].args, ["$x", "a}b"]);
}

#[test]
fn variables_stay_inside_words() {
    assert_eq!(
        show(r#"return 200 $host${request_uri}x"${a}";"#),
        ["return", "200", "$host${request_uri}x\"${a}\"", ";"]
    );
    assert_eq!(
        show("set $a ${b}{c};"),
        ["set", "$a", "${b}", "{", "c}", ";"],
        "only the brace right after $ belongs to the word"
    );
}

#[test]
fn close_paren_may_follow_a_quote() {
    assert_eq!(
        show(r#"if ($a = "b") { }"#),
        ["if", "($a", "=", "«b»", ")", "{", "}"]
    );
}

#[test]
fn line_numbers() {
    let tokens = tokenize("a\n\n\"multi\nline\" b;\n# c\n}\n").expect("tokenize");
    let lines: Vec<u32> = tokens.iter().map(|t| t.line).collect();
    assert_eq!(lines, [1, 3, 4, 4, 6]);
}

#[test]
fn crlf_line_ends() {
    let d = parse("user a;\r\nevents {\r\n  worker_connections 1;\r\n}\r\n");
    assert_eq!(d[0].args, ["a"]);
    assert_eq!(d[1].span.line, 2);
    let inner = d[1].block.as_ref().expect("block");
    assert_eq!(inner[0].span.line, 3);
}

#[test]
fn lua_block_is_raw_and_brace_balanced() {
    let text = r#"location / {
    content_by_lua_block {
        local t = { a = "}", b = '{' }  -- a comment with } and {
        ngx.say("hi {")
        --[[ long } comment ]]
        local s = [==[ ]] } ]==]
    }
    add_header X 1;
}"#;
    let d = parse(text);
    let children = d[0].block.as_ref().expect("location block");
    assert_eq!(children.len(), 2);
    assert_eq!(children[0].name, "content_by_lua_block");
    assert!(children[0].block.is_none());
    let body = &children[0].args[0];
    assert!(
        body.starts_with("\n        local t = { a = \"}\""),
        "{body:?}"
    );
    assert!(body.contains("[==[ ]] } ]==]"));
    assert!(body.ends_with("]==]\n    "), "{body:?}");
    assert_eq!(children[1].name, "add_header");
    assert_eq!(children[1].span.line, 8);
}

#[test]
fn lua_block_with_arguments_before_the_body() {
    let d = parse("set_by_lua_block $res { return 32 + math.cos(32) }\nx 1;");
    assert_eq!(d[0].name, "set_by_lua_block");
    assert_eq!(d[0].args, ["$res", " return 32 + math.cos(32) "]);
    assert_eq!(d[1].name, "x");
}

#[test]
fn lua_suffix_only_counts_for_the_directive_name() {
    // An *argument* ending in _by_lua_block does not make the block raw.
    let d = parse("foo access_by_lua_block { bar 1; }");
    let block = d[0].block.as_ref().expect("block");
    assert_eq!(block[0].name, "bar");
}

#[test]
fn lexer_errors_carry_lines() {
    assert_eq!(
        tokenize("a;\nb \"open\n;\n"),
        Err(LexError::UnterminatedQuote { line: 2 })
    );
    assert_eq!(
        tokenize("a\n\"q\"x;"),
        Err(LexError::AfterQuote {
            line: 2,
            found: 'x'
        })
    );
    assert_eq!(
        tokenize("x;\ny_by_lua_block {\n { \n"),
        Err(LexError::UnterminatedLuaBlock { line: 2 })
    );
    assert_eq!(LexError::UnterminatedQuote { line: 7 }.line(), 7);
}

#[test]
fn lexer_stops_after_an_error() {
    let items: Vec<Result<Token, LexError>> = fix502_nginx::lexer::Lexer::new("a 'b").collect();
    assert_eq!(items.len(), 2);
    assert!(items[0].is_ok());
    assert!(items[1].is_err());
}

#[test]
fn parser_builds_nested_blocks_with_spans() {
    let d = parse("http {\n  server {\n    listen 80;\n  }\n}\nuser x;\n");
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].name, "http");
    assert_eq!(d[0].span.to_string(), "/t/nginx.conf:1");
    let server = &d[0].block.as_ref().expect("http block")[0];
    assert_eq!(server.span.line, 2);
    let listen = &server.block.as_ref().expect("server block")[0];
    assert_eq!(
        (listen.name.as_str(), listen.args.as_slice()),
        ("listen", &["80".to_string()][..])
    );
    assert_eq!(listen.span.line, 3);
    assert_eq!(d[1].block, None);
}

#[test]
fn comments_never_become_directives() {
    let d = parse("# a;\n#b {\n c; # d;\n");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].name, "c");
}

fn syntax_error(text: &str) -> (u32, String) {
    match Config::parse_str(text, Path::new("/t/x.conf")) {
        Err(ConfigError::Syntax { line, message, .. }) => (line, message),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn syntax_errors() {
    assert_eq!(
        syntax_error("a 1;\nb 2\n"),
        (3, "unexpected end of file, expecting \";\" or \"}\"".into())
    );
    assert_eq!(
        syntax_error("http {\n"),
        (2, "unexpected end of file, expecting \"}\"".into())
    );
    assert_eq!(syntax_error("a;\n}\n"), (2, "unexpected \"}\"".into()));
    assert_eq!(syntax_error("a\n}"), (2, "unexpected \"}\"".into()));
    assert_eq!(syntax_error("a;\n;"), (2, "unexpected \";\"".into()));
    assert_eq!(syntax_error("{"), (1, "unexpected \"{\"".into()));
    assert_eq!(
        syntax_error("a \"b\"c;"),
        (1, "unexpected \"c\" after a quoted string".into())
    );
    assert_eq!(
        syntax_error("a;\nb 'x;\n"),
        (2, "unexpected end of file in a quoted string".into())
    );
}

#[test]
fn syntax_error_display_has_file_and_line() {
    let err = Config::parse_str("a;\n}", Path::new("/t/x.conf")).expect_err("error");
    assert_eq!(err.to_string(), "/t/x.conf:2: unexpected \"}\"");
    assert_eq!(
        err.location(),
        Some((Path::new("/t/x.conf").to_path_buf(), 2))
    );
}

#[test]
fn partial_parse_keeps_what_came_before_the_error() {
    let text =
        "user a;\nhttp {\n  server {\n    listen 80;\n    oops \"x\"y;\n    listen 81;\n  }\n}\n";
    let (d, err) = Config::parse_str_partial(text, Path::new("/t/x.conf"));
    assert!(
        matches!(err, Some(ConfigError::Syntax { line: 5, .. })),
        "{err:?}"
    );
    assert_eq!(d.len(), 2);
    let server = &d[1].block.as_ref().expect("http")[0];
    let inner = server.block.as_ref().expect("server");
    assert_eq!(inner.len(), 1, "only the listen before the error");
    assert_eq!(inner[0].args, ["80"]);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let text = "a {".repeat(100_000);
    let (d, err) = Config::parse_str_partial(&text, Path::new("/t/x.conf"));
    assert!(matches!(err, Some(ConfigError::Syntax { .. })));
    assert_eq!(d.len(), 1);
}

#[test]
fn non_ascii_text_survives() {
    let d = parse("add_header X-Name \"Привет, мир\"; # коммент\nserver_name пример.рф;");
    assert_eq!(d[0].args[1], "Привет, мир");
    assert_eq!(d[1].args, ["пример.рф"]);
}

#[test]
fn after_quote_error_reports_non_ascii_character() {
    assert_eq!(
        tokenize("a \"b\"é;"),
        Err(LexError::AfterQuote {
            line: 1,
            found: 'é'
        })
    );
}
