//! End-to-end tests of the `fix502` binary: the real nginx from the distribution, real
//! upstream failures on loopback (crates/lab), and the binary as users run it.
#![allow(clippy::print_stderr)] // tests say why they skip

mod it;
