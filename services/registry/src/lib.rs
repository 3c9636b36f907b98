//! RegistryService: how publishers read and write sites.
//!
//! Reads (`GetSite`, `ListSites`) answer from the store. Writes need JWT scopes, which
//! arrive with the publishing issue; until then they answer UNIMPLEMENTED rather than
//! accept unauthenticated writes.

use std::sync::Arc;

use hubdir_core::{CountryCode, Origin, SiteName, SiteRecord, ViolationReason, Violations};
use hubdir_node::{Mount, NodeContext, page_token, status};
use hubdir_proto::convert;
use hubdir_proto::v1::registry_service_server::{
    RegistryService, RegistryServiceServer, SERVICE_NAME,
};
use hubdir_proto::v1::{
    BatchUpsertSitesRequest, BatchUpsertSitesResponse, CreateSiteRequest, DeleteSiteRequest,
    GetSiteRequest, ListSitesRequest, ListSitesResponse, Site, UpdateSiteRequest,
};
use hubdir_store::{SiteQuery, Store};
use tonic::service::RoutesBuilder;
use tonic::{Request, Response, Status, Streaming};

/// Default and largest `ListSites` page.
pub const DEFAULT_PAGE_SIZE: u64 = 100;
pub const MAX_PAGE_SIZE: u64 = 1000;

/// How `hubdir serve` and `hubdir-registry` mount this service.
pub const MOUNT: Mount = Mount {
    service_name: SERVICE_NAME,
    add,
};

fn add(ctx: &NodeContext, routes: &mut RoutesBuilder) {
    let max = ctx.config.server.max_message_bytes;
    routes.add_service(
        RegistryServiceServer::new(Registry {
            store: ctx.store.clone(),
        })
        .max_decoding_message_size(max)
        .max_encoding_message_size(max),
    );
}

/// The RegistryService implementation.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Arc<Store>,
}

const WRITES_ARRIVE_WITH: &str = "the publishing issue (writes need JWT scopes)";

fn to_proto(record: SiteRecord) -> Site {
    let cell = hubdir_geo::cell_to_string(record.h3_cell);
    convert::record_to_proto(record, cell)
}

fn parse_name(field: &str, text: &str) -> Result<SiteName, Status> {
    text.parse::<SiteName>().map_err(|e| {
        let mut v = Violations::default();
        let reason = if text.is_empty() {
            ViolationReason::Required
        } else {
            ViolationReason::InvalidFormat
        };
        v.push(field, reason, e.to_string());
        status::invalid_argument(&v)
    })
}

/// Validates a `ListSitesRequest` into a store query, without the page position.
fn list_query(req: &ListSitesRequest) -> Result<(SiteQuery, String), Violations> {
    let ListSitesRequest {
        page_size,
        page_token: _,
        origin,
        country_code,
        operator,
        kinds,
        statuses,
        modified_after,
    } = req;
    let mut out = Violations::default();
    let limit = match *page_size {
        n if n < 0 => {
            out.push(
                "page_size",
                ViolationReason::OutOfRange,
                "must not be negative",
            );
            DEFAULT_PAGE_SIZE
        }
        0 => DEFAULT_PAGE_SIZE,
        n => (n as u64).min(MAX_PAGE_SIZE),
    };
    let origin = if origin.is_empty() {
        None
    } else {
        origin
            .parse::<Origin>()
            .map_err(|e| out.push("origin", ViolationReason::InvalidFormat, e.to_string()))
            .ok()
    };
    let country_code = if country_code.is_empty() {
        None
    } else {
        if CountryCode::parse(country_code).is_none() {
            out.push(
                "country_code",
                ViolationReason::UnknownValue,
                format!("{country_code:?} is not an ISO 3166-1 alpha-2 code"),
            );
        }
        Some(country_code.clone())
    };
    let kinds = kinds
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| match convert::kind_from_proto(*raw) {
            Some(Some(kind)) => Some(kind),
            _ => {
                out.push(
                    format!("kinds[{i}]"),
                    ViolationReason::UnknownValue,
                    format!("{raw} is not a kind"),
                );
                None
            }
        })
        .collect::<Vec<_>>();
    let statuses = statuses
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| match convert::status_from_proto(*raw) {
            Some(Some(status)) => Some(status),
            _ => {
                out.push(
                    format!("statuses[{i}]"),
                    ViolationReason::UnknownValue,
                    format!("{raw} is not a site status"),
                );
                None
            }
        })
        .collect::<Vec<_>>();
    let modified_after = match modified_after {
        None => None,
        Some(ts) => {
            let parsed = convert::from_timestamp(ts);
            if parsed.is_none() {
                out.push(
                    "modified_after",
                    ViolationReason::OutOfRange,
                    "not a valid timestamp",
                );
            }
            parsed
        }
    };
    if !out.is_empty() {
        return Err(out);
    }
    let kind_codes: Vec<&str> = kinds.iter().map(|k| k.code()).collect();
    let status_codes: Vec<&str> = statuses.iter().map(|s| s.code()).collect();
    let modified = modified_after
        .map(|t| t.timestamp_micros().to_string())
        .unwrap_or_default();
    let filters = page_token::fingerprint(&[
        origin.as_ref().map_or("", Origin::as_str),
        country_code.as_deref().unwrap_or(""),
        operator,
        &kind_codes.join(","),
        &status_codes.join(","),
        &modified,
    ]);
    let operator = (!operator.is_empty()).then(|| operator.clone());
    let query = SiteQuery {
        origin,
        country_code,
        operator,
        kinds,
        statuses,
        modified_after,
        after_name: None,
        limit,
    };
    Ok((query, filters))
}

#[tonic::async_trait]
impl RegistryService for Registry {
    async fn create_site(
        &self,
        _request: Request<CreateSiteRequest>,
    ) -> Result<Response<Site>, Status> {
        Err(status::not_yet(
            "hubdir.v1.RegistryService/CreateSite",
            WRITES_ARRIVE_WITH,
        ))
    }

    async fn get_site(&self, request: Request<GetSiteRequest>) -> Result<Response<Site>, Status> {
        let GetSiteRequest { name } = request.into_inner();
        let name = parse_name("name", &name)?;
        match self
            .store
            .get_site(&name)
            .await
            .map_err(status::from_store)?
        {
            Some(record) => Ok(Response::new(to_proto(record))),
            None => Err(status::from_store(hubdir_store::StoreError::NotFound(
                name.to_string(),
            ))),
        }
    }

    async fn update_site(
        &self,
        _request: Request<UpdateSiteRequest>,
    ) -> Result<Response<Site>, Status> {
        Err(status::not_yet(
            "hubdir.v1.RegistryService/UpdateSite",
            WRITES_ARRIVE_WITH,
        ))
    }

    async fn delete_site(
        &self,
        _request: Request<DeleteSiteRequest>,
    ) -> Result<Response<()>, Status> {
        Err(status::not_yet(
            "hubdir.v1.RegistryService/DeleteSite",
            WRITES_ARRIVE_WITH,
        ))
    }

    async fn list_sites(
        &self,
        request: Request<ListSitesRequest>,
    ) -> Result<Response<ListSitesResponse>, Status> {
        let request = request.into_inner();
        let (mut query, filters) =
            list_query(&request).map_err(|v| status::invalid_argument(&v))?;
        query.after_name = page_token::decode(&request.page_token, &filters)
            .map_err(|v| status::invalid_argument(&v))?;
        let page_size = query.limit;
        query.limit = page_size + 1;
        let mut records = self
            .store
            .list_sites(&query)
            .await
            .map_err(status::from_store)?;
        let next_page_token = if records.len() as u64 > page_size {
            records.truncate(page_size as usize);
            records
                .last()
                .map(|r| page_token::encode(&r.site.name.to_string(), &filters))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(ListSitesResponse {
            sites: records.into_iter().map(to_proto).collect(),
            next_page_token,
        }))
    }

    async fn batch_upsert_sites(
        &self,
        _request: Request<Streaming<BatchUpsertSitesRequest>>,
    ) -> Result<Response<BatchUpsertSitesResponse>, Status> {
        Err(status::not_yet(
            "hubdir.v1.RegistryService/BatchUpsertSites",
            WRITES_ARRIVE_WITH,
        ))
    }
}
