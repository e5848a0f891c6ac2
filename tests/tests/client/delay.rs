//! Delay messages: timers, pending by id, recall.

use shale_client::{MessageType, ProduceMessage, ProduceRequest, TimerQuery};

use crate::{start, topic};

#[tokio::test]
async fn delay_messages_are_listed_and_recalled() {
    let (_dir, _node, client) = start();
    client
        .create_topic(&topic("later", 1, MessageType::Delay))
        .await
        .expect("create");
    let batch = ProduceRequest::new(vec![
        ProduceMessage::text("soon")
            .with_key("k")
            .with_delay_ms(3_600_000),
    ]);
    let result = client
        .produce("later", &batch)
        .await
        .expect("produce")
        .remove(0);
    assert!(
        result.offset.is_none() && result.deliver_at_ms.is_some(),
        "{result:?}"
    );
    let timers = client
        .list_timers("later", &TimerQuery::default())
        .await
        .expect("timers");
    assert_eq!(timers.timers[0].message_id, result.message_id);
    let pending = client
        .get_message("later", &result.message_id)
        .await
        .expect("pending");
    assert_eq!(pending.state.as_deref(), Some("SCHEDULED"));
    client
        .recall("later", &result.message_id)
        .await
        .expect("recall");
    assert!(
        client
            .list_timers("later", &TimerQuery::default())
            .await
            .expect("timers")
            .timers
            .is_empty()
    );
}
