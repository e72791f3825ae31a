//! The cause id: a small copyable value naming one entry of the cause table.
//!
//! Only the type lives here, so that the report can name causes without reaching into the
//! table. Each family file of [`crate::causes`] defines its causes' constants
//! (`Cause::UPSTREAM_REFUSED`, ...) next to their entries; what needs the whole table
//! (order, parsing, the JSON Schema) is implemented in `causes/mod.rs`.

use std::fmt;

use serde::{Serialize, Serializer};

/// One cause id of docs/causes.md, e.g. `upstream-refused`.
///
/// Compare with the constants (`cause == Cause::UPSTREAM_REFUSED`, or as `match` patterns);
/// everything else about a cause is in its [`crate::causes::Entry`] ([`Cause::entry`]).
/// Causes order as the table lists them (the order of docs/causes.md).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cause(pub(super) &'static str);

impl Cause {
    /// The stable id, as in the JSON report.
    pub fn id(self) -> &'static str {
        self.0
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Cause {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}
