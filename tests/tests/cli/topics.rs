//! `shale topic create|list|describe|update|delete`.

use shale_tests::cli::Cli;

use crate::node;

#[test]
fn topic_create_list_describe_update_delete() {
    let (_dir, node) = node();
    let created = Cli::new(
        &node.base,
        &[
            "topic",
            "create",
            "orders",
            "--queues",
            "3",
            "--type",
            "fifo",
            "--retention",
            "2d",
            "--json",
        ],
    )
    .run()
    .json();
    assert_eq!(created[0]["name"], "orders");
    assert_eq!(created[0]["message_type"], "FIFO");
    assert_eq!(created[0]["retention_ms"], 172_800_000);
    let table = Cli::new(&node.base, &["topic", "list"]).run();
    let lines: Vec<&str> = table.ok().lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[1].starts_with("orders "),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("FIFO") && lines[1].contains("2days"),
        "{lines:?}"
    );

    let detail = Cli::new(&node.base, &["topic", "describe", "orders", "--json"])
        .run()
        .json();
    assert_eq!(detail["queue_count"], 3);
    assert_eq!(detail["queues"].as_array().expect("queues").len(), 3);
    let updated = Cli::new(
        &node.base,
        &["topic", "update", "orders", "--queues", "5", "--json"],
    )
    .run()
    .json();
    assert_eq!(updated[0]["queues"], 5);
    let text = Cli::new(&node.base, &["topic", "describe", "orders"]).run();
    assert!(text.ok().contains("queues       5"), "{}", text.stdout);
    assert_eq!(
        text.stdout
            .lines()
            .filter(|l| l.ends_with(&format!(
                " {}",
                detail["queues"][0]["owner"].as_str().unwrap()
            )))
            .count(),
        5
    );

    let nothing = Cli::new(&node.base, &["topic", "update", "orders"]).run();
    assert_eq!(nothing.code(), 2, "{nothing:?}");
    let shrink = Cli::new(&node.base, &["topic", "update", "orders", "--queues", "2"]).run();
    assert_eq!(shrink.code(), 1);
    assert!(
        shrink.stderr.starts_with("shale: INVALID_ARGUMENT: "),
        "{shrink:?}"
    );

    Cli::new(&node.base, &["topic", "delete", "orders"])
        .run()
        .ok();
    assert_eq!(
        Cli::new(&node.base, &["topic", "list", "--json"])
            .run()
            .json(),
        serde_json::json!([])
    );
    let gone = Cli::new(&node.base, &["topic", "describe", "orders"]).run();
    assert_eq!(gone.code(), 1);
    assert!(gone.stdout.is_empty());
    assert_eq!(gone.stderr.lines().count(), 1, "{gone:?}");
    assert!(
        gone.stderr.starts_with("shale: TOPIC_NOT_FOUND: "),
        "{gone:?}"
    );
}
