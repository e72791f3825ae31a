//! (being written: appserver probe)
