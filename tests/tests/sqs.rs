//! The SQS-compatible endpoint against real `shale` processes, spoken as raw
//! AWS JSON 1.0 (the SDK suites are scripts/sqs-test.sh): how requests are
//! told apart from the rest of the API, the error shape, a second listener,
//! and a two-node cluster where each node serves any queue URL — sends,
//! receives and deletes split over both nodes, and a redrive whose dead
//! letters cross to the node serving the dead-letter queue.
//!
//! Every wait is bounded.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shale_tests::api::Resp;
use shale_tests::{Node, cluster_args, poll_until};

/// One SQS call to `node`.
async fn sqs(node: &Node, op: &str, body: Value) -> anyhow::Result<Resp> {
    let resp = node
        .client
        .post(node.url("/"))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("AmazonSQS.{op}"))
        .body(body.to_string())
        .send()
        .await?;
    Resp::read(resp).await
}

/// An SQS call that must succeed; its answer.
async fn ok(node: &Node, op: &str, body: Value) -> anyhow::Result<Value> {
    let r = sqs(node, op, body).await?;
    anyhow::ensure!(r.status == 200, "{op}: {} {}", r.status, r.text());
    Ok(r.json())
}

#[tokio::test]
async fn the_endpoint_is_told_apart_by_method_path_and_target() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &[])?;

    // An unknown queue: SQS's error shape, with the query code the SDKs read.
    let r = sqs(&node, "GetQueueUrl", json!({"QueueName": "nope"})).await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
    assert_eq!(
        r.header("x-amzn-query-error").as_deref(),
        Some("AWS.SimpleQueueService.NonExistentQueue;Sender")
    );
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/x-amz-json-1.0")
    );
    let r = sqs(&node, "Frobnicate", json!({})).await?;
    assert_eq!(
        r.json()["__type"],
        "com.amazonaws.sqs#UnknownOperationException"
    );
    let r = sqs(&node, "AddPermission", json!({})).await?;
    assert_eq!(r.json()["__type"], "com.amazonaws.sqs#UnsupportedOperation");
    let r = sqs(&node, "SendMessage", json!({"QueueUrl": 3})).await?;
    assert_eq!(r.status, 400, "{}", r.text());

    // Without the target header, `/` is the rest of the API: the console, 405.
    assert_eq!(node.get("/").await?.status, 200);
    let r = node.post_json("/", &json!({})).await?;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["error"]["code"], "METHOD_NOT_ALLOWED");

    // A queue made through SQS is a topic and a group of /v1.
    let url = ok(&node, "CreateQueue", json!({"QueueName": "jobs"})).await?["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(url, format!("{}/000000000000/jobs", node.base));
    let topic = node.get("/v1/topics/sqs.jobs").await?.ok_json(200);
    assert_eq!(topic["message_type"], "DELAY");
    let group = node.get("/v1/groups/sqs.jobs").await?.ok_json(200);
    assert_eq!(group["max_delivery_attempts"], 1000);
    assert_eq!(group["retry_backoff_ms"], json!([0]));
    // Any host in the URL names the same queue.
    let sent = ok(
        &node,
        "SendMessage",
        json!({"QueueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs", "MessageBody": "hi"}),
    )
    .await?;
    let id = sent["MessageId"].as_str().unwrap().replace('-', "");
    let m = node
        .get(&format!("/v1/topics/sqs.jobs/messages/{id}"))
        .await?
        .ok_json(200);
    assert_eq!(m["body"], "hi");
    // VisibilityTimeout 0: received, and visible again at once.
    let peek = json!({"QueueUrl": url, "VisibilityTimeout": 0, "AttributeNames": ["ApproximateReceiveCount"]});
    let first = ok(&node, "ReceiveMessage", peek.clone()).await?;
    assert_eq!(first["Messages"][0]["Body"], "hi");
    let again = ok(&node, "ReceiveMessage", peek).await?;
    assert_eq!(
        again["Messages"][0]["Attributes"]["ApproximateReceiveCount"],
        "2"
    );
    Ok(())
}

#[tokio::test]
async fn sqs_listen_serves_the_endpoint_on_its_own_port() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let node = Node::start(dir.path(), &["--sqs-listen", "127.0.0.1:0"])?;
    let line = {
        let mut found = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while found.is_none() && Instant::now() < deadline {
            found = node.stdout_lines().into_iter().find_map(|l| {
                l.strip_prefix("shale sqs listening on ")
                    .map(str::to_string)
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        found.ok_or_else(|| anyhow::anyhow!("no `shale sqs listening on` line"))?
    };
    assert_ne!(line, node.base);
    let r = node
        .client
        .post(format!("{line}/"))
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", "AmazonSQS.ListQueues")
        .body("{}")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await?;
    assert_eq!(v["QueueUrls"], json!([]));
    Ok(())
}

#[tokio::test]
async fn two_nodes_serve_one_queue_and_its_redrive() -> anyhow::Result<()> {
    let store_dir = tempfile::tempdir()?;
    let store = format!("file://{}", store_dir.path().display());
    let (d0, d1) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a0 = cluster_args(&store, 0);
    let a1 = cluster_args(&store, 1);
    let n0 = Node::start(
        d0.path(),
        &a0.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let n1 = Node::start(
        d1.path(),
        &a1.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    poll_until("both nodes see both live", || async {
        for n in [&n0, &n1] {
            let v = n.get("/v1/cluster").await?.ok_json(200);
            let live = v["nodes"]
                .as_array()
                .map_or(0, |a| a.iter().filter(|x| x["live"] == true).count());
            if live != 2 {
                return Ok(false);
            }
        }
        Ok(true)
    })
    .await?;

    let dlq = ok(
        &n0,
        "CreateQueue",
        json!({"QueueName": "work-dlq.fifo", "Attributes": {"FifoQueue": "true"}}),
    )
    .await?["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let redrive = json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:000000000000:work-dlq.fifo", "maxReceiveCount": 1}).to_string();
    let work = ok(
        &n0,
        "CreateQueue",
        json!({"QueueName": "work.fifo", "Attributes": {
            "FifoQueue": "true", "ContentBasedDeduplication": "true",
            "VisibilityTimeout": "1", "RedrivePolicy": redrive}}),
    )
    .await?["QueueUrl"]
        .as_str()
        .unwrap()
        .to_string();
    poll_until("node 1 knows both queues", || async {
        let v = ok(&n1, "ListQueues", json!({})).await?;
        Ok(v["QueueUrls"].as_array().map_or(0, Vec::len) == 2)
    })
    .await?;
    // Both topics' queues are spread over the two nodes.
    let owners: BTreeSet<String> = n0.get("/v1/topics/sqs.work.fifo").await?.ok_json(200)["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["owner"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        owners.len(),
        2,
        "both nodes own queues of the topic: {owners:?}"
    );

    // 16 message groups of 2 messages, sent through node 1.
    for g in 0..16 {
        let entries: Vec<Value> = (0..2)
            .map(|i| json!({"Id": format!("m{i}"), "MessageBody": format!("g{g}-{i}"), "MessageGroupId": format!("g{g}")}))
            .collect();
        let v = ok(
            &n1,
            "SendMessageBatch",
            json!({"QueueUrl": work, "Entries": entries}),
        )
        .await?;
        assert_eq!(v["Successful"].as_array().unwrap().len(), 2, "{v}");
    }
    // Received through node 0, deleted through node 1 — except group g0's
    // first message, left to time out into the dead-letter queue.
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 31 && Instant::now() < deadline {
        let v = ok(
            &n0,
            "ReceiveMessage",
            json!({"QueueUrl": work, "MaxNumberOfMessages": 10, "WaitTimeSeconds": 1, "AttributeNames": ["All"]}),
        )
        .await?;
        let mut deletes = Vec::new();
        for m in v["Messages"].as_array().into_iter().flatten() {
            let body = m["Body"].as_str().unwrap().to_string();
            if body == "g0-0" {
                continue;
            }
            assert!(!seen.contains(&body), "{body} delivered twice");
            seen.push(body);
            deletes.push(
                json!({"Id": format!("d{}", deletes.len()), "ReceiptHandle": m["ReceiptHandle"]}),
            );
        }
        if !deletes.is_empty() {
            let d = ok(
                &n1,
                "DeleteMessageBatch",
                json!({"QueueUrl": work, "Entries": deletes}),
            )
            .await?;
            assert_eq!(d["Failed"], json!([]), "{d}");
        }
    }
    assert_eq!(seen.len(), 31, "every message but the one left: {seen:?}");
    // FIFO: within a group, in order.
    for g in 1..16 {
        let first = seen.iter().position(|b| *b == format!("g{g}-0")).unwrap();
        let second = seen.iter().position(|b| *b == format!("g{g}-1")).unwrap();
        assert!(first < second, "group g{g} out of order");
    }

    // The dead letter is in the named queue, read through node 1.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let v = ok(
            &n1,
            "ReceiveMessage",
            json!({"QueueUrl": dlq, "AttributeNames": ["All"], "WaitTimeSeconds": 1}),
        )
        .await?;
        if let Some(m) = v["Messages"].as_array().and_then(|m| m.first()) {
            break m.clone();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the dead letter never reached work-dlq.fifo"
        );
    };
    assert_eq!(dead["Body"], "g0-0");
    assert_eq!(dead["Attributes"]["MessageGroupId"], "g0");
    assert_eq!(
        dead["Attributes"]["DeadLetterQueueSourceArn"],
        "arn:aws:sqs:us-east-1:000000000000:work.fifo"
    );
    // g0's second message came only after the first left for the DLQ.
    assert!(seen.contains(&"g0-1".to_string()));
    let attrs = ok(
        &n1,
        "GetQueueAttributes",
        json!({"QueueUrl": work, "AttributeNames": ["RedrivePolicy", "QueueArn"]}),
    )
    .await?;
    assert_eq!(
        attrs["Attributes"]["QueueArn"],
        "arn:aws:sqs:us-east-1:000000000000:work.fifo"
    );
    let policy: Value =
        serde_json::from_str(attrs["Attributes"]["RedrivePolicy"].as_str().unwrap())?;
    assert_eq!(policy["maxReceiveCount"], 1);
    Ok(())
}
