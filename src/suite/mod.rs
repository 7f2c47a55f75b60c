//! The conformance suite's peers and helpers: the hostile server of the
//! client cases, and the deliberately broken server and device (with their
//! fault catalogues) that prove the suite's checks bite.

pub mod client_faults;
pub mod faults;
pub mod faulty_client;
pub mod faulty_server;
pub mod hostile;
pub mod mdns_raw;
pub mod perturb;
pub mod wire;
