//! The one table of what every route needs: [`ROUTES`].
//!
//! Each route of `routes::router` (method and path template) has exactly one
//! entry: open, `/metrics` (open unless the auth file says otherwise), or
//! the actions it accepts (any one of them suffices) and where the request
//! names its topic and its group (a path parameter, a query parameter or a
//! top-level field of the JSON body). The auth layer ([`super::layer`])
//! reads nothing else; the OpenAPI document states each `/v1` operation's
//! requirement from it; tests fail for a route of the router or an
//! operation of the document without an entry, and for an entry without a
//! route. A matched route missing from the table is refused (500), never
//! let through.
//!
//! Decisions (RocketMQ 5 / SQS analogues):
//! - producing is PUBLISH on the topic; recalling a pending delay message
//!   and listing pending ones is PUBLISH (RocketMQ's recall is a producer
//!   call) or ADMIN;
//! - reading (replay, offset by time, query by id or key) is SUBSCRIBE on the
//!   topic; receive, ack and change-invisibility are SUBSCRIBE on the group
//!   *and* the topic named in the body (one rule must cover both);
//! - a group's settings and offsets can be read with SUBSCRIBE or ADMIN;
//!   setting a group (PUT) and resetting offsets (backtracking) are ADMIN,
//!   as `mqadmin` operations are (groups are still created by a first
//!   receive);
//! - creating, changing and deleting topics is ADMIN; describing a topic
//!   takes any action on it; the lists take any action and show only what
//!   the token may see;
//! - the cluster view is ADMIN;
//! - sending a dead-letter message back is SUBSCRIBE on the `%DLQ%` topic
//!   (the handler also asks PUBLISH on the origin topic the message names);
//! - the web console's page and assets are open (they hold no data);
//! - committing or rolling back a transaction is PUBLISH on its topic (the
//!   id names it); polling a producer group's checks is PUBLISH on that
//!   group (producer groups are matched by the rule's group patterns), and
//!   its view PUBLISH or ADMIN.

use axum::http::Method;

use super::policy::Action;

/// Where a request names a topic or a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// Not named.
    None,
    /// A path parameter (`{topic}`).
    Path(&'static str),
    /// A query parameter (`?topic=`); absent means not named.
    Query(&'static str),
    /// A top-level string field of the JSON body (required).
    Body(&'static str),
    /// The topic inside the transaction id of a path parameter.
    TxnPath(&'static str),
}

/// What a `/v1` route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// Any one of these.
    pub actions: &'static [Action],
    pub topic: Name,
    pub group: Name,
}

/// A route's access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Open,
    /// `/metrics`: open, or ADMIN with `metrics_require_auth = true`.
    Metrics,
    /// A token with this.
    Need(Need),
}

/// One entry of the table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

const PUBLISH: &[Action] = &[Action::Publish];
const SUBSCRIBE: &[Action] = &[Action::Subscribe];
const ADMIN: &[Action] = &[Action::Admin];
const PUBLISH_OR_ADMIN: &[Action] = &[Action::Publish, Action::Admin];
const SUBSCRIBE_OR_ADMIN: &[Action] = &[Action::Subscribe, Action::Admin];
const ANY: &[Action] = &[Action::Publish, Action::Subscribe, Action::Admin];

const TOPIC: Name = Name::Path("topic");
const GROUP: Name = Name::Path("group");
const BODY_TOPIC: Name = Name::Body("topic");
const TXN_TOPIC: Name = Name::TxnPath("transaction_id");
const PRODUCER_GROUP: Name = Name::Path("producer_group");

const fn need(actions: &'static [Action], topic: Name, group: Name) -> Access {
    Access::Need(Need {
        actions,
        topic,
        group,
    })
}

const fn route(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
    }
}

/// Every route of the node and what it needs.
pub const ROUTES: &[Route] = &[
    // Topics.
    route("GET", "/v1/topics", need(ANY, Name::None, Name::None)),
    route(
        "POST",
        "/v1/topics",
        need(ADMIN, Name::Body("name"), Name::None),
    ),
    route("GET", "/v1/topics/{topic}", need(ANY, TOPIC, Name::None)),
    route(
        "PATCH",
        "/v1/topics/{topic}",
        need(ADMIN, TOPIC, Name::None),
    ),
    route(
        "DELETE",
        "/v1/topics/{topic}",
        need(ADMIN, TOPIC, Name::None),
    ),
    // Messages.
    route(
        "POST",
        "/v1/topics/{topic}/messages",
        need(PUBLISH, TOPIC, Name::None),
    ),
    route(
        "GET",
        "/v1/topics/{topic}/messages",
        need(SUBSCRIBE, TOPIC, Name::None),
    ),
    route(
        "GET",
        "/v1/topics/{topic}/messages/{message_id}",
        need(SUBSCRIBE, TOPIC, Name::None),
    ),
    route(
        "DELETE",
        "/v1/topics/{topic}/messages/{message_id}",
        need(PUBLISH_OR_ADMIN, TOPIC, Name::None),
    ),
    route(
        "POST",
        "/v1/topics/{topic}/messages/{message_id}/send-back",
        need(SUBSCRIBE, TOPIC, Name::None),
    ),
    route(
        "GET",
        "/v1/topics/{topic}/messages/{message_id}/send-back",
        need(SUBSCRIBE, TOPIC, Name::None),
    ),
    route(
        "GET",
        "/v1/topics/{topic}/timers",
        need(PUBLISH_OR_ADMIN, TOPIC, Name::None),
    ),
    route(
        "GET",
        "/v1/topics/{topic}/queues/{queue}/messages",
        need(SUBSCRIBE, TOPIC, Name::None),
    ),
    route(
        "GET",
        "/v1/topics/{topic}/queues/{queue}/offset",
        need(SUBSCRIBE, TOPIC, Name::None),
    ),
    // Consumer groups.
    route(
        "GET",
        "/v1/groups",
        need(SUBSCRIBE_OR_ADMIN, Name::None, Name::None),
    ),
    route(
        "GET",
        "/v1/groups/{group}",
        need(SUBSCRIBE_OR_ADMIN, Name::None, GROUP),
    ),
    route("PUT", "/v1/groups/{group}", need(ADMIN, Name::None, GROUP)),
    route(
        "POST",
        "/v1/groups/{group}/receive",
        need(SUBSCRIBE, BODY_TOPIC, GROUP),
    ),
    route(
        "POST",
        "/v1/groups/{group}/ack",
        need(SUBSCRIBE, BODY_TOPIC, GROUP),
    ),
    route(
        "POST",
        "/v1/groups/{group}/change-invisibility",
        need(SUBSCRIBE, BODY_TOPIC, GROUP),
    ),
    route(
        "GET",
        "/v1/groups/{group}/offsets",
        need(SUBSCRIBE_OR_ADMIN, Name::Query("topic"), GROUP),
    ),
    route(
        "POST",
        "/v1/groups/{group}/offsets/reset",
        need(ADMIN, BODY_TOPIC, GROUP),
    ),
    // Transactions.
    route(
        "POST",
        "/v1/transactions/{transaction_id}/commit",
        need(PUBLISH, TXN_TOPIC, Name::None),
    ),
    route(
        "POST",
        "/v1/transactions/{transaction_id}/rollback",
        need(PUBLISH, TXN_TOPIC, Name::None),
    ),
    route(
        "GET",
        "/v1/producer-groups/{producer_group}",
        need(PUBLISH_OR_ADMIN, Name::None, PRODUCER_GROUP),
    ),
    route(
        "GET",
        "/v1/producer-groups/{producer_group}/transaction-checks",
        need(PUBLISH, Name::None, PRODUCER_GROUP),
    ),
    // Cluster and operations.
    route("GET", "/v1/cluster", need(ADMIN, Name::None, Name::None)),
    route("GET", "/healthz", Access::Open),
    route("GET", "/readyz", Access::Open),
    route("GET", "/metrics", Access::Metrics),
    route("GET", "/openapi.json", Access::Open),
    // The web console's page and assets (its data calls go to /v1 with a token).
    route("GET", "/", Access::Open),
    route("GET", "/console/{file}", Access::Open),
];

/// What the table says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The route's entry.
    Found(Access),
    /// The path template is in the table, with other methods only (a 405).
    OtherMethod,
    /// A matched template the table does not know: a route without a rule.
    Missing,
}

/// The entry of `method` on the matched path template `path`.
pub fn lookup(method: &Method, path: &str) -> Lookup {
    let mut known_path = false;
    for r in ROUTES.iter().filter(|r| r.path == path) {
        if r.method == method.as_str() {
            return Lookup::Found(r.access);
        }
        known_path = true;
    }
    if known_path {
        Lookup::OtherMethod
    } else {
        Lookup::Missing
    }
}

impl Need {
    /// The requirement in words (OpenAPI descriptions, 403 messages).
    pub fn describe(&self) -> String {
        let actions: Vec<&str> = self.actions.iter().map(|a| a.as_str()).collect();
        let mut text = actions.join(" or ");
        let on: Vec<String> = [("topic", self.topic), ("group", self.group)]
            .into_iter()
            .filter_map(|(what, name)| match name {
                Name::None => None,
                Name::Path(_) => Some(format!("the {what} of the path")),
                Name::TxnPath(_) => Some(format!("the {what} the transaction id names")),
                Name::Query(q) => Some(format!(
                    "the {what} of the query parameter `{q}` (if given)"
                )),
                Name::Body(f) => Some(format!("the {what} named by the body's `{f}`")),
            })
            .collect();
        if on.is_empty() {
            text.push_str(" (in any rule)");
        } else {
            text.push_str(" on ");
            text.push_str(&on.join(" and "));
        }
        text
    }
}
