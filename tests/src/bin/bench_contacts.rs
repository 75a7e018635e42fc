//! The contacts service with 1,000,000 Contacts in one Workspace (20 custom fields, 50
//! Tags): filter pages, total counts, streaming a 100,000-Contact segment, CSV import and
//! ResolveContact, each through the real gRPC server beside plain Postgres running the
//! same query shape on the same database in the same run.
//!
//! Boots `ism serve workspaces` and `ism serve contacts` like the end-to-end tests do (set
//! `ISM_BIN` to bench a release build) and loads the Contacts with bulk SQL;
//! `make bench` runs it through `scripts/bench.sh`.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::TryStreamExt;
use ism_e2e::{Platform, Tenant, authed};
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::contacts::v1::field_value::Kind;
use ism_proto::contacts::v1::*;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tonic::transport::Channel;
use uuid::Uuid;

// The consumer of a streamed segment is the broadcasts service, which runs in the `ism`
// binary with this allocator; decoding 100,000 Contacts here is measured as it does it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CONTACTS: i64 = 1_000_000;
/// Contacts inserted per statement while loading.
const LOAD_BATCH: i64 = 100_000;
const TAGS: i64 = 50;
/// Select options of the `plan` field; a filter on one matches a fifth of the Contacts.
const PLANS: [&str; 5] = ["free", "basic", "pro", "team", "enterprise"];
/// First names; five of forty start with "an", so a name prefix matches a few percent.
const FIRST_NAMES: [&str; 40] = [
    "Ada", "Alan", "Ann", "Anna", "Andrew", "Angela", "Anton", "Barbara", "Bob", "Carla", "Chen",
    "Dana", "David", "Elena", "Emil", "Fatima", "Frank", "Grace", "Hugo", "Ines", "Ivan", "Julia",
    "Kenji", "Laura", "Linus", "Maria", "Marco", "Nadia", "Omar", "Paula", "Priya", "Quinn",
    "Rosa", "Sven", "Tara", "Ugo", "Vera", "Wei", "Yara", "Zoe",
];
/// Name prefixes the page and count runs rotate through.
const PREFIXES: [&str; 4] = ["ann", "and", "ang", "ant"];
/// Timed runs of the page and count measurements, after as many warm-up runs.
const RUNS: usize = 200;
/// `score < SEGMENT_SCORE` matches 10% of the Contacts: the 100,000-Contact segment.
const SEGMENT_SCORE: f64 = 100.0;
const IMPORT_ROWS: usize = 100_000;
/// Bytes per ImportContacts data message.
const IMPORT_CHUNK: usize = 1 << 20;
const RESOLVE_CLIENTS: usize = 32;
const RESOLVE_FOR: Duration = Duration::from_secs(5);

const AIM_PAGE_P99_MS: f64 = 50.0;
const AIM_COUNT_MS: f64 = 200.0;
const AIM_STREAM_PER_S: f64 = 50_000.0;
const AIM_IMPORT_PER_S: f64 = 20_000.0;
const AIM_RESOLVE_PER_S: f64 = 3_000.0;

/// The columns the service reads for a Contact.
const COLUMNS: &str = "c.id, c.workspace_id, c.first_name, c.last_name, c.email, c.phone, \
     c.language, c.country, c.timezone, c.picture_url, c.last_interaction_at, c.blocked, c.tag_ids, \
     c.custom, c.version, c.created_at, c.updated_at, c.deleted_at";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut platform = Platform::new();
    platform.set("ISM_TELEMETRY__LOG_FILTER", "warn");
    // The harness shrinks pools so many tests fit on one Postgres; bench what ships.
    platform.set("ISM_DATABASE__MAX_CONNECTIONS", "10");
    platform.set("ISM_RATE_LIMIT__ENABLED", "false");
    let tenant = platform.bootstrap("http://127.0.0.1:9/unused");
    platform.spawn("workspaces");
    platform.spawn("contacts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(platform.serving("workspaces").await && platform.serving("contacts").await) {
        anyhow::ensure!(Instant::now() < deadline, "platform not serving in 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect(&format!(
            "postgres://ism:ism@127.0.0.1:5432/ism_{}_contacts",
            platform.id
        ))
        .await?;
    let workspace: Uuid = tenant.workspace_id.parse()?;
    let channel: Uuid = tenant.channel_id.parse()?;
    let mut client = ContactServiceClient::new(platform.channel("contacts").connect().await?)
        .max_decoding_message_size(64 << 20);

    define_fields(&mut client, &platform.token(&tenant).await).await?;
    let started = Instant::now();
    load(&pool, workspace, channel).await?;
    eprintln!(
        "loaded {CONTACTS} contacts, {TAGS} tags and their identities in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let tags: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tags WHERE workspace_id = $1 ORDER BY substr(name, 5)::int",
    )
    .bind(workspace)
    .fetch_all(&pool)
    .await?;

    let token = platform.token(&tenant).await;
    eprintln!("filter pages");
    let page = latencies(RUNS, |i| {
        let mut client = client.clone();
        let request = SearchContactsRequest {
            audience: Some(search_contacts_request::Audience::Filter(shape(i))),
            skip_count: true,
            ..Default::default()
        };
        let token = token.clone();
        async move {
            let page = client.search_contacts(authed(&token, request)).await?;
            anyhow::ensure!(!page.into_inner().contacts.is_empty(), "an empty page");
            Ok(())
        }
    })
    .await?;
    let plain_page = latencies(RUNS, |i| plain_page(&pool, workspace, &tags, i)).await?;

    eprintln!("filter counts");
    let count = latencies(RUNS / 2, |i| {
        let mut client = client.clone();
        let request = SearchContactsRequest {
            audience: Some(search_contacts_request::Audience::Filter(shape(i))),
            ..Default::default()
        };
        let token = token.clone();
        async move {
            let page = client.search_contacts(authed(&token, request)).await?;
            anyhow::ensure!(page.into_inner().total_count > 0, "nothing counted");
            Ok(())
        }
    })
    .await?;
    let plain_count = latencies(RUNS / 2, |i| plain_count(&pool, workspace, &tags, i)).await?;

    eprintln!("streaming the segment");
    let token = platform.token(&tenant).await;
    let (streamed, stream_rate) = stream(&mut client, &token).await?;
    let (plain_streamed, plain_stream_rate) = plain_stream(&pool, workspace).await?;
    anyhow::ensure!(
        streamed == plain_streamed,
        "streamed {streamed} contacts, plain Postgres {plain_streamed}"
    );

    eprintln!("importing {IMPORT_ROWS} rows");
    let token = platform.token(&tenant).await;
    let import_rate = import(&mut client, &token, "grpc", false).await?;
    let plain_import_rate = plain_import(&pool, workspace, "plain", None).await?;
    eprintln!("importing {IMPORT_ROWS} rows with two tags each");
    let tagged_rate = import(&mut client, &token, "grpc-tagged", true).await?;
    let tagged: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts c WHERE workspace_id = $1 AND email LIKE 'grpc-tagged%'
           AND cardinality(tag_ids) = 2
           AND (SELECT count(*) FROM contact_tags ct WHERE ct.contact_id = c.id) = 2",
    )
    .bind(workspace)
    .fetch_one(&pool)
    .await?;
    anyhow::ensure!(
        tagged == IMPORT_ROWS as i64,
        "{tagged} imported contacts hold their two tags"
    );
    let plain_tagged_rate = plain_import(&pool, workspace, "plain-tagged", Some(&tags)).await?;

    eprintln!("resolving existing identities");
    let token = platform.token(&tenant).await;
    let resolve_rate = resolve(&platform, &tenant, &token).await?;
    let plain_resolve_rate = plain_resolve(&pool, workspace, channel).await?;

    println!();
    println!(
        "contacts at {CONTACTS} Contacts, {} custom fields, {TAGS} tags (this machine, one run)",
        FIELDS.len()
    );
    println!(
        "{:<52} {:>12} {:>16} {:>12}",
        "measure", "ism gRPC", "plain Postgres", "aim"
    );
    let row = |what: &str, ism: f64, plain: f64, aim: String| {
        println!("{what:<52} {ism:>12.1} {plain:>16.1} {aim:>12}");
    };
    row(
        "filter tag+field+name prefix, first page p99 (ms)",
        percentile(&page, 0.99),
        percentile(&plain_page, 0.99),
        format!("< {AIM_PAGE_P99_MS}"),
    );
    row(
        "  the same, p50 (ms)",
        percentile(&page, 0.50),
        percentile(&plain_page, 0.50),
        String::new(),
    );
    row(
        "total count of that filter, p99 (ms)",
        percentile(&count, 0.99),
        percentile(&plain_count, 0.99),
        format!("< {AIM_COUNT_MS}"),
    );
    row(
        &format!("streaming a {streamed}-contact segment (contacts/s)"),
        stream_rate,
        plain_stream_rate,
        format!(">= {AIM_STREAM_PER_S}"),
    );
    row(
        &format!("CSV import of {IMPORT_ROWS} rows (rows/s)"),
        import_rate,
        plain_import_rate,
        format!(">= {AIM_IMPORT_PER_S}"),
    );
    row(
        "  the same with two tags a row (rows/s)",
        tagged_rate,
        plain_tagged_rate,
        String::new(),
    );
    row(
        "ResolveContact, existing identities (calls/s)",
        resolve_rate,
        plain_resolve_rate,
        format!(">= {AIM_RESOLVE_PER_S}"),
    );
    println!(
        "plain Postgres runs the same SQL shape (page: tag array overlap, JSONB containment, \
         name prefixes and range, keyset order; stream: the same filter in id order; import: one unnest \
         insert per 5,000 rows, then one of their tags; resolve: the identity lookup, interaction times being written in \
         bulk beside the calls) without the service's validation, rendering and events."
    );
    Ok(())
}

/// The 20 custom fields: key and type.
const FIELDS: [(&str, FieldType); 20] = [
    ("plan", FieldType::Select),
    ("score", FieldType::Number),
    ("signup", FieldType::Date),
    ("vip", FieldType::Checkbox),
    ("f05", FieldType::Text),
    ("f06", FieldType::Text),
    ("f07", FieldType::Text),
    ("f08", FieldType::Text),
    ("f09", FieldType::Text),
    ("f10", FieldType::Text),
    ("f11", FieldType::Text),
    ("f12", FieldType::Text),
    ("f13", FieldType::Text),
    ("f14", FieldType::Text),
    ("f15", FieldType::Text),
    ("f16", FieldType::Text),
    ("f17", FieldType::Text),
    ("f18", FieldType::Text),
    ("f19", FieldType::Text),
    ("f20", FieldType::Text),
];

async fn define_fields(
    client: &mut ContactServiceClient<Channel>,
    token: &str,
) -> anyhow::Result<()> {
    for (key, kind) in FIELDS {
        let options = if kind == FieldType::Select {
            PLANS.iter().map(|p| p.to_string()).collect()
        } else {
            Vec::new()
        };
        let field = ContactField {
            key: key.into(),
            label: key.to_uppercase(),
            r#type: kind as i32,
            options,
            ..Default::default()
        };
        client
            .create_contact_field(authed(
                token,
                CreateContactFieldRequest { field: Some(field) },
            ))
            .await
            .with_context(|| format!("field {key}"))?;
    }
    Ok(())
}

/// Bulk-loads the Contacts, two Tags each and one identity each, then analyzes. The
/// secondary indexes of `contacts` are dropped for the load and rebuilt from their own
/// definitions afterwards, which is several times faster than maintaining them row by row.
async fn load(pool: &PgPool, workspace: Uuid, channel: Uuid) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
         WHERE indrelid = 'contacts'::regclass AND NOT indisprimary",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "INSERT INTO tags (id, workspace_id, name)
         SELECT gen_random_uuid(), $1, 'tag-' || g FROM generate_series(1, $2) g",
    )
    .bind(workspace)
    .bind(TAGS)
    .execute(pool)
    .await?;
    let tag_ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM tags WHERE workspace_id = $1 ORDER BY substr(name, 5)::int",
    )
    .bind(workspace)
    .fetch_all(&mut *conn)
    .await?;
    let first_names: Vec<String> = FIRST_NAMES.iter().map(|s| s.to_string()).collect();
    let plans: Vec<String> = PLANS.iter().map(|s| s.to_string()).collect();
    let texts: String = (5..=20)
        .map(|n| format!(", 'f{n:02}', 'value ' || (i % {})", 10 + n))
        .collect();
    // Ids are UUIDv7-shaped (time-ordered), as the service makes them.
    let insert = format!(
        "INSERT INTO contacts (id, workspace_id, first_name, last_name, email, phone, custom,
             created_at, updated_at, last_interaction_at, tag_ids)
         SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(r, 16, 3) || substr(r, 19))::uuid,
             $1, fname, lname, lower(fname || '.' || lname || i || '@example.com'),
             '+4915' || (100000000 + i), custom, at, at, at + interval '1 hour',
             CASE WHEN t1 = t2 THEN ARRAY[t1] ELSE ARRAY[t1, t2] END
         FROM (
             SELECT i,
                 lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint - $2 + i), 12, '0') AS h,
                 gen_random_uuid()::text AS r,
                 ($4::text[])[1 + (i * 7919) % 40] AS fname,
                 'Family' || ((i * 31) % 997) AS lname,
                 jsonb_build_object('plan', ($5::text[])[1 + (i / 40) % 5], 'score', i % 1000,
                     'signup', to_char(date '2020-01-01' + (i % 1500)::int, 'YYYY-MM-DD'),
                     'vip', i % 7 = 0 {texts}) AS custom,
                 now() - ($2 - i) * interval '1 second' AS at,
                 ($6::uuid[])[1 + abs(hashtext(i || 'a')) % {TAGS}] AS t1,
                 ($6::uuid[])[1 + abs(hashtext(i || 'b')) % {TAGS}] AS t2
             FROM generate_series($3::bigint, $3 + {LOAD_BATCH} - 1) AS i
         ) g"
    );
    let mut done = 0;
    while done < CONTACTS {
        sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
            .bind(workspace)
            .bind(CONTACTS)
            .bind(done + 1)
            .bind(&first_names)
            .bind(&plans)
            .bind(&tag_ids)
            .execute(&mut *conn)
            .await?;
        done += LOAD_BATCH;
        eprintln!("  {done} contacts");
    }
    sqlx::query("SET maintenance_work_mem = '512MB'")
        .execute(&mut *conn)
        .await?;
    for (name, definition) in &indexes {
        let started = Instant::now();
        sqlx::query(sqlx::AssertSqlSafe(definition.clone()))
            .execute(&mut *conn)
            .await?;
        eprintln!("  index {name} in {:.1} s", started.elapsed().as_secs_f64());
    }
    // Each Contact's tag_ids were written with it; the trigger that keeps them in step
    // with contact_tags would only rewrite the same arrays.
    for statement in [
        "ALTER TABLE contact_tags DISABLE TRIGGER contact_tags_added",
        "INSERT INTO contact_tags (workspace_id, tag_id, contact_id)
         SELECT workspace_id, t, id FROM contacts, unnest(tag_ids) AS t WHERE workspace_id = $1",
        "ALTER TABLE contact_tags ENABLE TRIGGER contact_tags_added",
    ] {
        let query = sqlx::query(statement);
        let query = if statement.contains("$1") {
            query.bind(workspace)
        } else {
            query
        };
        query.execute(&mut *conn).await?;
    }
    drop(conn);
    sqlx::query(
        "INSERT INTO channel_identities (workspace_id, channel_id, external_id, contact_id)
         SELECT $1, $2, phone, id FROM contacts WHERE workspace_id = $1",
    )
    .bind(workspace)
    .bind(channel)
    .execute(pool)
    .await?;
    // A steady state: vacuumed and analyzed, so no autovacuum of the fresh rows runs
    // during the measurements.
    sqlx::query(
        "VACUUM ANALYZE contacts, contact_activity, contact_tags, channel_identities, tags",
    )
    .execute(pool)
    .await?;
    Ok(())
}

fn text(s: &str) -> FieldValue {
    FieldValue {
        kind: Some(Kind::Text(s.into())),
    }
}

fn condition(kind: condition::Kind) -> Condition {
    Condition { kind: Some(kind) }
}

/// Run `i`'s filter: a Tag, a plan and a name prefix, rotating through their values.
fn shape(i: usize) -> Filter {
    Filter {
        groups: vec![ConditionGroup {
            conditions: vec![
                condition(condition::Kind::Tags(TagCondition {
                    operator: TagOperator::HasAny as i32,
                    tags: vec![format!("tag-{}", 1 + i % TAGS as usize)],
                })),
                condition(condition::Kind::Field(FieldCondition {
                    field: "plan".into(),
                    operator: FieldOperator::Is as i32,
                    values: vec![text(PLANS[i % PLANS.len()])],
                })),
                condition(condition::Kind::Field(FieldCondition {
                    field: "name".into(),
                    operator: FieldOperator::StartsWith as i32,
                    values: vec![text(PREFIXES[i % PREFIXES.len()])],
                })),
            ],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The WHERE of run `i`'s filter in plain SQL, binding $1 workspace, $2 tag ids, $3 the
/// containment document, $4 the LIKE pattern, $5 and $6 the name range, $7 the name's
/// indexed prefixes.
const PLAIN_WHERE: &str = "c.workspace_id = $1 AND c.deleted_at IS NULL
     AND c.tag_ids && $2
     AND c.custom @> $3
     AND c.name_key LIKE $4 AND c.name_prefixes @> $7 AND c.name_key >= $5 AND c.name_key < $6";

/// The binds of [`PLAIN_WHERE`] for run `i`.
struct PlainBinds {
    tags: Vec<Uuid>,
    doc: serde_json::Value,
    pattern: String,
    from: String,
    to: String,
    prefixes: Vec<String>,
}

fn plain_binds(tags: &[Uuid], i: usize) -> PlainBinds {
    let prefix = PREFIXES[i % PREFIXES.len()];
    let mut end = prefix.to_owned();
    if let Some(last) = end.pop() {
        end.push(char::from_u32(last as u32 + 1).unwrap_or(last));
    }
    PlainBinds {
        tags: vec![tags[i % tags.len()]],
        doc: serde_json::json!({ "plan": PLANS[i % PLANS.len()] }),
        pattern: format!("{prefix}%"),
        from: prefix.to_owned(),
        to: end,
        prefixes: vec![prefix.chars().take(3).collect()],
    }
}

impl PlainBinds {
    fn bind<'q>(
        self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
        workspace: Uuid,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(workspace)
            .bind(self.tags)
            .bind(self.doc)
            .bind(self.pattern)
            .bind(self.from)
            .bind(self.to)
            .bind(self.prefixes)
    }
}

async fn plain_page(pool: &PgPool, workspace: Uuid, tags: &[Uuid], i: usize) -> anyhow::Result<()> {
    let query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM contacts c WHERE {PLAIN_WHERE}
         ORDER BY c.created_at DESC, c.id DESC LIMIT 51"
    )));
    let rows = plain_binds(tags, i)
        .bind(query, workspace)
        .fetch_all(pool)
        .await?;
    anyhow::ensure!(!rows.is_empty(), "an empty page");
    Ok(())
}

async fn plain_count(
    pool: &PgPool,
    workspace: Uuid,
    tags: &[Uuid],
    i: usize,
) -> anyhow::Result<()> {
    let query = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM contacts c WHERE {PLAIN_WHERE}"
    )));
    let n: i64 = sqlx::Row::try_get(
        &plain_binds(tags, i)
            .bind(query, workspace)
            .fetch_one(pool)
            .await?,
        0,
    )?;
    anyhow::ensure!(n > 0, "nothing counted");
    Ok(())
}

/// Milliseconds of `runs` sequential calls, after as many untimed warm-up calls.
async fn latencies<F, Fut>(runs: usize, mut call: F) -> anyhow::Result<Vec<f64>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    for i in 0..runs {
        call(i).await?;
    }
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let started = Instant::now();
        call(i).await?;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(out)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn segment() -> Filter {
    Filter {
        groups: vec![ConditionGroup {
            conditions: vec![condition(condition::Kind::Field(FieldCondition {
                field: "score".into(),
                operator: FieldOperator::LessThan as i32,
                values: vec![FieldValue {
                    kind: Some(Kind::Number(SEGMENT_SCORE)),
                }],
            }))],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Streams the segment through StreamContacts: how many, and how many per second.
async fn stream(
    client: &mut ContactServiceClient<Channel>,
    token: &str,
) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let request = StreamContactsRequest {
        audience: Some(stream_contacts_request::Audience::Filter(segment())),
        batch_size: 1000,
        ..Default::default()
    };
    let mut stream = client
        .stream_contacts(authed(token, request))
        .await?
        .into_inner();
    let mut n = 0u64;
    while let Some(batch) = stream.message().await? {
        n += batch.contacts.len() as u64;
    }
    Ok((n, n as f64 / started.elapsed().as_secs_f64()))
}

/// The same segment read with one query in id order, row by row.
async fn plain_stream(pool: &PgPool, workspace: Uuid) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM contacts c WHERE c.workspace_id = $1 AND c.deleted_at IS NULL
           AND (CASE WHEN jsonb_typeof(c.custom -> 'score') = 'number'
                THEN (c.custom ->> 'score')::float8 END) < $2
         ORDER BY c.id"
    )))
    .bind(workspace)
    .bind(SEGMENT_SCORE)
    .fetch(pool);
    let mut n = 0u64;
    while rows.try_next().await?.is_some() {
        n += 1;
    }
    Ok((n, n as f64 / started.elapsed().as_secs_f64()))
}

/// One row of the import file.
fn import_row(prefix: &str, i: usize) -> (String, String, String, String, f64) {
    (
        format!("{prefix}{i}@import.example.com"),
        FIRST_NAMES[i % FIRST_NAMES.len()].to_owned(),
        format!("Imported{}", i % 1000),
        PLANS[i % PLANS.len()].to_owned(),
        (i % 1000) as f64,
    )
}

/// The two tags of import row `i`: indexes into the 50, never equal.
fn import_tags(i: usize) -> [usize; 2] {
    let first = i % TAGS as usize;
    [first, (first + 1 + i / TAGS as usize % 49) % TAGS as usize]
}

/// Imports new Contacts by email through ImportContacts, with a tags column when
/// `tagged`: rows per second.
async fn import(
    client: &mut ContactServiceClient<Channel>,
    token: &str,
    prefix: &str,
    tagged: bool,
) -> anyhow::Result<f64> {
    use import_contacts_request::Part;
    let mut columns = vec!["email", "first_name", "last_name", "plan", "score"];
    if tagged {
        columns.push("tags");
    }
    let mut csv = columns.join(",") + "\n";
    for i in 0..IMPORT_ROWS {
        let (email, first, last, plan, score) = import_row(prefix, i);
        csv.push_str(&format!("{email},{first},{last},{plan},{score}"));
        if tagged {
            let [a, b] = import_tags(i);
            csv.push_str(&format!(",tag-{};tag-{}", a + 1, b + 1));
        }
        csv.push('\n');
    }
    let settings = ImportSettings {
        columns: columns
            .iter()
            .map(|c| ColumnMapping {
                column: c.to_string(),
                field: c.to_string(),
            })
            .collect(),
        r#match: ImportMatch::Email as i32,
        channel_id: String::new(),
    };
    let mut parts = vec![ImportContactsRequest {
        part: Some(Part::Settings(settings)),
    }];
    parts.extend(
        csv.as_bytes()
            .chunks(IMPORT_CHUNK)
            .map(|chunk| ImportContactsRequest {
                part: Some(Part::Data(chunk.to_vec())),
            }),
    );
    let started = Instant::now();
    let outcome = client
        .import_contacts(authed(token, futures::stream::iter(parts)))
        .await?
        .into_inner()
        .import
        .context("an import outcome")?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        outcome.created == IMPORT_ROWS as i64,
        "import created {} of {IMPORT_ROWS} ({} failed)",
        outcome.created,
        outcome.failed
    );
    Ok(IMPORT_ROWS as f64 / elapsed)
}

/// The same rows inserted with one unnest statement per 5,000 rows, in transactions; with
/// `tags` (the 50 tag ids), each row's two tags in its `tag_ids` and `contact_tags`.
async fn plain_import(
    pool: &PgPool,
    workspace: Uuid,
    prefix: &str,
    tags: Option<&[Uuid]>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let rows: Vec<_> = (0..IMPORT_ROWS).map(|i| import_row(prefix, i)).collect();
    for (n, chunk) in rows.chunks(5000).enumerate() {
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let emails: Vec<&str> = chunk.iter().map(|r| r.0.as_str()).collect();
        let firsts: Vec<&str> = chunk.iter().map(|r| r.1.as_str()).collect();
        let lasts: Vec<&str> = chunk.iter().map(|r| r.2.as_str()).collect();
        let custom: Vec<serde_json::Value> = chunk
            .iter()
            .map(|r| serde_json::json!({ "plan": r.3, "score": r.4 }))
            .collect();
        let placed: Vec<[Uuid; 2]> = match tags {
            Some(t) => (0..chunk.len())
                .map(|k| import_tags(n * 5000 + k).map(|i| t[i]))
                .collect(),
            None => Vec::new(),
        };
        let tag_ids: Vec<String> = (0..chunk.len())
            .map(|k| {
                placed
                    .get(k)
                    .map_or("{}".into(), |[a, b]| format!("{{{a},{b}}}"))
            })
            .collect();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO contacts (id, workspace_id, first_name, last_name, email, custom, tag_ids)
             SELECT id, $1, f, l, e, cu, tg::uuid[]
             FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[])
                 AS r(id, e, f, l, cu, tg)",
        )
        .bind(workspace)
        .bind(&ids)
        .bind(&emails)
        .bind(&firsts)
        .bind(&lasts)
        .bind(&custom)
        .bind(&tag_ids)
        .execute(&mut *tx)
        .await?;
        if !placed.is_empty() {
            let contacts: Vec<Uuid> = ids.iter().flat_map(|id| [*id, *id]).collect();
            let tags: Vec<Uuid> = placed.concat();
            sqlx::query(
                "INSERT INTO contact_tags (workspace_id, contact_id, tag_id)
                 SELECT $1, c, t FROM unnest($2::uuid[], $3::uuid[]) AS p(c, t)",
            )
            .bind(workspace)
            .bind(&contacts)
            .bind(&tags)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    Ok(IMPORT_ROWS as f64 / started.elapsed().as_secs_f64())
}

/// A well-spread pseudo-random contact number in 1..=CONTACTS.
fn pick(seed: u64) -> i64 {
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29);
    (x % CONTACTS as u64) as i64 + 1
}

/// ResolveContact of existing identities from concurrent clients: calls per second.
async fn resolve(platform: &Platform, tenant: &Tenant, token: &str) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for c in 0..RESOLVE_CLIENTS {
        let mut client = ContactServiceClient::new(platform.channel("contacts").connect().await?);
        let (token, channel, done) = (token.to_owned(), tenant.channel_id.clone(), done.clone());
        tasks.spawn(async move {
            let mut n = c as u64 * 1_000_003;
            while started.elapsed() < RESOLVE_FOR {
                n += 1;
                let request = ResolveContactRequest {
                    channel_id: channel.clone(),
                    external_id: format!("+4915{}", 100_000_000 + pick(n)),
                    display_name: String::new(),
                };
                let resolved = client.resolve_contact(authed(&token, request)).await?;
                anyhow::ensure!(!resolved.into_inner().created, "an identity was missing");
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// The same identity lookup, from as many concurrent tasks (the service writes
/// interaction times in bulk, beside its calls).
async fn plain_resolve(pool: &PgPool, workspace: Uuid, channel: Uuid) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for c in 0..RESOLVE_CLIENTS {
        let (pool, done) = (pool.clone(), done.clone());
        tasks.spawn(async move {
            let mut n = c as u64 * 1_000_003 + 7;
            while started.elapsed() < RESOLVE_FOR {
                n += 1;
                let external_id = format!("+4915{}", 100_000_000 + pick(n));
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM channel_identities i JOIN contacts c ON c.id = i.contact_id
                     WHERE i.workspace_id = $1 AND i.channel_id = $2 AND i.external_id = $3
                       AND c.deleted_at IS NULL"
                )))
                .bind(workspace)
                .bind(channel)
                .bind(&external_id)
                .fetch_optional(&pool)
                .await?
                .context("an identity was missing")?;
                let _: Uuid = sqlx::Row::try_get(&row, "id")?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}
