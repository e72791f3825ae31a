//! End-to-end tests of the `fix502` binary: the real nginx from the distribution, real
//! upstream failures on loopback (crates/lab), and the binary as users run it.

mod it;
