//! The consumer-group operations a front-end calls, with the contract's
//! limits on their arguments (API.md "Consumer groups").
//!
//! Decisions where the contract is silent: a receive returns 1-64 messages
//! (default 16); `invisible_ms` is 1000-43200000 (default 30000); `wait_ms`
//! at most 30000 (default 0); an ack takes 1-1024 handles; a nack
//! (`invisible_ms` 0) makes the message deliverable again after the group's
//! backoff for its attempt, like a timeout; the offsets of a group that does
//! not exist are GROUP_NOT_FOUND, while receive and reset create it with
//! defaults.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::config::{ConsumeFrom, ConsumeMode, GroupConfig};
use super::deliver::{self, AckOutcome, Delivered, QueueOffsets, ReceiveRequest, ResetTo};
use super::filter::{Filter, FilterSpec};
use crate::broker::Broker;
use crate::error::{BrokerError, BrokerResult, ErrorCode};
use crate::topic_admin::Created;

pub const DEFAULT_RECEIVE: u64 = 16;
pub const MAX_RECEIVE: u64 = 64;
pub const DEFAULT_INVISIBLE_MS: i64 = 30_000;
pub const MIN_INVISIBLE_MS: i64 = 1_000;
pub const MAX_INVISIBLE_MS: i64 = 43_200_000;
pub const MAX_WAIT_MS: u64 = 30_000;
pub const MAX_ACK_HANDLES: usize = 1024;

/// A group's settings as a client gives them; absent ones take their defaults.
#[derive(Debug, Clone, Default)]
pub struct GroupSettings {
    /// When given, it must be the group's name.
    pub name: Option<String>,
    pub consume_mode: Option<ConsumeMode>,
    pub max_delivery_attempts: Option<u32>,
    pub retry_backoff_ms: Option<Vec<u64>>,
    pub consume_from: Option<ConsumeFrom>,
    /// A user topic for dead letters instead of `%DLQ%{group}`; empty = none.
    pub dead_letter_topic: Option<String>,
}

/// A receive as the client asked.
#[derive(Debug, Clone, Default)]
pub struct ReceiveOptions {
    pub topic: String,
    pub max_messages: Option<u64>,
    pub invisible_ms: Option<i64>,
    pub wait_ms: Option<u64>,
    pub filter: Option<FilterSpec>,
    /// Required in BROADCASTING mode.
    pub consumer_id: Option<String>,
}

/// Where a reset moves a group, as the client asked: exactly one of the three.
#[derive(Debug, Clone, Default)]
pub struct ResetSpec {
    pub timestamp_ms: Option<i64>,
    /// `EARLIEST` or `LATEST`.
    pub to: Option<String>,
    /// Queue number (as text) → offset.
    pub offsets: Option<BTreeMap<String, u64>>,
}

impl ResetSpec {
    fn target(&self) -> BrokerResult<ResetTo> {
        Ok(
            match (self.timestamp_ms, self.to.as_deref(), &self.offsets) {
                (Some(ts), None, None) => ResetTo::Timestamp(ts),
                (None, Some("EARLIEST"), None) => ResetTo::Earliest,
                (None, Some("LATEST"), None) => ResetTo::Latest,
                (None, Some(other), None) => {
                    return Err(BrokerError::invalid(format!(
                        "to must be EARLIEST or LATEST, got {other:?}"
                    )));
                }
                (None, None, Some(map)) => {
                    let mut list = Vec::new();
                    for (q, o) in map {
                        let q: u32 = q.parse().map_err(|e| {
                            BrokerError::invalid(format!("offsets key {q:?} is not a queue number"))
                                .with_source(e)
                        })?;
                        list.push((q, *o));
                    }
                    ResetTo::Offsets(list)
                }
                _ => {
                    return Err(BrokerError::invalid(
                        "give exactly one of timestamp_ms, to, offsets",
                    ));
                }
            },
        )
    }
}

/// A group's lag over the queues a node serves for it, split by tier (see
/// [`super::offsets`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupLag {
    pub lag: u64,
    pub lag_hot: u64,
    pub lag_cold: u64,
}

impl Broker {
    /// Creates or replaces a group's settings.
    pub async fn put_group(
        self: &Arc<Self>,
        name: &str,
        settings: GroupSettings,
    ) -> BrokerResult<(Created, GroupConfig)> {
        if let Some(given) = settings.name.as_deref()
            && !given.is_empty()
            && given != name
        {
            return Err(BrokerError::invalid(format!(
                "the body names group {given:?}, the path {name:?}"
            )));
        }
        let defaults = GroupConfig::defaults(name);
        let cfg = GroupConfig {
            name: name.to_string(),
            consume_mode: settings.consume_mode.unwrap_or(defaults.consume_mode),
            max_delivery_attempts: settings
                .max_delivery_attempts
                .unwrap_or(defaults.max_delivery_attempts),
            retry_backoff_ms: settings
                .retry_backoff_ms
                .unwrap_or(defaults.retry_backoff_ms),
            consume_from: settings.consume_from.unwrap_or(defaults.consume_from),
            dead_letter_topic: settings.dead_letter_topic.filter(|t| !t.is_empty()),
        };
        cfg.validate()?;
        if let Some(t) = &cfg.dead_letter_topic {
            let topic = self.topics.get(t).ok_or_else(|| {
                BrokerError::new(
                    ErrorCode::TopicNotFound,
                    format!("dead_letter_topic {t:?} does not exist"),
                )
            })?;
            if topic.config().message_type == crate::topics::MessageType::Transaction {
                return Err(BrokerError::invalid(format!(
                    "dead_letter_topic {t:?} is a TRANSACTION topic: dead letters go to NORMAL, DELAY or FIFO topics"
                )));
            }
        }
        let _admin = self.groups.admin.lock().await;
        let existed = self.groups.get(&cfg.name).is_some();
        let cfg = deliver::put_group(self, cfg).await?;
        Ok((
            if existed {
                Created::Existing
            } else {
                Created::New
            },
            cfg,
        ))
    }

    /// A group's settings.
    pub fn get_group(&self, name: &str) -> BrokerResult<GroupConfig> {
        self.groups
            .get(name)
            .ok_or_else(|| BrokerError::group_not_found(name))
    }

    /// Every group with its total lag over the queues this node serves and
    /// tracks for it (in a cluster each node counts its own queues, so the
    /// sum over the nodes counts every queue once).
    pub async fn list_groups(&self) -> BrokerResult<Vec<(GroupConfig, GroupLag)>> {
        let mut groups = Vec::new();
        for config in self.groups.list() {
            let mut lag = GroupLag::default();
            for (k, committed) in self.groups.committed_of(&config.name) {
                if self.topics.get(&k.topic).is_none() || !self.cluster.holds(&k.topic, k.queue) {
                    continue;
                }
                let tq = crate::queue_view::TieredQueue::open(self, &k.topic, k.queue).await?;
                let max = tq.max_offset();
                let committed = committed.max(tq.min_offset()).min(max);
                let (hot, cold) = super::offsets::split_lag(committed, max, tq.hot_min_offset());
                lag.lag += max - committed;
                lag.lag_hot += hot;
                lag.lag_cold += cold;
            }
            groups.push((config, lag));
        }
        Ok(groups)
    }

    /// Hands out messages of `opts.topic` to `group` (created with defaults
    /// on first use), long-polling up to `wait_ms`. Returns the topic's
    /// canonical name with them.
    pub async fn receive(
        self: &Arc<Self>,
        group: &str,
        opts: ReceiveOptions,
    ) -> BrokerResult<(String, Vec<Delivered>)> {
        let topic = self.topics.require(&opts.topic)?;
        let max_messages = opts.max_messages.unwrap_or(DEFAULT_RECEIVE);
        if max_messages == 0 || max_messages > MAX_RECEIVE {
            return Err(BrokerError::invalid(format!(
                "max_messages must be 1-{MAX_RECEIVE}, got {max_messages}"
            )));
        }
        let invisible_ms = opts.invisible_ms.unwrap_or(DEFAULT_INVISIBLE_MS);
        if !(MIN_INVISIBLE_MS..=MAX_INVISIBLE_MS).contains(&invisible_ms) {
            return Err(BrokerError::invalid(format!(
                "invisible_ms must be {MIN_INVISIBLE_MS}-{MAX_INVISIBLE_MS}, got {invisible_ms}"
            )));
        }
        let wait_ms = opts.wait_ms.unwrap_or(0);
        if wait_ms > MAX_WAIT_MS {
            return Err(BrokerError::invalid(format!(
                "wait_ms must be at most {MAX_WAIT_MS}, got {wait_ms}"
            )));
        }
        let filter = Filter::compile(opts.filter.as_ref())?;
        let cfg = deliver::ensure_group(self, group).await?;
        let consumer = deliver::consumer_for(&cfg, opts.consumer_id.as_deref())?;
        let req = ReceiveRequest {
            topic: topic.clone(),
            max_messages: max_messages as usize,
            invisible_ms,
            wait: Duration::from_millis(wait_ms),
            filter,
            consumer,
        };
        let got = deliver::receive(self, &cfg, &req).await?;
        let bytes: u64 = got.iter().map(|d| d.record.body.len() as u64).sum();
        crate::metrics::read(&topic.name, got.len() as u64, bytes);
        Ok((topic.name.clone(), got))
    }

    /// Acks each handle; one outcome per handle, in order.
    pub async fn ack(
        &self,
        group: &str,
        topic: &str,
        handles: &[String],
    ) -> BrokerResult<Vec<AckOutcome>> {
        crate::validate::group_name(group)?;
        self.topics.require(topic)?;
        if handles.is_empty() || handles.len() > MAX_ACK_HANDLES {
            return Err(BrokerError::invalid(format!(
                "receipt_handles must hold 1-{MAX_ACK_HANDLES} handles"
            )));
        }
        deliver::ack(self, group, topic, handles).await
    }

    /// Makes a delivery invisible for `invisible_ms` from now (0 = nack now);
    /// returns the new handle (the same one with `keep_handle`) and its deadline.
    pub async fn change_invisibility(
        &self,
        group: &str,
        topic: &str,
        handle: &str,
        invisible_ms: i64,
        keep_handle: bool,
    ) -> BrokerResult<(String, i64)> {
        crate::validate::group_name(group)?;
        self.topics.require(topic)?;
        if !(0..=MAX_INVISIBLE_MS).contains(&invisible_ms) {
            return Err(BrokerError::invalid(format!(
                "invisible_ms must be 0-{MAX_INVISIBLE_MS}, got {invisible_ms}"
            )));
        }
        deliver::change_invisibility(self, group, topic, handle, invisible_ms, keep_handle).await
    }

    /// Gives a delivery back for redelivery at once, without the group's
    /// retry backoff (a consumer returning what it will not process; the
    /// delivery still counted as an attempt).
    pub async fn give_back(
        &self,
        group: &str,
        topic: &str,
        handle: &str,
    ) -> BrokerResult<(String, i64)> {
        crate::validate::group_name(group)?;
        self.topics.require(topic)?;
        deliver::give_back(self, group, topic, handle).await
    }

    /// The group's offsets on every queue of `topic` (required).
    pub async fn group_offsets(
        self: &Arc<Self>,
        group: &str,
        topic: Option<&str>,
        consumer_id: Option<&str>,
    ) -> BrokerResult<Vec<QueueOffsets>> {
        let cfg = self.get_group(group)?;
        let topic = topic.ok_or_else(|| BrokerError::invalid("topic is required"))?;
        let topic = self.topics.require(topic)?;
        let consumer = deliver::consumer_for(&cfg, consumer_id)?;
        deliver::offsets(self, &cfg, &topic, &consumer).await
    }

    /// Moves the group on `topic` (backtracking or skipping); returns the new offsets.
    pub async fn reset_offsets(
        self: &Arc<Self>,
        group: &str,
        topic: &str,
        spec: ResetSpec,
        consumer_id: Option<&str>,
    ) -> BrokerResult<Vec<QueueOffsets>> {
        let topic = self.topics.require(topic)?;
        let to = spec.target()?;
        let cfg = deliver::ensure_group(self, group).await?;
        let consumer = deliver::consumer_for(&cfg, consumer_id)?;
        deliver::reset(self, &cfg, &topic, &consumer, to).await
    }
}
