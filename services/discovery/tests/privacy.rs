//! The position a person searches from never reaches a log line, a span or the database:
//! every event and span of every crate is captured at TRACE (SQL statements included) while
//! FindNearest runs with distinctive positions, and while the cell listing and text search run
//! on that position's resolution-15 cell, and while the HTTP API's `/v1/nearest` answers JSON
//! and GeoJSON from it and the page's `/near` finds help from it; then the capture, the SQLite files and every row of
//! every PostgreSQL table are searched for the position's digits and for its H3 cells of
//! resolutions 8 to 15 (finer than the resolution 7 the privacy rule allows), as text,
//! decimal and hex.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use hubdir_core::{Kind, SiteInput};
use hubdir_node::{Config, NodeContext};
use hubdir_proto::v1::discovery_service_client::DiscoveryServiceClient;
use hubdir_proto::v1::{self as pb, FindNearestRequest};
use hubdir_store::{Change, Precondition, Store, Write};
use sea_orm::{ConnectionTrait, Statement};
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

/// Digits that appear nowhere else: the searcher's position, valid and invalid.
const VALID: (f64, f64) = (-17.83219876, 31.05234567);
const INVALID: (f64, f64) = (-98.76543219, 31.05234567);

/// Everything that would give the position away: its digits, and its cells of resolution 8 to
/// 15 with the descendant range of the finest, as text, decimal and hex.
fn needles() -> Vec<String> {
    let mut needles: Vec<String> =
        ["83219876", "05234567", "76543219", "17.832", "31.052", "98.765"].iter().map(|s| s.to_string()).collect();
    let point = h3o::LatLng::new(VALID.0, VALID.1).unwrap();
    for resolution in 8..=15u8 {
        let cell = point.to_cell(h3o::Resolution::try_from(resolution).unwrap());
        needles.extend([cell.to_string(), u64::from(cell).to_string()]);
    }
    let (low, high) = hubdir_geo::descendant_range(point.to_cell(h3o::Resolution::Fifteen));
    needles.extend([low.to_string(), high.to_string(), format!("{low:x}"), format!("{high:x}")]);
    needles
}

/// The position's coordinates as the bytes a database might store them in.
fn binary_needles() -> Vec<Vec<u8>> {
    [VALID.0, VALID.1, INVALID.0].iter().flat_map(|v| [v.to_le_bytes().to_vec(), v.to_be_bytes().to_vec()]).collect()
}

/// Serves discovery on `store` and searches from the position every way a client can.
async fn search_from_the_position(store: Arc<Store>) {
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
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        hubdir_node::server::serve(ctx, &[hubdir_discovery::MOUNT], listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let mut client = DiscoveryServiceClient::connect(format!("http://{address}")).await.unwrap();

    // The search must really run: a call that returned early (say, while the index loads)
    // would never have read the position, and would prove nothing.
    let request = |(latitude, longitude): (f64, f64)| FindNearestRequest {
        location: Some(pb::LatLng { latitude, longitude }),
        max_results: 3,
        ..FindNearestRequest::default()
    };
    let found = client.find_nearest(request(VALID)).await.expect("FindNearest answers").into_inner();
    assert_eq!(found.results.len(), 1, "{found:?}");
    let refused = client.find_nearest(request(INVALID)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);

    // A cell fine enough to be a position (resolution 15, under a metre across) asked of the
    // cell listing and of text search.
    let cell = h3o::LatLng::new(VALID.0, VALID.1).unwrap().to_cell(h3o::Resolution::Fifteen);
    let listing = pb::ListSitesInCellRequest { h3_cell: cell.to_string(), ..Default::default() };
    client.list_sites_in_cell(listing).await.unwrap();
    let search = pb::SearchSitesRequest { query: "library".into(), h3_cell: cell.to_string(), ..Default::default() };
    client.search_sites(search).await.unwrap();
    drop(client);

    // The HTTP API, in JSON and GeoJSON, and the page's search, with a valid and an invalid
    // position; and the page's search from a typed place.
    for (latitude, longitude) in [VALID, INVALID] {
        for accept in ["application/json", "application/geo+json"] {
            let status = http_get(address, &format!("/v1/nearest?lat={latitude}&lng={longitude}&k=3"), accept).await;
            assert_eq!(status, if latitude == VALID.0 { 200 } else { 400 });
        }
        for target in [
            format!("/near?lat={latitude}&lng={longitude}"),
            format!("/near?lat={latitude}&lng={longitude}&fragment=1"),
        ] {
            let status = http_get(address, &target, "text/html").await;
            assert_eq!(status, if latitude == VALID.0 { 200 } else { 400 });
        }
    }
    assert_eq!(http_get(address, "/near?q=library&country=ZW", "text/html").await, 200);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A GET over HTTP/1.1, as any client sends it; the response's status code.
async fn http_get(address: std::net::SocketAddr, target: &str, accept: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!("GET {target} HTTP/1.1\r\nHost: hubdir\r\nAccept: {accept}\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("not HTTP: {text}"))
}

fn assert_absent(what: &str, haystack: &[u8]) {
    let text = String::from_utf8_lossy(haystack);
    for needle in needles() {
        assert!(!text.contains(needle.as_str()), "{what} holds the searcher's position ({needle})");
    }
    for needle in binary_needles() {
        assert!(!haystack.windows(needle.len()).any(|w| w == needle.as_slice()), "{what} holds a coordinate's bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_searchers_position_is_never_logged_traced_or_stored() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        // No timestamps: `01:32:17.832` would read as the position's `17.832` (this failed
        // about one run in thirty).
        .without_time()
        .with_writer(move || writer.clone())
        .init();

    // SQLite: the database file and its write-ahead log.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.db");
    let store = Arc::new(Store::connect(&format!("sqlite://{}", path.display())).await.unwrap());
    search_from_the_position(store.clone()).await;
    // The node has stopped and let go of the store: closing it folds the write-ahead log
    // into the file, so the scan below sees everything written, in files that stay put.
    Arc::try_unwrap(store).expect("the stopped node holds no store").close().await.unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        assert_absent(&entry.path().display().to_string(), &std::fs::read(entry.path()).unwrap());
        files += 1;
    }
    assert!(files >= 1);

    // PostgreSQL, where statement logging is the risk: every row of every table.
    match std::env::var("HUBDIR_TEST_POSTGRES_URL") {
        Ok(base) => {
            let schema = format!("hubdir_privacy_{}", std::process::id());
            let admin = sea_orm::Database::connect(&base).await.unwrap();
            admin.execute_unprepared(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
            admin.execute_unprepared(&format!("CREATE SCHEMA {schema}")).await.unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            let store =
                Arc::new(Store::connect(&format!("{base}{sep}options=-c%20search_path%3D{schema}")).await.unwrap());
            search_from_the_position(store.clone()).await;
            let tables = admin
                .query_all_raw(Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!(
                        "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = '{schema}'"
                    ),
                ))
                .await
                .unwrap();
            assert!(tables.len() >= 5, "{} tables", tables.len());
            for table in tables {
                let name: String = table.try_get("", "t").unwrap();
                let rows = admin
                    .query_all_raw(Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        format!("SELECT t::text AS row FROM {schema}.\"{name}\" t"),
                    ))
                    .await
                    .unwrap();
                for row in rows {
                    let text: String = row.try_get("", "row").unwrap();
                    assert_absent(&format!("PostgreSQL table {name}"), text.as_bytes());
                }
            }
            admin.execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
        }
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but HUBDIR_TEST_POSTGRES_URL is unset: the PostgreSQL half of the privacy test cannot run")
        }
        Err(_) => {
            let _ = writeln!(std::io::stderr(), "SKIPPED the PostgreSQL half: HUBDIR_TEST_POSTGRES_URL is unset");
        }
    }

    let text = capture.0.lock().unwrap().clone();
    assert!(text.len() > 1000, "the capture saw almost nothing ({} bytes): is it wired?", text.len());
    assert_absent("the TRACE logs and spans", &text);
    let _ = writeln!(std::io::stderr(), "privacy: {} bytes of TRACE logs and spans, no position in them", text.len());
}
