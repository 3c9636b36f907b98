//! RegistryService: how publishers read and write sites.
//!
//! Reads need `sites.read` (or `sites.write`); writes need `sites.write` with the token's
//! origin and operator matching the site's. Every accepted write goes through
//! `Store::write`, which appends to the change log in the same transaction.

mod batch;
mod http;
mod instruments;
mod list;
mod update_mask;

use std::sync::Arc;

use hubdir_auth::{Principal, Scope, principal};
use hubdir_core::{Origin, SiteName, SiteRecord, ViolationReason, Violations};
use hubdir_node::{Mount, NodeContext, Routing, page_token, status};
use hubdir_proto::convert;
use hubdir_proto::v1::registry_service_server::{RegistryService, RegistryServiceServer, SERVICE_NAME};
use hubdir_proto::v1::{
    BatchUpsertSitesRequest, BatchUpsertSitesResponse, CreateSiteRequest, DeleteSiteRequest, GetSiteRequest,
    ListSitesRequest, ListSitesResponse, Site, UpdateSiteRequest,
};
use hubdir_store::{Applied, Change, Precondition, Store, Write};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status, Streaming};

pub use batch::MAX_BATCH_ROWS;
pub use list::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

/// How `hubdir serve` and `hubdir-registry` mount this service.
pub const MOUNT: Mount = Mount { service_name: SERVICE_NAME, add };

fn add(ctx: &NodeContext, routing: &mut Routing) {
    let own = ctx.config.node.id.clone();
    let registry = Registry { store: ctx.store.clone(), own, tokens: ctx.page_tokens.clone() };
    routing.add_http(http::routes(registry.clone(), ctx.authenticator.clone()));
    let server = hubdir_node::grpc_server!(RegistryServiceServer::new(registry), ctx);
    routing.grpc.add_service(InterceptedService::new(server, ctx.authenticator.clone()));
}

/// The RegistryService implementation.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<Store>,
    /// This node's origin: the only one it writes (the store refuses the others too).
    own: Origin,
    tokens: page_token::PageTokens,
}

fn parse_name(field: &str, text: &str) -> Result<SiteName, Status> {
    text.parse::<SiteName>().map_err(|e| {
        let mut v = Violations::default();
        let reason = if text.is_empty() { ViolationReason::Required } else { ViolationReason::InvalidFormat };
        v.push(field, reason, e.to_string());
        status::invalid_argument(&v)
    })
}

fn required(field: &str) -> Status {
    let mut v = Violations::default();
    v.push(field, ViolationReason::Required, "must be set");
    status::invalid_argument(&v)
}

fn can_read(caller: &Principal) -> Result<(), Status> {
    caller.require_any(&[Scope::SitesRead, Scope::SitesWrite]).map_err(status::from_denied)
}

/// The site as stored, or NOT_FOUND.
async fn current(store: &Store, name: &SiteName) -> Result<SiteRecord, Status> {
    store.get_site(name).await.map_err(status::from_store)?.ok_or_else(|| status::site_not_found(name))
}

fn record_of(applied: Applied) -> Result<SiteRecord, Status> {
    match applied {
        Applied::Created(r) | Applied::Updated(r) | Applied::Unchanged(r) => Ok(r),
        Applied::Deleted { name, .. } | Applied::AlreadyAbsent(name) => {
            Err(status::internal(format!("an upsert of {name} reported a delete")))
        }
    }
}

async fn write_one(store: &Store, write: Write) -> Result<Applied, Status> {
    let mut applied = store.write(vec![write]).await.map_err(status::from_store)?;
    applied.pop().ok_or_else(|| status::internal("a write reported nothing"))
}

#[tonic::async_trait]
impl RegistryService for Registry {
    async fn create_site(&self, request: Request<CreateSiteRequest>) -> Result<Response<Site>, Status> {
        let caller = principal(&request);
        caller.require_any(&[Scope::SitesWrite]).map_err(status::from_denied)?;
        let CreateSiteRequest { site } = request.into_inner();
        let (site, _etag) = convert::site_from_proto(site.ok_or_else(|| required("site"))?)
            .map_err(|v| status::invalid_argument(&v.nested_in("site")))?;
        caller.require_publisher_of(&site.name, &site.operator).map_err(status::from_denied)?;
        let write = Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::Absent };
        Ok(Response::new(convert::record_to_proto(record_of(write_one(&self.store, write).await?)?)))
    }

    async fn get_site(&self, request: Request<GetSiteRequest>) -> Result<Response<Site>, Status> {
        can_read(&principal(&request))?;
        let GetSiteRequest { name } = request.into_inner();
        let name = parse_name("name", &name)?;
        Ok(Response::new(convert::record_to_proto(current(&self.store, &name).await?)))
    }

    async fn update_site(&self, request: Request<UpdateSiteRequest>) -> Result<Response<Site>, Status> {
        let caller = principal(&request);
        caller.require_any(&[Scope::SitesWrite]).map_err(status::from_denied)?;
        let UpdateSiteRequest { site, update_mask } = request.into_inner();
        let patch = site.ok_or_else(|| required("site"))?;
        let paths = update_mask.ok_or_else(|| required("update_mask"))?.paths;
        let name = parse_name("site.name", &patch.name)?;
        let stored = current(&self.store, &name).await?;
        caller.require_publisher_of(&name, &stored.site.operator).map_err(status::from_denied)?;
        if !patch.etag.is_empty() && patch.etag != stored.etag {
            return Err(status::etag_mismatch(&name));
        }
        let read_etag = stored.etag.clone();
        let merged = update_mask::apply(convert::record_to_proto(stored), patch, &paths)
            .map_err(|v| status::invalid_argument(&v))?;
        let (site, _) = convert::site_from_proto(merged).map_err(|v| status::invalid_argument(&v.nested_in("site")))?;
        caller.require_publisher_of(&site.name, &site.operator).map_err(status::from_denied)?;
        // The etag read above guards against a write that landed in between.
        let write = Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::Etag(read_etag) };
        Ok(Response::new(convert::record_to_proto(record_of(write_one(&self.store, write).await?)?)))
    }

    async fn delete_site(&self, request: Request<DeleteSiteRequest>) -> Result<Response<()>, Status> {
        let caller = principal(&request);
        caller.require_any(&[Scope::SitesWrite]).map_err(status::from_denied)?;
        let DeleteSiteRequest { name, etag } = request.into_inner();
        let name = parse_name("name", &name)?;
        let stored = current(&self.store, &name).await?;
        caller.require_publisher_of(&name, &stored.site.operator).map_err(status::from_denied)?;
        if !etag.is_empty() && etag != stored.etag {
            return Err(status::etag_mismatch(&name));
        }
        // Guarded by the version whose ownership was just checked, not by the client's etag.
        let precondition = Precondition::Etag(stored.etag);
        write_one(&self.store, Write { change: Change::Delete(name), precondition }).await?;
        Ok(Response::new(()))
    }

    async fn list_sites(&self, request: Request<ListSitesRequest>) -> Result<Response<ListSitesResponse>, Status> {
        can_read(&principal(&request))?;
        let request = request.into_inner();
        let (mut query, filters) = list::list_query(&request).map_err(|v| status::invalid_argument(&v))?;
        query.after_name =
            self.tokens.decode(&request.page_token, &filters).map_err(|v| status::invalid_argument(&v))?;
        let page_size = query.limit;
        query.limit = page_size + 1;
        let mut records = self.store.list_sites(&query).await.map_err(status::from_store)?;
        let next_page_token = if records.len() as u64 > page_size {
            records.truncate(page_size as usize);
            records.last().map(|r| self.tokens.encode(&r.site.name.to_string(), &filters)).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListSitesResponse {
            sites: records.into_iter().map(convert::record_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn batch_upsert_sites(
        &self,
        request: Request<Streaming<BatchUpsertSitesRequest>>,
    ) -> Result<Response<BatchUpsertSitesResponse>, Status> {
        let caller = principal(&request);
        caller.require_any(&[Scope::SitesWrite]).map_err(status::from_denied)?;
        batch::run(&self.store, &self.own, &caller, request.into_inner()).await.map(Response::new)
    }
}
