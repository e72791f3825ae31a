//! (being written: fastcgi probe)
