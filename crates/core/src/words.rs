//! Small helpers for wording what fix502 found, shared by the checks and the causes.

use std::time::Duration;

/// `1h`, `15m`, `90s`: a window as it was given.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 && s.is_multiple_of(86400) {
        format!("{}d", s / 86400)
    } else if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}
