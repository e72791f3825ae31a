//! Fitting the human text to the terminal: the width (`--width`, else the terminal's, else
//! 80 when stdout is not a terminal), each line wrapped at it with a hanging indent under its
//! marker (`[✗] `, `✗ `, `evidence: `, `3. `...), long text elided in the middle, and the
//! timeline's columns merged to fit. What belongs here: text geometry only; what is said is
//! `render.rs`'s.

use std::io::IsTerminal;

use textwrap::core::display_width;

/// The width when stdout is not a terminal and `--width` is not given.
pub const PIPED_WIDTH: usize = 80;
/// The narrowest width fix502 lays text out for (`--width` below it is a usage error).
pub const MIN_WIDTH: usize = 40;

/// The width to lay out for: `given`, else the terminal's, else [`PIPED_WIDTH`].
pub fn width(given: Option<usize>) -> usize {
    given
        .or_else(|| {
            let term = console::Term::stdout();
            std::io::stdout()
                .is_terminal()
                .then(|| term.size_checked())
                .flatten()
                .map(|(_, cols)| usize::from(cols))
        })
        .unwrap_or(PIPED_WIDTH)
        .max(MIN_WIDTH)
}

/// The markers a line starts with (after its indent) whose continuation lines hang under the
/// text after them: the step statuses, the finding marks, the labels, in Unicode and ASCII.
const MARKERS: &[&str] = &[
    "[✓] ",
    "[!] ",
    "[✗] ",
    "[-] ",
    "[?] ",
    "[OK]   ",
    "[WARN] ",
    "[FAIL] ",
    "[SKIP] ",
    "[ERR]  ",
    "✗ ",
    "x ",
    "! ",
    "• ",
    "* ",
    "- ",
    "? ",
    "→ ",
    "-> ",
    "evidence: ",
    "fix: ",
    "next: ",
    "now: ",
];

/// How far a line's continuation lines are indented: its own indent plus its marker (or a
/// number like `3. `), measured without colour codes.
fn hanging_indent(line: &str) -> usize {
    let plain = console::strip_ansi_codes(line);
    let body = plain.trim_start_matches(' ');
    let indent = plain.len() - body.len();
    let marker = MARKERS
        .iter()
        .find(|m| body.starts_with(*m))
        .map(|m| display_width(m))
        .or_else(|| {
            let digits = body.chars().take_while(char::is_ascii_digit).count();
            (digits > 0 && body[digits..].starts_with(". ")).then_some(digits + 2)
        })
        .unwrap_or(0);
    indent + marker
}

/// `text` with every line wider than `width` wrapped at spaces (a word wider than the line is
/// broken), each continuation line indented under the text after the line's marker.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        if display_width(body) <= width {
            out.push_str(line);
            continue;
        }
        // The line's own indent is put back on every part; a hang of more than half the
        // line would leave too little room: half it is.
        let text = body.trim_start_matches(' ');
        let indent = (body.len() - text.len()).min(width / 2);
        let hang = hanging_indent(body).clamp(indent, width / 2) - indent;
        let pad = " ".repeat(hang);
        // Lines break at spaces only: a path or a command is never split at a `/` or `-`
        // unless it is wider than the line.
        let options = textwrap::Options::new(width - indent)
            .subsequent_indent(&pad)
            .word_separator(textwrap::WordSeparator::AsciiSpace)
            .word_splitter(textwrap::WordSplitter::NoHyphenation)
            .break_words(true);
        let mut first = true;
        for part in textwrap::wrap(text, options) {
            // textwrap breaks a long word at the continuation lines' width; the first line,
            // with less in front, can still be wider than the page.
            for piece in split_at_width(&part, width - indent, &pad) {
                if !first {
                    out.push('\n');
                }
                first = false;
                out.push_str(&" ".repeat(indent));
                out.push_str(&piece);
            }
        }
        out.push_str(newline);
    }
    out
}

/// `line` in pieces of at most `width` columns, the pieces after the first behind `pad`
/// (colour codes count nothing and are never cut).
fn split_at_width(line: &str, width: usize, pad: &str) -> Vec<String> {
    if display_width(line) <= width {
        return vec![line.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut piece = String::new();
    let mut used = 0;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape sequence: ESC [ ... final letter, kept whole.
            piece.push(c);
            while let Some(&n) = chars.peek() {
                piece.push(n);
                chars.next();
                if n.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        let w = display_width(c.encode_utf8(&mut [0; 4]));
        if used + w > width && used > display_width(pad) {
            pieces.push(std::mem::take(&mut piece));
            piece.push_str(pad);
            used = display_width(pad);
        }
        piece.push(c);
        used += w;
    }
    pieces.push(piece);
    pieces
}

/// `text` cut to at most `max` columns by taking out its middle (`…` in its place), so that
/// both its start (a date, a path's root) and its end (the upstream, the file name) stay.
pub fn elide_middle(text: &str, max: usize) -> String {
    if display_width(text) <= max {
        return text.to_owned();
    }
    let keep = max.saturating_sub(1);
    let tail_len = keep / 2;
    let head_len = keep - tail_len;
    let head: String = text.chars().take(head_len).collect();
    let tail: String = {
        let mut t: Vec<char> = text.chars().rev().take(tail_len).collect();
        t.reverse();
        t.into_iter().collect()
    };
    format!("{head}…{tail}")
}

/// `counts` merged into at most `columns` buckets (each the sum of `factor` neighbours, the
/// last one possibly fewer), and that factor: a sparkline that fits the width.
pub fn fit_counts(counts: &[u64], columns: usize) -> (Vec<u64>, usize) {
    let columns = columns.max(1);
    let factor = counts.len().div_ceil(columns).max(1);
    let merged = counts.chunks(factor).map(|c| c.iter().sum()).collect();
    (merged, factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_finding_wraps_under_its_text_and_short_lines_stay() {
        let text = "    ✗ 127.0.0.1:41865: connection refused (111), the upstream of location / (conf/app.conf:3)\nshort\n";
        let wrapped = wrap(text, 40);
        for line in wrapped.lines() {
            assert!(display_width(line) <= 40, "{line:?}");
        }
        let lines: Vec<&str> = wrapped.lines().collect();
        assert!(lines[0].starts_with("    ✗ 127.0.0.1:41865:"), "{wrapped}");
        assert!(
            lines[1].starts_with("      ") && !lines[1].starts_with("       "),
            "{wrapped}"
        );
        assert_eq!(lines.last(), Some(&"short"));
    }

    #[test]
    fn the_hang_follows_the_marker_and_ignores_colour() {
        assert_eq!(hanging_indent("     evidence: a b"), 15);
        assert_eq!(hanging_indent("  12. upstream-refused"), 6);
        assert_eq!(hanging_indent("\u{1b}[31m[✗]\u{1b}[0m Error logs"), 4);
        assert_eq!(hanging_indent("plain"), 0);
    }

    #[test]
    fn a_word_wider_than_the_line_is_broken_and_colour_does_not_count() {
        let path = format!("      → /{}", "a".repeat(100));
        for line in wrap(&path, 50).lines() {
            assert!(display_width(line) <= 50, "{line}");
        }
        let red = format!("\u{1b}[31m{}\u{1b}[0m", "x".repeat(45));
        assert_eq!(wrap(&red, 50), red);
    }

    #[test]
    fn eliding_keeps_both_ends() {
        let e = elide_middle(
            "2026/12/07 01:28:51 [error] connect() failed upstream: \"http://127.0.0.1:41865/\"",
            40,
        );
        assert_eq!(display_width(&e), 40);
        assert!(e.starts_with("2026/12/07"));
        assert!(e.ends_with("41865/\""));
        assert_eq!(elide_middle("short", 40), "short");
    }

    #[test]
    fn counts_merge_to_fit_and_keep_their_sum() {
        let counts: Vec<u64> = (0..60).collect();
        let (merged, factor) = fit_counts(&counts, 25);
        assert_eq!(factor, 3);
        assert_eq!(merged.len(), 20);
        assert_eq!(merged.iter().sum::<u64>(), counts.iter().sum::<u64>());
        assert_eq!(fit_counts(&counts, 100), (counts.clone(), 1));
    }
}
