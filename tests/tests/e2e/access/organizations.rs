//! Organizations: an owner creates, lists, renames and archives the Workspaces of their
//! Organization; an archived Workspace's keys stop working.
use ism_e2e::{Platform, Receiver};
use ism_proto::workspaces::v1 as ws;
use tonic::Code;

#[tokio::test]
async fn an_organizations_workspaces_are_created_listed_renamed_and_archived() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let owner = platform.api(&tenant).await;
    let names = |workspaces: Vec<ws::Workspace>| {
        let mut names: Vec<String> = workspaces.into_iter().map(|s| s.name).collect();
        names.sort();
        names
    };

    let created = owner.create_workspace("Europe").await;
    let europe = created.workspace.unwrap();
    let in_europe = owner.with_token(
        owner
            .exchange_api_key(&created.owner_api_key)
            .await
            .access_token,
    );
    in_europe
        .update_workspace(ws::UpdateWorkspaceRequest {
            name: Some("Europe and Africa".into()),
            ..Default::default()
        })
        .await;
    owner.rename_organization("Demo Group").await;
    assert_eq!(
        names(owner.list_workspaces().await),
        ["Europe and Africa", "demo"]
    );
    let organization = in_europe.get_organization().await;
    assert_eq!(organization.name, "Demo Group");

    owner.archive_workspace(&europe.id).await;
    assert_eq!(names(owner.list_workspaces().await), ["demo"]);
    let refused = owner
        .workspaces
        .clone()
        .exchange_api_key(ws::ExchangeApiKeyRequest {
            api_key: created.owner_api_key,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}
