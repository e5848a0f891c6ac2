//! Requests over queues served by several nodes: split, sent, merged.
//!
//! Group receive ([`receive`]): first a quick pass — this node's queues,
//! then each other serving node in turn with what is still wanted, none
//! waiting — so a receive never takes more than `max_messages` in all. Only
//! when that finds nothing and the caller asked to wait does it long-poll
//! every node at once and answer with the first that has messages; the
//! other polls finish in the background and whatever they handed out is
//! given back at once (change-invisibility 0 without retry backoff), so a
//! lost race never hides a message — or blocks a FIFO message group — for
//! the caller's `invisible_ms` (it does count as a delivery attempt).
//!
//! Ack ([`forward_acks`]): handles of queues served elsewhere come back from
//! the broker as per-handle routing errors; they are acked at their node in
//! one call per node and the results put back in request order.
//!
//! Every call made here is made for a client's request and carries that
//! client's `Authorization` ([`Credentials`]): the other node checks it
//! again, so a gather can never do more than the caller may.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};

use super::forward::client;
use crate::auth::Credentials;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The base URLs of the other nodes placement gives queues of `topic` to.
pub fn other_nodes(state: &AppState, topic: &str, queues: u32) -> Vec<String> {
    let cluster = &state.broker.cluster;
    let mut nodes: Vec<String> = (0..queues)
        .map(|q| cluster.placed_on(topic, q))
        .filter(|n| *n != state.broker.node_id)
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes.iter().filter_map(|n| cluster.address_of(n)).collect()
}

/// Sends a forwarded call to node `base` and reads its JSON answer; any
/// failure (no answer, bad JSON, a non-2xx status) is a retryable 503.
async fn send_json(call: reqwest::RequestBuilder, base: &str) -> ApiResult<Value> {
    crate::metrics::forwarded();
    let answer = call
        .send()
        .await
        .map_err(|e| ApiError::unavailable(format!("node {base} did not answer")).with_source(e))?;
    let status = answer.status();
    let value: Value = answer
        .json()
        .await
        .map_err(|e| ApiError::unavailable(format!("node {base} answered badly")).with_source(e))?;
    if !status.is_success() {
        return Err(ApiError::unavailable(format!(
            "node {base} answered {status}: {}",
            value["error"]["message"].as_str().unwrap_or("")
        )));
    }
    Ok(value)
}

/// The same request as `request` (method, path and query) sent on to node
/// `base` as a forwarded call.
fn same_request_at(
    state: &AppState,
    request: &axum::http::request::Parts,
    base: &str,
) -> reqwest::RequestBuilder {
    let path = request
        .uri
        .path_and_query()
        .map_or(request.uri.path(), |p| p.as_str());
    client()
        .request(
            request.method.clone(),
            format!("{}{path}", base.trim_end_matches('/')),
        )
        .timeout(super::forward::CALL_TIMEOUT)
        .header(super::FORWARDED, state.broker.node_id.as_str())
        .headers(caller_authorization(&request.headers))
}

/// The caller's `Authorization` header alone (a gather passes it on).
fn caller_authorization(headers: &axum::http::HeaderMap) -> axum::http::HeaderMap {
    let mut only = axum::http::HeaderMap::new();
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        only.insert(axum::http::header::AUTHORIZATION, value.clone());
    }
    only
}

/// `{base}/{segments…}` (each segment percent-encoded).
fn node_url(base: &str, segments: &[&str]) -> ApiResult<reqwest::Url> {
    let mut url = reqwest::Url::parse(base).map_err(|e| {
        ApiError::unavailable(format!("node address {base} is not a URL")).with_source(e)
    })?;
    url.path_segments_mut()
        .map_err(|()| ApiError::unavailable(format!("node address {base} cannot take a path")))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// `POST {base}/v1/groups/{group}/{action}` with `body`, as a forwarded call
/// with the caller's credentials.
async fn call(
    state: &AppState,
    credentials: &Credentials,
    base: &str,
    group: &str,
    action: &str,
    body: &Value,
) -> ApiResult<Value> {
    let url = node_url(base, &["v1", "groups", group, action])?;
    let wait = std::time::Duration::from_millis(body["wait_ms"].as_u64().unwrap_or(0).min(60_000));
    let call = credentials.apply(
        client()
            .post(url)
            .timeout(super::forward::CALL_TIMEOUT + wait)
            .header(super::FORWARDED, state.broker.node_id.as_str())
            .json(body),
    );
    send_json(call, base).await
}

/// One receive at one place: this node (`None`) or another one.
async fn receive_at(
    state: Arc<AppState>,
    credentials: Credentials,
    node: Option<String>,
    group: String,
    body: Value,
) -> (Option<String>, ApiResult<Vec<Value>>) {
    let answer = match &node {
        None => crate::routes::groups::receive_here(&state, &group, &body).await,
        Some(base) => call(&state, &credentials, base, &group, "receive", &body).await,
    };
    let messages = answer.map(|a| a["messages"].as_array().cloned().unwrap_or_default());
    (node, messages)
}

/// A group receive over every node serving the topic's queues (see the module docs).
pub async fn receive(
    state: &Arc<AppState>,
    credentials: &Credentials,
    group: &str,
    body: Value,
    others: Vec<String>,
) -> ApiResult<Value> {
    let max = body["max_messages"].as_u64().unwrap_or(16) as usize;
    let wait = body["wait_ms"].as_u64().unwrap_or(0);
    let with = |wait_ms: u64, max_messages: usize| {
        let mut b = body.clone();
        b["wait_ms"] = json!(wait_ms);
        b["max_messages"] = json!(max_messages);
        b
    };
    let at = |node: Option<&String>, b: Value| {
        receive_at(
            state.clone(),
            credentials.clone(),
            node.cloned(),
            group.to_string(),
            b,
        )
    };
    // This node first: its errors (unknown group or topic, a bad filter) are the caller's.
    let mut got = at(None, with(0, max)).await.1?;
    for base in &others {
        if got.len() >= max {
            break;
        }
        match at(Some(base), with(0, max - got.len())).await.1 {
            Ok(more) => got.extend(more),
            Err(e) => {
                tracing::debug!(node = %base, error = %e, "a node's part of a receive failed")
            }
        }
    }
    if !got.is_empty() || wait == 0 {
        return Ok(json!({ "messages": got }));
    }
    let waiting = with(wait, max);
    let mut polls = futures::stream::FuturesUnordered::new();
    polls.push(tokio::spawn(at(None, waiting.clone())));
    for base in &others {
        polls.push(tokio::spawn(at(Some(base), waiting.clone())));
    }
    while let Some(done) = polls.next().await {
        match done {
            Ok((_, Ok(messages))) if !messages.is_empty() => {
                // The other polls go on in the background; whatever they hand
                // out is released at once rather than left invisible.
                let (state, credentials, group, topic) = (
                    state.clone(),
                    credentials.clone(),
                    group.to_string(),
                    body["topic"].clone(),
                );
                tokio::spawn(async move {
                    while let Some(late) = polls.next().await {
                        if let Ok((node, Ok(messages))) = late {
                            let at = (node.as_deref(), group.as_str());
                            release(&state, &credentials, at, &topic, &messages).await;
                        }
                    }
                });
                return Ok(json!({ "messages": messages }));
            }
            Ok((_, Ok(_))) => {}
            Ok((node, Err(e))) => tracing::debug!(?node, error = %e, "a node's long poll failed"),
            Err(e) => tracing::warn!(error = %e, "a long poll task failed"),
        }
    }
    Ok(json!({ "messages": [] }))
}

/// Makes messages a lost race handed out visible again after the shortest
/// invisibility (they were never returned to anyone).
async fn release(
    state: &Arc<AppState>,
    credentials: &Credentials,
    (node, group): (Option<&str>, &str),
    topic: &Value,
    messages: &[Value],
) {
    let topic_name = topic.as_str().unwrap_or_default();
    for m in messages {
        let Some(handle) = m["receipt_handle"].as_str() else {
            continue;
        };
        let done = match node {
            None => state
                .broker
                .give_back(group, topic_name, handle)
                .await
                .map(drop)
                .map_err(|e| e.message().to_string()),
            Some(base) => {
                let body = json!({"topic": topic, "receipt_handle": handle, "invisible_ms": 0, "retry_backoff": false});
                call(
                    state,
                    credentials,
                    base,
                    group,
                    "change-invisibility",
                    &body,
                )
                .await
                .map(drop)
                .map_err(|e| e.message)
            }
        };
        if let Err(e) = done {
            tracing::debug!(error = %e, "could not release a message a lost long poll handed out; it comes back after its invisibility");
        }
    }
}

/// Acks handles at the nodes their queues are served by: `elsewhere` maps a
/// request index to its node; the results replace those entries of `results`.
pub async fn forward_acks(
    state: &AppState,
    credentials: &Credentials,
    group: &str,
    topic: &str,
    handles: &[String],
    elsewhere: BTreeMap<usize, String>,
    results: &mut [Value],
) {
    let mut by_node: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, node) in elsewhere {
        by_node.entry(node).or_default().push(i);
    }
    for (base, indexes) in by_node {
        let part: Vec<&String> = indexes.iter().map(|&i| &handles[i]).collect();
        let body = json!({ "topic": topic, "receipt_handles": part });
        match call(state, credentials, &base, group, "ack", &body).await {
            Ok(answer) => {
                let remote = answer["results"].as_array().cloned().unwrap_or_default();
                for (&i, r) in indexes.iter().zip(remote) {
                    results[i] = r;
                }
            }
            Err(e) => {
                for &i in &indexes {
                    results[i] = json!({
                        "receipt_handle": handles[i],
                        "error": {"code": "UNAVAILABLE", "message": e.message.clone()},
                    });
                }
            }
        }
    }
}

/// Answers with a `queues` array (topic describe, group offsets, offset
/// reset) gathered from the queues' nodes: the same request is sent to each
/// other node that queues of `topic` are placed on, and its entries for
/// those queues replace this node's (which only knows the object store's
/// view of them). A node that does not answer makes the whole call a 503:
/// a partial view would be wrong without saying so (a reset is idempotent,
/// so retrying it is safe).
pub async fn overlay_queues(
    state: &AppState,
    topic: &str,
    request: &axum::http::request::Parts,
    body: Option<&Value>,
    mut local: Value,
) -> ApiResult<Value> {
    let Some(t) = state.broker.topics.get(topic) else {
        return Ok(local);
    };
    let cluster = &state.broker.cluster;
    let mut by_node: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for q in 0..t.queues() {
        let node = cluster.placed_on(&t.name, q);
        if node != state.broker.node_id {
            by_node.entry(node).or_default().push(u64::from(q));
        }
    }
    for (node, queues) in by_node {
        let base = cluster.address_of(&node).ok_or_else(|| {
            ApiError::unavailable(format!("node {node} has no known address yet"))
        })?;
        let mut call = same_request_at(state, request, &base);
        if let Some(b) = body {
            call = call.json(b);
        }
        let remote = send_json(call, &base).await?;
        let theirs = remote["queues"].as_array().cloned().unwrap_or_default();
        if let Some(mine) = local["queues"].as_array_mut() {
            for entry in mine.iter_mut() {
                let q = entry["queue"].as_u64().unwrap_or(u64::MAX);
                if queues.contains(&q)
                    && let Some(r) = theirs.iter().find(|r| r["queue"].as_u64() == Some(q))
                {
                    *entry = r.clone();
                }
            }
        }
    }
    Ok(local)
}

/// The answers of the other nodes serving queues of `topic` to the same
/// request, in node order; `None` when no other node serves any (or the
/// topic is unknown here).
async fn from_other_nodes(
    state: &AppState,
    topic: &str,
    request: &axum::http::request::Parts,
) -> ApiResult<Option<Vec<Value>>> {
    let Some(t) = state.broker.topics.get(topic) else {
        return Ok(None);
    };
    let others = other_nodes(state, &t.name, t.queues());
    if others.is_empty() {
        return Ok(None);
    }
    let mut answers = Vec::with_capacity(others.len());
    for base in others {
        answers.push(send_json(same_request_at(state, request, &base), &base).await?);
    }
    Ok(Some(answers))
}

/// A query by key over every node serving queues of `topic`: the same
/// request at each of them (each answers from the object store and its own
/// hot tier), merged by message id, in `store_ms` (then queue, offset) order,
/// at most `max` messages. A node that does not answer makes the call a 503.
pub async fn by_key(
    state: &AppState,
    topic: &str,
    request: &axum::http::request::Parts,
    max: usize,
    local: Value,
) -> ApiResult<Value> {
    let Some(remotes) = from_other_nodes(state, topic, request).await? else {
        return Ok(local);
    };
    let mut all: Vec<Value> = local["messages"].as_array().cloned().unwrap_or_default();
    for remote in remotes {
        all.extend(remote["messages"].as_array().cloned().unwrap_or_default());
    }
    let key = |m: &Value| {
        (
            m["store_ms"].as_i64().unwrap_or(i64::MAX),
            m["queue"].as_u64().unwrap_or(u64::MAX),
            m["offset"].as_u64().unwrap_or(u64::MAX),
        )
    };
    all.sort_by_key(key);
    let mut seen = std::collections::HashSet::new();
    all.retain(|m| seen.insert(m["message_id"].as_str().unwrap_or_default().to_string()));
    all.truncate(max);
    Ok(json!({ "messages": all }))
}

/// Pending delay messages over every node serving queues of `topic`: each
/// answers the same page request for the queues it serves; the pages are
/// merged in delivery order (`deliver_at_ms`, queue, journal offset — the
/// cursor's order), cut to `limit`, and the next cursor is the last kept
/// one's when any node had more. A node that does not answer makes the call
/// a 503.
pub async fn timers(
    state: &AppState,
    topic: &str,
    request: &axum::http::request::Parts,
    limit: usize,
    local: Value,
) -> ApiResult<Value> {
    let Some(remotes) = from_other_nodes(state, topic, request).await? else {
        return Ok(local);
    };
    let mut more = !local["next"].is_null();
    let mut all: Vec<Value> = local["timers"].as_array().cloned().unwrap_or_default();
    for remote in remotes {
        more |= !remote["next"].is_null();
        all.extend(remote["timers"].as_array().cloned().unwrap_or_default());
    }
    let key = |m: &Value| {
        let seq = m["message_id"]
            .as_str()
            .and_then(|id| id.parse::<shale_broker::MessageId>().ok())
            .map_or(u64::MAX, |id| id.offset());
        (
            m["deliver_at_ms"].as_i64().unwrap_or(i64::MAX),
            m["queue"].as_u64().unwrap_or(u64::MAX),
            seq,
        )
    };
    all.sort_by_key(key);
    let mut seen = std::collections::HashSet::new();
    all.retain(|m| seen.insert(m["message_id"].as_str().unwrap_or_default().to_string()));
    more |= all.len() > limit;
    all.truncate(limit);
    let next = match all.last() {
        Some(last) if more => {
            let (at, q, seq) = key(last);
            Value::from(format!("{at}.{q}.{seq}"))
        }
        _ => Value::Null,
    };
    Ok(json!({ "timers": all, "next": next }))
}

/// `GET /v1/groups` over the cluster: each node counts the lag (and its
/// `lag_hot` / `lag_cold` split) of the queues
/// it serves, so the lags are summed per group (and groups only another node
/// knows are added). A node that does not answer makes the call a 503.
pub async fn sum_lag(
    state: &AppState,
    request: &axum::http::request::Parts,
    mut local: Value,
) -> ApiResult<Value> {
    let cluster = &state.broker.cluster;
    let others: Vec<String> = cluster
        .members()
        .into_iter()
        .filter(|n| *n != state.broker.node_id)
        .filter_map(|n| cluster.address_of(&n))
        .collect();
    for base in others {
        let remote = send_json(same_request_at(state, request, &base), &base).await?;
        let Some(mine) = local["groups"].as_array_mut() else {
            break;
        };
        for g in remote["groups"].as_array().into_iter().flatten() {
            match mine.iter_mut().find(|m| m["name"] == g["name"]) {
                Some(m) => {
                    for field in ["lag", "lag_hot", "lag_cold"] {
                        let sum = m[field].as_u64().unwrap_or(0) + g[field].as_u64().unwrap_or(0);
                        m[field] = json!(sum);
                    }
                }
                None => mine.push(g.clone()),
            }
        }
    }
    if let Some(mine) = local["groups"].as_array_mut() {
        mine.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    Ok(local)
}

/// The base URLs of every other member.
fn every_other_node(state: &AppState) -> Vec<String> {
    let cluster = &state.broker.cluster;
    cluster
        .members()
        .into_iter()
        .filter(|n| *n != state.broker.node_id)
        .filter_map(|n| cluster.address_of(&n))
        .collect()
}

/// The answers of every other member to the same request. A node that
/// does not answer makes the call a 503.
pub async fn from_every_node(
    state: &AppState,
    request: &axum::http::request::Parts,
) -> ApiResult<Vec<Value>> {
    let mut answers = Vec::new();
    for base in every_other_node(state) {
        answers.push(send_json(same_request_at(state, request, &base), &base).await?);
    }
    Ok(answers)
}

/// Checks of producer group `group` over the cluster (each node offers the
/// checks of the queues it owns): first a pass over every node without
/// waiting, taking at most `max` in all; when that finds none and the caller
/// waits, every node is polled at once and the first to answer with checks
/// is the answer. A check another node hands out after that answer is lost
/// to this caller, and offered again at its next check (`check_after_ms`
/// later). Nodes that do not answer are skipped (their checks wait for them).
pub async fn transaction_checks(
    state: &Arc<AppState>,
    group: &str,
    request: &axum::http::request::Parts,
    max: usize,
    wait: std::time::Duration,
) -> ApiResult<Vec<crate::routes::transactions::CheckObject>> {
    use crate::routes::transactions::check_object;
    let mut out: Vec<Value> = Vec::new();
    let local = state
        .broker
        .transaction_checks(group, max, std::time::Duration::ZERO)
        .await;
    let encode = |c| serde_json::to_value(check_object(c)).unwrap_or(Value::Null);
    out.extend(local.into_iter().map(encode));
    let others = every_other_node(state);
    for base in &others {
        if out.len() >= max {
            break;
        }
        if let Ok(v) = checks_at(state, request, base, group, max - out.len(), 0).await {
            out.extend(v);
        }
    }
    if out.is_empty() && !wait.is_zero() {
        let wait_ms = wait.as_millis() as u64;
        let mut polls = futures::stream::FuturesUnordered::new();
        for base in &others {
            polls.push(futures::future::Either::Left(checks_at(
                state, request, base, group, max, wait_ms,
            )));
        }
        let here = async {
            let got = state.broker.transaction_checks(group, max, wait).await;
            Ok(got.into_iter().map(encode).collect::<Vec<Value>>())
        };
        polls.push(futures::future::Either::Right(Box::pin(here)));
        while let Some(answer) = polls.next().await {
            if let Ok(v) = answer
                && !v.is_empty()
            {
                out = v;
                break;
            }
        }
    }
    out.truncate(max);
    Ok(out
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// The checks node `base` hands out for `group` (its own queues only).
async fn checks_at(
    state: &AppState,
    request: &axum::http::request::Parts,
    base: &str,
    group: &str,
    max: usize,
    wait_ms: u64,
) -> ApiResult<Vec<Value>> {
    let mut url = node_url(
        base,
        &["v1", "producer-groups", group, "transaction-checks"],
    )?;
    url.query_pairs_mut()
        .append_pair("wait_ms", &wait_ms.to_string())
        .append_pair("max", &max.to_string());
    let call = client()
        .get(url)
        .timeout(super::forward::CALL_TIMEOUT + std::time::Duration::from_millis(wait_ms))
        .header(super::FORWARDED, state.broker.node_id.as_str())
        .headers(caller_authorization(&request.headers));
    let answer = send_json(call, base).await?;
    Ok(answer["checks"].as_array().cloned().unwrap_or_default())
}
