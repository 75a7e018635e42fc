//! The contacts store on a fresh Postgres database.
use ism_contacts::store::{self, IdentityKey};
use ism_platform::config::ServiceName;
use ism_platform::db;
use uuid::Uuid;

#[tokio::test]
async fn many_first_messages_of_one_new_person_at_once_make_one_contact() {
    let pool = db::scratch(ServiceName::Contacts, &ism_contacts::MIGRATOR)
        .await
        .unwrap();
    let (workspace, channel) = (Uuid::now_v7(), Uuid::now_v7());
    let attempts = (0..16).map(|_| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let key = IdentityKey {
                channel_id: channel,
                external_id: "+4915112345678",
                display_name: "Grace Hopper",
            };
            store::resolve(&pool, workspace, &key).await.unwrap()
        })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let ids: std::collections::HashSet<_> = results.iter().map(|(c, _)| c.id).collect();
    assert_eq!(ids.len(), 1, "one contact for one person");
    assert_eq!(
        results.iter().filter(|(_, created)| *created).count(),
        1,
        "exactly one call created it"
    );
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&pool)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform_outbox WHERE routing_key = 'contacts.contact.created'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (contacts, events),
        (1, 1),
        "no orphan contact rows, one created event"
    );
    assert_eq!(results[0].0.first_name, "Grace");

    // The same identity in another workspace is another person.
    let key = IdentityKey {
        channel_id: channel,
        external_id: "+4915112345678",
        display_name: "",
    };
    let (other, created) = store::resolve(&pool, Uuid::now_v7(), &key).await.unwrap();
    assert!(created);
    assert!(!ids.contains(&other.id));
    db::drop_scratch(pool).await.unwrap();
}
