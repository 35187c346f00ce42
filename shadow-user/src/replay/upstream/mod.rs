//! The shadow-service client: one [`Upstream`] per shadow service, with its address cache
//! and a bounded pool of keep-alive connections, and [`Connection::exchange`], which writes
//! one copy and reads the whole reply, discarding it.
//!
//! Nothing here retries: a copy written twice could repeat a write to a persistent service.
//! Every wait is bounded (`connect_timeout` for a pool slot and a connect, the copy's
//! timeout for an exchange), and response bodies are never buffered.

mod breaker;
mod config;
mod connect;
mod connection;
mod error;
mod persist;
mod pool;
mod resolve;
mod stream;
mod tls;

#[cfg(test)]
mod tests;

pub use config::UpstreamConfig;
pub use connection::Connection;
pub use error::UpstreamError;
pub use pool::Upstream;
pub use tls::{TlsClient, TlsOptions, TlsSetupError};
