//! Substring search for the error-log hot path: each fixed text nginx puts between the
//! fields of a line (`, client: `, ` while `, ` (`) has one searcher, built once and shared
//! by every line and thread, instead of `str::find`, which builds a searcher per call. What
//! belongs here: those searchers, the `split_once`-like helpers over them, and the
//! in-place prefix test and digit reader the hot paths share.

use std::sync::OnceLock;

use memchr::memmem::Finder;

/// A fixed text and its searchers, both directions.
pub(crate) struct Text {
    text: &'static str,
    forward: OnceLock<Finder<'static>>,
    /// The position in `text` of the byte [`Text::rfind`] looks for (see [`anchor`]).
    anchor: OnceLock<usize>,
}

impl Text {
    /// The searchers of `text` (built on first use).
    pub(crate) const fn new(text: &'static str) -> Self {
        Self {
            text,
            forward: OnceLock::new(),
            anchor: OnceLock::new(),
        }
    }

    /// The first position of the text in `hay`.
    pub(crate) fn find(&self, hay: &str) -> Option<usize> {
        self.forward
            .get_or_init(|| Finder::new(self.text.as_bytes()))
            .find(hay.as_bytes())
    }

    /// The last position of the text in `hay`. Each occurrence in `hay` of the text's
    /// rarest byte ([`anchor`]), from the end, is tried as that byte of the text: the
    /// search for one byte is vectorised where memchr's reverse substring searcher is
    /// not, and the texts sought backwards end short messages.
    pub(crate) fn rfind(&self, hay: &str) -> Option<usize> {
        let text = self.text.as_bytes();
        let at = *self.anchor.get_or_init(|| anchor(text));
        let byte = *text.get(at)?;
        let hay = hay.as_bytes();
        memchr::memrchr_iter(byte, hay).find_map(|i| {
            let start = i.checked_sub(at)?;
            starts_with(hay.get(start..)?, text).then_some(start)
        })
    }

    /// `hay` split around the first occurrence of the text, as [`str::split_once`].
    pub(crate) fn split_once<'h>(&self, hay: &'h str) -> Option<(&'h str, &'h str)> {
        let at = self.find(hay)?;
        // The text is ASCII-bounded UTF-8, so both cuts are on character boundaries.
        Some((hay.get(..at)?, hay.get(at + self.text.len()..)?))
    }
}

/// The position of the byte of `text` least likely in a log line, by a rough ranking: a
/// byte other than a letter or the space first, then a letter other than the most common
/// ones, then those, then the space.
fn anchor(text: &[u8]) -> usize {
    let rank = |b: u8| match b {
        b' ' => 3,
        b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' => 2,
        b if b.is_ascii_alphabetic() => 1,
        _ => 0,
    };
    // The first of the lowest rank.
    (0..text.len())
        .min_by_key(|&i| text.get(i).map_or(u8::MAX, |&b| rank(b)))
        .unwrap_or(0)
}

/// `hay.starts_with(text)`, compared in place: the hot paths compare a few bytes at a time
/// (field markers, format literals), for which a call to `memcmp` (what `starts_with`
/// makes) costs more than the comparison.
pub(crate) fn starts_with(hay: &[u8], text: &[u8]) -> bool {
    hay.len() >= text.len() && hay.iter().zip(text).all(|(a, b)| a == b)
}

// The texts of the hot path, one searcher each.
pub(crate) static LEVEL_END: Text = Text::new("] ");
pub(crate) static CLIENT: Text = Text::new(", client: ");
pub(crate) static WHILE: Text = Text::new(" while ");
pub(crate) static PAREN: Text = Text::new(" (");
pub(crate) static COLON_SPACE: Text = Text::new(": ");
pub(crate) static SCHEME: Text = Text::new("://");
pub(crate) static REPORTED_CLIENT: Text = Text::new("reported that client ");
pub(crate) static NOT_RESOLVED: Text = Text::new(" could not be resolved");
pub(crate) static IN_UPSTREAM: Text = Text::new(" in upstream \"");
// The separators of nginx's `$upstream_*` lists: the next server, an internal redirect.
pub(crate) static NEXT_ATTEMPT: Text = Text::new(", ");
pub(crate) static AFTER_REDIRECT: Text = Text::new(" : ");

/// `s.split_once(byte)` for an ASCII `byte` that is near: a plain loop, which beats the
/// vector search `str::split_once` sets up for each call on the few bytes of a PID or a
/// connection number.
pub(crate) fn split_near(s: &str, byte: u8) -> Option<(&str, &str)> {
    debug_assert!(byte.is_ascii());
    let at = s.bytes().position(|c| c == byte)?;
    // An ASCII byte is a whole character: both sides are on character boundaries.
    Some((s.get(..at)?, s.get(at + 1..)?))
}

/// The value of the run of ASCII digits `s` starts with (0 for none) and the run's length;
/// `None` when the value exceeds `max`. The error-log parser and the scanner's header check,
/// which must agree, both read numbers with it.
pub(crate) fn leading_digits(s: &[u8], max: u64) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut len = 0;
    for &c in s.iter().take_while(|c| c.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        if value > max {
            return None;
        }
        len += 1;
    }
    Some((value, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_digits_reads_the_run_within_its_bound() {
        assert_eq!(leading_digits(b"", 9), Some((0, 0)));
        assert_eq!(leading_digits(b"x1", 9), Some((0, 0)));
        assert_eq!(leading_digits(b"2417#2417:", u64::MAX), Some((2417, 4)));
        assert_eq!(
            leading_digits(b"4294967295#", u64::from(u32::MAX)),
            Some((4294967295, 10))
        );
        assert_eq!(leading_digits(b"4294967296#", u64::from(u32::MAX)), None);
        assert_eq!(leading_digits(b"99999999999999999999", u64::MAX), None);
    }

    #[test]
    fn the_searchers_agree_with_str() {
        for hay in [
            "connect() failed (111: Connection refused) while connecting to upstream, client: 1.2.3.4",
            "a while b while c",
            "",
            "no match here",
            "ünïcödé (1: x) while y, client: z",
            "2417#2417: *1001 no live upstreams",
            // Overlapping and anchor-only occurrences, the anchor at the very start.
            " while while x",
            "while x (y",
            "w ww while w",
            "x  ((( (",
            "(",
            " (",
            "\"www\" while reading upstream while",
        ] {
            assert_eq!(
                CLIENT.split_once(hay),
                hay.split_once(", client: "),
                "{hay}"
            );
            assert_eq!(WHILE.rfind(hay), hay.rfind(" while "), "{hay}");
            assert_eq!(PAREN.rfind(hay), hay.rfind(" ("), "{hay}");
            assert_eq!(COLON_SPACE.split_once(hay), hay.split_once(": "), "{hay}");
            for byte in [b'#', b':', b' ', b'('] {
                let char = char::from(byte);
                assert_eq!(split_near(hay, byte), hay.split_once(char), "{hay} {char}");
            }
        }
    }
}
