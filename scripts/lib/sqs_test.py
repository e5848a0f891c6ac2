"""Shale's SQS endpoint with boto3, as an application written for SQS uses it.

Started by scripts/sqs-test.sh against a running node:

    sqs_test.py --url http://127.0.0.1:PORT --shale SHALE_BIN [-k SUBSTRING ...]

Every test is a function `test_*` below, run in file order against the node
at --url (a node without an auth file: any credentials do); the auth test
starts a second node of its own (SHALE_BIN, an auth file with SigV4 secrets)
and stops it. Each test uses queues of its own, named after the test and
this run, so the tests do not see each other's messages.

The expectations are AWS SQS's documented behaviour (API reference and
developer guide), except the differences Shale states: MaximumMessageSize
up to 4 MiB (default 1 MiB), a receive VisibilityTimeout of 0 served as
1 s, FIFO queues refusing a queue-level DelaySeconds > 0, PurgeQueue
leaving delayed messages not yet due and having no 60-second rule, an
ApproximateFirstReceiveTimestamp that may be absent, and
ReceiveRequestAttemptId deduplication per node. None of these is tested as
a failure.

Waits are bounded: what takes time (delays, visibility timeouts, the
approximate counters) is polled with a deadline, never slept for luck.
On a failure the test's last SQS exchanges (request and answer, as sent
and received) are printed. The last line is `N passed, N failed`; the exit
status is 1 when anything failed.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from pathlib import Path

import boto3
import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REGION = "us-east-1"
ACCOUNT = "000000000000"
RUN = secrets.token_hex(3)  # queue names of this run: several runs may share a node

ARGS = None
BASE = None
EXCHANGES = deque(maxlen=6)  # the current test's last SQS requests and answers


# --- clients and recording -----------------------------------------------------

def _record_request(request, **_):
    body = request.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    EXCHANGES.append({
        "request": f"{request.method} {request.url}",
        "target": request.headers.get("X-Amz-Target"),
        "request_body": body,
    })


def _record_response(response_dict=None, exception=None, **_):
    if not EXCHANGES:
        return
    entry = EXCHANGES[-1]
    if response_dict is not None:
        body = response_dict.get("body", b"")
        if isinstance(body, bytes):
            body = body.decode("utf-8", "replace")
        headers = response_dict.get("headers", {})
        entry["status"] = response_dict.get("status_code")
        entry["query_error"] = headers.get("x-amzn-query-error")
        entry["answer"] = body
    elif exception is not None:
        entry["answer"] = f"(no answer: {exception!r})"


def client(key="AKIDEXAMPLE", secret="secret", url=None, validate=True, timeout=60):
    """An SQS client on the node (any credentials do without an auth file)."""
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=timeout,
                 connect_timeout=10, parameter_validation=validate)
    c = boto3.client("sqs", endpoint_url=url or BASE, region_name=REGION,
                     aws_access_key_id=key, aws_secret_access_key=secret, config=cfg)
    c.meta.events.register("before-send.sqs", _record_request)
    c.meta.events.register("response-received.sqs", _record_response)
    return c


def show_exchanges():
    out = []
    for e in EXCHANGES:
        out.append(f"    > {e['request']}  X-Amz-Target: {e.get('target')}")
        out.append(f"    > {_cut(e.get('request_body'))}")
        qe = f"  x-amzn-query-error: {e['query_error']}" if e.get("query_error") else ""
        out.append(f"    < {e.get('status')}{qe}")
        out.append(f"    < {_cut(e.get('answer'))}")
    return "\n".join(out)


def _cut(s, n=700):
    s = "" if s is None else str(s)
    return s if len(s) <= n else s[:n] + f"... ({len(s)} chars)"


SQS = None  # the shared client, made in main()


# --- helpers -------------------------------------------------------------------

def qname(test, suffix=""):
    return f"{test}-{RUN}{suffix}"


def create(name, attributes=None, tags=None, c=None):
    kw = {"QueueName": name}
    if attributes:
        kw["Attributes"] = {k: str(v) for k, v in attributes.items()}
    if tags:
        kw["tags"] = tags
    return (c or SQS).create_queue(**kw)["QueueUrl"]


def create_fifo(name, attributes=None):
    attrs = {"FifoQueue": "true"}
    attrs.update(attributes or {})
    return create(name, attrs)


def arn(name):
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def attrs_of(url, *names):
    return SQS.get_queue_attributes(QueueUrl=url, AttributeNames=list(names) or ["All"])["Attributes"]


def receive(url, n=10, wait=1, visibility=None, c=None, **kw):
    args = {"QueueUrl": url, "MaxNumberOfMessages": n, "WaitTimeSeconds": wait,
            "MessageSystemAttributeNames": ["All"], "MessageAttributeNames": ["All"]}
    if visibility is not None:
        args["VisibilityTimeout"] = visibility
    args.update(kw)
    return (c or SQS).receive_message(**args).get("Messages", [])


def until(fn, timeout, what, interval=0.2):
    """Polls fn() until it returns something truthy; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")
        time.sleep(interval)


def drain(url, count, timeout=20, visibility=30, delete=False, **kw):
    """Receives until `count` messages came (each once), within `timeout` s."""
    got = {}
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, \
            f"received {len(got)} of {count} messages within {timeout} s: {sorted(m['Body'] for m in got.values())}"
        for m in receive(url, n=10, wait=1, visibility=visibility, **kw):
            got[m["MessageId"]] = m
            if delete:
                SQS.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert len(got) == count, f"{len(got)} messages received, {count} sent"
    return list(got.values())


def nothing_for(url, seconds, what, **kw):
    """Receives for `seconds` s (long polls of 1 s): fails if anything comes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = receive(url, n=10, wait=1, **kw)
        assert not got, f"{what}: received {[(m['Body'], m.get('Attributes')) for m in got]}"


def error_of(fn, *args, **kw):
    """Runs an SQS call that must fail; returns (code, the ClientError)."""
    try:
        answer = fn(*args, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e
    raise AssertionError(f"expected an error, got {answer!r}")


def expect_error(codes, fn, *args, **kw):
    codes = {codes} if isinstance(codes, str) else set(codes)
    code, e = error_of(fn, *args, **kw)
    assert code in codes, f"error code {code!r}, expected one of {sorted(codes)}: {e.response.get('Error')}"
    status = e.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500, f"HTTP {status} for a client error {code}"
    return e


def v1(method, path, body=None, ok=(200, 201)):
    """The node's own /v1 API (no auth on the main node)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if status not in ok:
        raise AssertionError(f"{method} {path}: {status} {text[:400]!r}")
    return status, (json.loads(text) if text else None)


def signed_post(target, payload, url=None, key="AKIDEXAMPLE", secret="secret", sign=True,
                content_type="application/x-amz-json-1.0", raw=None):
    """A hand-made request to POST / (SigV4-signed as an SDK does): (status, headers, body)."""
    url = url or BASE
    data = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": content_type}
    if target:
        headers["X-Amz-Target"] = target
    req = AWSRequest(method="POST", url=url + "/", data=data, headers=headers)
    if sign:
        SigV4Auth(Credentials(key, secret), "sqs", REGION).add_auth(req)
    r = urllib.request.Request(url + "/", data=data, method="POST", headers=dict(req.headers.items()))
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers.items()), e.read()


# AWS's MD5 of message attributes (the SDKs' check; "Calculating the MD5 message
# digest for message attributes" in the SQS developer guide): the attributes
# sorted by name, each as length-prefixed name, length-prefixed data type, a
# transport byte (1 String and Number, 2 Binary) and the length-prefixed value,
# lengths as 4-byte big-endian integers.
def md5_of_attributes(attributes):
    buf = bytearray()

    def put(b):
        buf.extend(struct.pack(">I", len(b)))
        buf.extend(b)

    for name in sorted(attributes):
        a = attributes[name]
        put(name.encode())
        put(a["DataType"].encode())
        if a.get("StringValue") is not None:
            buf.append(1)
            put(a["StringValue"].encode())
        else:
            buf.append(2)
            v = a["BinaryValue"]
            put(v if isinstance(v, bytes) else base64.b64decode(v))
    return hashlib.md5(bytes(buf)).hexdigest()


def md5_of_body(body):
    return hashlib.md5(body.encode()).hexdigest()


def check_message_md5s(m):
    assert m["MD5OfBody"] == md5_of_body(m["Body"]), f"MD5OfBody of {m}"
    if m.get("MessageAttributes"):
        assert m.get("MD5OfMessageAttributes") == md5_of_attributes(m["MessageAttributes"]), \
            f"MD5OfMessageAttributes {m.get('MD5OfMessageAttributes')} != {md5_of_attributes(m['MessageAttributes'])} for {m['MessageAttributes']}"
    else:
        assert "MD5OfMessageAttributes" not in m, f"MD5OfMessageAttributes without attributes: {m}"


# --- the tests -------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def test_create_queue_url_arn_and_get_queue_url():
    name = qname("create")
    url = create(name)
    assert url == f"{BASE}/{ACCOUNT}/{name}", url
    assert SQS.get_queue_url(QueueName=name)["QueueUrl"] == url
    a = attrs_of(url, "QueueArn")
    assert a == {"QueueArn": arn(name)}, a
    # The same name and attributes again: the same queue (AWS: idempotent).
    assert create(name) == url
    # An 80-character name is the longest allowed.
    long_name = ("L" * 80)[: 80 - len(RUN) - 1] + "-" + RUN
    assert len(long_name) == 80
    assert create(long_name).endswith("/" + long_name)


@test
def test_create_queue_with_other_attributes_is_queue_already_exists():
    name = qname("exists")
    url = create(name, {"VisibilityTimeout": 40})
    e = expect_error("QueueAlreadyExists", SQS.create_queue, QueueName=name,
                     Attributes={"VisibilityTimeout": "41"})
    assert isinstance(e, SQS.exceptions.QueueNameExists), type(e)
    assert create(name, {"VisibilityTimeout": 40}) == url


@test
def test_queue_name_rules():
    for bad in ["has space", "dot.inside", "x" * 81, "slash/no", "star*"]:
        expect_error("InvalidParameterValue", SQS.create_queue, QueueName=bad)
    expect_error({"InvalidParameterValue", "MissingParameter"}, SQS.create_queue, QueueName="")


@test
def test_fifo_name_and_fifo_queue_attribute_go_together():
    # Without FifoQueue=true the queue is a standard one (AWS: "If you don't
    # specify the FifoQueue attribute, Amazon SQS creates a standard queue"),
    # whose name may not contain a dot; FifoQueue=true needs the .fifo suffix.
    expect_error({"InvalidParameterValue", "InvalidAttributeValue"}, SQS.create_queue,
                 QueueName=qname("fifo-without-suffix"), Attributes={"FifoQueue": "true"})
    expect_error({"InvalidParameterValue", "InvalidAttributeValue"}, SQS.create_queue,
                 QueueName=qname("fifo-false", ".fifo"), Attributes={"FifoQueue": "false"})
    expect_error({"InvalidParameterValue", "InvalidAttributeValue"}, SQS.create_queue,
                 QueueName=qname("nofifo", ".fifo"))


@test
def test_queue_does_not_exist_errors():
    missing = f"{BASE}/{ACCOUNT}/{qname('missing')}"
    e = expect_error("AWS.SimpleQueueService.NonExistentQueue", SQS.get_queue_url, QueueName=qname("missing"))
    assert isinstance(e, SQS.exceptions.QueueDoesNotExist), type(e)
    for call, kw in [(SQS.send_message, {"MessageBody": "x"}),
                     (SQS.receive_message, {}),
                     (SQS.get_queue_attributes, {"AttributeNames": ["All"]}),
                     (SQS.set_queue_attributes, {"Attributes": {"VisibilityTimeout": "5"}}),
                     (SQS.purge_queue, {}),
                     (SQS.delete_queue, {}),
                     (SQS.list_queue_tags, {}),
                     (SQS.tag_queue, {"Tags": {"a": "b"}}),
                     (SQS.send_message_batch, {"Entries": [{"Id": "a", "MessageBody": "x"}]})]:
        e = expect_error("AWS.SimpleQueueService.NonExistentQueue", call, QueueUrl=missing, **kw)
        assert isinstance(e, SQS.exceptions.QueueDoesNotExist), (call, type(e))


@test
def test_error_wire_format_is_aws_json_1_0():
    status, headers, body = signed_post("AmazonSQS.GetQueueUrl", {"QueueName": qname("nope")})
    h = {k.lower(): v for k, v in headers.items()}
    assert status == 400, (status, body)
    assert h.get("content-type", "").startswith("application/x-amz-json-1.0"), h
    doc = json.loads(body)
    assert doc.get("__type") == "com.amazonaws.sqs#QueueDoesNotExist", doc
    assert doc.get("message"), doc
    assert h.get("x-amzn-query-error") == "AWS.SimpleQueueService.NonExistentQueue;Sender", h
    # An operation SQS does not have.
    status, headers, body = signed_post("AmazonSQS.NoSuchOperation", {})
    assert 400 <= status < 500, (status, body)
    assert "__type" in json.loads(body), body
    # The query (XML) protocol is not served: not a 2xx answer.
    status, _, body = signed_post(None, None, raw=b"Action=ListQueues&Version=2012-11-05",
                                  content_type="application/x-www-form-urlencoded")
    assert not 200 <= status < 300, (status, body[:300])


@test
def test_any_queue_url_host_is_accepted():
    name = qname("otherhost")
    create(name)
    foreign = f"https://sqs.eu-west-1.amazonaws.example/123456789012/{name}"
    SQS.send_message(QueueUrl=foreign, MessageBody="via a foreign URL")
    got = drain(foreign, 1)
    assert got[0]["Body"] == "via a foreign URL"


@test
def test_list_queues_prefix_and_pagination():
    prefix = qname("lq") + "-a-"
    names = sorted(prefix + str(i) for i in range(5))
    for n in names:
        create(n)
    create(qname("lq") + "-b-0")
    urls = SQS.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    assert sorted(urls) == [f"{BASE}/{ACCOUNT}/{n}" for n in names], urls
    assert "NextToken" not in SQS.list_queues(QueueNamePrefix=prefix)
    seen, token, pages = [], None, 0
    while True:
        kw = {"QueueNamePrefix": prefix, "MaxResults": 2}
        if token:
            kw["NextToken"] = token
        page = SQS.list_queues(**kw)
        pages += 1
        assert len(page.get("QueueUrls", [])) <= 2, page
        seen += page.get("QueueUrls", [])
        token = page.get("NextToken")
        if not token:
            break
        assert pages < 10, "NextToken never ends"
    assert sorted(seen) == sorted(urls), (seen, urls)
    assert len(seen) == 5 and pages == 3, (seen, pages)
    # boto3's paginator follows NextToken the same way.
    paged = [u for p in SQS.get_paginator("list_queues").paginate(
        QueueNamePrefix=prefix, PaginationConfig={"PageSize": 3}) for u in p.get("QueueUrls", [])]
    assert sorted(paged) == sorted(urls), paged
    assert SQS.list_queues(QueueNamePrefix=qname("lq") + "-zzz").get("QueueUrls", []) == []
    for bad in (0, 1001):
        expect_error("InvalidParameterValue", SQS.list_queues, QueueNamePrefix=prefix, MaxResults=bad)


@test
def test_delete_queue():
    name = qname("del")
    url = create(name)
    SQS.send_message(QueueUrl=url, MessageBody="x")
    SQS.delete_queue(QueueUrl=url)

    def gone():
        try:
            SQS.get_queue_url(QueueName=name)
            return False
        except SQS.exceptions.QueueDoesNotExist:
            return True
    until(gone, 10, "the deleted queue gone from GetQueueUrl")
    assert url not in SQS.list_queues(QueueNamePrefix=name).get("QueueUrls", [])
    expect_error("AWS.SimpleQueueService.NonExistentQueue", SQS.send_message, QueueUrl=url, MessageBody="y")


@test
def test_queue_attributes_defaults_set_and_get():
    name = qname("attrs")
    t0 = int(time.time()) - 2
    url = create(name)
    a = attrs_of(url)
    for k in ["QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
              "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp",
              "VisibilityTimeout", "MaximumMessageSize", "MessageRetentionPeriod", "DelaySeconds",
              "ReceiveMessageWaitTimeSeconds"]:
        assert k in a, f"{k} missing from GetQueueAttributes(All): {a}"
    assert a["VisibilityTimeout"] == "30", a
    assert a["MessageRetentionPeriod"] == "345600", a
    assert a["DelaySeconds"] == "0", a
    assert a["ReceiveMessageWaitTimeSeconds"] == "0", a
    assert 1024 <= int(a["MaximumMessageSize"]) <= 4194304, a
    assert t0 <= int(a["CreatedTimestamp"]) <= time.time() + 2, a  # seconds since the epoch
    assert "FifoQueue" not in a, f"a standard queue answers FifoQueue: {a}"
    SQS.set_queue_attributes(QueueUrl=url, Attributes={
        "VisibilityTimeout": "60", "MessageRetentionPeriod": "3600", "DelaySeconds": "3",
        "ReceiveMessageWaitTimeSeconds": "2", "MaximumMessageSize": "2048"})
    a = attrs_of(url, "VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds",
                 "ReceiveMessageWaitTimeSeconds", "MaximumMessageSize")
    assert a == {"VisibilityTimeout": "60", "MessageRetentionPeriod": "3600", "DelaySeconds": "3",
                 "ReceiveMessageWaitTimeSeconds": "2", "MaximumMessageSize": "2048"}, a
    # The same through the older AttributeNames spelling of single names.
    assert attrs_of(url, "DelaySeconds") == {"DelaySeconds": "3"}
    # Attributes given at creation.
    url2 = create(qname("attrs2"), {"VisibilityTimeout": 45, "MessageRetentionPeriod": 60})
    a = attrs_of(url2, "VisibilityTimeout", "MessageRetentionPeriod")
    assert a == {"VisibilityTimeout": "45", "MessageRetentionPeriod": "60"}, a


@test
def test_queue_attribute_errors():
    url = create(qname("attrerr"))
    expect_error("InvalidAttributeName", SQS.get_queue_attributes, QueueUrl=url, AttributeNames=["NoSuchAttribute"])
    expect_error("InvalidAttributeName", SQS.set_queue_attributes, QueueUrl=url, Attributes={"NoSuchAttribute": "1"})
    expect_error("InvalidAttributeName", SQS.create_queue, QueueName=qname("attrerr2"), Attributes={"Colour": "blue"})
    for attr, bad in [("VisibilityTimeout", "43201"), ("VisibilityTimeout", "-1"), ("DelaySeconds", "901"),
                      ("MessageRetentionPeriod", "59"), ("MessageRetentionPeriod", "1209601"),
                      ("ReceiveMessageWaitTimeSeconds", "21"), ("MaximumMessageSize", "1023"),
                      ("MaximumMessageSize", "4194305"), ("VisibilityTimeout", "ten")]:
        expect_error("InvalidAttributeValue", SQS.set_queue_attributes, QueueUrl=url, Attributes={attr: bad})
        expect_error("InvalidAttributeValue", SQS.create_queue, QueueName=qname("attrerr3"), Attributes={attr: bad})
    # Nothing of a refused SetQueueAttributes was applied.
    assert attrs_of(url, "VisibilityTimeout") == {"VisibilityTimeout": "30"}
    # FifoQueue cannot be set on an existing queue.
    expect_error({"InvalidAttributeName", "InvalidAttributeValue"}, SQS.set_queue_attributes,
                 QueueUrl=url, Attributes={"FifoQueue": "true"})
    # A FIFO queue refuses a queue-level delay (Shale; stated).
    expect_error("InvalidAttributeValue", SQS.create_queue, QueueName=qname("fifodelay", ".fifo"),
                 Attributes={"FifoQueue": "true", "DelaySeconds": "5"})


@test
def test_send_receive_delete_with_attributes_and_md5s():
    url = create(qname("basic"))
    attrs = {"colour": {"DataType": "String", "StringValue": "blau ü ✓"},
             "count": {"DataType": "Number", "StringValue": "42"},
             "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xfe\xff"},
             "price": {"DataType": "Number.float", "StringValue": "1.5"},
             "img": {"DataType": "Binary.png", "BinaryValue": b"\x89PNG"}}
    body = "héllo wörld ✓ \U0001F600 <xml>&amp;"
    before = int(time.time() * 1000)
    sent = SQS.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attrs)
    after = int(time.time() * 1000)
    assert re.fullmatch(r"[0-9a-fA-F-]{8,}", sent["MessageId"]), sent
    assert sent["MD5OfMessageBody"] == md5_of_body(body), sent
    assert sent["MD5OfMessageAttributes"] == md5_of_attributes(attrs), \
        f"{sent['MD5OfMessageAttributes']} != {md5_of_attributes(attrs)}"
    assert "SequenceNumber" not in sent, sent
    [m] = drain(url, 1)
    assert m["MessageId"] == sent["MessageId"], (m, sent)
    assert m["Body"] == body, m
    check_message_md5s(m)
    assert m["MessageAttributes"] == attrs, m["MessageAttributes"]
    a = m["Attributes"]
    assert a.get("ApproximateReceiveCount") == "1", a
    assert before - 1000 <= int(a["SentTimestamp"]) <= after + 1000, (a, before, after)
    assert "SenderId" in a, a
    SQS.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    nothing_for(url, 1.5, "after DeleteMessage", visibility=1)


@test
def test_message_attribute_name_selection():
    url = create(qname("attrsel"))
    attrs = {"a.x": {"DataType": "String", "StringValue": "1"},
             "a.y": {"DataType": "Number", "StringValue": "2"},
             "ab": {"DataType": "String", "StringValue": "3"},
             "b": {"DataType": "Binary", "BinaryValue": b"4"}}
    SQS.send_message(QueueUrl=url, MessageBody="select", MessageAttributes=attrs)

    def once(names):
        kw = {} if names is None else {"MessageAttributeNames": names}
        m = until(lambda: SQS.receive_message(QueueUrl=url, WaitTimeSeconds=1, VisibilityTimeout=30, **kw)
                  .get("Messages"), 10, f"the message with MessageAttributeNames={names}")[0]
        SQS.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        check_message_md5s(m)
        return sorted(m.get("MessageAttributes", {}))

    assert once(None) == [], "attributes without MessageAttributeNames"
    assert once(["All"]) == ["a.x", "a.y", "ab", "b"]
    assert once([".*"]) == ["a.x", "a.y", "ab", "b"]
    assert once(["a.*"]) == ["a.x", "a.y"]
    assert once(["b", "ab"]) == ["ab", "b"]
    assert once(["nothing"]) == []


@test
def test_system_attribute_names_new_and_old_spelling():
    url = create(qname("sysattr"))
    SQS.send_message(QueueUrl=url, MessageBody="sys")

    def once(**kw):
        m = until(lambda: SQS.receive_message(QueueUrl=url, WaitTimeSeconds=1, VisibilityTimeout=30, **kw)
                  .get("Messages"), 10, f"the message with {kw}")[0]
        SQS.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
        return m.get("Attributes", {})

    assert once() == {}, "system attributes without asking"
    a = once(MessageSystemAttributeNames=["All"])
    assert {"SentTimestamp", "ApproximateReceiveCount", "SenderId"} <= set(a), a
    a = once(MessageSystemAttributeNames=["SentTimestamp"])
    assert set(a) == {"SentTimestamp"}, a
    a = once(AttributeNames=["All"])
    assert {"SentTimestamp", "ApproximateReceiveCount"} <= set(a), a
    a = once(AttributeNames=["ApproximateReceiveCount"])
    assert set(a) == {"ApproximateReceiveCount"}, a
    assert int(a["ApproximateReceiveCount"]) >= 5, a


@test
def test_message_system_attributes_aws_trace_header_and_md5():
    url = create(qname("trace"))
    trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    sys_attrs = {"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}
    sent = SQS.send_message(QueueUrl=url, MessageBody="traced", MessageSystemAttributes=sys_attrs)
    assert sent.get("MD5OfMessageSystemAttributes") == md5_of_attributes(sys_attrs), \
        f"{sent.get('MD5OfMessageSystemAttributes')} != {md5_of_attributes(sys_attrs)}"
    assert "MD5OfMessageAttributes" not in sent, sent
    [m] = drain(url, 1)
    assert m["Attributes"].get("AWSTraceHeader") == trace, m["Attributes"]
    check_message_md5s(m)
    # Batch entries answer the same MD5.
    r = SQS.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "t1", "MessageBody": "traced 2", "MessageSystemAttributes": sys_attrs}])
    assert not r.get("Failed"), r
    assert r["Successful"][0].get("MD5OfMessageSystemAttributes") == md5_of_attributes(sys_attrs), r


@test
def test_per_message_delay():
    url = create(qname("delay"))
    t0 = time.monotonic()
    SQS.send_message(QueueUrl=url, MessageBody="late", DelaySeconds=2)
    SQS.send_message(QueueUrl=url, MessageBody="now")
    got = {}
    while "late" not in got:
        assert time.monotonic() - t0 < 12, f"the 2 s delayed message not received within 12 s (got {list(got)})"
        for m in receive(url, wait=1):
            got[m["Body"]] = time.monotonic() - t0
            SQS.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert got["now"] < 1.9, f"the undelayed message came after {got['now']:.2f} s"
    assert got["late"] >= 1.9, f"the 2 s delayed message came after {got['late']:.2f} s"


@test
def test_queue_default_delay_and_per_message_override():
    url = create(qname("qdelay"), {"DelaySeconds": 2})
    t0 = time.monotonic()
    SQS.send_message(QueueUrl=url, MessageBody="queue default")
    SQS.send_message(QueueUrl=url, MessageBody="override 0", DelaySeconds=0)
    got = {}
    while "queue default" not in got:
        assert time.monotonic() - t0 < 12, f"the queue-delayed message not received within 12 s (got {got})"
        for m in receive(url, wait=1):
            got[m["Body"]] = time.monotonic() - t0
            SQS.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert got.get("override 0", 99) < 1.9, f"DelaySeconds=0 on a queue with DelaySeconds=2: {got}"
    assert got["queue default"] >= 1.9, f"the queue's 2 s delay: received after {got['queue default']:.2f} s"


@test
def test_visibility_timeout_expiry_and_redelivery():
    url = create(qname("vis"), {"VisibilityTimeout": 2})
    SQS.send_message(QueueUrl=url, MessageBody="again")
    [first] = drain(url, 1, visibility=None)
    t_first = time.monotonic()
    assert first["Attributes"]["ApproximateReceiveCount"] == "1", first["Attributes"]
    m = None
    while m is None:
        elapsed = time.monotonic() - t_first
        assert elapsed < 12, "not redelivered within 12 s of a 2 s visibility timeout"
        got = receive(url, wait=1)
        if got:
            m = got[0]
            elapsed = time.monotonic() - t_first
    assert elapsed >= 1.8, f"redelivered {elapsed:.2f} s after the first receive (visibility timeout 2 s)"
    assert m["MessageId"] == first["MessageId"] and m["Body"] == "again", m
    assert m["Attributes"]["ApproximateReceiveCount"] == "2", m["Attributes"]
    assert m["ReceiptHandle"] != first["ReceiptHandle"], "the same receipt handle for a new receive"
    # A stale handle on a standard queue: DeleteMessage succeeds (as on AWS).
    SQS.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    SQS.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    nothing_for(url, 3, "after deleting with the newest handle", visibility=1)


@test
def test_receive_visibility_timeout_parameter():
    url = create(qname("recvvis"))  # queue default 30 s
    SQS.send_message(QueueUrl=url, MessageBody="short")
    [first] = drain(url, 1, visibility=2)
    t = time.monotonic()
    again = until(lambda: receive(url, wait=1, visibility=30), 10, "redelivery after a receive VisibilityTimeout of 2")
    assert time.monotonic() - t >= 1.8, "redelivered before the receive's 2 s"
    assert again[0]["MessageId"] == first["MessageId"]


@test
def test_change_message_visibility_extend_keeps_the_handle():
    url = create(qname("cmv"))
    SQS.send_message(QueueUrl=url, MessageBody="extend")
    [m] = drain(url, 1, visibility=2)
    SQS.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=30)
    # Past the first 2 s: still invisible.
    nothing_for(url, 3.5, "a message whose visibility was extended to 30 s")
    # The original handle still deletes it.
    SQS.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    until(lambda: attrs_of(url, "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessages")
          == {"ApproximateNumberOfMessagesNotVisible": "0", "ApproximateNumberOfMessages": "0"},
          15, "NotVisible and Messages back to 0 after the delete")


@test
def test_change_message_visibility_zero_makes_it_visible_now():
    url = create(qname("cmv0"))
    SQS.send_message(QueueUrl=url, MessageBody="back now")
    [m] = drain(url, 1, visibility=60)
    SQS.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    t = time.monotonic()
    [m2] = until(lambda: receive(url, wait=1, visibility=60), 10, "the message after ChangeMessageVisibility 0")
    assert time.monotonic() - t < 3, "ChangeMessageVisibility 0 took more than 3 s"
    assert m2["MessageId"] == m["MessageId"]
    assert m2["Attributes"]["ApproximateReceiveCount"] == "2", m2["Attributes"]
    expect_error("InvalidParameterValue", SQS.change_message_visibility, QueueUrl=url,
                 ReceiptHandle=m2["ReceiptHandle"], VisibilityTimeout=43201)
    expect_error("ReceiptHandleIsInvalid", SQS.change_message_visibility, QueueUrl=url,
                 ReceiptHandle="not-a-receipt-handle", VisibilityTimeout=10)


@test
def test_change_message_visibility_batch_with_a_bad_entry():
    url = create(qname("cmvb"))
    SQS.send_message_batch(QueueUrl=url, Entries=[{"Id": f"m{i}", "MessageBody": f"b{i}"} for i in range(3)])
    ms = drain(url, 3, visibility=60)
    r = SQS.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "zero0", "ReceiptHandle": ms[0]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "zero1", "ReceiptHandle": ms[1]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "bad", "ReceiptHandle": "garbage-handle", "VisibilityTimeout": 0},
        {"Id": "keep", "ReceiptHandle": ms[2]["ReceiptHandle"], "VisibilityTimeout": 120}])
    ok = sorted(e["Id"] for e in r.get("Successful", []))
    assert ok == ["keep", "zero0", "zero1"], r
    [f] = r.get("Failed", [])
    assert f["Id"] == "bad" and f["SenderFault"] is True and f["Code"] == "ReceiptHandleIsInvalid", f
    back = drain(url, 2, timeout=10, visibility=60)
    assert sorted(m["Body"] for m in back) == sorted([ms[0]["Body"], ms[1]["Body"]]), back
    nothing_for(url, 1.5, "the entry kept invisible for 120 s")


@test
def test_delete_message_batch_with_a_bad_entry():
    url = create(qname("dmb"))
    SQS.send_message_batch(QueueUrl=url, Entries=[{"Id": f"m{i}", "MessageBody": f"d{i}"} for i in range(3)])
    ms = drain(url, 3, visibility=60)
    r = SQS.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "ReceiptHandle": ms[0]["ReceiptHandle"]},
        {"Id": "b", "ReceiptHandle": ms[1]["ReceiptHandle"]},
        {"Id": "bad", "ReceiptHandle": "garbage-handle"}])
    assert sorted(e["Id"] for e in r.get("Successful", [])) == ["a", "b"], r
    [f] = r.get("Failed", [])
    assert f["Id"] == "bad" and f["SenderFault"] is True and f["Code"] == "ReceiptHandleIsInvalid", f
    SQS.change_message_visibility(QueueUrl=url, ReceiptHandle=ms[2]["ReceiptHandle"], VisibilityTimeout=0)
    [left] = drain(url, 1, timeout=10)
    assert left["Body"] == ms[2]["Body"], left
    expect_error("ReceiptHandleIsInvalid", SQS.delete_message, QueueUrl=url, ReceiptHandle="garbage-handle")


@test
def test_send_message_batch_and_its_md5s():
    url = create(qname("smb"))
    entries = []
    for i in range(10):
        e = {"Id": f"e-{i}_x", "MessageBody": f"batch body {i} ✓"}
        if i % 2:
            e["MessageAttributes"] = {"n": {"DataType": "Number", "StringValue": str(i)},
                                      "s": {"DataType": "String", "StringValue": f"v{i}"}}
        entries.append(e)
    r = SQS.send_message_batch(QueueUrl=url, Entries=entries)
    assert not r.get("Failed"), r
    by_id = {e["Id"]: e for e in r["Successful"]}
    assert sorted(by_id) == sorted(e["Id"] for e in entries), r
    for e in entries:
        s = by_id[e["Id"]]
        assert s["MD5OfMessageBody"] == md5_of_body(e["MessageBody"]), s
        if "MessageAttributes" in e:
            assert s.get("MD5OfMessageAttributes") == md5_of_attributes(e["MessageAttributes"]), s
        else:
            assert "MD5OfMessageAttributes" not in s, s
    assert len({s["MessageId"] for s in r["Successful"]}) == 10
    got = drain(url, 10)
    for m in got:
        check_message_md5s(m)
    assert sorted(m["Body"] for m in got) == sorted(e["MessageBody"] for e in entries)


@test
def test_send_message_batch_partial_failure():
    url = create(qname("smbfail"))
    r = SQS.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "good1", "MessageBody": "fine 1"},
        {"Id": "bad", "MessageBody": "not allowed: \u0000 \ufffe"},
        {"Id": "good2", "MessageBody": "fine 2"}])
    assert sorted(e["Id"] for e in r.get("Successful", [])) == ["good1", "good2"], r
    [f] = r.get("Failed", [])
    assert f["Id"] == "bad" and f["SenderFault"] is True and f.get("Code"), f
    got = drain(url, 2)
    assert sorted(m["Body"] for m in got) == ["fine 1", "fine 2"], got
    nothing_for(url, 1.5, "the failed entry")
    # The same character in a single SendMessage is refused.
    expect_error({"InvalidMessageContents", "InvalidParameterValue"}, SQS.send_message,
                 QueueUrl=url, MessageBody="not allowed: \u0000")


@test
def test_batch_request_errors():
    url = create(qname("batcherr"))
    raw = client(validate=False)  # lets through what botocore would stop itself
    SQS.send_message(QueueUrl=url, MessageBody="for a handle")
    [m] = drain(url, 1, visibility=60)
    h = m["ReceiptHandle"]
    ops = [
        (raw.send_message_batch, lambda i: {"Id": i, "MessageBody": "x"}),
        (raw.delete_message_batch, lambda i: {"Id": i, "ReceiptHandle": h}),
        (raw.change_message_visibility_batch, lambda i: {"Id": i, "ReceiptHandle": h, "VisibilityTimeout": 60}),
    ]
    for call, entry in ops:
        e = expect_error("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", call, QueueUrl=url,
                         Entries=[entry(f"id{i}") for i in range(11)])
        assert isinstance(e, raw.exceptions.TooManyEntriesInBatchRequest), (call, type(e))
        e = expect_error("AWS.SimpleQueueService.EmptyBatchRequest", call, QueueUrl=url, Entries=[])
        assert isinstance(e, raw.exceptions.EmptyBatchRequest), (call, type(e))
        e = expect_error("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", call, QueueUrl=url,
                         Entries=[entry("same"), entry("same")])
        assert isinstance(e, raw.exceptions.BatchEntryIdsNotDistinct), (call, type(e))
        for bad_id in ["has space", "dot.no", "x" * 81, ""]:
            e = expect_error("AWS.SimpleQueueService.InvalidBatchEntryId", call, QueueUrl=url,
                             Entries=[entry("fine"), entry(bad_id)])
            assert isinstance(e, raw.exceptions.InvalidBatchEntryId), (call, type(e))
    # Nothing of the refused send batches arrived.
    SQS.delete_message(QueueUrl=url, ReceiptHandle=h)
    nothing_for(url, 1.5, "after the refused batches")
    # An 80-character id with - and _ is fine.
    ok = SQS.send_message_batch(QueueUrl=url, Entries=[{"Id": "A-_" + "z" * 77, "MessageBody": "ok"}])
    assert len(ok["Successful"]) == 1, ok


@test
def test_batch_request_too_long():
    # The sum of a batch's bodies is limited like one message (1 MiB on a
    # queue with the default MaximumMessageSize, on AWS as here).
    url = create(qname("toolong"))
    big = "z" * (600 * 1024)
    e = expect_error("AWS.SimpleQueueService.BatchRequestTooLong", SQS.send_message_batch, QueueUrl=url,
                     Entries=[{"Id": "a", "MessageBody": big}, {"Id": "b", "MessageBody": big}])
    assert isinstance(e, SQS.exceptions.BatchRequestTooLong), type(e)
    nothing_for(url, 1.5, "after a refused batch")
    ok = SQS.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": big}])
    assert len(ok.get("Successful", [])) == 1, ok


@test
def test_parameter_range_errors():
    url = create(qname("params"))
    for kw in [{"MaxNumberOfMessages": 0}, {"MaxNumberOfMessages": 11}, {"WaitTimeSeconds": 21},
               {"WaitTimeSeconds": -1}, {"VisibilityTimeout": 43201}, {"VisibilityTimeout": -1}]:
        expect_error("InvalidParameterValue", SQS.receive_message, QueueUrl=url, **kw)
    for d in (-1, 901):
        expect_error("InvalidParameterValue", SQS.send_message, QueueUrl=url, MessageBody="x", DelaySeconds=d)
    # A body over the queue's MaximumMessageSize.
    SQS.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "1024"})
    expect_error("InvalidParameterValue", SQS.send_message, QueueUrl=url, MessageBody="x" * 1025)
    SQS.send_message(QueueUrl=url, MessageBody="y" * 1000)
    # A message attribute without a value, or with an unknown data type.
    expect_error({"InvalidParameterValue", "InvalidParameterCombination"}, SQS.send_message, QueueUrl=url,
                 MessageBody="x", MessageAttributes={"a": {"DataType": "Colour", "StringValue": "red"}})
    expect_error({"InvalidParameterValue", "InvalidParameterCombination", "MissingParameter"},
                 SQS.send_message, QueueUrl=url, MessageBody="x",
                 MessageAttributes={"a": {"DataType": "String"}})


@test
def test_long_polling_wakes_on_a_send():
    url = create(qname("longpoll"))
    sender = client()
    errors = []

    def send_later():
        try:
            time.sleep(1.0)
            sender.send_message(QueueUrl=url, MessageBody="wake up")
        except Exception as e:  # reported by the main thread
            errors.append(e)

    th = threading.Thread(target=send_later, daemon=True)
    t = time.monotonic()
    th.start()
    got = SQS.receive_message(QueueUrl=url, WaitTimeSeconds=5, MaxNumberOfMessages=1).get("Messages", [])
    elapsed = time.monotonic() - t
    th.join(10)
    assert not errors, errors
    assert [m["Body"] for m in got] == ["wake up"], f"long poll answered {got} after {elapsed:.2f} s"
    assert 0.9 <= elapsed < 3.5, f"a WaitTimeSeconds=5 receive answered {elapsed:.2f} s after start, the send was at 1 s"


@test
def test_long_polling_empty_waits_the_wait_time():
    url = create(qname("emptypoll"))
    t = time.monotonic()
    got = SQS.receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages", [])
    elapsed = time.monotonic() - t
    assert got == [], got
    assert 1.8 <= elapsed < 5, f"an empty WaitTimeSeconds=2 receive answered after {elapsed:.2f} s"
    # The queue's ReceiveMessageWaitTimeSeconds applies without WaitTimeSeconds.
    SQS.set_queue_attributes(QueueUrl=url, Attributes={"ReceiveMessageWaitTimeSeconds": "2"})
    t = time.monotonic()
    SQS.receive_message(QueueUrl=url)
    elapsed = time.monotonic() - t
    assert 1.8 <= elapsed < 5, f"ReceiveMessageWaitTimeSeconds=2: an empty receive answered after {elapsed:.2f} s"
    # WaitTimeSeconds=0 overrides it: a short poll.
    t = time.monotonic()
    SQS.receive_message(QueueUrl=url, WaitTimeSeconds=0)
    assert time.monotonic() - t < 1.5, "WaitTimeSeconds=0 on a queue with a 2 s wait did not answer at once"


@test
def test_approximate_counts_settle():
    url = create(qname("counts"))
    SQS.send_message(QueueUrl=url, MessageBody="a")
    SQS.send_message(QueueUrl=url, MessageBody="b")
    SQS.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
    names = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed")

    def counts():
        a = attrs_of(url, *names)
        return tuple(int(a[n]) for n in names)

    until(lambda: counts() == (2, 0, 1), 15, f"counts (visible, not visible, delayed) = (2, 0, 1); now {counts()}")
    [m] = until(lambda: receive(url, n=1, wait=1, visibility=60), 10, "one message")
    until(lambda: counts() == (1, 1, 1), 15, f"counts after a receive = (1, 1, 1); now {counts()}")
    SQS.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    until(lambda: counts() == (1, 0, 1), 15, f"counts after the delete = (1, 0, 1); now {counts()}")


@test
def test_purge_queue():
    url = create(qname("purge"))
    SQS.send_message_batch(QueueUrl=url, Entries=[{"Id": f"p{i}", "MessageBody": f"old {i}"} for i in range(5)])
    until(lambda: attrs_of(url, "ApproximateNumberOfMessages")["ApproximateNumberOfMessages"] == "5", 15,
          "5 messages counted before the purge")
    SQS.purge_queue(QueueUrl=url)
    until(lambda: attrs_of(url, "ApproximateNumberOfMessages")["ApproximateNumberOfMessages"] == "0", 15,
          "ApproximateNumberOfMessages 0 after PurgeQueue")
    nothing_for(url, 1.5, "after PurgeQueue")
    SQS.send_message(QueueUrl=url, MessageBody="after the purge")
    [m] = drain(url, 1)
    assert m["Body"] == "after the purge", m


@test
def test_tags():
    url = create(qname("tags"), tags={"team": "billing", "env": "test"})
    assert SQS.list_queue_tags(QueueUrl=url).get("Tags") == {"team": "billing", "env": "test"}
    SQS.tag_queue(QueueUrl=url, Tags={"env": "prod", "cost": "42"})
    assert SQS.list_queue_tags(QueueUrl=url).get("Tags") == {"team": "billing", "env": "prod", "cost": "42"}
    SQS.untag_queue(QueueUrl=url, TagKeys=["team", "not-there"])
    assert SQS.list_queue_tags(QueueUrl=url).get("Tags") == {"env": "prod", "cost": "42"}
    SQS.untag_queue(QueueUrl=url, TagKeys=["env", "cost"])
    assert SQS.list_queue_tags(QueueUrl=url).get("Tags", {}) == {}
    bare = create(qname("notags"))
    assert SQS.list_queue_tags(QueueUrl=bare).get("Tags", {}) == {}


@test
def test_redrive_to_dead_letter_queue():
    dlq_name = qname("dlq")
    dlq = create(dlq_name)
    policy = {"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 2}
    src = create(qname("redrive"), {"RedrivePolicy": json.dumps(policy), "VisibilityTimeout": 1})
    got_policy = json.loads(attrs_of(src, "RedrivePolicy")["RedrivePolicy"])
    assert got_policy["deadLetterTargetArn"] == arn(dlq_name), got_policy
    assert int(got_policy["maxReceiveCount"]) == 2, got_policy
    attrs = {"origin": {"DataType": "String", "StringValue": "redrive test"},
             "bin": {"DataType": "Binary", "BinaryValue": b"\x01\x02"}}
    SQS.send_message(QueueUrl=src, MessageBody="poison", MessageAttributes=attrs)
    counts = []
    deadline = time.monotonic() + 30
    moved = []
    while not moved:
        assert time.monotonic() < deadline, f"not in the DLQ within 30 s; receive counts seen on the source: {counts}"
        for m in receive(src, wait=1):
            counts.append(int(m["Attributes"]["ApproximateReceiveCount"]))
        moved = receive(dlq, wait=0, visibility=60)
    assert counts == [1, 2], f"receive counts on the source before the move: {counts} (maxReceiveCount 2)"
    [m] = moved
    assert m["Body"] == "poison", m
    assert m["MessageAttributes"] == attrs, m["MessageAttributes"]
    check_message_md5s(m)
    nothing_for(src, 2.5, "the source queue after the move")


@test
def test_fifo_redrive_to_fifo_dead_letter_queue():
    dlq_name = qname("fdlq", ".fifo")
    dlq = create_fifo(dlq_name)
    policy = {"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 1}
    src = create_fifo(qname("fredrive", ".fifo"), {"RedrivePolicy": json.dumps(policy), "VisibilityTimeout": 1})
    attrs = {"k": {"DataType": "String", "StringValue": "v"}}
    SQS.send_message(QueueUrl=src, MessageBody="fifo poison", MessageGroupId="grp-1",
                     MessageDeduplicationId="fp-1", MessageAttributes=attrs)
    SQS.send_message(QueueUrl=src, MessageBody="fifo next", MessageGroupId="grp-1", MessageDeduplicationId="fp-2")
    [first] = until(lambda: receive(src, n=1, wait=1), 10, "the first FIFO message")
    assert first["Body"] == "fifo poison", first
    deadline = time.monotonic() + 30
    moved, later = [], []
    while not moved:
        assert time.monotonic() < deadline, f"not in the FIFO DLQ within 30 s; source gave {later}"
        for m in receive(src, n=1, wait=1, visibility=60):
            later.append((m["Body"], m["Attributes"]["ApproximateReceiveCount"]))
        moved = receive(dlq, wait=0, visibility=60)
    [m] = moved
    assert m["Body"] == "fifo poison" and m["MessageAttributes"] == attrs, m
    assert m["Attributes"].get("MessageGroupId") == "grp-1", m["Attributes"]
    check_message_md5s(m)
    # The moved message no longer holds its group on the source: the next one comes.
    assert ("fifo poison", "2") not in later, f"redelivered past maxReceiveCount 1: {later}"
    if not any(b == "fifo next" for b, _ in later):
        until(lambda: receive(src, n=1, wait=1, visibility=60), 10, "the next message of the group")


@test
def test_redrive_policy_errors():
    dlq_name = qname("dlqerr")
    create(dlq_name)
    fifo_dlq = qname("dlqerr", ".fifo")
    create_fifo(fifo_dlq)
    url = create(qname("redriveerr"))
    bad = [{"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 0},
           {"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": 1001},
           {"deadLetterTargetArn": arn(qname("no-such-dlq")), "maxReceiveCount": 3},
           {"deadLetterTargetArn": arn(fifo_dlq), "maxReceiveCount": 3},  # a FIFO DLQ for a standard queue
           {"maxReceiveCount": 3}]
    for p in bad:
        expect_error({"InvalidParameterValue", "InvalidAttributeValue"}, SQS.set_queue_attributes,
                     QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(p)})
    expect_error({"InvalidParameterValue", "InvalidAttributeValue"}, SQS.set_queue_attributes,
                 QueueUrl=url, Attributes={"RedrivePolicy": "{not json"})
    # The bounds themselves are fine.
    for n in (1, 1000):
        SQS.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": arn(dlq_name), "maxReceiveCount": n})})


@test
def test_fifo_order_per_group_and_group_locking():
    url = create_fifo(qname("order", ".fifo"))
    a = attrs_of(url, "FifoQueue", "ContentBasedDeduplication")
    assert a == {"FifoQueue": "true", "ContentBasedDeduplication": "false"}, a
    seqs = {"g1": [], "g2": []}
    for g, n in (("g1", 5), ("g2", 3)):
        for i in range(n):
            r = SQS.send_message(QueueUrl=url, MessageBody=f"{g}-{i}", MessageGroupId=g,
                                 MessageDeduplicationId=f"{g}d{i}")
            seqs[g].append(int(r["SequenceNumber"]))
    # AWS: "SequenceNumber continues to increase for a particular MessageGroupId" (not across groups).
    for g, s in seqs.items():
        assert s == sorted(s) and len(set(s)) == len(s), f"SequenceNumbers of group {g} not increasing: {s}"
    # One message of one group, not deleted: that group is locked, the other is not.
    [first] = until(lambda: receive(url, n=1, wait=1, visibility=60), 10, "the first FIFO message")
    g_locked = first["Attributes"]["MessageGroupId"]
    assert first["Body"] == f"{g_locked}-0", f"the first message of a group must come first: {first['Body']}"
    assert first["Attributes"].get("MessageDeduplicationId") == f"{g_locked[:2]}d0", first["Attributes"]
    assert int(first["Attributes"]["SequenceNumber"]) == seqs[g_locked][0], (first["Attributes"], seqs)
    other = "g2" if g_locked == "g1" else "g1"
    n_other = 3 if other == "g2" else 5
    bodies = []
    deadline = time.monotonic() + 20
    while len(bodies) < n_other:
        assert time.monotonic() < deadline, f"the other group {other} blocked: got {bodies}"
        for m in receive(url, n=10, wait=1, visibility=60):
            assert m["Attributes"]["MessageGroupId"] == other, \
                f"received {m['Body']} of the locked group {g_locked} while its first message is in flight"
            bodies.append(m["Body"])
            SQS.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert bodies == [f"{other}-{i}" for i in range(n_other)], f"group {other} out of order: {bodies}"
    nothing_for(url, 1.5, f"group {g_locked} while its first message is in flight", visibility=60)
    SQS.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    rest = []
    deadline = time.monotonic() + 20
    n_locked = 5 if g_locked == "g1" else 3
    while len(rest) < n_locked - 1:
        assert time.monotonic() < deadline, f"group {g_locked} after the delete: got {rest}"
        for m in receive(url, n=10, wait=1, visibility=60):
            rest.append(m["Body"])
            SQS.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert rest == [f"{g_locked}-{i}" for i in range(1, n_locked)], f"group {g_locked} out of order: {rest}"


@test
def test_fifo_redelivery_keeps_order():
    url = create_fifo(qname("fiforedo", ".fifo"), {"VisibilityTimeout": 1})
    for i in range(3):
        SQS.send_message(QueueUrl=url, MessageBody=f"r{i}", MessageGroupId="g", MessageDeduplicationId=f"r{i}")
    first = until(lambda: receive(url, n=1, wait=1), 10, "the first message")
    assert first[0]["Body"] == "r0", first
    # Not deleted: after its visibility timeout the same message comes again, before r1.
    again = until(lambda: receive(url, n=1, wait=1), 10, "the redelivery")
    assert again[0]["Body"] == "r0", f"after a visibility timeout the group must restart at r0: {again[0]['Body']}"
    assert again[0]["Attributes"]["ApproximateReceiveCount"] == "2", again[0]["Attributes"]


@test
def test_fifo_deduplication_by_id():
    url = create_fifo(qname("dedup", ".fifo"))
    r1 = SQS.send_message(QueueUrl=url, MessageBody="once", MessageGroupId="g", MessageDeduplicationId="d-1")
    r2 = SQS.send_message(QueueUrl=url, MessageBody="once again", MessageGroupId="g", MessageDeduplicationId="d-1")
    assert r1.get("SequenceNumber") and r2.get("MessageId"), (r1, r2)
    SQS.send_message(QueueUrl=url, MessageBody="other", MessageGroupId="g", MessageDeduplicationId="d-2")
    got = drain(url, 2, delete=True)
    assert [m["Body"] for m in got] == ["once", "other"], [m["Body"] for m in got]
    # Within the 5-minute window a deleted message's id still deduplicates.
    SQS.send_message(QueueUrl=url, MessageBody="once, after the delete", MessageGroupId="g",
                     MessageDeduplicationId="d-1")
    nothing_for(url, 2, "a resend of a deduplication id within 5 minutes")
    # Without an id, and without ContentBasedDeduplication: refused.
    expect_error("InvalidParameterValue", SQS.send_message, QueueUrl=url, MessageBody="x", MessageGroupId="g")
    # Without a group: refused.
    expect_error({"MissingParameter", "InvalidParameterValue"}, SQS.send_message, QueueUrl=url,
                 MessageBody="x", MessageDeduplicationId="d-3")


@test
def test_fifo_content_based_deduplication():
    url = create_fifo(qname("cbd", ".fifo"), {"ContentBasedDeduplication": "true"})
    assert attrs_of(url, "ContentBasedDeduplication") == {"ContentBasedDeduplication": "true"}
    SQS.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="g")
    SQS.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="g")
    SQS.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="other-group")
    SQS.send_message(QueueUrl=url, MessageBody="different body", MessageGroupId="g")
    # An explicit id wins over the content.
    SQS.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="g", MessageDeduplicationId="explicit")
    got = drain(url, 3, delete=True)
    assert sorted(m["Body"] for m in got) == ["different body", "same body", "same body"], [m["Body"] for m in got]
    dedup_ids = [m["Attributes"].get("MessageDeduplicationId") for m in got]
    assert all(dedup_ids) and "explicit" in dedup_ids, f"MessageDeduplicationId of the received messages: {dedup_ids}"
    nothing_for(url, 1.5, "content duplicates")


@test
def test_fifo_batch_send_sequence_numbers():
    url = create_fifo(qname("fifobatch", ".fifo"))
    r = SQS.send_message_batch(QueueUrl=url, Entries=[
        {"Id": f"e{i}", "MessageBody": f"fb{i}", "MessageGroupId": "g", "MessageDeduplicationId": f"fb{i}"}
        for i in range(10)])
    assert not r.get("Failed"), r
    by_id = {e["Id"]: e for e in r["Successful"]}
    seqs = [int(by_id[f"e{i}"]["SequenceNumber"]) for i in range(10)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10, seqs
    got = drain(url, 10, delete=True)
    assert [m["Body"] for m in got] == [f"fb{i}" for i in range(10)], [m["Body"] for m in got]
    assert [int(m["Attributes"]["SequenceNumber"]) for m in got] == seqs


@test
def test_fifo_receive_request_attempt_id_retry():
    url = create_fifo(qname("attempt", ".fifo"))
    for i in range(3):
        SQS.send_message(QueueUrl=url, MessageBody=f"at{i}", MessageGroupId="g", MessageDeduplicationId=f"at{i}")
    first = until(lambda: receive(url, n=10, wait=1, visibility=60, ReceiveRequestAttemptId="attempt-1"), 10,
                  "the first receive")
    retry = receive(url, n=10, wait=1, visibility=60, ReceiveRequestAttemptId="attempt-1")
    assert [m["MessageId"] for m in retry] == [m["MessageId"] for m in first], (first, retry)
    assert [m["ReceiptHandle"] for m in retry] == [m["ReceiptHandle"] for m in first], \
        "a retried ReceiveRequestAttemptId must answer the same receipt handles"


@test
def test_v1_api_sees_what_sqs_did_and_replays_after_delete():
    name = qname("replay")
    url = create(name)
    _, topic = v1("GET", f"/v1/topics/sqs.{name}")
    assert topic["message_type"] == "DELAY" and topic["queue_count"] == 8, topic
    _, group = v1("GET", f"/v1/groups/sqs.{name}")
    assert group["consume_mode"] == "CLUSTERING", group
    fifo_name = qname("replay", ".fifo")
    create_fifo(fifo_name)
    _, ftopic = v1("GET", "/v1/topics/" + urllib.parse.quote(f"sqs.{fifo_name}", safe=""))
    assert ftopic["message_type"] == "FIFO", ftopic

    sent = {}
    for i in range(4):
        attrs = {"n": {"DataType": "Number", "StringValue": str(i)},
                 "who": {"DataType": "String", "StringValue": f"sender-{i}"}}
        body = f"replay me {i}"
        SQS.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attrs)
        sent[body] = attrs
    # Consumed and deleted through SQS...
    drain(url, 4, delete=True)
    nothing_for(url, 1, "after deleting everything")
    # ...and still there to replay through /v1.
    found = {}
    for q in range(8):
        _, page = v1("GET", f"/v1/topics/sqs.{name}/queues/{q}/messages?offset=0&max_messages=100")
        for m in page["messages"]:
            found[m.get("body")] = m
    assert sorted(found) == sorted(sent), f"replayed bodies {sorted(found)}, sent {sorted(sent)}"
    for body, attrs in sent.items():
        props = found[body].get("properties", {})
        assert "sqs.attributes" in props, f"no sqs.attributes property: {found[body]}"
        stored = json.loads(props["sqs.attributes"])
        assert isinstance(stored, dict) and sorted(stored) == sorted(attrs), stored
        for k, a in attrs.items():
            assert a["StringValue"] in json.dumps(stored[k]), (k, stored[k])


@test
def test_auth_sigv4_with_an_auth_file():
    work = Path(tempfile.mkdtemp(prefix="shale-sqs-auth-"))
    full_key, full_secret = "SQSTESTFULL", "shale_" + secrets.token_urlsafe(32)
    sub_key, sub_secret = "SQSTESTSUBONLY", "shale_" + secrets.token_urlsafe(32)

    def entry(principal, token, actions):
        return (f'[[tokens]]\nprincipal = "{principal}"\n'
                f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
                f'sigv4_secret = "{token}"\n'
                f'rules = [{{actions = {json.dumps(actions)}, topics = ["*"], groups = ["*"]}}]\n')

    (work / "auth.toml").write_text(entry(full_key, full_secret, ["PUBLISH", "SUBSCRIBE", "ADMIN"])
                                    + entry(sub_key, sub_secret, ["SUBSCRIBE"]))
    try:
        node = start_node(ARGS.shale, work, ["--auth-file", str(work / "auth.toml")])
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    try:
        full = client(full_key, full_secret, url=node.url)
        name = qname("auth")
        url = full.create_queue(QueueName=name)["QueueUrl"]
        full.send_message(QueueUrl=url, MessageBody="signed")
        assert url in full.list_queues(QueueNamePrefix=name).get("QueueUrls", [])
        m = until(lambda: full.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages"), 10,
                  "the message on the auth node")[0]
        assert m["Body"] == "signed"
        code, e = error_of(client(full_key, full_secret + "x", url=node.url).list_queues)
        assert code in ("SignatureDoesNotMatch", "InvalidClientTokenId"), e.response
        code, e = error_of(client("NOSUCHKEY", full_secret, url=node.url).list_queues)
        assert code == "InvalidClientTokenId", e.response
        sub = client(sub_key, sub_secret, url=node.url)
        code, e = error_of(sub.send_message, QueueUrl=url, MessageBody="not allowed")
        assert code == "AccessDenied", e.response
        status, _, body = signed_post("AmazonSQS.ListQueues", {}, url=node.url, sign=False)
        assert 400 <= status < 500, f"an unsigned request on a node with auth: {status} {body[:300]!r}"
    finally:
        node.stop()
        shutil.rmtree(work, ignore_errors=True)


# --- a second node (auth) ----------------------------------------------------------

class Node:
    def __init__(self, proc, url, err):
        self.proc, self.url, self.err = proc, url, err

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def start_node(shale, work, extra):
    cmd = [shale, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(work / "data"),
           "--object-store", "file://" + str(work / "objects")] + extra
    (work / "objects").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHALE_")}
    err = open(work / "node.err", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=env)
    line = [""]
    reader = threading.Thread(target=lambda: line.__setitem__(0, proc.stdout.readline().decode()), daemon=True)
    reader.start()
    reader.join(60)
    m = re.match(r"shale listening on (\S+)", line[0])
    if not m:
        node = Node(proc, None, err)
        node.stop()
        raise AssertionError(f"the auth node did not start: {line[0]!r}; its log: "
                             f"{(work / 'node.err').read_text()[-2000:]}")
    return Node(proc, m.group(1), err)


# --- running -------------------------------------------------------------------

def main():
    global ARGS, BASE, SQS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True, help="the node's base URL (no auth file)")
    p.add_argument("--shale", required=True, help="the shale binary (for the auth node)")
    p.add_argument("-k", action="append", default=[], help="run only tests whose name contains this")
    ARGS = p.parse_args()
    BASE = ARGS.url.rstrip("/")
    SQS = client()
    tests = [t for t in TESTS if not ARGS.k or any(k in t.__name__ for k in ARGS.k)]
    print(f"sqs-test: boto3 {boto3.__version__} / botocore {botocore.__version__} against {BASE}, "
          f"{len(tests)} tests, run id {RUN}", flush=True)
    passed, failed = [], []
    for t in tests:
        EXCHANGES.clear()
        start = time.monotonic()
        try:
            t()
        except Exception as e:  # every failure is reported, then the next test runs
            failed.append(t.__name__)
            print(f"FAIL {t.__name__} ({time.monotonic() - start:.1f} s)", flush=True)
            if isinstance(e, ClientError):
                print(f"  unexpected error: {e.response.get('Error')} "
                      f"(HTTP {e.response['ResponseMetadata'].get('HTTPStatusCode')})")
            print("  " + "".join(traceback.format_exception(e)).rstrip().replace("\n", "\n  "))
            if EXCHANGES:
                print("  last SQS exchanges of the test:\n" + show_exchanges())
            sys.stdout.flush()
        else:
            passed.append(t.__name__)
            print(f"ok   {t.__name__} ({time.monotonic() - start:.1f} s)", flush=True)
    if failed:
        print("failed: " + ", ".join(failed))
    print(f"sqs-test: {len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
