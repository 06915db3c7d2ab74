//! What every outbound HTTP client shares (Opal, the HR sources, the notification channels):
//! the retry policy with its `Retry-After` handling, and how a failure without a status code is
//! classified and described.

mod retry;
mod transport;

pub use retry::{RetryConfig, RetryPolicy, deserialize_message_retry, parse_retry_after};
pub use transport::{TransportErrorKind, error_chain};
