//! (being written: http probe)
