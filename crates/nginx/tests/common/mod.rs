//! Helpers shared by the error-log tests.

/// The one line of `log` that contains `needle`; panics when none or several do.
pub fn find(log: &'static str, needle: &str) -> &'static str {
    let mut found = log.lines().filter(|l| l.contains(needle));
    let line = found
        .next()
        .unwrap_or_else(|| panic!("no line contains {needle:?}"));
    assert!(found.next().is_none(), "several lines contain {needle:?}");
    line
}
