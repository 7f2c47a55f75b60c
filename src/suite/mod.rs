//! The conformance suite's servers and helpers.

pub mod hostile;
pub mod mdns_raw;
pub mod wire;
