//! Integration tests of fix502-probe against real loopback sockets, real files and a fake
//! DNS server on 127.0.0.1. One binary, one module per probe module.

mod support;

mod connect;
mod dns;
mod icmp;
mod listeners;
mod unixsock;
