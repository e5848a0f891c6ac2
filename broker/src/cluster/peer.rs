//! [`Peer`]: how the broker writes to a queue another node serves, when it
//! must (a dead-letter copy whose `%DLQ%` queue lives elsewhere). The broker
//! knows no protocol: the front-end that runs it provides the transport
//! ([`crate::Broker::set_peer`]); without one such writes fail retryably.

use futures::future::BoxFuture;
use shale_hot::AppendRequest;

use crate::error::BrokerResult;

/// Node-to-node writes.
pub trait Peer: Send + Sync + std::fmt::Debug {
    /// Stores `message` in `topic/queue` at the node reachable at `address`
    /// (its advertise URL), durable (SYNC) when this returns `Ok`.
    fn append<'a>(
        &'a self,
        address: &'a str,
        topic: &'a str,
        queue: u32,
        message: &'a AppendRequest,
    ) -> BoxFuture<'a, BrokerResult<()>>;
}
