//! Groups: settings, receive, ack, nack, offsets, reset; dead letters sent back.

use std::collections::BTreeMap;

use shale_client::{
    MessageType, ProduceMessage, ProduceRequest, ReadOptions, ReceiveRequest, ResetTo,
};

use crate::{start, topic};

#[tokio::test]
async fn groups_receive_ack_nack_and_reset() {
    let (_dir, _node, client) = start();
    client
        .create_topic(&topic("t", 1, MessageType::Normal))
        .await
        .expect("create");
    let messages = (0..3)
        .map(|i| ProduceMessage::text(format!("m{i}")))
        .collect();
    client
        .produce("t", &ProduceRequest::new(messages))
        .await
        .expect("produce");
    let settings = shale_client::GroupSettings {
        consume_from: Some(shale_client::ConsumeFrom::Position(
            shale_client::Position::Earliest,
        )),
        ..Default::default()
    };
    assert_eq!(
        client.put_group("g", &settings).await.expect("put").name,
        "g"
    );
    assert_eq!(
        client.get_group("g").await.expect("get").consume_from,
        settings.consume_from.expect("set")
    );
    let request = ReceiveRequest {
        max_messages: Some(2),
        wait_ms: Some(5_000),
        ..ReceiveRequest::new("t")
    };
    let got = client.receive("g", &request).await.expect("receive");
    assert_eq!(got.len(), 2);
    let offsets = client
        .group_offsets("g", "t", None)
        .await
        .expect("offsets")
        .queues;
    assert_eq!((offsets[0].max_offset, offsets[0].inflight), (3, 2));
    let acked = client
        .ack("g", "t", &[got[0].receipt_handle.clone()])
        .await
        .expect("ack");
    assert!(acked[0].ok);
    let nacked = client
        .change_invisibility("g", "t", &got[1].receipt_handle, 0)
        .await
        .expect("nack");
    assert_ne!(nacked.receipt_handle, got[1].receipt_handle);
    let stale = client
        .ack("g", "t", &[got[1].receipt_handle.clone()])
        .await
        .expect("ack results");
    assert!(!stale[0].ok && stale[0].error.is_some(), "{stale:?}");
    let offsets = client
        .group_offsets("g", "t", None)
        .await
        .expect("offsets")
        .queues;
    assert_eq!(
        (offsets[0].committed_offset, offsets[0].inflight),
        (1, 0),
        "0 acked, 1 handed back"
    );
    let reset = client
        .reset_offsets("g", "t", &ResetTo::Offsets(BTreeMap::from([(0, 3)])), None)
        .await
        .expect("reset")
        .queues;
    assert_eq!((reset[0].committed_offset, reset[0].lag), (3, 0));
    let reset = client
        .reset_offsets("g", "t", &ResetTo::Earliest, None)
        .await
        .expect("reset")
        .queues;
    assert_eq!(reset[0].committed_offset, 0);
    assert!(
        client
            .list_groups()
            .await
            .expect("groups")
            .iter()
            .any(|g| g.group.name == "g")
    );
}

#[tokio::test]
async fn dead_letters_are_sent_back_once() {
    let (_dir, _node, client) = start();
    client
        .create_topic(&topic("t", 1, MessageType::Normal))
        .await
        .expect("create");
    let settings = shale_client::GroupSettings {
        consume_from: Some(shale_client::ConsumeFrom::Position(
            shale_client::Position::Earliest,
        )),
        max_delivery_attempts: Some(1),
        retry_backoff_ms: Some(vec![0]),
        ..Default::default()
    };
    client.put_group("g", &settings).await.expect("group");
    client
        .produce(
            "t",
            &ProduceRequest::new(vec![ProduceMessage::text("poison").with_key("p")]),
        )
        .await
        .expect("produce");
    // One delivery, handed back: its attempts are used up, so it moves to %DLQ%g.
    let request = ReceiveRequest {
        wait_ms: Some(5_000),
        ..ReceiveRequest::new("t")
    };
    let got = client.receive("g", &request).await.expect("receive");
    client
        .change_invisibility("g", "t", &got[0].receipt_handle, 0)
        .await
        .expect("nack");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let dead = loop {
        let quick = ReceiveRequest {
            wait_ms: Some(200),
            ..ReceiveRequest::new("t")
        };
        assert!(
            client
                .receive("g", &quick)
                .await
                .expect("receive")
                .is_empty()
        );
        let page = client.read("%DLQ%g", 0, &ReadOptions::default()).await;
        if let Ok(page) = page
            && let Some(message) = page.messages.into_iter().next()
        {
            break message;
        }
        assert!(std::time::Instant::now() < deadline, "no dead letter");
    };
    assert_eq!(
        dead.properties
            .get("shale.origin_topic")
            .map(String::as_str),
        Some("t")
    );
    let sent = client
        .send_back("%DLQ%g", &dead.message_id)
        .await
        .expect("send back");
    assert_eq!((sent.topic.as_str(), sent.offset), ("t", 1));
    let again = client
        .send_back("%DLQ%g", &dead.message_id)
        .await
        .expect("again");
    assert_eq!(again, sent, "a second send-back answers the first record");
    assert_eq!(
        client
            .get_send_back("%DLQ%g", &dead.message_id)
            .await
            .expect("record"),
        sent
    );
    let copy = client
        .get_message("t", &sent.message_id)
        .await
        .expect("the copy");
    assert_eq!(copy.body.as_deref(), Some("poison"));
}
