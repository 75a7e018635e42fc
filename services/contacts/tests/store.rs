//! The contacts store on a fresh Postgres database.
use std::collections::HashMap;

use ism_contacts::Error;
use ism_contacts::fields::{self, FieldKind, NewField};
use ism_contacts::profile::Profile;
use ism_contacts::store::{self, IdentityKey, Patch};
use ism_contacts::tags;
use ism_platform::config::ServiceName;
use ism_platform::db;
use ism_proto::contacts::v1::FieldValue;
use ism_proto::contacts::v1::field_value::Kind;
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

async fn fresh() -> sqlx::PgPool {
    db::scratch(ServiceName::Contacts, &ism_contacts::MIGRATOR)
        .await
        .unwrap()
}

async fn events(pool: &sqlx::PgPool, routing_key: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM platform_outbox WHERE routing_key = $1")
        .bind(routing_key)
        .fetch_one(pool)
        .await
        .unwrap()
}

fn text(s: &str) -> FieldValue {
    FieldValue {
        kind: Some(Kind::Text(s.into())),
    }
}

fn field(key: &str, kind: FieldKind, options: &[&str]) -> NewField {
    NewField {
        key: key.into(),
        label: key.to_uppercase(),
        description: String::new(),
        kind,
        options: options.iter().map(|o| o.to_string()).collect(),
        default_value: None,
    }
}

#[tokio::test]
async fn updates_are_partial_versioned_and_evented() {
    let pool = fresh().await;
    let ws = Uuid::now_v7();
    fields::create(
        &pool,
        ws,
        &field("plan", FieldKind::Select, &["free", "pro"]),
    )
    .await
    .unwrap();
    let profile = Profile {
        first_name: "Ada".into(),
        email: "ada@example.com".into(),
        ..Profile::default()
    };
    let ada = store::create(
        &pool,
        ws,
        &profile,
        &HashMap::from([("plan".into(), text("free"))]),
    )
    .await
    .unwrap();
    assert_eq!(ada.version, 1);

    let patch = Patch {
        last_name: Some("Lovelace".into()),
        phone: Some("0151 12345678".into()),
        country: Some("de".into()),
        custom: HashMap::from([("plan".into(), text("pro"))]),
        ..Patch::default()
    };
    let updated = store::update(&pool, ws, ada.id, 1, &patch).await.unwrap();
    assert_eq!(
        (updated.first_name.as_str(), updated.last_name.as_str()),
        ("Ada", "Lovelace")
    );
    assert_eq!(updated.phone, "+4915112345678");
    assert_eq!(updated.country, "DE");
    assert_eq!(updated.custom["plan"], "pro");
    assert_eq!(updated.version, 2);
    assert_eq!(events(&pool, "contacts.contact.updated").await, 1);
    assert_eq!(events(&pool, "contacts.contact.field_changed").await, 1);

    // A stale version and every bad value change nothing.
    let stale = store::update(&pool, ws, ada.id, 1, &patch)
        .await
        .unwrap_err();
    assert!(matches!(stale, Error::StaleVersion { current: 2 }));
    let bad_patches = [
        Patch {
            email: Some("nope".into()),
            ..Patch::default()
        },
        Patch {
            custom: HashMap::from([("plan".into(), text("gold"))]),
            ..Patch::default()
        },
        Patch {
            custom: HashMap::from([("unknown".into(), text("x"))]),
            ..Patch::default()
        },
        Patch {
            first_name: Some("Augusta".into()),
            custom: HashMap::from([(
                "plan".into(),
                FieldValue {
                    kind: Some(Kind::Number(1.0)),
                },
            )]),
            ..Patch::default()
        },
    ];
    for patch in bad_patches {
        let err = store::update(&pool, ws, ada.id, 2, &patch)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
    }
    let unchanged = store::get(&pool, ws, ada.id).await.unwrap();
    assert_eq!(
        (unchanged.version, unchanged.first_name.as_str()),
        (2, "Ada")
    );

    // Clearing a value; a no-op patch keeps the version.
    let clear = Patch {
        custom: HashMap::from([("plan".into(), FieldValue { kind: None })]),
        ..Patch::default()
    };
    let cleared = store::update(&pool, ws, ada.id, 2, &clear).await.unwrap();
    assert!(cleared.custom.get("plan").is_none());
    let same = store::update(&pool, ws, ada.id, 3, &clear).await.unwrap();
    assert_eq!(same.version, 3);

    // Another workspace sees nothing.
    let other = Uuid::now_v7();
    assert!(matches!(
        store::get(&pool, other, ada.id).await,
        Err(Error::ContactNotFound)
    ));
    assert!(matches!(
        store::update(&pool, other, ada.id, 3, &Patch::default()).await,
        Err(Error::ContactNotFound)
    ));
    db::drop_scratch(pool).await.unwrap();
}

#[tokio::test]
async fn deleted_contacts_are_hidden_restorable_and_a_returning_person_starts_afresh() {
    let pool = fresh().await;
    let (ws, channel) = (Uuid::now_v7(), Uuid::now_v7());
    let key = IdentityKey {
        channel_id: channel,
        external_id: "42",
        display_name: "Alan Turing",
    };
    let (alan, _) = store::resolve(&pool, ws, &key).await.unwrap();
    let blocked = store::set_blocked(&pool, ws, alan.id, true).await.unwrap();
    assert!(blocked.blocked);
    store::set_blocked(&pool, ws, alan.id, true).await.unwrap();
    assert_eq!(events(&pool, "contacts.contact.blocked").await, 1);

    store::delete(&pool, ws, alan.id).await.unwrap();
    assert!(matches!(
        store::get(&pool, ws, alan.id).await,
        Err(Error::ContactNotFound)
    ));
    assert!(store::list(&pool, ws, None, 10).await.unwrap().is_empty());
    assert!(matches!(
        store::delete(&pool, ws, alan.id).await,
        Err(Error::ContactNotFound)
    ));
    let restored = store::restore(&pool, ws, alan.id).await.unwrap();
    assert!(restored.deleted_at.is_none());
    assert!(matches!(
        store::restore(&pool, ws, alan.id).await,
        Err(Error::ContactNotFound)
    ));

    store::delete(&pool, ws, alan.id).await.unwrap();
    let (again, created) = store::resolve(&pool, ws, &key).await.unwrap();
    assert!(created);
    assert_ne!(again.id, alan.id);
    let (same, created) = store::resolve(&pool, ws, &key).await.unwrap();
    assert!(!created);
    assert_eq!(same.id, again.id);
    assert!(
        same.last_interaction_at.is_some(),
        "a first message is an interaction"
    );

    // Past the restore period it is purged and cannot come back.
    sqlx::query("UPDATE contacts SET deleted_at = now() - interval '31 days' WHERE id = $1")
        .bind(alan.id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(matches!(
        store::restore(&pool, ws, alan.id).await,
        Err(Error::ContactNotFound)
    ));
    assert_eq!(store::purge(&pool, 100).await.unwrap(), 1);
    assert_eq!(events(&pool, "contacts.contact.deleted").await, 2);
    db::drop_scratch(pool).await.unwrap();
}

#[tokio::test]
async fn field_definitions_change_safely() {
    let pool = fresh().await;
    let ws = Uuid::now_v7();
    let mut plan = field("plan", FieldKind::Select, &["free", "pro"]);
    plan.default_value = Some(text("free"));
    fields::create(&pool, ws, &plan).await.unwrap();
    assert!(matches!(
        fields::create(&pool, ws, &plan).await,
        Err(Error::AlreadyExists(_))
    ));
    let mut bad_default = field("tier", FieldKind::Number, &[]);
    bad_default.default_value = Some(text("x"));
    assert!(matches!(
        fields::create(&pool, ws, &bad_default).await,
        Err(Error::Invalid(e)) if e.field == "field.default_value"
    ));

    // New contacts get the default, from a profile and from a first message.
    let c = store::create(&pool, ws, &Profile::default(), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(c.custom["plan"], "free");
    let key = IdentityKey {
        channel_id: Uuid::now_v7(),
        external_id: "x",
        display_name: "",
    };
    let (r, _) = store::resolve(&pool, ws, &key).await.unwrap();
    assert_eq!(r.custom["plan"], "free");

    // The type never changes; an option in use cannot go; an unused one can.
    let retyped = field("plan", FieldKind::Text, &[]);
    assert!(matches!(
        fields::update(&pool, ws, &retyped).await,
        Err(Error::Precondition(_))
    ));
    let mut narrowed = field("plan", FieldKind::Select, &["pro"]);
    narrowed.default_value = None;
    assert!(matches!(
        fields::update(&pool, ws, &narrowed).await,
        Err(Error::Precondition(_))
    ));
    let widened = field("plan", FieldKind::Select, &["free", "enterprise"]);
    let def = fields::update(&pool, ws, &widened).await.unwrap();
    assert_eq!(def.options, ["free", "enterprise"]);

    // Deleting a field removes its values; a new field of the key starts empty.
    fields::delete(&pool, ws, "plan").await.unwrap();
    assert!(
        store::get(&pool, ws, c.id)
            .await
            .unwrap()
            .custom
            .get("plan")
            .is_none()
    );
    assert!(matches!(
        fields::delete(&pool, ws, "plan").await,
        Err(Error::FieldNotFound)
    ));
    db::drop_scratch(pool).await.unwrap();
}

#[tokio::test]
async fn tags_in_bulk_with_counts_rename_and_delete() {
    let pool = fresh().await;
    let ws = Uuid::now_v7();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let c = store::create(&pool, ws, &Profile::default(), &HashMap::new())
            .await
            .unwrap();
        ids.push(c.id);
    }
    let added = tags::add(&pool, ws, &ids, &["VIP".into(), "lead".into()])
        .await
        .unwrap();
    assert_eq!(added, 6);
    // Case-insensitive: "vip" is the existing "VIP"; re-adding adds nothing.
    assert_eq!(
        tags::add(&pool, ws, &ids[..1], &["vip".into()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(events(&pool, "contacts.tag.added").await, 6);
    assert_eq!(
        tags::list(&pool, ws).await.unwrap(),
        [("lead".to_owned(), 3), ("VIP".to_owned(), 3)]
    );
    assert_eq!(
        tags::remove(&pool, ws, &ids[..2], &["lead".into()])
            .await
            .unwrap(),
        2
    );

    // Unknown or foreign contacts fail the whole call.
    let foreign = store::create(&pool, Uuid::now_v7(), &Profile::default(), &HashMap::new())
        .await
        .unwrap();
    assert!(matches!(
        tags::add(&pool, ws, &[ids[0], foreign.id], &["x".into()]).await,
        Err(Error::ContactNotFound)
    ));
    assert!(
        tags::list(&pool, ws)
            .await
            .unwrap()
            .iter()
            .all(|(n, _)| n != "x")
    );

    tags::rename(&pool, ws, "vip", "Gold").await.unwrap();
    assert!(matches!(
        tags::rename(&pool, ws, "gold", "lead").await,
        Err(Error::AlreadyExists(_))
    ));
    let tagged = store::tags_of(&pool, ws, &ids).await.unwrap();
    assert_eq!(tagged[&ids[2]], ["Gold", "lead"]);
    tags::delete(&pool, ws, "GOLD").await.unwrap();
    assert_eq!(
        tags::list(&pool, ws).await.unwrap(),
        [("lead".to_owned(), 1)]
    );
    assert!(matches!(
        tags::delete(&pool, ws, "gold").await,
        Err(Error::TagNotFound)
    ));
    db::drop_scratch(pool).await.unwrap();
}
