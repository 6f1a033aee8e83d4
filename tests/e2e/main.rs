//! End to end with what is installed besides the services: sockudo (a
//! real Pusher-protocol server), the PHP, Node and Python producers, TLS on
//! every link (a CA of the tests' own, a private PostgreSQL), and the
//! container image built with buildah. `scripts/test` installs each first.
//! One module per former test file; the tests run in parallel.

#[path = "../common/mod.rs"]
mod common;

mod container;
mod php_e2e;
mod producers;
mod sockudo_e2e;
mod sockudo_relay;
mod tls_links;
