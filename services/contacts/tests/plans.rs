//! The plan guard for contacts' hot path (ResolveContact and the interaction times it
//! records): on never-analysed tables holding a thousand Contacts, every statement's
//! generic plan reaches the growing tables only through keyed probes.
use ism_contacts::interactions::Interactions;
use ism_contacts::resolver::Resolver;
use ism_contacts::store::IdentityKey;
use ism_platform::config::ServiceName;
use ism_platform::{db, plans};
use uuid::Uuid;

const GROWING: &[&str] = &[
    "contacts",
    "channel_identities",
    "contact_activity",
    "contact_tags",
    "tags",
    "platform_outbox",
];

#[tokio::test]
async fn resolve_contact_plans_probe_by_key_on_tables_never_analysed() {
    let pool = db::scratch(ServiceName::Contacts, &ism_contacts::MIGRATOR)
        .await
        .unwrap();
    plans::never_analysed(&pool, GROWING).await.unwrap();
    let (workspace, channel) = (Uuid::now_v7(), Uuid::now_v7());
    let filler = Resolver::new(pool.clone());
    for n in 0..1000 {
        let external_id = format!("+49151{n:07}");
        let key = IdentityKey {
            channel_id: channel,
            external_id: &external_id,
            display_name: "Ada Lovelace",
        };
        filler.resolve(workspace, &key).await.unwrap();
    }

    let guarded = plans::guarded_pool(&pool).await.unwrap();
    let resolver = Resolver::new(guarded.clone());
    let interactions = Interactions::default();
    let ids: Vec<String> = (0..40).map(|n| format!("+49151{:07}", n * 7)).collect();
    let calls = ids.iter().map(|external_id| {
        let resolver = resolver.clone();
        async move {
            let key = IdentityKey {
                channel_id: channel,
                external_id,
                display_name: "",
            };
            resolver.resolve(workspace, &key).await.unwrap()
        }
    });
    let mut found = futures::future::join_all(calls).await;
    assert!(found.iter().all(|(_, created)| !created));
    let key = IdentityKey {
        channel_id: channel,
        external_id: "+4915200000001",
        display_name: "Grace Hopper",
    };
    assert!(resolver.resolve(workspace, &key).await.unwrap().1);
    for (contact, _) in &mut found {
        // Written a minute ago or more, so this message moves the time.
        contact.contact.last_interaction_at = None;
        interactions.record(&mut contact.contact);
    }
    assert_eq!(interactions.flush(&guarded).await.unwrap(), 40);

    plans::assert_probes_by_key(&guarded, GROWING, 3).await;
    guarded.close().await;
}
