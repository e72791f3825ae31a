//! (being written: tls probe)
