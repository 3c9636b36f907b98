//! The position a person searches from never reaches a log line or a span: every event and
//! span of every crate is captured at TRACE (SQL statements included) while FindNearest runs
//! with a distinctive position, and while the cell listing and text search run on that
//! position's resolution-15 cell, and the capture is searched for them.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use hubdir_core::{Kind, SiteInput};
use hubdir_node::{Config, NodeContext};
use hubdir_proto::v1::discovery_service_client::DiscoveryServiceClient;
use hubdir_proto::v1::{self as pb, FindNearestRequest};
use hubdir_store::{Change, Precondition, Store, Write};
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_searchers_position_is_never_logged_or_traced() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::connect(&format!("sqlite://{}", dir.path().join("p.db").display())).await.unwrap());
    let site = SiteInput {
        name: "sites/zw/p1".into(),
        display_name: "Library".into(),
        kind: Some(Kind::PublicLibrary),
        country_code: "ZW".into(),
        location: Some((-17.5, 31.5)),
        time_zone: "Africa/Harare".into(),
        ..SiteInput::default()
    }
    .validate()
    .unwrap();
    store
        .write(vec![Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::None }])
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let ctx = NodeContext::new(Config::default(), store).unwrap();
    tokio::spawn(async move {
        hubdir_node::server::serve(ctx, &[hubdir_discovery::MOUNT], listener, std::future::pending()).await
    });
    let mut client = DiscoveryServiceClient::connect(format!("http://{address}")).await.unwrap();

    // Digits that appear nowhere else: the searcher's position, valid and invalid.
    let positions = [(-17.83219876, 31.05234567), (-98.76543219, 31.05234567)];
    for (latitude, longitude) in positions {
        let request = FindNearestRequest {
            location: Some(pb::LatLng { latitude, longitude }),
            max_results: 3,
            ..FindNearestRequest::default()
        };
        let _ = client.find_nearest(request).await;
    }
    // A cell fine enough to be a position (resolution 15, under a metre across) asked of the
    // cell listing and of text search: neither its text nor its numeric range may appear.
    let cell = h3o::LatLng::new(positions[0].0, positions[0].1).unwrap().to_cell(h3o::Resolution::Fifteen);
    let (low, high) = hubdir_geo::descendant_range(cell);
    let listing = pb::ListSitesInCellRequest { h3_cell: cell.to_string(), ..Default::default() };
    client.list_sites_in_cell(listing).await.unwrap();
    let search = pb::SearchSitesRequest { query: "library".into(), h3_cell: cell.to_string(), ..Default::default() };
    client.search_sites(search).await.unwrap();
    let cell_needles = [cell.to_string(), low.to_string(), high.to_string(), format!("{low:x}"), format!("{high:x}")];

    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    assert!(text.len() > 1000, "the capture saw almost nothing ({} bytes): is it wired?", text.len());
    for needle in ["83219876", "05234567", "76543219", "17.832", "31.052", "98.765"] {
        assert!(!text.contains(needle), "a searcher's position reached the logs ({needle}):\n{text}");
    }
    for needle in &cell_needles {
        assert!(!text.contains(needle.as_str()), "a fine cell reached the logs ({needle}):\n{text}");
    }
    let _ = writeln!(std::io::stderr(), "privacy: {} bytes of TRACE logs and spans, no position in them", text.len());
}
