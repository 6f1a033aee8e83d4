//! The tests that need no service: the binary as a user meets it, the
//! operator files and docs checked against the code, the JSON Schema, the
//! REST client against wiremock, property tests, and the composition root's
//! shutdown (pointed at a port where nothing listens). `deploy_tools` runs
//! the checkers `scripts/deploy-tools` installs. One module per former test
//! file; the tests run in parallel.

#[path = "../common/mod.rs"]
mod common;

mod app;
mod cli;
mod deploy;
mod deploy_tools;
mod ordering_keys;
mod properties;
mod pusher_http;
mod schema;
mod settings_docs;
