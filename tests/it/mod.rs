//! One integration-test binary; each file tests one face of the binary.

mod apply;
mod cli;
mod harness;
mod scenarios;
mod wizard;
