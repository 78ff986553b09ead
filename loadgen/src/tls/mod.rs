//! TLS handshake messages: ClientHello from stack profiles, ServerHello for TLS 1.3 and 1.2.

pub mod client_hello;
pub mod fields;
pub mod profile;
pub mod server_hello;

pub use client_hello::{build_client_hello, wrap_records, HelloOptions};
pub use fields::{ClientHelloFields, ServerHelloFields};
pub use profile::StackProfile;
