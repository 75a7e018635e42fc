//! RabbitMQ restarted mid-flow: webhooks keep being accepted (the outbox is in Postgres)
//! and every one is stored once the broker is back. Its own test binary, because it
//! restarts the machine's broker under every other platform.
use std::process::Command;

use ism_e2e::{Platform, Receiver};
use serde_json::json;

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

#[tokio::test]
async fn messages_accepted_while_rabbitmq_is_down_are_stored_once_it_is_back() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let send = |id: String| {
        let body =
            serde_json::to_vec(&json!({"message_id": id, "from": {"id": "c1"}, "text": "hello"}))
                .unwrap();
        let platform = &platform;
        let tenant = &tenant;
        async move {
            platform
                .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
                .await
                .0
        }
    };
    assert_eq!(send("before".into()).await, 200);

    rabbitmqctl(&["stop_app"]);
    let mut during = Vec::new();
    for i in 0..5 {
        let code = send(format!("during-{i}")).await;
        during.push(code);
    }
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);
    assert_eq!(
        during,
        vec![200; 5],
        "webhooks are accepted while the broker is down"
    );
    assert_eq!(send("after".into()).await, 200);

    let mut ids = platform.stored_external_ids(&tenant, 7).await;
    ids.sort();
    assert_eq!(
        ids,
        vec![
            "after", "before", "during-0", "during-1", "during-2", "during-3", "during-4"
        ]
    );
}
