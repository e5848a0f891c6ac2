"""The cost of the SQS compatibility layer: the same work through SQS (boto3)
and through Shale's own /v1 API, side by side against one node.

Run by scripts/bench-sqs.sh (a release node on a free port):

    bench_sqs.py --url http://127.0.0.1:PORT [--messages 10000] [--rounds 5]
                 [--threads 1] [--body-bytes 1024] [--node-pid PID]

Each round does, in this order, with the same client process and threads:

  (a) SQS with boto3: a new standard queue; the messages sent with
      SendMessageBatch of 10; then ReceiveMessage (10, WaitTimeSeconds 1)
      + DeleteMessageBatch of what came, until every message was deleted.
  (b) /v1 with urllib3 (the HTTP library under boto3: a PoolManager, JSON
      bodies): a new topic and group with the settings the SQS queue of (a)
      got (read back through /v1, so both paths store and deliver the same
      way); POST /v1/topics/{t}/messages with 10 messages per call, then
      POST /v1/groups/{g}/receive (max_messages 10, wait_ms 1000) + POST
      /v1/groups/{g}/ack until every message was acked.

Each phase (send; receive + delete/ack) is timed from its start until its
last message; the rounds alternate (a) and (b) so drift (page cache,
compaction, a noisy neighbour) hits both. Printed: every round, the medians,
and the ratio SQS/v1 of the medians (the throughput the compatibility layer
keeps). With --node-pid, also the node's CPU time per 1000 messages (from
/proc), which shows the layer's server-side cost apart from boto3's own
(SigV4 signing, serialising) in the client; the client's CPU is shown too.
"""

import argparse
import json
import os
import statistics
import string
import sys
import threading
import time

import boto3
import urllib3
from botocore.config import Config

VISIBILITY_S = 120  # far longer than a phase: no redelivery inside one


def node_cpu_s(pid):
    if not pid:
        return None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Phase:
    """Counts messages done by the worker threads; notes when the last one was."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.lock = threading.Lock()
        self.finished = threading.Event()
        self.end = None
        self.errors = []

    def add(self, n):
        with self.lock:
            self.done += n
            if self.done >= self.total and self.end is None:
                self.end = time.perf_counter()
                self.finished.set()

    def fail(self, e):
        with self.lock:
            self.errors.append(e)
        self.finished.set()


def run_phase(threads, work, total, pid, timeout):
    """Runs work(index, phase) on `threads` threads; (seconds, node cpu s, client cpu s)."""
    phase = Phase(total)

    def body(i):
        try:
            work(i, phase)
        except Exception as e:  # reported below
            phase.fail(e)

    cpu0, client0 = node_cpu_s(pid), time.process_time()
    start = time.perf_counter()
    ts = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(threads)]
    for t in ts:
        t.start()
    phase.finished.wait(timeout)
    for t in ts:
        t.join(timeout)
    if phase.errors:
        raise phase.errors[0]
    if phase.end is None:
        raise SystemExit(f"a phase did not finish within {timeout} s: {phase.done} of {total}")
    cpu1 = node_cpu_s(pid)
    return (phase.end - start, None if cpu0 is None else cpu1 - cpu0, time.process_time() - client0)


def split(total, threads):
    """Batches of 10 per thread: [(thread, number of batches)]."""
    batches = total // 10
    return [batches // threads + (1 if i < batches % threads else 0) for i in range(threads)]


def sqs_round(args, r, body):
    clients = [boto3.client("sqs", endpoint_url=args.url, region_name="us-east-1",
                            aws_access_key_id="AKIDBENCH", aws_secret_access_key="bench",
                            config=Config(retries={"max_attempts": 1}, max_pool_connections=4))
               for _ in range(args.threads)]
    url = clients[0].create_queue(QueueName=f"bench-sqs-{os.getpid()}-{r}")["QueueUrl"]
    per = split(args.messages, args.threads)

    def send(i, phase):
        c = clients[i]
        for b in range(per[i]):
            entries = [{"Id": str(k), "MessageBody": body} for k in range(10)]
            out = c.send_message_batch(QueueUrl=url, Entries=entries)
            if out.get("Failed"):
                raise RuntimeError(f"SendMessageBatch failed entries: {out['Failed']}")
            phase.add(len(out["Successful"]))

    def consume(i, phase):
        c = clients[i]
        while not phase.finished.is_set():
            got = c.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                    VisibilityTimeout=VISIBILITY_S).get("Messages", [])
            if not got:
                continue
            out = c.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(k), "ReceiptHandle": m["ReceiptHandle"]} for k, m in enumerate(got)])
            if out.get("Failed"):
                raise RuntimeError(f"DeleteMessageBatch failed entries: {out['Failed']}")
            phase.add(len(out["Successful"]))

    s = run_phase(args.threads, send, args.messages, args.node_pid, args.timeout)
    c = run_phase(args.threads, consume, args.messages, args.node_pid, args.timeout)
    return url, s, c


def v1_round(args, r, body, like):
    """`like`: the SQS queue's topic and group, whose settings the /v1 ones copy."""
    pools = [urllib3.PoolManager(maxsize=4, retries=False, timeout=urllib3.Timeout(connect=10, read=60))
             for _ in range(args.threads)]
    json_headers = {"Content-Type": "application/json"}

    def call(i, method, path, doc=None, ok=(200, 201)):
        resp = pools[i].request(method, args.url + path, headers=json_headers if doc is not None else None,
                                body=None if doc is None else json.dumps(doc).encode())
        if resp.status not in ok:
            raise RuntimeError(f"{method} {path}: {resp.status} {resp.data[:300]!r}")
        return json.loads(resp.data) if resp.data else None

    topic_like = call(0, "GET", f"/v1/topics/{like}")
    group_like = call(0, "GET", f"/v1/groups/{like}")
    topic = group = f"bench-v1-{os.getpid()}-{r}"
    call(0, "POST", "/v1/topics", {"name": topic, "queues": topic_like["queue_count"],
                                  "message_type": topic_like["message_type"],
                                  "retention_ms": topic_like["retention_ms"],
                                  "durability": topic_like["durability"]})
    settings = {k: v for k, v in group_like.items() if k != "name"}
    call(0, "PUT", f"/v1/groups/{group}", settings)
    per = split(args.messages, args.threads)

    def send(i, phase):
        for b in range(per[i]):
            out = call(i, "POST", f"/v1/topics/{topic}/messages", {"messages": [{"body": body}] * 10})
            phase.add(len(out["results"]))

    def consume(i, phase):
        while not phase.finished.is_set():
            got = call(i, "POST", f"/v1/groups/{group}/receive",
                       {"topic": topic, "max_messages": 10, "wait_ms": 1000,
                        "invisible_ms": VISIBILITY_S * 1000})["messages"]
            if not got:
                continue
            out = call(i, "POST", f"/v1/groups/{group}/ack",
                       {"topic": topic, "receipt_handles": [m["receipt_handle"] for m in got]})
            bad = [x for x in out["results"] if isinstance(x, dict) and x.get("error")]
            if bad:
                raise RuntimeError(f"ack failed: {bad[:3]}")
            phase.add(len(got) - len(bad))

    s = run_phase(args.threads, send, args.messages, args.node_pid, args.timeout)
    c = run_phase(args.threads, consume, args.messages, args.node_pid, args.timeout)
    return s, c, topic_like, settings


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--messages", type=int, default=10000, help="per phase (a multiple of 10 × threads)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--body-bytes", type=int, default=1024)
    p.add_argument("--node-pid", type=int, default=0, help="the node's pid: its CPU time per phase")
    p.add_argument("--timeout", type=float, default=600, help="seconds a phase may take")
    args = p.parse_args()
    args.url = args.url.rstrip("/")
    unit = 10 * args.threads
    args.messages = max(unit, (args.messages + unit - 1) // unit * unit)
    letters = (string.ascii_letters + string.digits) * (args.body_bytes // 62 + 1)
    body = letters[: args.body_bytes]

    print(f"{args.messages} messages of {args.body_bytes} B a phase, {args.threads} client thread(s), "
          f"{args.rounds} rounds alternating SQS (boto3 {boto3.__version__}) and /v1 (urllib3 {urllib3.__version__})")
    rows = {"sqs send": [], "sqs receive+delete": [], "v1 send": [], "v1 receive+ack": []}
    cpu = {k: [] for k in rows}
    client_cpu = {k: [] for k in rows}
    n = args.messages
    print()
    print("| round | SQS send msg/s | SQS receive+delete msg/s | /v1 send msg/s | /v1 receive+ack msg/s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in range(args.rounds):
        queue_url, s1, c1 = sqs_round(args, r, body)
        like = "sqs." + queue_url.rsplit("/", 1)[1]
        s2, c2, topic_like, group_settings = v1_round(args, r, body, like)
        if r == 0:
            print(f"<!-- both topics: {topic_like['message_type']}, {topic_like['queue_count']} queues, "
                  f"durability {topic_like['durability']}; group {json.dumps(group_settings)} -->")
        for key, (secs, ncpu, ccpu) in zip(rows, (s1, c1, s2, c2)):
            rows[key].append(n / secs)
            if ncpu is not None:
                cpu[key].append(ncpu * 1e6 / n)
            client_cpu[key].append(ccpu * 1e6 / n)
        print(f"| {r + 1} | " + " | ".join(f"{rows[k][-1]:,.0f}" for k in rows) + " |", flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print("| **median** | " + " | ".join(f"**{med[k]:,.0f}**" for k in rows) + " |")
    print()
    print(f"SQS/v1 throughput ratio (medians): send {med['sqs send'] / med['v1 send']:.2f}, "
          f"receive+delete vs receive+ack {med['sqs receive+delete'] / med['v1 receive+ack']:.2f}")
    e2e_sqs = 1 / (1 / med["sqs send"] + 1 / med["sqs receive+delete"])
    e2e_v1 = 1 / (1 / med["v1 send"] + 1 / med["v1 receive+ack"])
    print(f"end to end (send then consume, medians): SQS {e2e_sqs:,.0f} msg/s, /v1 {e2e_v1:,.0f} msg/s, "
          f"ratio {e2e_sqs / e2e_v1:.2f}")
    if all(cpu.values()):
        print("node CPU ms per 1000 messages (median): " + ", ".join(
            f"{k} {statistics.median(v):.0f}" for k, v in cpu.items()))
    print("client CPU ms per 1000 messages (median): " + ", ".join(
        f"{k} {statistics.median(v):.0f}" for k, v in client_cpu.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
