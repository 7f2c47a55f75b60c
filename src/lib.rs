//! idprov: reference server, device client and conformance suite for the
//! IDProv IoT provisioning protocol.

pub mod admin;
pub mod bench;
pub mod check;
pub mod client;
pub mod core;
pub mod fsutil;
pub mod live_fuzz;
pub mod net;
pub mod pki;
mod progress;
pub mod server;
pub mod spec;
pub mod suite;
pub mod tls;
pub mod vectors;
