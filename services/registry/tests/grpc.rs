//! RegistryService over real gRPC: a server on 127.0.0.1:0 and the generated client.

use hubdir_core::{Kind, SiteInput};
use hubdir_node::testing::{Setup, TestNode};
use hubdir_proto::v1::registry_service_client::RegistryServiceClient;
use hubdir_proto::v1::{
    self as pb, BatchUpsertSitesRequest, CreateSiteRequest, DeleteSiteRequest, GetSiteRequest, ListSitesRequest,
    RowOutcome, UpdateSiteRequest,
};
use hubdir_store::testing::Backend;
use hubdir_store::{Change, Precondition, Write};
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

struct Node {
    client: RegistryServiceClient<Channel>,
    node: TestNode,
}

/// Who a test request speaks as.
#[derive(Clone, Copy)]
enum As {
    Anonymous,
    Reader,
    /// `sites.write` for origin `zw`, operator `ZimPost`.
    Publisher,
    /// `sites.write` for origin `zw`, operator `Library Board`.
    OtherOperator,
}

impl Node {
    async fn start(backend: Backend, sites: usize) -> Option<Node> {
        let seed = (0..sites)
            .map(|i| {
                let site = SiteInput {
                    name: format!("sites/zw/s{i:03}"),
                    display_name: format!("Site {i}"),
                    kind: Some(if i % 2 == 0 { Kind::PostOffice } else { Kind::PublicLibrary }),
                    country_code: if i % 4 == 0 { "KE".into() } else { "ZW".into() },
                    operator: "ZimPost".into(),
                    location: Some((-17.0 - i as f64 / 100.0, 31.0)),
                    time_zone: "Africa/Harare".into(),
                    ..SiteInput::default()
                }
                .validate()
                .unwrap();
                Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::Absent }
            })
            .collect();
        let setup = Setup { seed, ..Setup::default() };
        let node = TestNode::start_with(backend, &[hubdir_registry::MOUNT], setup).await?;
        let client = RegistryServiceClient::connect(node.endpoint()).await.unwrap();
        Some(Node { client, node })
    }

    /// A request carrying the bearer token of `who`.
    fn req<T>(&self, who: As, message: T) -> tonic::Request<T> {
        let (scope, operator) = match who {
            As::Anonymous => return tonic::Request::new(message),
            As::Reader => ("sites.read", None),
            As::Publisher => ("sites.write", Some("ZimPost")),
            As::OtherOperator => ("sites.write", Some("Library Board")),
        };
        let token = self.node.token("tester", scope, operator.map(|_| "zw"), operator, &[]);
        TestNode::with_token(&token, message)
    }

    async fn stop(self) {
        self.node.stop().await.unwrap();
    }
}

fn list(page_size: i32, page_token: String) -> ListSitesRequest {
    ListSitesRequest { page_size, page_token, ..ListSitesRequest::default() }
}

fn field_violations(status: &tonic::Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .expect("BadRequest details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

fn new_site(id: &str, operator: &str) -> pb::Site {
    pb::Site {
        name: format!("sites/zw/{id}"),
        display_name: format!("Help point {id}"),
        kind: pb::Kind::Telecentre.into(),
        operator: operator.into(),
        country_code: "ZW".into(),
        location: Some(pb::LatLng { latitude: -17.9, longitude: 31.1 }),
        time_zone: "Africa/Harare".into(),
        ..pb::Site::default()
    }
}

async fn get_site_answers_from_the_store(backend: Backend) {
    let Some(mut node) = Node::start(backend, 3).await else { return };
    let request = node.req(As::Reader, GetSiteRequest { name: "sites/zw/s001".into() });
    let site = node.client.get_site(request).await.unwrap().into_inner();
    assert_eq!(site.display_name, "Site 1");
    assert_eq!(site.kind, i32::from(pb::Kind::PublicLibrary));
    assert_eq!(site.origin_seq, 2);
    assert_eq!(site.h3_cell.len(), 15, "h3 cell {:?}", site.h3_cell);
    assert!(!site.etag.is_empty());
    let anonymous = node.req(As::Anonymous, GetSiteRequest { name: "sites/zw/s001".into() });
    assert_eq!(node.client.get_site(anonymous).await.unwrap_err().code(), Code::Unauthenticated);
    // A forged token is refused by the interceptor before any handler runs.
    let mut forged = tonic::Request::new(GetSiteRequest { name: "sites/zw/s001".into() });
    let none_alg = "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.eyJzdWIiOiJ4Iiwic2NvcGUiOiJzaXRlcy5yZWFkIn0.";
    forged.metadata_mut().insert("authorization", format!("Bearer {none_alg}").parse().unwrap());
    let status = node.client.get_site(forged).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.get_details_error_info().unwrap().reason, "UNAUTHENTICATED");
    node.stop().await;
}

async fn a_malformed_name_is_invalid_argument_naming_the_field(backend: Backend) {
    let Some(mut node) = Node::start(backend, 0).await else { return };
    for bad in ["", "sites/zw", "sites/ZW/1", "zw/1"] {
        let request = node.req(As::Reader, GetSiteRequest { name: bad.into() });
        let status = node.client.get_site(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(field_violations(&status), vec!["name"], "{bad:?}");
    }
    let request = node.req(As::Reader, GetSiteRequest { name: "sites/zw/nope".into() });
    let missing = node.client.get_site(request).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.get_details_error_info().unwrap().reason, "SITE_NOT_FOUND");
    node.stop().await;
}

async fn list_sites_pages_through_everything_once(backend: Backend) {
    let Some(mut node) = Node::start(backend, 25).await else { return };
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let request = node.req(As::Reader, list(10, token));
        let page = node.client.list_sites(request).await.unwrap().into_inner();
        assert!(page.sites.len() <= 10);
        names.extend(page.sites.into_iter().map(|s| s.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("sites/zw/s{i:03}")).collect();
    assert_eq!(names, expected);

    let kenya = node.req(As::Reader, ListSitesRequest { country_code: "KE".into(), ..list(100, String::new()) });
    let sites = node.client.list_sites(kenya).await.unwrap().into_inner().sites;
    assert_eq!(sites.len(), 7);
    assert!(sites.iter().all(|s| s.country_code == "KE"));
    node.stop().await;
}

async fn a_token_reused_with_other_filters_is_refused(backend: Backend) {
    let Some(mut node) = Node::start(backend, 5).await else { return };
    let request = node.req(As::Reader, list(2, String::new()));
    let first = node.client.list_sites(request).await.unwrap().into_inner();
    let changed =
        node.req(As::Reader, ListSitesRequest { country_code: "ZW".into(), ..list(2, first.next_page_token) });
    let status = node.client.list_sites(changed).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&status), vec!["page_token"]);

    let bad =
        ListSitesRequest { country_code: "XX".into(), kinds: vec![77], page_size: -1, ..ListSitesRequest::default() };
    let status = node.client.list_sites(node.req(As::Reader, bad)).await.unwrap_err();
    assert_eq!(field_violations(&status), vec!["page_size", "country_code", "kinds[0]"]);
    node.stop().await;
}

async fn create_update_delete_round_trip(backend: Backend) {
    let Some(mut node) = Node::start(backend, 0).await else { return };
    let create = node.req(As::Publisher, CreateSiteRequest { site: Some(new_site("new-1", "ZimPost")) });
    let created = node.client.create_site(create).await.unwrap().into_inner();
    assert_eq!(created.origin_seq, 1);

    let again = node.req(As::Publisher, CreateSiteRequest { site: Some(new_site("new-1", "ZimPost")) });
    assert_eq!(node.client.create_site(again).await.unwrap_err().code(), Code::AlreadyExists);

    // Update one field; the others stay.
    let patch = pb::Site {
        name: created.name.clone(),
        display_name: "Renamed".into(),
        etag: created.etag.clone(),
        ..pb::Site::default()
    };
    let mask = prost_types::FieldMask { paths: vec!["display_name".into()] };
    let update = node.req(As::Publisher, UpdateSiteRequest { site: Some(patch), update_mask: Some(mask.clone()) });
    let updated = node.client.update_site(update).await.unwrap().into_inner();
    assert_eq!(updated.display_name, "Renamed");
    assert_eq!(updated.time_zone, "Africa/Harare");
    assert_eq!(updated.origin_seq, 2);
    assert_ne!(updated.etag, created.etag);

    // A stale etag is ABORTED (AIP-154) and changes nothing.
    let stale = pb::Site {
        name: created.name.clone(),
        display_name: "Lost update".into(),
        etag: created.etag.clone(),
        ..pb::Site::default()
    };
    let update = node.req(As::Publisher, UpdateSiteRequest { site: Some(stale), update_mask: Some(mask) });
    let status = node.client.update_site(update).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(status.get_details_error_info().unwrap().reason, "ETAG_MISMATCH");

    // An invalid value names the field under `site.`.
    let bad = pb::Site {
        name: created.name.clone(),
        location: Some(pb::LatLng { latitude: 123.0, longitude: 31.0 }),
        ..pb::Site::default()
    };
    let mask = prost_types::FieldMask { paths: vec!["location".into()] };
    let update = node.req(As::Publisher, UpdateSiteRequest { site: Some(bad), update_mask: Some(mask) });
    let status = node.client.update_site(update).await.unwrap_err();
    assert_eq!(field_violations(&status), vec!["site.location.latitude"]);

    let delete = node.req(As::Publisher, DeleteSiteRequest { name: created.name.clone(), etag: String::new() });
    node.client.delete_site(delete).await.unwrap();
    let get = node.req(As::Reader, GetSiteRequest { name: created.name.clone() });
    assert_eq!(node.client.get_site(get).await.unwrap_err().code(), Code::NotFound);
    node.stop().await;
}

async fn a_publisher_cannot_touch_another_operators_sites(backend: Backend) {
    let Some(mut node) = Node::start(backend, 2).await else { return };
    let create = node.req(As::OtherOperator, CreateSiteRequest { site: Some(new_site("theirs", "ZimPost")) });
    assert_eq!(node.client.create_site(create).await.unwrap_err().code(), Code::PermissionDenied);
    let patch = pb::Site { name: "sites/zw/s000".into(), display_name: "Hijacked".into(), ..pb::Site::default() };
    let mask = prost_types::FieldMask { paths: vec!["display_name".into()] };
    let update = node.req(As::OtherOperator, UpdateSiteRequest { site: Some(patch), update_mask: Some(mask) });
    assert_eq!(node.client.update_site(update).await.unwrap_err().code(), Code::PermissionDenied);
    // Nor hand a site over to another operator.
    let patch = pb::Site { name: "sites/zw/s000".into(), operator: "Library Board".into(), ..pb::Site::default() };
    let mask = prost_types::FieldMask { paths: vec!["operator".into()] };
    let update = node.req(As::Publisher, UpdateSiteRequest { site: Some(patch), update_mask: Some(mask) });
    assert_eq!(node.client.update_site(update).await.unwrap_err().code(), Code::PermissionDenied);
    let delete = node.req(As::OtherOperator, DeleteSiteRequest { name: "sites/zw/s001".into(), etag: String::new() });
    assert_eq!(node.client.delete_site(delete).await.unwrap_err().code(), Code::PermissionDenied);
    let reader = node.req(As::Reader, CreateSiteRequest { site: Some(new_site("r", "ZimPost")) });
    assert_eq!(node.client.create_site(reader).await.unwrap_err().code(), Code::PermissionDenied);
    let get = node.req(As::Reader, GetSiteRequest { name: "sites/zw/s000".into() });
    assert_eq!(node.client.get_site(get).await.unwrap().into_inner().display_name, "Site 0");
    node.stop().await;
}

fn batch(rows: Vec<pb::Site>, atomic: bool) -> impl tokio_stream::Stream<Item = BatchUpsertSitesRequest> {
    // Two messages, to exercise row numbering across the stream.
    let mid = rows.len() / 2;
    let (a, b) = rows.split_at(mid);
    tokio_stream::iter(vec![
        BatchUpsertSitesRequest { sites: a.to_vec(), atomic },
        BatchUpsertSitesRequest { sites: b.to_vec(), atomic: false },
    ])
}

async fn batches_report_every_row_and_replays_change_nothing(backend: Backend) {
    let Some(mut node) = Node::start(backend, 0).await else { return };
    let mut rows: Vec<pb::Site> = (0..6).map(|i| new_site(&format!("b{i}"), "ZimPost")).collect();
    rows[2].location = Some(pb::LatLng { latitude: 0.0, longitude: 0.0 });
    rows[4].operator = "Library Board".into();

    let response =
        node.client.batch_upsert_sites(node.req(As::Publisher, batch(rows.clone(), false))).await.unwrap().into_inner();
    assert_eq!((response.created_count, response.rejected_count), (4, 2));
    let outcomes: Vec<i32> = response.results.iter().map(|r| r.outcome).collect();
    let (c, r) = (i32::from(RowOutcome::Created), i32::from(RowOutcome::Rejected));
    assert_eq!(outcomes, vec![c, c, r, c, r, c]);
    assert_eq!(response.results[2].row, 2);
    assert_eq!(response.results[2].errors[0].field, "location");
    assert_eq!(response.results[4].errors[0].reason, "PERMISSION_DENIED");

    let replay =
        node.client.batch_upsert_sites(node.req(As::Publisher, batch(rows.clone(), false))).await.unwrap().into_inner();
    assert_eq!((replay.created_count, replay.updated_count, replay.unchanged_count), (0, 0, 4));
    let listed =
        node.client.list_sites(node.req(As::Reader, list(100, String::new()))).await.unwrap().into_inner().sites;
    assert_eq!(listed.iter().map(|s| s.origin_seq).max(), Some(4), "the replay appended to the change log");

    // Atomic: one bad row refuses everything, naming the row.
    rows.iter_mut().for_each(|s| s.name.push_str("-atomic"));
    let status = node.client.batch_upsert_sites(node.req(As::Publisher, batch(rows.clone(), true))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&status), vec!["sites[2].location", "sites[4].operator"]);
    let listed =
        node.client.list_sites(node.req(As::Reader, list(100, String::new()))).await.unwrap().into_inner().sites;
    assert_eq!(listed.len(), 4, "an atomic batch was half-written");

    let anonymous = node.client.batch_upsert_sites(node.req(As::Anonymous, batch(rows, false))).await.unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    node.stop().await;
}

async fn a_batch_cannot_take_over_another_operators_site_or_repeat_a_name(backend: Backend) {
    let Some(mut node) = Node::start(backend, 2).await else { return };
    // sites/zw/s000 is ZimPost's; a Library Board publisher sends it with its own operator.
    let mut takeover = new_site("s000", "Library Board");
    takeover.display_name = "Hijacked".into();
    // Another node's origin is never written here, whoever asks (finding 1).
    let mut foreign = new_site("ke-1", "Library Board");
    foreign.name = "sites/ke/ke-1".into();
    let rows = vec![takeover, new_site("lb-1", "Library Board"), new_site("lb-1", "Library Board"), foreign];
    let response =
        node.client.batch_upsert_sites(node.req(As::OtherOperator, batch(rows, false))).await.unwrap().into_inner();
    let outcomes: Vec<(i32, Vec<(String, String)>)> = response
        .results
        .iter()
        .map(|r| (r.outcome, r.errors.iter().map(|e| (e.field.clone(), e.reason.clone())).collect()))
        .collect();
    let rejected = i32::from(RowOutcome::Rejected);
    assert_eq!(outcomes[0], (rejected, vec![("operator".into(), "PERMISSION_DENIED".into())]));
    assert_eq!(outcomes[1].0, i32::from(RowOutcome::Created));
    assert_eq!(outcomes[2], (rejected, vec![("name".into(), "DUPLICATE".into())]));
    assert_eq!(outcomes[3], (rejected, vec![("name".into(), "ORIGIN_NOT_OWNED".into())]));
    let get = node.req(As::Reader, GetSiteRequest { name: "sites/zw/s000".into() });
    assert_eq!(node.client.get_site(get).await.unwrap().into_inner().display_name, "Site 0");

    // Deleting with a stale etag is ABORTED, even when ownership holds.
    let delete = node.req(As::Publisher, DeleteSiteRequest { name: "sites/zw/s001".into(), etag: "stale".into() });
    assert_eq!(node.client.delete_site(delete).await.unwrap_err().code(), Code::Aborted);
    node.stop().await;
}

/// Finding 3: each refused row kept its raw name (200 rows of 3 MB names took the server from
/// 120 MB to 1.77 GB), and an atomic batch held up to 50,000 rows of any size.
async fn what_a_batch_echoes_and_holds_is_bounded_in_bytes(backend: Backend) {
    use prost::Message as _;
    let Some(mut node) = Node::start(backend, 0).await else { return };
    let huge =
        |i: usize| pb::Site { name: format!("sites/zw/{i}-{}", "x".repeat(3 << 20)), ..new_site("x", "ZimPost") };
    let messages: Vec<BatchUpsertSitesRequest> =
        (0..40).map(|i| BatchUpsertSitesRequest { sites: vec![huge(i)], atomic: false }).collect();
    let response = node
        .client
        .batch_upsert_sites(node.req(As::Publisher, tokio_stream::iter(messages)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.rejected_count, 40);
    assert!(response.results.iter().all(|r| r.name.len() <= 200 && r.errors[0].field == "name"));
    assert!(response.encoded_len() < 64 * 1024, "{} bytes echoed back", response.encoded_len());

    // Atomic: past 64 MiB of sites the batch is refused before it is all held.
    let messages: Vec<BatchUpsertSitesRequest> =
        (0..30).map(|i| BatchUpsertSitesRequest { sites: vec![huge(i)], atomic: true }).collect();
    let status =
        node.client.batch_upsert_sites(node.req(As::Publisher, tokio_stream::iter(messages))).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&status), ["sites"]);
    assert!(status.message().contains("bytes"), "{}", status.message());
    node.stop().await;
}

hubdir_store::on_both_backends!(
    get_site_answers_from_the_store,
    a_malformed_name_is_invalid_argument_naming_the_field,
    list_sites_pages_through_everything_once,
    a_token_reused_with_other_filters_is_refused,
    create_update_delete_round_trip,
    a_publisher_cannot_touch_another_operators_sites,
    batches_report_every_row_and_replays_change_nothing,
    a_batch_cannot_take_over_another_operators_site_or_repeat_a_name,
    what_a_batch_echoes_and_holds_is_bounded_in_bytes,
);

/// A write that meets a SQLite database locked by another process past the busy timeout
/// (30 s) is UNAVAILABLE ("retry later"), not INTERNAL: a real lock, held by a second
/// connection to the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_finds_sqlite_locked_is_unavailable() {
    use sea_orm::ConnectionTrait;
    let Some(mut node) = Node::start(Backend::Sqlite, 0).await else { return };
    let mut options = sea_orm::ConnectOptions::new(node.node.database_url().to_owned());
    options.max_connections(1).min_connections(1).sqlx_logging(false);
    let other = sea_orm::Database::connect(options).await.unwrap();
    other.execute_unprepared("BEGIN EXCLUSIVE").await.unwrap();
    let create = node.req(As::Publisher, CreateSiteRequest { site: Some(new_site("locked", "ZimPost")) });
    let refused = node.client.create_site(create).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("retry"), "{}", refused.message());
    other.execute_unprepared("ROLLBACK").await.unwrap();
    // The lock gone, the same write goes through.
    let create = node.req(As::Publisher, CreateSiteRequest { site: Some(new_site("locked", "ZimPost")) });
    node.client.create_site(create).await.unwrap();
    node.stop().await;
}
