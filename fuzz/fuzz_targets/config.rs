//! The nginx configuration lexer and parser on one file's text: `lexer::tokenize` and the
//! `Lexer` iterator, `Config::parse_str_partial` and `Config::from_text`.
#![no_main]

use std::path::Path;

use fix502_nginx::Config;
use fix502_nginx::lexer::{Lexer, tokenize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tokens = tokenize(&text);
    let mut lexer = Lexer::new(&text);
    let streamed: Vec<_> = lexer.by_ref().collect();
    if let Ok(tokens) = &tokens {
        assert_eq!(streamed.len(), tokens.len());
    }
    let file = Path::new("/etc/nginx/nginx.conf");
    let (directives, error) = Config::parse_str_partial(&text, file);
    match Config::from_text(&text, file) {
        Ok(config) => {
            assert!(error.is_none());
            assert_eq!(config.directives, directives);
        }
        Err(err) => {
            assert!(error.is_some());
            let _ = err.location();
            let _ = err.to_string();
        }
    }
});
