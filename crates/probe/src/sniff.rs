//! (being written: sniff probe)
