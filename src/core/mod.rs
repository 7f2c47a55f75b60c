//! The protocol core: messages, signing, validation and the server's
//! decisions, with no I/O. Shared by the server, the client and the suite.

pub mod decision;
pub mod directory;
pub mod discovery;
pub mod json;
pub mod messages;
pub mod sign;
pub mod validate;
