//! (being written: scgi probe)
