//! QUIC v1 Initial packets, encrypted per RFC 9001 so that a sensor decrypts real ciphertext.

pub mod initial;
pub mod packet;

pub use initial::{InitialKeys, ProtectError};
pub use packet::{client_initials, server_initial, short_packet, transport_params, ConnIds};
