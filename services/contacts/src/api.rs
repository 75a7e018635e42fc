//! The ContactService gRPC API: checks the caller and the request, calls the store.
use ism_platform::auth::{Caller, Role};
use ism_platform::convert::{storable, timestamp, uuid};
use ism_platform::db;
use ism_platform::error::FieldError;
use ism_platform::paging;
use ism_platform::peer::Peer;
use ism_proto::contacts::v1 as pb;
use ism_proto::contacts::v1::contact_service_server::ContactService;
use ism_proto::gateway::v1::GetChannelRequest;
use ism_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use std::pin::Pin;
use std::sync::Arc;
use tonic::transport::Channel;

use futures::Stream;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::Error;
use crate::export::Exporter;
use crate::fields::{self, FieldKind, NewField, Schema};
use crate::filter::{self, Filter};
use crate::import;
use crate::interactions::Interactions;
use crate::lifecycle::{self, Stage};
use crate::matching;
use crate::merge::{self, Merge, Side};
use crate::profile::Profile;
use crate::resolver::Resolver;
use crate::search::{self, Sort};
use crate::segments;
use crate::store::{self, Contact, Flag, Full, IdentityKey, Patch, TagNames};
use crate::tags;

#[derive(Clone)]
pub struct Api {
    pub pool: PgPool,
    /// ResolveContact's batched identity reads.
    pub resolver: Resolver,
    /// Interaction times of resolved Contacts, written in bulk.
    pub interactions: Arc<Interactions>,
    /// The gateway, which knows each Workspace's channels.
    pub gateway: Peer<GatewayServiceClient<Channel>>,
}

/// A server stream of `T`, fed by a reader task through a small channel so the database
/// work of the next batches overlaps the sending of this one.
type Feed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A batch being rendered by a task of its own, or why the reader stopped.
type Rendering<T> = Result<JoinHandle<Result<T, Error>>, Error>;

/// Batches of a stream being rendered ahead of the one being sent.
const RENDERING_AHEAD: usize = 3;

/// The messages of the batches `rx` renders, in order; ends after the first error.
fn feed<T: Send + 'static>(rx: mpsc::Receiver<Rendering<T>>) -> Feed<T> {
    Box::pin(futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        let message = match rx.recv().await? {
            Ok(task) => task
                .await
                .unwrap_or_else(|e| Err(Error::Unexpected(e.into()))),
            Err(e) => Err(e),
        };
        let rx = message.is_ok().then_some(rx);
        Some((message.map_err(Status::from), rx))
    }))
}

/// The caller's Workspace once its role allows `role`.
fn workspace<T>(request: &Request<T>, role: Role) -> Result<Uuid, Status> {
    let caller = Caller::of(request)?;
    caller.require(role)?;
    caller.workspace_id()
}

fn ids(field: &'static str, values: &[String]) -> Result<Vec<Uuid>, Error> {
    Ok(values
        .iter()
        .map(|v| uuid(field, v))
        .collect::<Result<_, _>>()?)
}

impl Api {
    /// The API form of `contacts`, with identities, tags and custom values, in order.
    async fn render(
        &self,
        workspace_id: Uuid,
        contacts: Vec<Contact>,
    ) -> Result<Vec<pb::Contact>, Error> {
        let schema = self.schema(workspace_id).await?;
        self.render_with(workspace_id, &schema, &TagNames::default(), contacts)
            .await
    }

    /// The Workspace's field definitions.
    async fn schema(&self, workspace_id: Uuid) -> Result<Schema, Error> {
        fields::schema(&mut *db::acquire(&self.pool).await?, workspace_id).await
    }

    /// [`Self::render`] with the Workspace's field definitions already at hand, and the
    /// Tag names read so far.
    async fn render_with(
        &self,
        workspace_id: Uuid,
        schema: &Schema,
        names: &TagNames,
        contacts: Vec<Contact>,
    ) -> Result<Vec<pb::Contact>, Error> {
        Ok(
            store::complete(&self.pool, workspace_id, schema, names, contacts)
                .await?
                .into_iter()
                .map(to_proto)
                .collect(),
        )
    }

    /// The checked Filter of a request's audience (its own Filter, a Segment's, or none:
    /// every Contact), with the field definitions it was checked against, for rendering
    /// what it matches. A Segment whose Filter no longer fits the fields (one was deleted
    /// since) is FAILED_PRECONDITION.
    async fn audience(
        &self,
        workspace_id: Uuid,
        filter: Option<&pb::Filter>,
        segment_id: Option<&str>,
    ) -> Result<(Filter, Schema), Error> {
        let schema = self.schema(workspace_id).await?;
        let checked = match segment_id {
            Some(id) => {
                let id = uuid("segment_id", id)?;
                let segment = segments::get(&self.pool, workspace_id, id).await?;
                filter::check(&segment.filter()?, &schema).map_err(|e| {
                    Error::precondition(
                        "segment_id",
                        format!(
                            "segment {:?} no longer fits the contact fields: {e}",
                            segment.name
                        ),
                    )
                })?
            }
            None => filter::check(filter.unwrap_or(&pb::Filter::default()), &schema)?,
        };
        Ok((checked, schema))
    }

    /// Streams every Contact of `filter` after `after`, in batches of `size`, each turned
    /// into a message by `wrap`; stops early when the caller goes away. The reader only
    /// queries: each batch it reads is completed (identities, Tags, custom values) and
    /// wrapped by a task of its own, so a few batches are rendered on every core while the
    /// next is read and the one before is sent, in order.
    fn stream<T, F>(
        &self,
        workspace_id: Uuid,
        (filter, schema): (Filter, Schema),
        after: Option<Uuid>,
        size: i64,
        wrap: F,
    ) -> mpsc::Receiver<Rendering<T>>
    where
        T: Send + 'static,
        F: Fn(Vec<pb::Contact>, bool) -> T + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::channel(RENDERING_AHEAD);
        let api = self.clone();
        let wrap = Arc::new(wrap);
        // The reader stops when the stream it feeds is dropped (the caller went away).
        tokio::spawn(async move {
            let result: Result<(), Error> = async {
                let schema = Arc::new(schema);
                let names = TagNames::default();
                let tags = search::tag_ids(&api.pool, workspace_id, &filter).await?;
                let mut after = after;
                let mut first = true;
                loop {
                    let rows =
                        search::batch(&api.pool, workspace_id, &filter, &tags, after, size).await?;
                    // An empty batch goes out only first, so an export still has its header.
                    if rows.is_empty() && !first {
                        return Ok(());
                    }
                    let last = rows.len() < size as usize;
                    after = rows.last().map(|c| c.id).or(after);
                    // A place is taken before the task starts, so no more batches are
                    // rendered at once than the channel holds, plus the one being sent.
                    let Ok(place) = tx.reserve().await else {
                        return Ok(());
                    };
                    let (api, schema, names, wrap) =
                        (api.clone(), schema.clone(), names.clone(), wrap.clone());
                    place.send(Ok(tokio::spawn(async move {
                        let contacts = api.render_with(workspace_id, &schema, &names, rows).await?;
                        Ok(wrap(contacts, first))
                    })));
                    if last {
                        return Ok(());
                    }
                    first = false;
                }
            }
            .await;
            if let Err(e) = result {
                let _ = tx.send(Err(e)).await;
            }
        });
        rx
    }

    async fn one(&self, contact: Contact) -> Result<pb::Contact, Error> {
        let mut all = self.render(contact.workspace_id, vec![contact]).await?;
        all.pop()
            .ok_or_else(|| Error::Unexpected(anyhow::anyhow!("contact vanished while reading")))
    }
}

/// The API form of a Contact.
fn to_proto(full: Full) -> pb::Contact {
    let c = full.contact;
    pb::Contact {
        id: c.id.to_string(),
        workspace_id: c.workspace_id.to_string(),
        identities: full
            .identities
            .into_iter()
            .map(|i| pb::ChannelIdentity {
                channel_id: i.channel_id.to_string(),
                external_id: i.external_id,
                display_name: i.display_name,
            })
            .collect(),
        created_at: Some(timestamp(c.created_at)),
        custom_fields: full.custom_fields,
        tags: full.tags,
        last_interaction_at: c.last_interaction_at.map(timestamp),
        updated_at: Some(timestamp(c.updated_at)),
        first_name: c.first_name,
        last_name: c.last_name,
        email: c.email,
        phone: c.phone,
        language: c.language,
        country: c.country,
        timezone: c.timezone,
        picture_url: c.picture_url,
        blocked: c.blocked,
        broadcast_opt_out: c.broadcast_opt_out,
        lifecycle_stage: c.lifecycle_stage,
        version: c.version,
    }
}

fn new_field(field: Option<pb::ContactField>) -> Result<NewField, FieldError> {
    let field = field.ok_or_else(|| FieldError::new("field", "is required"))?;
    Ok(NewField {
        kind: FieldKind::from_proto("field.type", field.r#type)?,
        key: field.key,
        label: field.label,
        description: field.description,
        options: field.options,
        default_value: field.default_value,
    })
}

fn audience_of_search(
    a: &Option<pb::search_contacts_request::Audience>,
) -> (Option<&pb::Filter>, Option<&str>) {
    use pb::search_contacts_request::Audience as A;
    match a {
        Some(A::Filter(f)) => (Some(f), None),
        Some(A::SegmentId(id)) => (None, Some(id)),
        None => (None, None),
    }
}

fn audience_of_stream(
    a: &Option<pb::stream_contacts_request::Audience>,
) -> (Option<&pb::Filter>, Option<&str>) {
    use pb::stream_contacts_request::Audience as A;
    match a {
        Some(A::Filter(f)) => (Some(f), None),
        Some(A::SegmentId(id)) => (None, Some(id)),
        None => (None, None),
    }
}

fn audience_of_export(
    a: &Option<pb::export_contacts_request::Audience>,
) -> (Option<&pb::Filter>, Option<&str>) {
    use pb::export_contacts_request::Audience as A;
    match a {
        Some(A::Filter(f)) => (Some(f), None),
        Some(A::SegmentId(id)) => (None, Some(id)),
        None => (None, None),
    }
}

#[tonic::async_trait]
impl ContactService for Api {
    type StreamContactsStream = Feed<pb::StreamContactsResponse>;
    type ExportContactsStream = Feed<pb::ExportContactsResponse>;
    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn resolve_contact(
        &self,
        request: Request<pb::ResolveContactRequest>,
    ) -> Result<Response<pb::ResolveContactResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let channel_id = uuid("channel_id", &request.channel_id)?;
        let external_id = storable("external_id", request.external_id.trim())?;
        if external_id.is_empty() || external_id.len() > 256 {
            return Err(
                Error::from(FieldError::new("external_id", "must be 1 to 256 bytes")).into(),
            );
        }
        let key = IdentityKey {
            channel_id,
            external_id,
            display_name: storable("display_name", request.display_name.trim())?,
        };
        // A service passes the channel of a message the gateway received for this
        // Workspace; anyone else names one, which must be the Workspace's own, so no
        // identity is ever placed on another Workspace's channel.
        if caller.role != Role::Service {
            let request = GetChannelRequest {
                id: channel_id.to_string(),
            };
            self.gateway
                .call(workspace_id, "channel", request, |mut c, r| async move {
                    c.get_channel(r).await
                })
                .await?;
        }
        let (mut contact, created) = self.resolver.resolve(workspace_id, &key).await?;
        if !created {
            self.interactions.record(&mut contact.contact);
        }
        Ok(Response::new(pb::ResolveContactResponse {
            contact: Some(to_proto(contact)),
            created,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_contact(
        &self,
        request: Request<pb::CreateContactRequest>,
    ) -> Result<Response<pb::CreateContactResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let profile = request.into_inner().profile.unwrap_or_default();
        let normalized = Profile::from_proto(&profile)?;
        let contact = store::create(
            &self.pool,
            workspace_id,
            &normalized,
            &profile.custom_fields,
        )
        .await?;
        Ok(Response::new(pb::CreateContactResponse {
            contact: Some(self.one(contact).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_contact(
        &self,
        request: Request<pb::GetContactRequest>,
    ) -> Result<Response<pb::GetContactResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let id = uuid("id", &request.get_ref().id)?;
        let contact = store::get(&self.pool, workspace_id, id).await?;
        Ok(Response::new(pb::GetContactResponse {
            contact: Some(self.one(contact).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_contacts(
        &self,
        request: Request<pb::ListContactsRequest>,
    ) -> Result<Response<pb::ListContactsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let request = request.into_inner();
        let limit = paging::page_size(request.page_size)?;
        let before = paging::decode_token(&request.page_token)?;
        let rows = store::list(&self.pool, workspace_id, before, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |c| c.id);
        Ok(Response::new(pb::ListContactsResponse {
            contacts: self.render(workspace_id, rows).await?,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_contact(
        &self,
        request: Request<pb::UpdateContactRequest>,
    ) -> Result<Response<pb::UpdateContactResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        if r.version <= 0 {
            return Err(Error::from(FieldError::new(
                "version",
                "the version of the contact as read is required",
            ))
            .into());
        }
        let patch = Patch {
            first_name: r.first_name,
            last_name: r.last_name,
            email: r.email,
            phone: r.phone,
            language: r.language,
            country: r.country,
            timezone: r.timezone,
            picture_url: r.picture_url,
            custom: r.custom_fields,
            lifecycle_stage: r.lifecycle_stage,
        };
        let contact = store::update(&self.pool, workspace_id, id, r.version, &patch).await?;
        Ok(Response::new(pb::UpdateContactResponse {
            contact: Some(self.one(contact).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_contact(
        &self,
        request: Request<pb::DeleteContactRequest>,
    ) -> Result<Response<pb::DeleteContactResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        let until = store::delete(&self.pool, workspace_id, id).await?;
        Ok(Response::new(pb::DeleteContactResponse {
            restorable_until: Some(timestamp(until)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn restore_contact(
        &self,
        request: Request<pb::RestoreContactRequest>,
    ) -> Result<Response<pb::RestoreContactResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        let contact = store::restore(&self.pool, workspace_id, id).await?;
        Ok(Response::new(pb::RestoreContactResponse {
            contact: Some(self.one(contact).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn set_contact_blocked(
        &self,
        request: Request<pb::SetContactBlockedRequest>,
    ) -> Result<Response<pb::SetContactBlockedResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let contact =
            store::set_flag(&self.pool, workspace_id, id, Flag::Blocked, r.blocked).await?;
        Ok(Response::new(pb::SetContactBlockedResponse {
            contact: Some(self.one(contact).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn set_broadcast_opt_out(
        &self,
        request: Request<pb::SetBroadcastOptOutRequest>,
    ) -> Result<Response<pb::SetBroadcastOptOutResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let flag = Flag::BroadcastOptOut;
        let contact = store::set_flag(&self.pool, workspace_id, id, flag, r.opted_out).await?;
        Ok(Response::new(pb::SetBroadcastOptOutResponse {
            contact: Some(self.one(contact).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_contact_field(
        &self,
        request: Request<pb::CreateContactFieldRequest>,
    ) -> Result<Response<pb::CreateContactFieldResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let field = new_field(request.into_inner().field)?;
        let def = fields::create(&self.pool, workspace_id, &field).await?;
        Ok(Response::new(pb::CreateContactFieldResponse {
            field: Some(def.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_contact_fields(
        &self,
        request: Request<pb::ListContactFieldsRequest>,
    ) -> Result<Response<pb::ListContactFieldsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let mut conn = db::acquire(&self.pool).await?;
        let schema = fields::schema(&mut conn, workspace_id).await?;
        let mut fields: Vec<_> = schema.fields.values().map(|f| f.to_proto()).collect();
        fields.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Response::new(pb::ListContactFieldsResponse { fields }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_contact_field(
        &self,
        request: Request<pb::UpdateContactFieldRequest>,
    ) -> Result<Response<pb::UpdateContactFieldResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let field = new_field(request.into_inner().field)?;
        let def = fields::update(&self.pool, workspace_id, &field).await?;
        Ok(Response::new(pb::UpdateContactFieldResponse {
            field: Some(def.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_contact_field(
        &self,
        request: Request<pb::DeleteContactFieldRequest>,
    ) -> Result<Response<pb::DeleteContactFieldResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        fields::delete(&self.pool, workspace_id, &request.get_ref().key).await?;
        Ok(Response::new(pb::DeleteContactFieldResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn set_lifecycle_stages(
        &self,
        request: Request<pb::SetLifecycleStagesRequest>,
    ) -> Result<Response<pb::SetLifecycleStagesResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let stages = lifecycle::check(&request.get_ref().stages).map_err(Error::from)?;
        lifecycle::replace(&self.pool, workspace_id, &stages).await?;
        Ok(Response::new(pb::SetLifecycleStagesResponse {
            stages: stages.iter().map(Stage::to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_lifecycle_stages(
        &self,
        request: Request<pb::ListLifecycleStagesRequest>,
    ) -> Result<Response<pb::ListLifecycleStagesResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let mut conn = db::acquire(&self.pool).await?;
        let stages = lifecycle::list(&mut conn, workspace_id).await?;
        Ok(Response::new(pb::ListLifecycleStagesResponse {
            stages: stages.iter().map(Stage::to_proto).collect(),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn add_tags(
        &self,
        request: Request<pb::AddTagsRequest>,
    ) -> Result<Response<pb::AddTagsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let contacts = ids("contact_ids", &r.contact_ids)?;
        let names = tags::check_bulk(&contacts, &r.tags)?;
        let added = tags::add(&self.pool, workspace_id, &contacts, &names).await?;
        Ok(Response::new(pb::AddTagsResponse { added }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn remove_tags(
        &self,
        request: Request<pb::RemoveTagsRequest>,
    ) -> Result<Response<pb::RemoveTagsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let contacts = ids("contact_ids", &r.contact_ids)?;
        let names = tags::check_bulk(&contacts, &r.tags)?;
        let removed = tags::remove(&self.pool, workspace_id, &contacts, &names).await?;
        Ok(Response::new(pb::RemoveTagsResponse { removed }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_tags(
        &self,
        request: Request<pb::ListTagsRequest>,
    ) -> Result<Response<pb::ListTagsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let tags = tags::list(&self.pool, workspace_id)
            .await?
            .into_iter()
            .map(|(name, contact_count)| pb::Tag {
                name,
                contact_count,
            })
            .collect();
        Ok(Response::new(pb::ListTagsResponse { tags }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn rename_tag(
        &self,
        request: Request<pb::RenameTagRequest>,
    ) -> Result<Response<pb::RenameTagResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let r = request.into_inner();
        let from = tags::name("name", &r.name)?;
        let to = tags::name("new_name", &r.new_name)?;
        tags::rename(&self.pool, workspace_id, &from, &to).await?;
        Ok(Response::new(pb::RenameTagResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_tag(
        &self,
        request: Request<pb::DeleteTagRequest>,
    ) -> Result<Response<pb::DeleteTagResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let name = tags::name("name", &request.get_ref().name)?;
        tags::delete(&self.pool, workspace_id, &name).await?;
        Ok(Response::new(pb::DeleteTagResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn search_contacts(
        &self,
        request: Request<pb::SearchContactsRequest>,
    ) -> Result<Response<pb::SearchContactsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let limit = paging::page_size(r.page_size)?;
        let sort = Sort::from_proto(r.sort.as_ref())?;
        let (f, segment) = audience_of_search(&r.audience);
        let (filter, schema) = self.audience(workspace_id, f, segment).await?;
        let page = search::search(
            &self.pool,
            workspace_id,
            &filter,
            sort,
            limit,
            &r.page_token,
            !r.skip_count,
        )
        .await?;
        Ok(Response::new(pb::SearchContactsResponse {
            contacts: self
                .render_with(workspace_id, &schema, &TagNames::default(), page.contacts)
                .await?,
            next_page_token: page.next_page_token,
            total_count: page.total.unwrap_or(-1),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn stream_contacts(
        &self,
        request: Request<pb::StreamContactsRequest>,
    ) -> Result<Response<Self::StreamContactsStream>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let size = match r.batch_size {
            0 => 500,
            n @ 1..=1000 => i64::from(n),
            _ => {
                return Err(Error::from(FieldError::new("batch_size", "must be 0 to 1000")).into());
            }
        };
        let after = if r.after_id.is_empty() {
            None
        } else {
            Some(uuid("after_id", &r.after_id)?)
        };
        let (f, segment) = audience_of_stream(&r.audience);
        let audience = self.audience(workspace_id, f, segment).await?;
        let rx = self.stream(workspace_id, audience, after, size, |contacts, _| {
            pb::StreamContactsResponse { contacts }
        });
        Ok(Response::new(feed(rx)))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn match_contacts(
        &self,
        request: Request<pb::MatchContactsRequest>,
    ) -> Result<Response<pb::MatchContactsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let candidates = matching::candidates(&r.contact_ids)?;
        let (filter, _) = self.audience(workspace_id, r.filter.as_ref(), None).await?;
        let matched = matching::matching(&self.pool, workspace_id, &filter, &candidates).await?;
        Ok(Response::new(pb::MatchContactsResponse {
            contact_ids: matched.iter().map(Uuid::to_string).collect(),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_segment(
        &self,
        request: Request<pb::CreateSegmentRequest>,
    ) -> Result<Response<pb::CreateSegmentResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let filter = r.filter.unwrap_or_default();
        let segment = segments::create(&self.pool, workspace_id, &r.name, &filter).await?;
        Ok(Response::new(pb::CreateSegmentResponse {
            segment: Some(segment.to_proto()?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_segment(
        &self,
        request: Request<pb::GetSegmentRequest>,
    ) -> Result<Response<pb::GetSegmentResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let id = uuid("id", &request.get_ref().id)?;
        let segment = segments::get(&self.pool, workspace_id, id).await?;
        Ok(Response::new(pb::GetSegmentResponse {
            segment: Some(segment.to_proto()?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_segments(
        &self,
        request: Request<pb::ListSegmentsRequest>,
    ) -> Result<Response<pb::ListSegmentsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let limit = paging::page_size(r.page_size)?;
        let after = paging::decode_token(&r.page_token)?;
        let rows = segments::list(&self.pool, workspace_id, after, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |s| (s.name.clone(), s.id));
        Ok(Response::new(pb::ListSegmentsResponse {
            segments: rows
                .iter()
                .map(segments::Segment::to_proto)
                .collect::<Result<_, _>>()?,
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_segment(
        &self,
        request: Request<pb::UpdateSegmentRequest>,
    ) -> Result<Response<pb::UpdateSegmentResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let id = uuid("id", &r.id)?;
        let filter = r.filter.unwrap_or_default();
        let segment = segments::update(&self.pool, workspace_id, id, &r.name, &filter).await?;
        Ok(Response::new(pb::UpdateSegmentResponse {
            segment: Some(segment.to_proto()?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_segment(
        &self,
        request: Request<pb::DeleteSegmentRequest>,
    ) -> Result<Response<pb::DeleteSegmentResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        segments::delete(&self.pool, workspace_id, id).await?;
        Ok(Response::new(pb::DeleteSegmentResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn merge_contacts(
        &self,
        request: Request<pb::MergeContactsRequest>,
    ) -> Result<Response<pb::MergeContactsResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let r = request.into_inner();
        if r.target_version <= 0 {
            return Err(Error::from(FieldError::new(
                "target_version",
                "the version of the target as read is required",
            ))
            .into());
        }
        let m = Merge {
            target: uuid("target_id", &r.target_id)?,
            source: uuid("source_id", &r.source_id)?,
            target_version: r.target_version,
            conflicts: Side::from_proto(r.conflicts),
            choices: r
                .field_choices
                .into_iter()
                .map(|(k, v)| (k, Side::from_proto(v)))
                .collect(),
        };
        let contact = merge::merge(&self.pool, workspace_id, &m).await?;
        Ok(Response::new(pb::MergeContactsResponse {
            contact: Some(self.one(contact).await?),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_duplicates(
        &self,
        request: Request<pb::ListDuplicatesRequest>,
    ) -> Result<Response<pb::ListDuplicatesResponse>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let limit = paging::page_size(r.page_size)?;
        let after = paging::decode_token(&r.page_token)?;
        let rows = merge::duplicates(&self.pool, workspace_id, after, limit + 1).await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |d| (d.reason, d.value.clone()));
        Ok(Response::new(pb::ListDuplicatesResponse {
            groups: rows
                .into_iter()
                .map(|d| pb::DuplicateGroup {
                    reason: d.reason,
                    value: d.value,
                    contact_ids: d.ids.iter().map(Uuid::to_string).collect(),
                })
                .collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn import_contacts(
        &self,
        request: Request<tonic::Streaming<pb::ImportContactsRequest>>,
    ) -> Result<Response<pb::ImportContactsResponse>, Status> {
        use pb::import_contacts_request::Part;
        let workspace_id = workspace(&request, Role::Manager)?;
        let mut parts = request.into_inner();
        let settings = match parts.message().await? {
            Some(pb::ImportContactsRequest {
                part: Some(Part::Settings(s)),
            }) => s,
            _ => {
                return Err(Error::from(FieldError::new(
                    "settings",
                    "the first message must carry the settings",
                ))
                .into());
            }
        };
        let mut data = Vec::new();
        while let Some(message) = parts.message().await? {
            let Some(Part::Data(chunk)) = message.part else {
                return Err(Error::from(FieldError::new(
                    "settings",
                    "only the first message carries settings",
                ))
                .into());
            };
            if data.len() + chunk.len() > import::MAX_BYTES {
                return Err(Error::from(FieldError::new(
                    "data",
                    format!("at most {} bytes", import::MAX_BYTES),
                ))
                .into());
            }
            data.extend_from_slice(&chunk);
        }
        let outcome = import::run(&self.pool, workspace_id, &settings, &data).await?;
        Ok(Response::new(pb::ImportContactsResponse {
            import: Some(outcome.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_import(
        &self,
        request: Request<pb::GetImportRequest>,
    ) -> Result<Response<pb::GetImportResponse>, Status> {
        let workspace_id = workspace(&request, Role::Manager)?;
        let id = uuid("id", &request.get_ref().id)?;
        let outcome = import::get(&self.pool, workspace_id, id).await?;
        Ok(Response::new(pb::GetImportResponse {
            import: Some(outcome.to_proto()),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn export_contacts(
        &self,
        request: Request<pb::ExportContactsRequest>,
    ) -> Result<Response<Self::ExportContactsStream>, Status> {
        let workspace_id = workspace(&request, Role::Agent)?;
        let r = request.into_inner();
        let (f, segment) = audience_of_export(&r.audience);
        let audience = self.audience(workspace_id, f, segment).await?;
        let exporter = Exporter::new(audience.1.fields.keys().cloned().collect());
        let rx = self.stream(
            workspace_id,
            audience,
            None,
            1000,
            move |contacts, first| pb::ExportContactsResponse {
                data: exporter.chunk(&contacts, first),
            },
        );
        Ok(Response::new(feed(rx)))
    }
}
