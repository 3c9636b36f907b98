//! The server's limits and its shutdown, as a client on the network meets them: a real
//! `hubdir serve` process, driven by tonic clients over loopback.

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use hubdir_proto::v1::discovery_service_client::DiscoveryServiceClient;
use hubdir_proto::v1::registry_service_client::RegistryServiceClient;
use hubdir_proto::v1::{
    self as pb, BatchUpsertSitesRequest, CreateSiteRequest, GetSiteRequest, ListSitesInCellRequest, SiteFilter,
};
use support::NodeProcess;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn site(id: &str, kind: pb::Kind, latitude: f64, longitude: f64) -> pb::Site {
    pb::Site {
        name: format!("sites/zw/{id}"),
        display_name: format!("Help point {id}"),
        kind: kind.into(),
        operator: "ZW Post".into(),
        country_code: "ZW".into(),
        location: Some(pb::LatLng { latitude, longitude }),
        time_zone: "Africa/Harare".into(),
        ..pb::Site::default()
    }
}

/// A batch stream that stays open until its sender is dropped: a request in flight.
fn open_batch(
    client: &RegistryServiceClient<Channel>,
    token: &str,
) -> (tokio::sync::mpsc::Sender<BatchUpsertSitesRequest>, tokio::task::JoinHandle<Result<i64, tonic::Status>>) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut client = client.clone();
    let request = bearer(token, ReceiverStream::new(rx));
    let call =
        tokio::spawn(async move { client.batch_upsert_sites(request).await.map(|r| r.into_inner().created_count) });
    (tx, call)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_size_concurrency_and_timeout_limits_hold() {
    let config = "[server]\nmax_concurrent_requests_per_connection = 2\nrequest_timeout_secs = 3\n\
                  [telemetry]\nprometheus_listen = \"127.0.0.1:0\"\n";
    let node = NodeProcess::start("hubdir", &["serve", "--node-id", "zw"], config);
    let token = node.token("sites.write", Some("zw"), Some("ZW Post"), &[]);
    let endpoint = format!("http://{}", node.address);
    let registry =
        RegistryServiceClient::connect(endpoint.clone()).await.unwrap().max_encoding_message_size(usize::MAX);

    // A message past server.max_message_bytes (4 MiB) is refused before it is decoded.
    let mut huge = site("huge", pb::Kind::Telecentre, -17.8, 31.0);
    huge.service_notes = "x".repeat(5 << 20);
    let refused =
        registry.clone().create_site(bearer(&token, CreateSiteRequest { site: Some(huge) })).await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");

    // Two requests in flight fill a connection's two slots: a third is shed at once. A
    // request that reaches the server while the slots are full is itself shed, whichever it
    // is: a stream shed that way is opened again, until the two streams hold the slots.
    let registry = RegistryServiceClient::new(Channel::from_shared(endpoint.clone()).unwrap().connect().await.unwrap());
    let get = || bearer(&token, GetSiteRequest { name: "sites/zw/none".into() });
    let started = Instant::now();
    let mut streams = vec![open_batch(&registry, &token), open_batch(&registry, &token)];
    let shed = loop {
        assert!(started.elapsed() < Duration::from_secs(20), "a third request was never shed");
        for stream in &mut streams {
            if stream.1.is_finished() {
                let outcome = (&mut stream.1).await.unwrap();
                assert_eq!(outcome.as_ref().map_err(|s| s.code()).unwrap_err(), Code::ResourceExhausted, "{outcome:?}");
                *stream = open_batch(&registry, &token);
            }
        }
        match registry.clone().get_site(get()).await {
            Err(status) if status.code() == Code::ResourceExhausted => break status,
            Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
            Ok(found) => panic!("{found:?}"),
        }
        tokio::task::yield_now().await;
    };
    assert!(shed.message().contains("Too many active requests"), "{shed:?}");
    let in_flight = Instant::now();

    // The two streams never end: server.request_timeout_secs (3 s) cuts them.
    for (sender, call) in streams {
        let cut = call.await.unwrap().unwrap_err();
        assert_eq!((cut.code(), cut.message()), (Code::Cancelled, "Timeout expired"), "{cut:?}");
        drop(sender);
    }
    // At most 3 s after the shed request; at least a little after, as they were open by then.
    assert!(in_flight.elapsed() <= Duration::from_secs(30), "cut after {:?}", in_flight.elapsed());
    // The slots are free again.
    assert_eq!(registry.clone().get_site(get()).await.unwrap_err().code(), Code::NotFound);

    // The Prometheus endpoint counts the shed calls and the calls by status, in text that the
    // official Python client's parser accepts.
    let metrics = prometheus_address(&node.logs());
    let samples = support::python_script("prometheus_scrape.py", &[&format!("http://{metrics}/metrics")]);
    let sample = |prefix: &str| samples.lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
    let shed = sample("hubdir_server_shed_total{limit=\"requests_per_connection\"").expect(&samples);
    assert!(!shed.ends_with(" 0.0"), "{shed}");
    let counted = |code: &str, method: &str| {
        samples.lines().any(|l| {
            l.starts_with("rpc_server_call_duration_seconds_count{")
                && l.contains(&format!("rpc_grpc_status_code=\"{code}\""))
                && l.contains(&format!("rpc_method=\"{method}\""))
        })
    };
    assert!(counted("5", "GetSite") && counted("1", "BatchUpsertSites"), "{samples}");

    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
}

/// The Prometheus endpoint's address, as the node logged it.
fn prometheus_address(logs: &[String]) -> String {
    logs.iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["message"] == "serving Prometheus metrics at /metrics")
        .and_then(|event| event["address"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no Prometheus endpoint in the logs:\n{}", logs.join("\n")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_and_scan_limits_hold() {
    let node = NodeProcess::start("hubdir", &["serve", "--node-id", "zw"], "");
    let token = node.token("sites.write", Some("zw"), Some("ZW Post"), &[]);
    let endpoint = format!("http://{}", node.address);
    let registry = RegistryServiceClient::connect(endpoint.clone()).await.unwrap();

    // A stream of more than 50,000 rows is refused at row 50,000, naming the field.
    let rows: Vec<BatchUpsertSitesRequest> = (0..11)
        .map(|m| BatchUpsertSitesRequest {
            sites: (0..5000).map(|i| pb::Site { name: format!("sites/zw/b{m}-{i}"), ..pb::Site::default() }).collect(),
            atomic: false,
        })
        .collect();
    let too_many = registry.clone().batch_upsert_sites(bearer(&token, tokio_stream::iter(rows))).await.unwrap_err();
    assert_eq!(too_many.code(), Code::InvalidArgument);
    assert!(too_many.message().contains("50000"), "{}", too_many.message());

    // One listing call reads at most 10,000 stored rows: 10,100 post offices in one cell,
    // then five telecentres named after them; a telecentre-only listing comes back short,
    // with a token, and the next pages find all five.
    // Around the centre of a resolution-5 cell (some 250 km²), so every site is inside it.
    let cell = h3o::LatLng::new(-17.83, 31.05).unwrap().to_cell(h3o::Resolution::Five);
    let centre = h3o::LatLng::from(cell);
    let (lat, lng) = (centre.lat(), centre.lng());
    let offices: Vec<pb::Site> = (0..10_100)
        .map(|i| {
            site(
                &format!("a{i:05}"),
                pb::Kind::PostOffice,
                lat + (i % 100) as f64 * 1e-4,
                lng + (i / 100) as f64 * 1e-4,
            )
        })
        .chain((0..5).map(|i| site(&format!("z{i}"), pb::Kind::Telecentre, lat, lng + 0.001)))
        .collect();
    let messages: Vec<BatchUpsertSitesRequest> =
        offices.chunks(2000).map(|c| BatchUpsertSitesRequest { sites: c.to_vec(), atomic: false }).collect();
    let written = registry.clone().batch_upsert_sites(bearer(&token, tokio_stream::iter(messages))).await.unwrap();
    assert_eq!(written.into_inner().created_count, 10_105);
    let cell = cell.to_string();
    let mut discovery = DiscoveryServiceClient::connect(endpoint).await.unwrap();
    let filter = SiteFilter { kinds: vec![pb::Kind::Telecentre.into()], ..SiteFilter::default() };
    let (mut found, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let request = ListSitesInCellRequest {
            h3_cell: cell.clone(),
            filter: Some(filter.clone()),
            page_size: 100,
            page_token: token.clone(),
            view: 0,
        };
        let page = discovery.list_sites_in_cell(request).await.unwrap().into_inner();
        pages += 1;
        if pages == 1 {
            let names: Vec<&str> = page.sites.iter().map(|s| s.name.as_str()).collect();
            assert!(
                names.is_empty() && !page.next_page_token.is_empty(),
                "the first scan read past 10,000 rows: {names:?}"
            );
        }
        found.extend(page.sites.into_iter().map(|s| s.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(found, (0..5).map(|i| format!("sites/zw/z{i}")).collect::<Vec<_>>());
    assert!(pages >= 2);

    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
}

/// On SIGTERM health turns NOT_SERVING at once; a request in flight may finish within
/// `drain_deadline_secs`; one still running past it is cut, and the log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_cuts_the_late_ones() {
    // The deadline leaves the finishing stream time to end on a loaded CI machine.
    let config = "[server]\ndrain_deadline_secs = 6\nrequest_timeout_secs = 60\n";
    let node = NodeProcess::start("hubdir", &["serve", "--node-id", "zw"], config);
    let token = node.token("sites.write", Some("zw"), Some("ZW Post"), &[]);
    let endpoint = format!("http://{}", node.address);
    let mut health = HealthClient::new(Channel::from_shared(endpoint.clone()).unwrap().connect().await.unwrap());
    let mut watch =
        health.watch(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();
    loop {
        let update = watch.message().await.unwrap().expect("a health update");
        if update.status == i32::from(ServingStatus::Serving) {
            break;
        }
    }
    let registry = RegistryServiceClient::connect(endpoint).await.unwrap();
    let (finishing, finishing_call) = open_batch(&registry, &token);
    let (late, late_call) = open_batch(&registry, &token);
    // A row-by-row batch writes every 500 rows as they arrive (docs/ARCHITECTURE.md), so a
    // stream is in flight on the server once its 500th row can be read back. Handing a
    // message to the client proves nothing: its stream may not have reached the server
    // before the GOAWAY, which rightly refuses it.
    const CHUNK: usize = 500;
    for (sender, prefix, latitude) in [(&finishing, "a", -17.8), (&late, "b", -17.9)] {
        let rows = (0..CHUNK).map(|i| site(&format!("{prefix}{i}"), pb::Kind::Telecentre, latitude, 31.0)).collect();
        sender.send(BatchUpsertSitesRequest { sites: rows, atomic: false }).await.unwrap();
    }
    for last in ["a499", "b499"] {
        let deadline = Instant::now() + Duration::from_secs(20);
        let request = || bearer(&token, GetSiteRequest { name: format!("sites/zw/{last}") });
        while let Err(status) = registry.clone().get_site(request()).await {
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
            assert!(Instant::now() < deadline, "the server never wrote {last}: is a chunk still 500 rows?");
            tokio::task::yield_now().await;
        }
    }

    node.send_term();
    let update = tokio::time::timeout(Duration::from_secs(10), watch.message()).await.expect("a health update");
    assert_eq!(update.unwrap().unwrap().status, i32::from(ServingStatus::NotServing));

    // The first finishes inside the deadline and gets its answer.
    drop(finishing);
    assert_eq!(finishing_call.await.unwrap().unwrap(), CHUNK as i64);
    // The second never finishes: the server cuts it at the deadline and exits.
    let (status, logs) = node.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    assert!(late_call.await.unwrap().is_err());
    drop(late);
    assert!(logs.iter().any(|l| l.contains("drain deadline passed")), "{}", logs.join("\n"));
}
