//! Transactions: commit, rollback, the opposite decision, check-back.

use shale_client::{MessageType, ProduceMessage, ProduceRequest, ReadOptions, TransactionInput};

use crate::{start, topic};

#[tokio::test]
async fn transactions_commit_rollback_and_check_back() {
    let (_dir, _node, client) = start();
    client
        .create_topic(&topic("tx", 1, MessageType::Transaction))
        .await
        .expect("create");
    let half = |body: &str| ProduceRequest {
        messages: vec![ProduceMessage::text(body)],
        transaction: Some(TransactionInput {
            producer_group: "pg".into(),
            check_after_ms: Some(1_000),
        }),
        ..ProduceRequest::default()
    };
    let commit = client
        .produce("tx", &half("yes"))
        .await
        .expect("half")
        .remove(0);
    let rollback = client
        .produce("tx", &half("no"))
        .await
        .expect("half")
        .remove(0);
    let asked = client
        .produce("tx", &half("ask me"))
        .await
        .expect("half")
        .remove(0);
    let id = |r: &shale_client::ProduceResult| r.transaction_id.clone().expect("transaction id");
    client.commit(&id(&commit)).await.expect("commit");
    client
        .commit(&id(&commit))
        .await
        .expect("the same decision again is fine");
    client.rollback(&id(&rollback)).await.expect("rollback");
    let opposite = client.commit(&id(&rollback)).await.expect_err("409");
    assert_eq!(opposite.code(), Some("TRANSACTION_ALREADY_RESOLVED"));
    // Unresolved after check_after_ms: offered to the producer group (bounded long polls).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let check = loop {
        let checks = client
            .transaction_checks("pg", Some(5_000), Some(16))
            .await
            .expect("checks");
        if let Some(check) = checks.into_iter().find(|c| c.transaction_id == id(&asked)) {
            break check;
        }
        assert!(std::time::Instant::now() < deadline, "no check-back");
    };
    assert_eq!(check.message.body.as_deref(), Some("ask me"));
    assert!(
        client
            .producer_group("pg")
            .await
            .expect("pg")
            .pending_transactions
            >= 1
    );
    client
        .commit(&check.transaction_id)
        .await
        .expect("commit after check");
    let page = client
        .read("tx", 0, &ReadOptions::default())
        .await
        .expect("read");
    let bodies: Vec<_> = page
        .messages
        .iter()
        .filter_map(|m| m.body.clone())
        .collect();
    assert_eq!(bodies, vec!["yes", "ask me"]);
}
