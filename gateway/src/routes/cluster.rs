//! `GET /v1/cluster`: the nodes sharing this node's bucket and prefix, as
//! this node sees them, and how many queues each serves.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use crate::state::AppState;

/// One node of the cluster.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterNode {
    pub id: String,
    /// Its advertise URL.
    pub address: String,
    pub started_ms: i64,
    /// Wall time of its last renewal, as it wrote it.
    pub last_heartbeat_ms: i64,
    /// `ALIVE`, `LEAVING`, `LEFT` or `EXPIRED` (declared dead).
    pub state: String,
    /// Whether this node counts it as a live member (placement spreads queues over those).
    pub live: bool,
    /// Queues it serves: this node's own count for itself; for the others,
    /// the queues placement gives them.
    pub queues_owned: u64,
}

/// `GET /v1/cluster` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// This node's id.
    #[serde(rename = "self")]
    pub self_id: String,
    pub nodes: Vec<ClusterNode>,
}

#[utoipa::path(get, path = "/v1/cluster", tag = "operations",
    description = "The nodes on this node's bucket and prefix, from their leases as this node last \
        listed them. A node is live while its lease keeps changing; one silent for the lease period \
        (`cluster_lease_ms`, default 10 s) is declared dead (`EXPIRED`) and its queues move.",
    responses((status = 200, body = ClusterView)))]
pub async fn get_cluster(State(state): State<Arc<AppState>>) -> Json<ClusterView> {
    let broker = &state.broker;
    let me = broker.node_id.clone();
    let held = broker.cluster.held().len() as u64;
    let mut placed = std::collections::BTreeMap::<String, u64>::new();
    for topic in broker.topics.list() {
        for q in 0..topic.queues() {
            *placed
                .entry(broker.cluster.placed_on(&topic.name, q))
                .or_default() += 1;
        }
    }
    let nodes = broker
        .cluster
        .nodes()
        .into_iter()
        .map(|n| ClusterNode {
            queues_owned: if n.id == me {
                held
            } else {
                placed.get(&n.id).copied().unwrap_or(0)
            },
            state: format!("{:?}", n.state).to_uppercase(),
            id: n.id,
            address: n.address,
            started_ms: n.started_ms,
            last_heartbeat_ms: n.last_heartbeat_ms,
            live: n.live,
        })
        .collect();
    Json(ClusterView { self_id: me, nodes })
}
