//! The conformance suite's servers and helpers.

pub mod faults;
pub mod faulty_server;
pub mod hostile;
pub mod mdns_raw;
pub mod wire;
