//! (being written: uwsgi probe)
