//! The conformance suite's servers and helpers.

pub mod hostile;
pub mod wire;
