//! One integration-test binary; each file tests one face of the binary.

mod apply;
mod cli;
mod harness;
mod responses;
mod scenarios;
mod wizard;
