//! RegistryService over real gRPC: a server on 127.0.0.1:0 and the generated client.

use std::sync::Arc;

use hubdir_core::{Kind, SiteInput};
use hubdir_node::{Config, NodeContext};
use hubdir_proto::v1::registry_service_client::RegistryServiceClient;
use hubdir_proto::v1::{self as pb, CreateSiteRequest, GetSiteRequest, ListSitesRequest};
use hubdir_store::{Change, Precondition, Store, Write};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

struct Node {
    client: RegistryServiceClient<Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(sites: usize) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let writes = (0..sites)
            .map(|i| {
                let site = SiteInput {
                    name: format!("sites/zw/s{i:03}"),
                    display_name: format!("Site {i}"),
                    kind: Some(if i % 2 == 0 {
                        Kind::PostOffice
                    } else {
                        Kind::PublicLibrary
                    }),
                    country_code: if i % 4 == 0 { "KE".into() } else { "ZW".into() },
                    location: Some((-17.0 - i as f64 / 100.0, 31.0)),
                    time_zone: "Africa/Harare".into(),
                    ..SiteInput::default()
                }
                .validate()
                .unwrap();
                Write {
                    change: Change::Upsert(Box::new(site)),
                    precondition: Precondition::Absent,
                }
            })
            .collect();
        store.write(writes).await.unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let ctx = NodeContext {
            config: Arc::new(Config::default()),
            store: Arc::new(store),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            hubdir_node::server::serve(ctx, &[hubdir_registry::MOUNT], listener, async {
                let _ = stopped.await;
            })
            .await
        });
        let client = RegistryServiceClient::connect(format!("http://{address}"))
            .await
            .unwrap();
        Node {
            client,
            stop: Some(stop),
            server,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.await.unwrap().unwrap();
    }
}

fn list(page_size: i32, page_token: String) -> ListSitesRequest {
    ListSitesRequest {
        page_size,
        page_token,
        ..ListSitesRequest::default()
    }
}

#[tokio::test]
async fn get_site_answers_from_the_store() {
    let mut node = Node::start(3).await;
    let site = node
        .client
        .get_site(GetSiteRequest {
            name: "sites/zw/s001".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(site.display_name, "Site 1");
    assert_eq!(site.kind, i32::from(pb::Kind::PublicLibrary));
    assert_eq!(site.origin_seq, 2);
    assert_eq!(site.h3_cell.len(), 15, "h3 cell {:?}", site.h3_cell);
    assert!(!site.etag.is_empty());
    node.stop().await;
}

#[tokio::test]
async fn a_malformed_name_is_invalid_argument_naming_the_field() {
    let mut node = Node::start(0).await;
    for bad in ["", "sites/zw", "sites/ZW/1", "zw/1"] {
        let status = node
            .client
            .get_site(GetSiteRequest { name: bad.into() })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        let violations = status
            .get_details_bad_request()
            .expect("BadRequest details")
            .field_violations;
        assert_eq!(violations[0].field, "name", "{bad:?}");
    }
    let missing = node
        .client
        .get_site(GetSiteRequest {
            name: "sites/zw/nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(
        missing.get_details_error_info().unwrap().reason,
        "SITE_NOT_FOUND"
    );
    node.stop().await;
}

#[tokio::test]
async fn list_sites_pages_through_everything_once() {
    let mut node = Node::start(25).await;
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = node
            .client
            .list_sites(list(10, token))
            .await
            .unwrap()
            .into_inner();
        assert!(page.sites.len() <= 10);
        names.extend(page.sites.into_iter().map(|s| s.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("sites/zw/s{i:03}")).collect();
    assert_eq!(names, expected);

    let kenya = ListSitesRequest {
        country_code: "KE".into(),
        ..list(100, String::new())
    };
    let sites = node
        .client
        .list_sites(kenya)
        .await
        .unwrap()
        .into_inner()
        .sites;
    assert_eq!(sites.len(), 7);
    assert!(sites.iter().all(|s| s.country_code == "KE"));
    node.stop().await;
}

#[tokio::test]
async fn a_token_reused_with_other_filters_is_refused() {
    let mut node = Node::start(5).await;
    let first = node
        .client
        .list_sites(list(2, String::new()))
        .await
        .unwrap()
        .into_inner();
    let changed = ListSitesRequest {
        country_code: "ZW".into(),
        ..list(2, first.next_page_token)
    };
    let status = node.client.list_sites(changed).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.get_details_bad_request().unwrap().field_violations[0].field,
        "page_token"
    );

    let bad = ListSitesRequest {
        country_code: "XX".into(),
        kinds: vec![77],
        page_size: -1,
        ..ListSitesRequest::default()
    };
    let status = node.client.list_sites(bad).await.unwrap_err();
    let fields: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, vec!["page_size", "country_code", "kinds[0]"]);
    node.stop().await;
}

#[tokio::test]
async fn writes_say_they_are_not_served_yet() {
    let mut node = Node::start(0).await;
    let status = node
        .client
        .create_site(CreateSiteRequest { site: None })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(
        status.message().contains("CreateSite"),
        "{}",
        status.message()
    );
    node.stop().await;
}
