// Shale's SQS endpoint with the AWS SDK for JavaScript v3 (@aws-sdk/client-sqs,
// pinned in scripts/lib/sqs-sdk/package.json), run by scripts/sqs-test.sh:
//
//   node scripts/lib/sqs_sdk_test.mjs http://127.0.0.1:PORT
//
// The SDK checks MD5OfMessageBody of SendMessage, SendMessageBatch and
// ReceiveMessage answers itself (middleware-sdk-sqs, on by default: the
// client is made without `md5: false`, and the first test proves the check
// is on by tampering with one answer). It does not check the attribute
// digests: MD5OfMessageAttributes and MD5OfMessageSystemAttributes are
// checked here with AWS's algorithm. Tests run one after the other
// (node:test); the node must have no auth file (any credentials do).

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { test } from "node:test";
import { createRequire } from "node:module";

// The SDK is installed (npm ci) in scripts/lib/sqs-sdk/node_modules, beside
// its package.json and lock file, not next to this file: resolve it there.
const require = createRequire(new URL("./sqs-sdk/package.json", import.meta.url));
const {
  SQSClient,
  CreateQueueCommand,
  GetQueueUrlCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  SendMessageBatchCommand,
  ReceiveMessageCommand,
  DeleteMessageCommand,
  DeleteMessageBatchCommand,
  ChangeMessageVisibilityCommand,
  QueueDoesNotExist,
} = require("@aws-sdk/client-sqs");

const BASE = (process.argv[2] || process.env.SHALE_SQS_URL || "").replace(/\/$/, "");
if (!BASE) {
  console.error("usage: node sqs_sdk_test.mjs http://HOST:PORT");
  process.exit(2);
}
const RUN = randomBytes(3).toString("hex");
const qname = (t, suffix = "") => `js-${t}-${RUN}${suffix}`;

function makeClient() {
  return new SQSClient({
    endpoint: BASE,
    region: "us-east-1",
    credentials: { accessKeyId: "AKIDJSTEST", secretAccessKey: "js-secret" },
    maxAttempts: 1,
  });
}
const sqs = makeClient();

// AWS's digest of message (or system) attributes: sorted by name; each as
// length-prefixed name, length-prefixed data type, transport byte (1 String
// and Number, 2 Binary), length-prefixed value; lengths 4-byte big-endian.
function md5OfAttributes(attrs) {
  const parts = [];
  const put = (buf) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(buf.length);
    parts.push(len, buf);
  };
  for (const name of Object.keys(attrs).sort()) {
    const a = attrs[name];
    put(Buffer.from(name, "utf8"));
    put(Buffer.from(a.DataType, "utf8"));
    if (a.StringValue !== undefined) {
      parts.push(Buffer.from([1]));
      put(Buffer.from(a.StringValue, "utf8"));
    } else {
      parts.push(Buffer.from([2]));
      put(Buffer.from(a.BinaryValue));
    }
  }
  return createHash("md5").update(Buffer.concat(parts)).digest("hex");
}
const md5 = (s) => createHash("md5").update(Buffer.from(s, "utf8")).digest("hex");

// The answer's attributes without the SDK's undefined fields, binary values as Buffers.
function plainAttrs(attrs) {
  const out = {};
  for (const [k, v] of Object.entries(attrs || {})) {
    out[k] = { DataType: v.DataType };
    if (v.StringValue !== undefined) out[k].StringValue = v.StringValue;
    if (v.BinaryValue !== undefined) out[k].BinaryValue = Buffer.from(v.BinaryValue);
  }
  return out;
}

async function createQueue(name, Attributes) {
  return (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes }))).QueueUrl;
}

// Receives until `count` distinct messages came, within `seconds`.
async function drain(QueueUrl, count, seconds = 20) {
  const got = new Map();
  const deadline = Date.now() + seconds * 1000;
  while (got.size < count) {
    assert.ok(Date.now() < deadline, `received ${got.size} of ${count} messages within ${seconds} s`);
    const r = await sqs.send(new ReceiveMessageCommand({
      QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 30,
      MessageAttributeNames: ["All"], MessageSystemAttributeNames: ["All"],
    }));
    for (const m of r.Messages || []) got.set(m.MessageId, m);
  }
  return [...got.values()];
}

async function settle(QueueUrl, want, seconds = 15) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  for (;;) {
    const r = await sqs.send(new GetQueueAttributesCommand({
      QueueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    }));
    last = r.Attributes;
    if (Object.entries(want).every(([k, v]) => last[k] === v)) return;
    assert.ok(Date.now() < deadline, `queue counters ${JSON.stringify(last)}, expected ${JSON.stringify(want)}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

const TRACE = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
const ATTRS = {
  text: { DataType: "String", StringValue: "grüße ✓" },
  amount: { DataType: "Number", StringValue: "-12.5e3" },
  raw: { DataType: "Binary", BinaryValue: Buffer.from([0, 1, 2, 250, 255]) },
  kind: { DataType: "String.custom", StringValue: "x" },
};

test("the SDK's MD5 check is on: a tampered MD5OfMessageBody is refused", async () => {
  assert.equal(typeof sqs.config.md5, "function", "md5 checking disabled in the client config");
  const url = await createQueue(qname("tamper"));
  const c = makeClient();
  c.middlewareStack.add((next) => async (args) => {
    const r = await next(args);
    if (r.output && r.output.MD5OfMessageBody) r.output.MD5OfMessageBody = "0".repeat(32);
    return r;
  }, { step: "build", name: "tamperMd5" });
  await assert.rejects(c.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "tampered" })),
    /InvalidChecksumError|MD5/);
});

test("SendMessage with String/Number/Binary attributes and AWSTraceHeader: MD5s", async () => {
  const url = await createQueue(qname("send"));
  const body = `héllo from the JS SDK ✓ ${"x".repeat(300)}`;
  const r = await sqs.send(new SendMessageCommand({
    QueueUrl: url, MessageBody: body, MessageAttributes: ATTRS,
    MessageSystemAttributes: { AWSTraceHeader: { DataType: "String", StringValue: TRACE } },
  }));
  assert.ok(r.MessageId, "no MessageId");
  assert.equal(r.MD5OfMessageBody, md5(body));
  assert.equal(r.MD5OfMessageAttributes, md5OfAttributes(ATTRS), "MD5OfMessageAttributes");
  assert.equal(r.MD5OfMessageSystemAttributes,
    md5OfAttributes({ AWSTraceHeader: { DataType: "String", StringValue: TRACE } }), "MD5OfMessageSystemAttributes");

  const [m] = await drain(url, 1);
  assert.equal(m.Body, body);
  assert.equal(m.MD5OfBody, md5(body));
  assert.deepEqual(plainAttrs(m.MessageAttributes), plainAttrs(ATTRS));
  assert.equal(m.MD5OfMessageAttributes, md5OfAttributes(plainAttrs(m.MessageAttributes)), "received MD5OfMessageAttributes");
  assert.equal(m.Attributes.AWSTraceHeader, TRACE);
  assert.equal(m.Attributes.ApproximateReceiveCount, "1");
  assert.ok(Math.abs(Number(m.Attributes.SentTimestamp) - Date.now()) < 60_000, `SentTimestamp ${m.Attributes.SentTimestamp}`);
  await sqs.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }));
  await settle(url, { ApproximateNumberOfMessages: "0", ApproximateNumberOfMessagesNotVisible: "0" });
});

test("SendMessageBatch, receive with All attributes, DeleteMessageBatch", async () => {
  const url = await createQueue(qname("batch"));
  const entries = Array.from({ length: 10 }, (_, i) => ({
    Id: `js_${i}`,
    MessageBody: `batch ${i} ${"é".repeat(i * 10)}`,
    ...(i % 3 === 0 ? {} : { MessageAttributes: { i: { DataType: "Number", StringValue: String(i) }, raw: ATTRS.raw } }),
    ...(i === 4 ? { MessageSystemAttributes: { AWSTraceHeader: { DataType: "String", StringValue: TRACE } } } : {}),
  }));
  const r = await sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries }));
  assert.deepEqual(r.Failed || [], []);
  assert.equal(r.Successful.length, 10);
  const byId = Object.fromEntries(r.Successful.map((s) => [s.Id, s]));
  for (const e of entries) {
    const s = byId[e.Id];
    assert.ok(s, `no result for ${e.Id}`);
    assert.equal(s.MD5OfMessageBody, md5(e.MessageBody));
    if (e.MessageAttributes) assert.equal(s.MD5OfMessageAttributes, md5OfAttributes(e.MessageAttributes), e.Id);
    else assert.equal(s.MD5OfMessageAttributes, undefined, e.Id);
    if (e.MessageSystemAttributes) {
      assert.equal(s.MD5OfMessageSystemAttributes, md5OfAttributes(e.MessageSystemAttributes), e.Id);
    }
  }
  const got = await drain(url, 10);
  for (const m of got) {
    if (m.MessageAttributes) {
      assert.equal(m.MD5OfMessageAttributes, md5OfAttributes(plainAttrs(m.MessageAttributes)), m.Body);
    }
  }
  assert.deepEqual(got.map((m) => m.Body).sort(), entries.map((e) => e.MessageBody).sort());
  const traced = got.find((m) => m.Body.startsWith("batch 4 "));
  assert.equal(traced.Attributes.AWSTraceHeader, TRACE);
  const del = await sqs.send(new DeleteMessageBatchCommand({
    QueueUrl: url, Entries: got.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle })),
  }));
  assert.deepEqual(del.Failed || [], []);
  assert.equal(del.Successful.length, 10);
  await settle(url, { ApproximateNumberOfMessages: "0", ApproximateNumberOfMessagesNotVisible: "0" });
});

test("ChangeMessageVisibility 0 brings a message back; a FIFO queue answers SequenceNumbers", async () => {
  const url = await createQueue(qname("fifo", ".fifo"), { FifoQueue: "true", ContentBasedDeduplication: "true" });
  const a = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "first", MessageGroupId: "g" }));
  const b = await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: "second", MessageGroupId: "g" }));
  assert.ok(BigInt(a.SequenceNumber) < BigInt(b.SequenceNumber), `${a.SequenceNumber} !< ${b.SequenceNumber}`);
  const [m] = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 1, WaitTimeSeconds: 2 }))).Messages;
  assert.equal(m.Body, "first");
  await sqs.send(new ChangeMessageVisibilityCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 }));
  const again = await drain(url, 1, 10);
  assert.equal(again[0].Body, "first", "after ChangeMessageVisibility 0 the group restarts at its first message");
});

test("QueueDoesNotExist is the SDK's modeled exception", async () => {
  await assert.rejects(sqs.send(new GetQueueUrlCommand({ QueueName: qname("missing") })), (e) => {
    assert.ok(e instanceof QueueDoesNotExist, `${e.name}: ${e.message}`);
    assert.equal(e.$metadata.httpStatusCode, 400);
    return true;
  });
});
