//! The broker's background work as named periodic jobs, each with its own
//! period, run by [`Background`] until it is stopped.
//!
//! | job | period | what |
//! | --- | --- | --- |
//! | `flush-and-seal` | `flush_interval` | fsync ASYNC data, seal segments past `segment_ms` |
//! | `upload` | `flush_interval` | upload sealed segments, apply retention |
//! | `evict` | `flush_interval` | keep the hot tier within `hot_bytes` (uploaded segments only) |
//! | `checkpoint-groups` | `flush_interval` | save changed group cursors to the object store |
//! | `group-metrics` | [`GROUP_METRICS_PERIOD`] | refresh the group gauges |
//! | `cluster` | `cluster_heartbeat_ms` | renew the lease, take and hand over queues |
//! | `wal-collect` | [`WAL_COLLECT_PERIOD`] | delete this node's covered OBJECT chunks (no other request) |
//! | `wal-janitor` | [`WAL_JANITOR_PERIOD`] | delete covered chunks of nodes that are gone (one LIST), and the lease objects of nodes gone for [`DEPARTED_NODE_QUIET`] |
//!
//! Invariants: one run of a job at a time (a slow upload delays the next
//! upload, not the fsync of ASYNC data); a run that panics is logged and the
//! job goes on; [`Background::stop`] lets the runs under way finish and
//! starts no new one. What must happen at shutdown (seal, upload, last
//! checkpoint, final fsync) is [`Broker::hand_over`] and
//! [`Broker::shutdown_flush`], called by the front-end after `stop`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::broker::Broker;

/// How often the group gauges are refreshed (they read a record per cursor).
pub const GROUP_METRICS_PERIOD: Duration = Duration::from_secs(1);
/// How often this node deletes its own OBJECT chunks that segments cover.
pub const WAL_COLLECT_PERIOD: Duration = Duration::from_secs(5);
/// How long a node that left or was declared dead stays listed (its lease
/// objects kept) before `wal-janitor` deletes them.
pub const DEPARTED_NODE_QUIET: Duration = Duration::from_secs(3600);
/// How often chunks of nodes that are gone are looked for.
pub const WAL_JANITOR_PERIOD: Duration = Duration::from_secs(300);

/// One run of a job.
pub type JobRun = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A named piece of background work and how often it runs.
pub struct Job {
    pub name: &'static str,
    pub period: Duration,
    run: Box<dyn Fn() -> JobRun + Send + Sync + 'static>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("name", &self.name)
            .field("period", &self.period)
            .finish()
    }
}

impl Job {
    /// A job that calls `run` every `period`.
    pub fn new<F, Fut>(name: &'static str, period: Duration, run: F) -> Job
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Job {
            name,
            period,
            run: Box::new(move || Box::pin(run())),
        }
    }
}

impl Broker {
    /// The broker's periodic jobs (see the module doc), the frequent ones
    /// every `flush_interval`.
    pub fn jobs(self: &Arc<Self>, flush_interval: Duration) -> Vec<Job> {
        fn job<F, Fut>(broker: &Arc<Broker>, name: &'static str, period: Duration, f: F) -> Job
        where
            F: Fn(Arc<Broker>) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = ()> + Send + 'static,
        {
            let broker = broker.clone();
            Job::new(name, period, move || f(broker.clone()))
        }
        vec![
            job(self, "flush-and-seal", flush_interval, |b| async move {
                b.flush_and_seal().await
            }),
            job(self, "upload", flush_interval, |b| async move {
                b.upload_and_retain().await
            }),
            job(self, "evict", flush_interval, |b| async move {
                b.evict_to_budget().await
            }),
            job(self, "checkpoint-groups", flush_interval, |b| async move {
                b.checkpoint_groups().await
            }),
            job(
                self,
                "cluster",
                self.cluster.config().heartbeat,
                |b| async move { b.cluster_tick().await },
            ),
            job(
                self,
                "timers",
                crate::timers::fire::TIMER_TICK,
                |b| async move { b.fire_timers().await },
            ),
            job(
                self,
                "timer-upkeep",
                crate::timers::fire::HOUSEKEEP_PERIOD,
                |b| async move { b.timer_upkeep().await },
            ),
            job(self, "wal-collect", WAL_COLLECT_PERIOD, |b| async move {
                b.collect_own_wal().await;
            }),
            job(self, "wal-janitor", WAL_JANITOR_PERIOD, |b| async move {
                if b.cluster.may_write() {
                    b.collect_gone_wal().await;
                    b.cluster.forget_departed(DEPARTED_NODE_QUIET).await;
                }
            }),
            job(
                self,
                "group-metrics",
                GROUP_METRICS_PERIOD,
                |b| async move { b.report_group_metrics().await },
            ),
        ]
    }
}

/// Running jobs, one task each.
#[derive(Debug)]
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Background {
    /// Starts every job; each first runs one period from now.
    pub fn spawn(jobs: Vec<Job>) -> Background {
        let (stop, _) = watch::channel(false);
        let tasks = jobs
            .into_iter()
            .map(|job| {
                let name = job.name;
                (name, tokio::spawn(run_job(job, stop.subscribe())))
            })
            .collect();
        Background { stop, tasks }
    }

    /// Stops every job: runs under way finish, no new one starts.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for (name, task) in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(job = name, %error, "background job loop failed");
            }
        }
    }
}

async fn run_job(job: Job, mut stopped: watch::Receiver<bool>) {
    let period = job.period;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stopped.changed() => return,
        }
        // Its own task, so a panic in one run is contained and logged.
        if let Err(error) = tokio::spawn((job.run)()).await {
            tracing::error!(job = job.name, %error, "background job run panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn jobs_run_on_their_own_period_and_survive_panics_until_stopped() {
        let fast = Arc::new(AtomicU32::new(0));
        let slow = Arc::new(AtomicU32::new(0));
        let (f, s) = (fast.clone(), slow.clone());
        let jobs = vec![
            Job::new("fast", Duration::from_millis(10), move || {
                let n = f.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("first run fails");
                    }
                }
            }),
            Job::new("slow", Duration::from_millis(100), move || {
                s.fetch_add(1, Ordering::SeqCst);
                async {}
            }),
        ];
        let bg = Background::spawn(jobs);
        for _ in 0..105 {
            tokio::time::advance(Duration::from_millis(1)).await;
            tokio::task::yield_now().await;
        }
        bg.stop().await;
        let (fast_runs, slow_runs) = (fast.load(Ordering::SeqCst), slow.load(Ordering::SeqCst));
        assert!(
            fast_runs >= 5,
            "the fast job kept running after its panic: {fast_runs}"
        );
        assert_eq!(slow_runs, 1);
        tokio::time::advance(Duration::from_millis(500)).await;
        tokio::task::yield_now().await;
        assert_eq!(fast.load(Ordering::SeqCst), fast_runs, "no run after stop");
    }
}
