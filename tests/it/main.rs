//! Every integration test, as one binary with a module per area (linking
//! one test binary instead of fifteen is most of what `cargo test` saves).
//! Each module exercises real processes, TLS and HTTP on loopback, or
//! network namespaces it creates.

mod bench_cli;
mod check_cli;
mod check_client;
mod check_device;
mod check_suite;
mod cli;
mod client_flow;
mod common;
mod explore;
mod fuzz_server;
mod go_captures;
mod mutation_gate;
mod properties;
mod reliability;
mod report_contract;
mod report_snapshots;
mod server_endpoints;
mod vectors;
