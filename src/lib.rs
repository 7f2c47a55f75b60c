//! idprov: reference server, device client and conformance suite for the
//! IDProv IoT provisioning protocol.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod core;
