//! Rate limits: a busy Workspace is slowed down alone and told when to retry; with Redis
//! down, traffic flows and the fail-open is counted.
use std::time::Duration;

use ism_e2e::{Api, Platform, Receiver};
use ism_proto::workspaces::v1 as ws;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn a_busy_workspace_is_slowed_down_alone_with_a_retry_hint() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_RATE_LIMIT__REQUESTS_PER_SECOND", "0.5");
    platform.set("ISM_RATE_LIMIT__BURST", "3");
    let busy = platform.bootstrap(&receiver.url);
    let calm = platform.bootstrap(&receiver.url);
    platform.spawn("all");
    platform.wait_ready().await;
    let (busy_token, calm_token) = (platform.token(&busy).await, platform.token(&calm).await);
    let as_busy = Api::connect(&platform, busy_token).await;
    let as_calm = as_busy.with_token(calm_token);

    for _ in 0..3 {
        as_busy.get_workspace().await;
    }
    let status = as_busy
        .workspaces
        .clone()
        .get_workspace(as_busy.authed(ws::GetWorkspaceRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry_after: u64 = status
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    let retry = status.get_details_retry_info().expect("RetryInfo detail");
    assert!(retry.retry_delay.unwrap() <= Duration::from_secs(2));
    // Another workspace, and the token exchange itself, are not held back.
    as_calm.get_workspace().await;
    platform.token(&busy).await;
}

#[tokio::test]
async fn traffic_flows_when_redis_is_down() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start_with(
        &receiver.url,
        &[
            ("ISM_REDIS__URL", "redis://127.0.0.1:1"),
            ("ISM_RATE_LIMIT__BURST", "1"),
        ],
    )
    .await;
    let api = platform.api(&tenant).await;
    for _ in 0..5 {
        api.get_workspace().await;
    }
    let metrics = platform.metrics("workspaces").await;
    assert!(
        metrics.contains("ism_rate_limit_fail_open_total"),
        "fail-open is counted"
    );
}
