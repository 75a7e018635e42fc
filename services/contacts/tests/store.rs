//! The contacts store on a fresh Postgres database.
use std::collections::HashMap;

use ism_contacts::Error;
use ism_contacts::fields::{self, FieldKind, NewField};
use ism_contacts::interactions::Interactions;
use ism_contacts::profile::Profile;
use ism_contacts::resolver::{self, Lookup, Resolver};
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
    let resolver = Resolver::new(pool.clone());
    let attempts = (0..16).map(|_| {
        let resolver = resolver.clone();
        tokio::spawn(async move {
            let key = IdentityKey {
                channel_id: channel,
                external_id: "+4915112345678",
                display_name: "Grace Hopper",
            };
            resolver.resolve(workspace, &key).await.unwrap()
        })
    });
    let results: Vec<_> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    let ids: std::collections::HashSet<_> = results.iter().map(|(c, _)| c.contact.id).collect();
    assert_eq!(ids.len(), 1, "one contact for one person");
    assert_eq!(
        results.iter().filter(|(_, created)| *created).count(),
        1,
        "exactly one call created it"
    );
    let contacts: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
        .fetch_one(&*pool)
        .await
        .unwrap();
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform_outbox WHERE routing_key = 'contacts.contact.created'",
    )
    .fetch_one(&*pool)
    .await
    .unwrap();
    assert_eq!(
        (contacts, events),
        (1, 1),
        "no orphan contact rows, one created event"
    );
    assert_eq!(results[0].0.contact.first_name, "Grace");

    // The same identity in another workspace is another person.
    let key = IdentityKey {
        channel_id: channel,
        external_id: "+4915112345678",
        display_name: "",
    };
    let (other, created) = resolver.resolve(Uuid::now_v7(), &key).await.unwrap();
    assert!(created);
    assert!(!ids.contains(&other.contact.id));
}

#[tokio::test]
async fn identities_looked_up_together_each_answer_in_their_own_workspace() {
    let pool = fresh().await;
    let channel = Uuid::now_v7();
    let (ours, theirs) = (Uuid::now_v7(), Uuid::now_v7());
    let key = move |external_id| IdentityKey {
        channel_id: channel,
        external_id,
        display_name: "Ada Lovelace",
    };
    let resolver = Resolver::new(pool.clone());
    let (ada_ours, _) = resolver.resolve(ours, &key("ada")).await.unwrap();
    let (ada_theirs, _) = resolver.resolve(theirs, &key("ada")).await.unwrap();
    let (grace_theirs, _) = resolver.resolve(theirs, &key("grace")).await.unwrap();
    store::delete(&pool, ours, ada_ours.contact.id)
        .await
        .unwrap();
    let (ada_ours, _) = resolver.resolve(ours, &key("ada")).await.unwrap();

    // One statement: the same identity in two Workspaces, one that exists only in the
    // other Workspace, one that does not exist, and a repeat.
    let lookup = |workspace_id, external_id: &str| Lookup {
        workspace_id,
        channel_id: channel,
        external_id: external_id.into(),
    };
    let found = resolver::find_many(
        &pool,
        &[
            lookup(theirs, "ada"),
            lookup(ours, "grace"),
            lookup(ours, "ada"),
            lookup(ours, "nobody"),
            lookup(theirs, "ada"),
            lookup(theirs, "grace"),
        ],
    )
    .await
    .unwrap();
    let ids: Vec<Option<Uuid>> = found
        .iter()
        .map(|f| f.as_ref().map(|f| f.contact.id))
        .collect();
    assert_eq!(
        ids,
        [
            Some(ada_theirs.contact.id),
            None,
            Some(ada_ours.contact.id),
            None,
            Some(ada_theirs.contact.id),
            Some(grace_theirs.contact.id),
        ],
        "each lookup answered from its own Workspace, the deleted Contact's successor found"
    );
    assert!(
        found
            .iter()
            .flatten()
            .all(|f| f.identities.iter().all(|i| i.contact_id == f.contact.id))
    );

    // Many calls of both Workspaces at once, read in shared batches.
    let calls = (0..64).map(|i| {
        let resolver = resolver.clone();
        let workspace = if i % 2 == 0 { ours } else { theirs };
        tokio::spawn(async move {
            let (found, created) = resolver.resolve(workspace, &key("ada")).await.unwrap();
            (
                workspace,
                found.contact.workspace_id,
                found.contact.id,
                created,
            )
        })
    });
    for call in futures::future::join_all(calls).await {
        let (asked, workspace, id, created) = call.unwrap();
        assert_eq!(workspace, asked);
        let expected = if asked == ours {
            &ada_ours
        } else {
            &ada_theirs
        };
        assert_eq!((id, created), (expected.contact.id, false));
    }
}

#[tokio::test]
async fn a_known_person_resolves_whole_and_their_interactions_are_written_in_bulk() {
    let pool = fresh().await;
    let (ws, channel) = (Uuid::now_v7(), Uuid::now_v7());
    fields::create(&pool, ws, &field("plan", FieldKind::Select, &["pro"]))
        .await
        .unwrap();
    let key = IdentityKey {
        channel_id: channel,
        external_id: "+4915112345678",
        display_name: "Ada Lovelace",
    };
    let (first, created) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
    assert!(created);
    let id = first.contact.id;
    tags::add(&pool, ws, &[id], &["VIP".into(), "beta".into()])
        .await
        .unwrap();
    let patch = Patch {
        custom: HashMap::from([("plan".into(), text("pro"))]),
        ..Patch::default()
    };
    store::update(&pool, ws, id, 1, &patch).await.unwrap();
    sqlx::query("UPDATE contacts SET last_interaction_at = now() - interval '2 hours'")
        .execute(&*pool)
        .await
        .unwrap();

    let (mut known, created) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
    assert!(!created);
    assert_eq!(known.contact.id, id);
    assert_eq!(known.tags, ["beta", "VIP"]);
    assert_eq!(known.custom_fields["plan"], text("pro"));
    let identities: Vec<_> = known
        .identities
        .iter()
        .map(|i| {
            (
                i.channel_id,
                i.external_id.as_str(),
                i.display_name.as_str(),
            )
        })
        .collect();
    assert_eq!(identities, [(channel, "+4915112345678", "Ada Lovelace")]);

    let interactions = Interactions::default();
    let stored_before = known.contact.last_interaction_at.unwrap();
    interactions.record(&mut known.contact);
    let shown = known.contact.last_interaction_at.unwrap();
    assert!(shown - stored_before > chrono::Duration::hours(1));
    // A second message within the minute shows the same time and adds no write.
    let (mut again, _) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
    interactions.record(&mut again.contact);
    assert_eq!(again.contact.last_interaction_at, Some(shown));

    assert_eq!(interactions.flush(&pool).await.unwrap(), 1);
    assert_eq!(interactions.flush(&pool).await.unwrap(), 0);
    assert_eq!(activity_out_of_step(&pool).await, 0);
    let stored: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT last_interaction_at FROM contacts WHERE id = $1")
            .bind(id)
            .fetch_one(&*pool)
            .await
            .unwrap();
    assert_eq!(stored.timestamp_micros(), shown.timestamp_micros());
    assert_eq!(
        events(&pool, "contacts.contact.updated").await,
        1,
        "an interaction is not a profile change"
    );
}

async fn fresh() -> db::Scratch {
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

/// Contacts whose interaction order in `contact_activity` differs from their time.
async fn activity_out_of_step(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM contacts c LEFT JOIN contact_activity a ON a.contact_id = c.id
         WHERE a.contact_id IS NULL OR a.last_interaction_at IS DISTINCT FROM c.last_interaction_at",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Contacts whose `tag_ids`, which filters and rendering read, differ from their
/// `contact_tags` rows.
async fn tags_out_of_step(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM contacts c,
             LATERAL (SELECT coalesce(array_agg(tag_id), '{}') AS ids FROM contact_tags
                      WHERE contact_id = c.id) t
         WHERE NOT (c.tag_ids @> t.ids AND c.tag_ids <@ t.ids
                    AND cardinality(c.tag_ids) = cardinality(t.ids))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The Tag names a Contact is rendered with, alphabetically.
async fn tag_names(pool: &sqlx::PgPool, ws: Uuid, id: Uuid) -> Vec<String> {
    let contact = store::get(pool, ws, id).await.unwrap();
    let schema = fields::schema(&mut pool.acquire().await.unwrap(), ws)
        .await
        .unwrap();
    let mut full = store::complete(
        pool,
        ws,
        &schema,
        &store::TagNames::default(),
        vec![contact],
    )
    .await
    .unwrap();
    full.remove(0).tags
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
    assert_eq!(updated.custom.object()["plan"], "pro");
    assert_eq!(updated.version, 2);
    assert_eq!(events(&pool, "contacts.contact.updated").await, 1);
    assert_eq!(events(&pool, "contacts.contact.field_changed").await, 1);

    // A stale version and every bad value change nothing.
    let stale = store::update(&pool, ws, ada.id, 1, &patch)
        .await
        .unwrap_err();
    assert!(
        matches!(&stale, Error::Precondition(f) if f.field == "version" && f.reason.contains("version 2"))
    );
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
    assert!(cleared.custom.object().get("plan").is_none());
    let same = store::update(&pool, ws, ada.id, 3, &clear).await.unwrap();
    assert_eq!(same.version, 3);

    // Another workspace sees nothing.
    let other = Uuid::now_v7();
    assert!(matches!(
        store::get(&pool, other, ada.id).await,
        Err(Error::NotFound("contact"))
    ));
    assert!(matches!(
        store::update(&pool, other, ada.id, 3, &Patch::default()).await,
        Err(Error::NotFound("contact"))
    ));
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
    let (alan, _) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
    tags::add(&pool, ws, &[alan.contact.id], &["vip".into()])
        .await
        .unwrap();
    let blocked = store::set_flag(&pool, ws, alan.contact.id, store::Flag::Blocked, true)
        .await
        .unwrap();
    assert!(blocked.blocked);
    store::set_flag(&pool, ws, alan.contact.id, store::Flag::Blocked, true)
        .await
        .unwrap();
    assert_eq!(events(&pool, "contacts.contact.blocked").await, 1);

    store::delete(&pool, ws, alan.contact.id).await.unwrap();
    assert!(matches!(
        store::get(&pool, ws, alan.contact.id).await,
        Err(Error::NotFound("contact"))
    ));
    assert!(store::list(&pool, ws, None, 10).await.unwrap().is_empty());
    assert!(matches!(
        store::delete(&pool, ws, alan.contact.id).await,
        Err(Error::NotFound("contact"))
    ));
    let restored = store::restore(&pool, ws, alan.contact.id).await.unwrap();
    assert!(restored.deleted_at.is_none());
    assert!(matches!(
        store::restore(&pool, ws, alan.contact.id).await,
        Err(Error::NotFound("contact"))
    ));

    store::delete(&pool, ws, alan.contact.id).await.unwrap();
    let (again, created) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
    assert!(created);
    assert_ne!(again.contact.id, alan.contact.id);
    let (same, created) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
    assert!(!created);
    assert_eq!(same.contact.id, again.contact.id);
    assert!(
        same.contact.last_interaction_at.is_some(),
        "a first message is an interaction"
    );

    // Past the restore period it is purged and cannot come back.
    sqlx::query("UPDATE contacts SET deleted_at = now() - interval '31 days' WHERE id = $1")
        .bind(alan.contact.id)
        .execute(&*pool)
        .await
        .unwrap();
    assert!(matches!(
        store::restore(&pool, ws, alan.contact.id).await,
        Err(Error::NotFound("contact"))
    ));
    assert_eq!(store::purge(&pool, 100).await.unwrap(), 1);
    let activity: Vec<Uuid> = sqlx::query_scalar("SELECT contact_id FROM contact_activity")
        .fetch_all(&*pool)
        .await
        .unwrap();
    assert!(
        !activity.contains(&alan.contact.id),
        "its interaction order goes too"
    );
    assert!(activity.contains(&same.contact.id));
    assert_eq!(
        tags::list(&pool, ws).await.unwrap(),
        [("vip".to_owned(), 0)]
    );
    assert_eq!(events(&pool, "contacts.contact.deleted").await, 2);
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
        Err(Error::Invalid(e)) if e.names("field.default_value")
    ));

    // New contacts get the default, from a profile and from a first message.
    let c = store::create(&pool, ws, &Profile::default(), &HashMap::new())
        .await
        .unwrap();
    assert_eq!(c.custom.object()["plan"], "free");
    let key = IdentityKey {
        channel_id: Uuid::now_v7(),
        external_id: "x",
        display_name: "",
    };
    let (r, _) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
    assert_eq!(r.custom_fields["plan"], text("free"));

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
            .object()
            .get("plan")
            .is_none()
    );
    assert!(matches!(
        fields::delete(&pool, ws, "plan").await,
        Err(Error::NotFound("contact field"))
    ));
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
        Err(Error::NotFound("contact"))
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
    assert_eq!(tag_names(&pool, ws, ids[2]).await, ["Gold", "lead"]);
    tags::delete(&pool, ws, "GOLD").await.unwrap();
    assert_eq!(
        tags::list(&pool, ws).await.unwrap(),
        [("lead".to_owned(), 1)]
    );
    // Gone from every Contact at once; the name is free again; the deleted Tag's places
    // are swept afterwards, in batches.
    assert_eq!(tag_names(&pool, ws, ids[2]).await, ["lead"]);
    tags::add(&pool, ws, &ids[..1], &["gold".into()])
        .await
        .unwrap();
    assert_eq!(tag_names(&pool, ws, ids[0]).await, ["gold"]);
    let leftovers = || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM contact_tags ct WHERE NOT EXISTS
                 (SELECT 1 FROM tags t WHERE t.id = ct.tag_id)",
        )
        .fetch_one(&*pool)
        .await
        .unwrap();
        n
    };
    assert_eq!(leftovers().await, 3);
    assert_eq!(tags::sweep(&pool, 2).await.unwrap(), 2);
    assert_eq!(tags::sweep(&pool, 2).await.unwrap(), 1);
    assert_eq!(leftovers().await, 0);
    let (sweeps, held): (i64, Vec<i32>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tag_sweeps),
                array_agg(cardinality(tag_ids) ORDER BY id) FROM contacts WHERE workspace_id = $1",
    )
    .bind(ws)
    .fetch_one(&*pool)
    .await
    .unwrap();
    assert_eq!(
        (sweeps, held),
        (0, vec![1, 0, 1]),
        "only live Tags are held"
    );
    assert_eq!(tag_names(&pool, ws, ids[0]).await, ["gold"]);
    assert!(matches!(
        tags::delete(&pool, ws, "silver").await,
        Err(Error::NotFound("tag"))
    ));
    assert_eq!(
        tags_out_of_step(&pool).await,
        0,
        "tag_ids follow contact_tags"
    );
}

mod filters {
    use std::collections::{BTreeSet, HashMap};

    use ism_contacts::fields::{self, FieldKind};
    use ism_contacts::filter;
    use ism_contacts::interactions::Interactions;
    use ism_contacts::profile::Profile;
    use ism_contacts::resolver::Resolver;
    use ism_contacts::search::{self, Sort, SortBy};
    use ism_contacts::store::{self, IdentityKey, Patch};
    use ism_contacts::tags;
    use ism_proto::contacts::v1::field_value::Kind;
    use ism_proto::contacts::v1::{self as pb, FieldOperator as Op};
    use uuid::Uuid;

    use super::{field, fresh};

    fn v(kind: Kind) -> pb::FieldValue {
        pb::FieldValue { kind: Some(kind) }
    }

    fn t(s: &str) -> pb::FieldValue {
        v(Kind::Text(s.into()))
    }

    fn n(x: f64) -> pb::FieldValue {
        v(Kind::Number(x))
    }

    fn d(s: &str) -> pb::FieldValue {
        v(Kind::Date(s.into()))
    }

    fn at(rfc3339: &str) -> pb::FieldValue {
        let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap();
        v(Kind::Datetime(prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        }))
    }

    fn fc(field: &str, op: Op, values: Vec<pb::FieldValue>) -> pb::Condition {
        pb::Condition {
            kind: Some(pb::condition::Kind::Field(pb::FieldCondition {
                field: field.into(),
                operator: op as i32,
                values,
            })),
        }
    }

    fn tagged(op: pb::TagOperator, names: &[&str]) -> pb::Condition {
        pb::Condition {
            kind: Some(pb::condition::Kind::Tags(pb::TagCondition {
                operator: op as i32,
                tags: names.iter().map(|s| s.to_string()).collect(),
            })),
        }
    }

    fn on(op: pb::ChannelOperator, channel: Uuid) -> pb::Condition {
        pb::Condition {
            kind: Some(pb::condition::Kind::Channels(pb::ChannelCondition {
                operator: op as i32,
                channel_ids: vec![channel.to_string()],
            })),
        }
    }

    fn group(any: bool, conditions: Vec<pb::Condition>) -> pb::ConditionGroup {
        pb::ConditionGroup {
            r#match: if any { pb::Match::Any } else { pb::Match::All } as i32,
            conditions,
        }
    }

    fn only(condition: pb::Condition) -> pb::Filter {
        pb::Filter {
            groups: vec![group(false, vec![condition])],
            ..Default::default()
        }
    }

    /// Four people with every kind of value, tags and identities.
    async fn people(pool: &sqlx::PgPool, ws: Uuid, a: Uuid, b: Uuid) {
        for (key, kind, options) in [
            ("plan", FieldKind::Select, &["free", "pro"][..]),
            ("score", FieldKind::Number, &[]),
            ("birthday", FieldKind::Date, &[]),
            ("renewal", FieldKind::DateTime, &[]),
            ("vip", FieldKind::Checkbox, &[]),
            ("note", FieldKind::Text, &[]),
            ("work_email", FieldKind::Email, &[]),
            ("site", FieldKind::Url, &[]),
            ("mobile", FieldKind::Phone, &[]),
        ] {
            fields::create(pool, ws, &field(key, kind, options))
                .await
                .unwrap();
        }
        let ada = Profile {
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            email: "ada@example.com".into(),
            phone: "+4915112345678".into(),
            country: "GB".into(),
            ..Profile::default()
        };
        let ada_values = HashMap::from([
            ("plan".into(), t("pro")),
            ("score".into(), n(10.0)),
            ("birthday".into(), d("1815-12-10")),
            ("renewal".into(), at("2030-01-01T10:00:00Z")),
            ("vip".into(), v(Kind::Checkbox(true))),
            ("note".into(), t("Analytical Engine")),
            ("work_email".into(), t("ada@engine.org")),
            ("site".into(), t("https://ada.example.com/")),
            ("mobile".into(), t("+4915112345679")),
        ]);
        let ada = store::create(pool, ws, &ada, &ada_values).await.unwrap();
        let grace = Profile {
            first_name: "Grace".into(),
            last_name: "Hopper".into(),
            email: "grace@navy.mil".into(),
            country: "US".into(),
            ..Profile::default()
        };
        let grace_values = HashMap::from([
            ("plan".into(), t("free")),
            ("score".into(), n(3.5)),
            ("birthday".into(), d("1906-12-09")),
            ("renewal".into(), at("2029-06-15T00:00:00Z")),
            ("vip".into(), v(Kind::Checkbox(false))),
            ("note".into(), t("compilers")),
        ]);
        let grace = store::create(pool, ws, &grace, &grace_values)
            .await
            .unwrap();
        let alan = Profile {
            first_name: "Alan".into(),
            last_name: "Turing".into(),
            ..Profile::default()
        };
        let alan = store::create(pool, ws, &alan, &HashMap::from([("score".into(), n(-1.0))]))
            .await
            .unwrap();
        store::set_flag(pool, ws, alan.id, store::Flag::Blocked, true)
            .await
            .unwrap();
        let key = IdentityKey {
            channel_id: a,
            external_id: "ann-1",
            display_name: "Ann Smith",
        };
        let (ann, _) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
        let patch = Patch {
            email: Some("ann@example.org".into()),
            custom: HashMap::from([("plan".into(), t("pro"))]),
            ..Patch::default()
        };
        store::update(pool, ws, ann.contact.id, 1, &patch)
            .await
            .unwrap();
        let key = IdentityKey {
            channel_id: b,
            external_id: "grace",
            display_name: "",
        };
        // Grace's identity on channel B: attach by resolving, then moving it.
        let (stub, _) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
        sqlx::query("UPDATE channel_identities SET contact_id = $1 WHERE contact_id = $2")
            .bind(grace.id)
            .bind(stub.contact.id)
            .execute(pool)
            .await
            .unwrap();
        store::delete(pool, ws, stub.contact.id).await.unwrap();
        let key = IdentityKey {
            channel_id: a,
            external_id: "ada-1",
            display_name: "",
        };
        let (stub, _) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
        sqlx::query("UPDATE channel_identities SET contact_id = $1 WHERE contact_id = $2")
            .bind(ada.id)
            .bind(stub.contact.id)
            .execute(pool)
            .await
            .unwrap();
        store::delete(pool, ws, stub.contact.id).await.unwrap();
        tags::add(pool, ws, &[ada.id], &["VIP".into(), "math".into()])
            .await
            .unwrap();
        tags::add(pool, ws, &[grace.id], &["math".into()])
            .await
            .unwrap();
    }

    async fn names(pool: &sqlx::PgPool, ws: Uuid, filter: &pb::Filter) -> BTreeSet<String> {
        let schema = fields::schema(&mut pool.acquire().await.unwrap(), ws)
            .await
            .unwrap();
        let checked = filter::check(filter, &schema).unwrap();
        let sort = Sort {
            by: SortBy::Created,
            ascending: true,
        };
        let page = search::search(pool, ws, &checked, sort, 100, "", true)
            .await
            .unwrap();
        assert_eq!(page.total, Some(page.contacts.len() as i64));
        page.contacts.into_iter().map(|c| c.first_name).collect()
    }

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn every_operator_on_every_type_selects_the_right_contacts() {
        let pool = fresh().await;
        let (ws, a, b) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        people(&pool, ws, a, b).await;
        use pb::ChannelOperator as Ch;
        use pb::TagOperator as Tg;
        let cases: Vec<(&str, pb::Filter, &[&str])> = vec![
            (
                "everyone",
                pb::Filter::default(),
                &["Ada", "Grace", "Alan", "Ann"],
            ),
            (
                "text is, any case",
                only(fc("first_name", Op::Is, vec![t("ADA"), t("alan")])),
                &["Ada", "Alan"],
            ),
            (
                "text is not",
                only(fc("last_name", Op::IsNot, vec![t("lovelace")])),
                &["Grace", "Alan", "Ann"],
            ),
            (
                "contains",
                only(fc("note", Op::Contains, vec![t("ENGINE")])),
                &["Ada"],
            ),
            (
                "contains escapes wildcards",
                only(fc("note", Op::Contains, vec![t("%")])),
                &[],
            ),
            (
                "starts with on name",
                only(fc("name", Op::StartsWith, vec![t("an")])),
                &["Ann"],
            ),
            (
                "starts with on a custom email",
                only(fc("work_email", Op::StartsWith, vec![t("ada@")])),
                &["Ada"],
            ),
            (
                "url is",
                only(fc("site", Op::Is, vec![t("https://ada.example.com/")])),
                &["Ada"],
            ),
            (
                "phone is",
                only(fc("mobile", Op::Is, vec![t("+4915112345679")])),
                &["Ada"],
            ),
            (
                "default email is empty",
                only(fc("email", Op::IsEmpty, vec![])),
                &["Alan"],
            ),
            (
                "default phone not empty",
                only(fc("phone", Op::IsNotEmpty, vec![])),
                &["Ada"],
            ),
            (
                "country is",
                only(fc("country", Op::Is, vec![t("us")])),
                &["Grace"],
            ),
            (
                "select is",
                only(fc("plan", Op::Is, vec![t("pro")])),
                &["Ada", "Ann"],
            ),
            (
                "select is not (empty included)",
                only(fc("plan", Op::IsNot, vec![t("pro")])),
                &["Grace", "Alan"],
            ),
            (
                "select is empty",
                only(fc("plan", Op::IsEmpty, vec![])),
                &["Alan"],
            ),
            (
                "custom is not empty",
                only(fc("note", Op::IsNotEmpty, vec![])),
                &["Ada", "Grace"],
            ),
            (
                "number is",
                only(fc("score", Op::Is, vec![n(3.5), n(-1.0)])),
                &["Grace", "Alan"],
            ),
            (
                "number is not",
                only(fc("score", Op::IsNot, vec![n(10.0)])),
                &["Grace", "Alan", "Ann"],
            ),
            (
                "greater than",
                only(fc("score", Op::GreaterThan, vec![n(3.5)])),
                &["Ada"],
            ),
            (
                "less than",
                only(fc("score", Op::LessThan, vec![n(3.5)])),
                &["Alan"],
            ),
            (
                "number between, inclusive",
                only(fc("score", Op::Between, vec![n(-1.0), n(3.5)])),
                &["Grace", "Alan"],
            ),
            (
                "date is",
                only(fc("birthday", Op::Is, vec![d("1815-12-10")])),
                &["Ada"],
            ),
            (
                "date before",
                only(fc("birthday", Op::Before, vec![d("1900-01-01")])),
                &["Ada"],
            ),
            (
                "date after",
                only(fc("birthday", Op::After, vec![d("1815-12-10")])),
                &["Grace"],
            ),
            (
                "date between",
                only(fc(
                    "birthday",
                    Op::Between,
                    vec![d("1800-01-01"), d("1906-12-09")],
                )),
                &["Ada", "Grace"],
            ),
            (
                "date within last days",
                only(fc("birthday", Op::WithinLastDays, vec![n(30.0)])),
                &[],
            ),
            (
                "datetime is a day",
                only(fc("renewal", Op::Is, vec![d("2030-01-01")])),
                &["Ada"],
            ),
            (
                "datetime before",
                only(fc("renewal", Op::Before, vec![at("2030-01-01T00:00:00Z")])),
                &["Grace"],
            ),
            (
                "datetime after a day",
                only(fc("renewal", Op::After, vec![d("2029-06-15")])),
                &["Ada"],
            ),
            (
                "datetime between",
                only(fc(
                    "renewal",
                    Op::Between,
                    vec![d("2029-01-01"), d("2029-12-31")],
                )),
                &["Grace"],
            ),
            (
                "created within last days",
                only(fc("created_at", Op::WithinLastDays, vec![n(1.0)])),
                &["Ada", "Grace", "Alan", "Ann"],
            ),
            (
                "created before",
                only(fc("created_at", Op::Before, vec![d("2000-01-01")])),
                &[],
            ),
            (
                "never interacted",
                only(fc("last_interaction_at", Op::IsEmpty, vec![])),
                &["Ada", "Grace", "Alan"],
            ),
            (
                "checkbox is",
                only(fc("vip", Op::Is, vec![v(Kind::Checkbox(true))])),
                &["Ada"],
            ),
            (
                "checkbox unset is false",
                only(fc("vip", Op::IsNot, vec![v(Kind::Checkbox(true))])),
                &["Grace", "Alan", "Ann"],
            ),
            (
                "blocked",
                only(fc("blocked", Op::Is, vec![v(Kind::Checkbox(true))])),
                &["Alan"],
            ),
            (
                "has any tag, any case",
                only(tagged(Tg::HasAny, &["vip", "nope"])),
                &["Ada"],
            ),
            (
                "has all tags",
                only(tagged(Tg::HasAll, &["math", "VIP"])),
                &["Ada"],
            ),
            (
                "has all with an unknown tag",
                only(tagged(Tg::HasAll, &["math", "nope"])),
                &[],
            ),
            (
                "has none",
                only(tagged(Tg::HasNone, &["math"])),
                &["Alan", "Ann"],
            ),
            (
                "identity on a channel",
                only(on(Ch::HasIdentityOn, a)),
                &["Ada", "Ann"],
            ),
            (
                "no identity on a channel",
                only(on(Ch::HasNoIdentityOn, b)),
                &["Ada", "Alan", "Ann"],
            ),
            (
                "free text over name",
                pb::Filter {
                    text: "HOPP".into(),
                    ..Default::default()
                },
                &["Grace"],
            ),
            (
                "free text over email",
                pb::Filter {
                    text: "example".into(),
                    ..Default::default()
                },
                &["Ada", "Ann"],
            ),
            (
                "free text over phone",
                pb::Filter {
                    text: "+49151".into(),
                    ..Default::default()
                },
                &["Ada"],
            ),
            (
                "AND inside a group",
                pb::Filter {
                    groups: vec![group(
                        false,
                        vec![
                            fc("plan", Op::Is, vec![t("pro")]),
                            tagged(Tg::HasAny, &["math"]),
                        ],
                    )],
                    ..Default::default()
                },
                &["Ada"],
            ),
            (
                "OR inside a group",
                pb::Filter {
                    groups: vec![group(
                        true,
                        vec![
                            fc("plan", Op::Is, vec![t("free")]),
                            fc("blocked", Op::Is, vec![v(Kind::Checkbox(true))]),
                        ],
                    )],
                    ..Default::default()
                },
                &["Grace", "Alan"],
            ),
            (
                "groups combined with OR",
                pb::Filter {
                    r#match: pb::Match::Any as i32,
                    groups: vec![
                        group(false, vec![fc("first_name", Op::Is, vec![t("ada")])]),
                        group(
                            false,
                            vec![
                                fc("first_name", Op::Is, vec![t("ann")]),
                                fc("plan", Op::Is, vec![t("pro")]),
                            ],
                        ),
                    ],
                    ..Default::default()
                },
                &["Ada", "Ann"],
            ),
            (
                "groups combined with AND, and free text",
                pb::Filter {
                    groups: vec![
                        group(false, vec![fc("plan", Op::Is, vec![t("pro")])]),
                        group(
                            true,
                            vec![tagged(Tg::HasAny, &["vip"]), on(Ch::HasIdentityOn, a)],
                        ),
                    ],
                    text: "smith".into(),
                    ..Default::default()
                },
                &["Ann"],
            ),
        ];
        for (what, filter, expected) in cases {
            assert_eq!(names(&pool, ws, &filter).await, set(expected), "{what}");
        }
        // Another workspace's filter sees none of these.
        assert!(
            names(&pool, Uuid::now_v7(), &pb::Filter::default())
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn malformed_filters_name_the_bad_part() {
        let pool = fresh().await;
        let ws = Uuid::now_v7();
        people(&pool, ws, Uuid::now_v7(), Uuid::now_v7()).await;
        let schema = fields::schema(&mut pool.acquire().await.unwrap(), ws)
            .await
            .unwrap();
        let cases = [
            (
                only(fc("shoe_size", Op::Is, vec![n(1.0)])),
                "no such contact field",
            ),
            (
                only(fc("plan", Op::Unspecified, vec![t("pro")])),
                "unknown operator",
            ),
            (
                only(fc("score", Op::Contains, vec![t("1")])),
                "does not apply",
            ),
            (
                only(fc("plan", Op::GreaterThan, vec![t("pro")])),
                "does not apply",
            ),
            (only(fc("vip", Op::IsEmpty, vec![])), "does not apply"),
            (only(fc("score", Op::Is, vec![t("1")])), "a finite number"),
            (only(fc("score", Op::Between, vec![n(1.0)])), "takes 2"),
            (
                only(fc("birthday", Op::Before, vec![d("1999-02-30")])),
                "YYYY-MM-DD",
            ),
            (
                only(fc("birthday", Op::WithinLastDays, vec![n(0.5)])),
                "whole number",
            ),
            (only(fc("email", Op::IsEmpty, vec![t("x")])), "takes 0"),
            (only(fc("name", Op::StartsWith, vec![])), "takes 1"),
            (
                only(tagged(pb::TagOperator::Unspecified, &["x"])),
                "unknown tag operator",
            ),
            (only(tagged(pb::TagOperator::HasAny, &[])), "1 to 50"),
            (
                only(pb::Condition {
                    kind: Some(pb::condition::Kind::Channels(pb::ChannelCondition {
                        operator: pb::ChannelOperator::HasIdentityOn as i32,
                        channel_ids: vec!["nope".into()],
                    })),
                }),
                "not a channel id",
            ),
            (only(pb::Condition { kind: None }), "is required"),
        ];
        for (filter, reason) in cases {
            let err = filter::check(&filter, &schema).unwrap_err();
            assert_eq!(err.field, "filter");
            assert!(
                err.reason.starts_with("groups[0].conditions[0]."),
                "{}",
                err.reason
            );
            assert!(err.reason.contains(reason), "{} lacks {reason}", err.reason);
        }
    }

    #[tokio::test]
    async fn pages_are_stable_keyset_pages_in_every_order() {
        let pool = fresh().await;
        let ws = Uuid::now_v7();
        people(&pool, ws, Uuid::now_v7(), Uuid::now_v7()).await;
        let all = filter::check(&pb::Filter::default(), &Default::default()).unwrap();
        // One who never interacted writes now: some have times, some none.
        let everyone = store::list(&pool, ws, None, 100).await.unwrap();
        let interactions = Interactions::default();
        let mut silent = everyone
            .into_iter()
            .filter(|c| c.last_interaction_at.is_none());
        interactions.record(&mut silent.next().unwrap());
        assert_eq!(interactions.flush(&pool).await.unwrap(), 1);
        assert!(silent.next().is_some());
        for by in [
            SortBy::Created,
            SortBy::Name,
            SortBy::LastInteraction,
            SortBy::Updated,
        ] {
            for ascending in [true, false] {
                let sort = Sort { by, ascending };
                let whole = search::search(&pool, ws, &all, sort, 100, "", false)
                    .await
                    .unwrap();
                assert_eq!(whole.total, None);
                let mut paged = Vec::new();
                let mut token = String::new();
                loop {
                    let page = search::search(&pool, ws, &all, sort, 1, &token, true)
                        .await
                        .unwrap();
                    assert_eq!(page.total, Some(4));
                    paged.extend(page.contacts.into_iter().map(|c| c.id));
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    token = page.next_page_token;
                }
                let expected: Vec<Uuid> = whole.contacts.iter().map(|c| c.id).collect();
                assert_eq!(paged, expected, "{sort:?}");
                if by == SortBy::LastInteraction {
                    let keys: Vec<_> = whole
                        .contacts
                        .iter()
                        .map(|c| (c.last_interaction_at, c.id))
                        .collect();
                    let mut sorted = keys.clone();
                    sorted.sort();
                    if !ascending {
                        sorted.reverse();
                    }
                    assert_eq!(keys, sorted, "{sort:?}");
                    assert!(keys.iter().filter(|k| k.0.is_some()).count() >= 2);
                }
            }
        }
        let by_name = Sort {
            by: SortBy::Name,
            ascending: true,
        };
        let names: Vec<String> = search::search(&pool, ws, &all, by_name, 100, "", false)
            .await
            .unwrap()
            .contacts
            .into_iter()
            .map(|c| c.first_name)
            .collect();
        assert_eq!(names, ["Ada", "Alan", "Ann", "Grace"]);
        // A token of one order is refused by another.
        let page = search::search(&pool, ws, &all, by_name, 1, "", false)
            .await
            .unwrap();
        let other = Sort {
            by: SortBy::Created,
            ascending: true,
        };
        let err = search::search(&pool, ws, &all, other, 1, &page.next_page_token, false)
            .await
            .unwrap_err();
        assert!(matches!(err, ism_contacts::Error::Invalid(e) if e.names("page_token")));

        // Batches walk every match in id order.
        let tags = search::tag_ids(&pool, ws, &all).await.unwrap();
        let mut after = None;
        let mut streamed = Vec::new();
        loop {
            let batch = search::batch(&pool, ws, &all, &tags, after, 3)
                .await
                .unwrap();
            if batch.is_empty() {
                break;
            }
            after = batch.last().map(|c| c.id);
            streamed.extend(batch.into_iter().map(|c| c.id));
        }
        let mut sorted = streamed.clone();
        sorted.sort();
        assert_eq!((streamed.len(), &streamed), (4, &sorted));
    }
}

#[tokio::test]
async fn merging_moves_everything_to_the_target_by_the_callers_rules() {
    use ism_contacts::merge::{self, Merge, Side};
    let pool = fresh().await;
    let (ws, channel) = (Uuid::now_v7(), Uuid::now_v7());
    fields::create(
        &pool,
        ws,
        &field("plan", FieldKind::Select, &["free", "pro"]),
    )
    .await
    .unwrap();
    fields::create(&pool, ws, &field("note", FieldKind::Text, &[]))
        .await
        .unwrap();
    let (target, _) = Resolver::new(pool.clone())
        .resolve(
            ws,
            &IdentityKey {
                channel_id: channel,
                external_id: "t",
                display_name: "Ada Lovelace",
            },
        )
        .await
        .unwrap();
    let patch = Patch {
        email: Some("Ada@Example.com".into()),
        custom: HashMap::from([("plan".into(), text("pro"))]),
        ..Patch::default()
    };
    let nul = Patch {
        custom: HashMap::from([("note".into(), text("a\0b"))]),
        ..Patch::default()
    };
    assert!(matches!(
        store::update(&pool, ws, target.contact.id, 1, &nul).await,
        Err(Error::Invalid(e)) if e.names("custom_fields") && e.to_string().contains("NUL")
    ));
    let target = store::update(&pool, ws, target.contact.id, 1, &patch)
        .await
        .unwrap();
    let (source, _) = Resolver::new(pool.clone())
        .resolve(
            ws,
            &IdentityKey {
                channel_id: channel,
                external_id: "s",
                display_name: "Augusta King",
            },
        )
        .await
        .unwrap();
    let patch = Patch {
        email: Some("ada@example.com".into()),
        phone: Some("+4915112345678".into()),
        custom: HashMap::from([("plan".into(), text("free")), ("note".into(), text("n"))]),
        ..Patch::default()
    };
    store::update(&pool, ws, source.contact.id, 1, &patch)
        .await
        .unwrap();
    store::set_flag(&pool, ws, source.contact.id, store::Flag::Blocked, true)
        .await
        .unwrap();
    tags::add(&pool, ws, &[target.id], &["vip".into()])
        .await
        .unwrap();
    tags::add(
        &pool,
        ws,
        &[source.contact.id],
        &["vip".into(), "math".into()],
    )
    .await
    .unwrap();

    // Equal normalized emails are suggested, never merged by themselves.
    let groups = merge::duplicates(&pool, ws, None, 10).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        (
            groups[0].reason,
            groups[0].value.as_str(),
            groups[0].ids.clone()
        ),
        (1, "ada@example.com", vec![target.id, source.contact.id])
    );
    assert!(
        merge::duplicates(&pool, Uuid::now_v7(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let request = |version, source_id, choices: &[(&str, Side)]| Merge {
        target: target.id,
        source: source_id,
        target_version: version,
        conflicts: Side::Target,
        choices: choices.iter().map(|(k, s)| (k.to_string(), *s)).collect(),
    };
    // Bad requests change nothing.
    assert!(matches!(
        merge::merge(&pool, ws, &request(1, source.contact.id, &[])).await,
        Err(Error::Precondition(f)) if f.field == "version" && f.reason.contains("version 2")
    ));
    assert!(matches!(
        merge::merge(&pool, ws, &request(2, target.id, &[])).await,
        Err(Error::Invalid(e)) if e.names("source_id")
    ));
    assert!(matches!(
        merge::merge(&pool, ws, &request(2, source.contact.id, &[("shoe", Side::Source)])).await,
        Err(Error::Invalid(e)) if e.names("field_choices")
    ));
    let foreign = store::create(&pool, Uuid::now_v7(), &Profile::default(), &HashMap::new())
        .await
        .unwrap();
    assert!(matches!(
        merge::merge(&pool, ws, &request(2, foreign.id, &[])).await,
        Err(Error::NotFound("contact"))
    ));
    assert_eq!(events(&pool, "contacts.contact.merged").await, 0);

    let merged = merge::merge(
        &pool,
        ws,
        &request(2, source.contact.id, &[("first_name", Side::Source)]),
    )
    .await
    .unwrap();
    assert_eq!(
        (merged.first_name.as_str(), merged.last_name.as_str()),
        ("Augusta", "Lovelace"),
        "first name chosen from the source, last name kept by the default rule"
    );
    assert_eq!(
        merged.phone, "+4915112345678",
        "a value only the source had"
    );
    assert_eq!(merged.custom.object()["plan"], "pro");
    assert_eq!(merged.custom.object()["note"], "n");
    assert!(merged.blocked);
    assert_eq!(merged.version, 3);
    let identities = store::identities(&pool, ws, &[target.id]).await.unwrap();
    assert_eq!(identities.len(), 2);
    assert_eq!(tag_names(&pool, ws, target.id).await, ["math", "vip"]);
    assert!(matches!(
        store::get(&pool, ws, source.contact.id).await,
        Err(Error::NotFound("contact"))
    ));
    assert!(matches!(
        store::restore(&pool, ws, source.contact.id).await,
        Err(Error::NotFound("contact"))
    ));
    assert_eq!(events(&pool, "contacts.contact.merged").await, 1);
    assert!(merged.last_interaction_at > target.last_interaction_at);
    assert_eq!(activity_out_of_step(&pool).await, 0);
    assert!(
        merge::duplicates(&pool, ws, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The person writing again on the source's identity reaches the target.
    let (again, created) = Resolver::new(pool.clone())
        .resolve(
            ws,
            &IdentityKey {
                channel_id: channel,
                external_id: "s",
                display_name: "",
            },
        )
        .await
        .unwrap();
    assert_eq!((again.contact.id, created), (target.id, false));
    assert_eq!(
        tags_out_of_step(&pool).await,
        0,
        "tag_ids follow contact_tags"
    );
}

fn mapping(pairs: &[(&str, &str)]) -> Vec<ism_proto::contacts::v1::ColumnMapping> {
    pairs
        .iter()
        .map(|(column, field)| ism_proto::contacts::v1::ColumnMapping {
            column: column.to_string(),
            field: field.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn imports_apply_each_valid_row_whole_and_report_the_others() {
    use ism_contacts::import;
    use ism_proto::contacts::v1::{ImportMatch, ImportSettings};
    let pool = fresh().await;
    let ws = Uuid::now_v7();
    fields::create(
        &pool,
        ws,
        &field("plan", FieldKind::Select, &["free", "pro"]),
    )
    .await
    .unwrap();
    fields::create(&pool, ws, &field("score", FieldKind::Number, &[]))
        .await
        .unwrap();
    fields::create(&pool, ws, &field("vip", FieldKind::Checkbox, &[]))
        .await
        .unwrap();
    fields::create(&pool, ws, &field("birthday", FieldKind::Date, &[]))
        .await
        .unwrap();
    let ada = Profile {
        email: "ada@example.com".into(),
        ..Profile::default()
    };
    let ada = store::create(
        &pool,
        ws,
        &ada,
        &HashMap::from([("plan".into(), text("free"))]),
    )
    .await
    .unwrap();
    let settings = ImportSettings {
        columns: mapping(&[
            ("Email", "email"),
            ("First", "first_name"),
            ("Phone", "phone"),
            ("Plan", "plan"),
            ("Score", "score"),
            ("VIP", "vip"),
            ("Tags", "tags"),
            ("Birthday", "birthday"),
        ]),
        r#match: ImportMatch::Email as i32,
        channel_id: String::new(),
    };
    let csv = "Email,First,Phone,Plan,Score,VIP,Tags,Birthday,Ignored\n\
        ADA@example.com,Ada,,pro,,,vip; math,,x\n\
        grace@navy.mil,Grace,+49 151 12345678,free,3.5,yes,vip;navy;Navy,1906-12-09,x\n\
        bad-email,X,,,,,,,x\n\
        alan@example.org,Alan,,gold,abc,,,,x\n\
        ann@example.org,Ann,,,,,,2023-02-30,x\n\
        grace@navy.mil,Dup,,,,,,,x\n\
        short,row\n";
    let outcome = import::run(&pool, ws, &settings, csv.as_bytes())
        .await
        .unwrap();
    assert_eq!(
        (
            outcome.rows,
            outcome.created,
            outcome.updated,
            outcome.failed
        ),
        (7, 1, 1, 5)
    );
    let report = String::from_utf8(outcome.error_report.clone()).unwrap();
    let lines: Vec<(&str, &str)> = report
        .lines()
        .map(|l| {
            let mut cells = l.splitn(3, ',');
            (cells.next().unwrap(), cells.next().unwrap())
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("row", "column"),
            ("4", "Email"),
            ("5", "Plan"),
            ("5", "Score"),
            ("6", "Birthday"),
            ("7", ""),
            ("8", ""),
        ],
        "{report}"
    );

    let ada = store::get(&pool, ws, ada.id).await.unwrap();
    assert_eq!((ada.first_name.as_str(), ada.version), ("Ada", 2));
    assert_eq!(ada.custom.object()["plan"], "pro");
    assert_eq!(tag_names(&pool, ws, ada.id).await, ["math", "vip"]);
    let everyone = store::list(&pool, ws, None, 100).await.unwrap();
    assert_eq!(everyone.len(), 2, "rejected rows created nothing");
    let grace = everyone.iter().find(|c| c.first_name == "Grace").unwrap();
    assert_eq!(grace.phone, "+4915112345678");
    assert_eq!(grace.custom.object()["score"], 3.5);
    assert_eq!(grace.custom.object()["vip"], true);
    assert_eq!(grace.custom.object()["birthday"], "1906-12-09");
    // A Tag named twice in other letter cases is placed once.
    let grace_tags = tag_names(&pool, ws, grace.id).await;
    assert_eq!(grace_tags.len(), 2, "{grace_tags:?}");
    assert!(grace_tags.contains(&"vip".to_owned()), "{grace_tags:?}");
    assert_eq!(events(&pool, "contacts.contact.created").await, 2);
    assert_eq!(events(&pool, "contacts.contact.updated").await, 1);
    assert_eq!(events(&pool, "contacts.contact.field_changed").await, 1);
    assert_eq!(events(&pool, "contacts.tag.added").await, 4);

    let again = import::get(&pool, ws, outcome.id).await.unwrap();
    assert_eq!(again.error_report, outcome.error_report);
    assert!(matches!(
        import::get(&pool, Uuid::now_v7(), outcome.id).await,
        Err(Error::NotFound("import"))
    ));

    // A key shared by two Contacts is ambiguous: the row is rejected, nothing merged.
    let twin = Profile {
        email: "grace@navy.mil".into(),
        ..Profile::default()
    };
    store::create(&pool, ws, &twin, &HashMap::new())
        .await
        .unwrap();
    let outcome = import::run(
        &pool,
        ws,
        &settings,
        b"Email,First,Phone,Plan,Score,VIP,Tags,Birthday\ngrace@navy.mil,G,,,,,ghost,\n",
    )
    .await
    .unwrap();
    assert_eq!((outcome.updated, outcome.failed), (0, 1));
    assert!(
        tags::list(&pool, ws)
            .await
            .unwrap()
            .iter()
            .all(|(n, _)| n != "ghost"),
        "a refused row's Tags are not created"
    );
    assert!(
        String::from_utf8(outcome.error_report)
            .unwrap()
            .contains("matches 2 Contacts")
    );

    // Bad settings fail the whole import before anything is read.
    let bad = [
        (
            mapping(&[("Email", "shoe_size")]),
            ImportMatch::Email,
            "settings.columns",
        ),
        (
            mapping(&[("First", "first_name")]),
            ImportMatch::Email,
            "settings.match",
        ),
        (
            mapping(&[("Email", "email")]),
            ImportMatch::Unspecified,
            "settings.match",
        ),
        (
            mapping(&[("Mail", "email")]),
            ImportMatch::Email,
            "settings.columns",
        ),
        (
            mapping(&[("Email", "email"), ("First", "email")]),
            ImportMatch::Email,
            "settings.columns",
        ),
        (
            mapping(&[("Email", "external_id")]),
            ImportMatch::ExternalId,
            "settings.channel_id",
        ),
    ];
    for (columns, by, field) in bad {
        let settings = ImportSettings {
            columns,
            r#match: by as i32,
            channel_id: String::new(),
        };
        let err = import::run(&pool, ws, &settings, b"Email,First\na@b.c,A\n")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(e) if e.names(field)),
            "{err:?}"
        );
    }
    assert_eq!(
        tags_out_of_step(&pool).await,
        0,
        "tag_ids follow contact_tags"
    );
}

#[tokio::test]
async fn imports_by_external_id_create_identities_that_resolve_later() {
    use ism_contacts::import;
    use ism_proto::contacts::v1::{ImportMatch, ImportSettings};
    let pool = fresh().await;
    let (ws, channel) = (Uuid::now_v7(), Uuid::now_v7());
    let settings = ImportSettings {
        columns: mapping(&[("id", "external_id"), ("name", "first_name")]),
        r#match: ImportMatch::ExternalId as i32,
        channel_id: channel.to_string(),
    };
    let first = import::run(&pool, ws, &settings, b"id,name\nu1,Ada\nu2,Grace\n")
        .await
        .unwrap();
    assert_eq!((first.created, first.updated, first.failed), (2, 0, 0));
    let second = import::run(&pool, ws, &settings, b"id,name\nu1,Augusta\nu3,Alan\n")
        .await
        .unwrap();
    assert_eq!((second.created, second.updated, second.failed), (1, 1, 0));
    let key = IdentityKey {
        channel_id: channel,
        external_id: "u1",
        display_name: "",
    };
    let (u1, created) = Resolver::new(pool.clone()).resolve(ws, &key).await.unwrap();
    assert_eq!(
        (u1.contact.first_name.as_str(), created),
        ("Augusta", false)
    );
    assert_eq!(store::list(&pool, ws, None, 100).await.unwrap().len(), 3);
    assert_eq!(
        tags_out_of_step(&pool).await,
        0,
        "tag_ids follow contact_tags"
    );
}

#[tokio::test]
async fn a_call_that_finds_every_connection_busy_is_unavailable_not_internal() {
    let pool = fresh().await;
    let busy = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(2))
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let held = busy.acquire().await.unwrap();

    let err = store::get(&busy, Uuid::now_v7(), Uuid::now_v7())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::Unavailable);
    drop(held);
    busy.close().await;
}
