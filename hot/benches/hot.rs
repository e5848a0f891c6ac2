//! Criterion benches of the hot path: record encode/decode and queue appends
//! (ASYNC: into the map; SYNC: with a group-committed fsync), against a plain
//! `write` + `fdatasync` of the same bytes as the baseline.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use shale_hot::{AppendRequest, HotConfig, HotStore, MessageId, SystemClock, decode, encode};

fn message(body: usize) -> AppendRequest {
    AppendRequest {
        born_ms: 1_700_000_000_000,
        tag: Some("created".into()),
        keys: vec!["order-42".into()],
        properties: vec![("region".into(), "eu".into())],
        body: Bytes::from(vec![b'x'; body]),
        ..Default::default()
    }
}

fn codec(c: &mut Criterion) {
    let req = message(1024);
    let bytes = encode(&req, 1, 2, MessageId([1; 16]));
    let mut g = c.benchmark_group("codec_1KiB");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        b.iter(|| encode(std::hint::black_box(&req), 1, 2, MessageId([1; 16])))
    });
    g.bench_function("decode", |b| {
        b.iter(|| decode(std::hint::black_box(&bytes)).expect("valid"))
    });
    g.finish();
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = HotConfig {
        segment_bytes: 64 << 20,
        ..HotConfig::default()
    };
    let store = HotStore::open(dir.path(), cfg, Arc::new(SystemClock)).expect("open");
    let q = store.queue("bench", 0).expect("queue");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("append_1KiB_x100");
    let batch: Vec<_> = (0..100).map(|_| message(1024)).collect();
    let batch_bytes = 100 * shale_hot::encoded_len(&batch[0]) as u64;
    g.throughput(Throughput::Bytes(batch_bytes));
    g.bench_function("async", |b| b.iter(|| q.append(&batch).expect("append")));
    g.bench_function("sync", |b| {
        b.iter(|| {
            let a = q.append(&batch).expect("append");
            rt.block_on(q.sync(a[99].offset + 1)).expect("sync");
        })
    });
    let raw_path = dir.path().join("raw");
    let mut raw = std::fs::File::create(&raw_path).expect("raw file");
    let image = vec![b'x'; batch_bytes as usize];
    g.bench_function("baseline_write_fdatasync", |b| {
        b.iter_batched(
            || (),
            |_| {
                raw.write_all(&image).expect("write");
                raw.sync_data().expect("fdatasync");
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, codec, append);
criterion_main!(benches);
