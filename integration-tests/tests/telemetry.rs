//! Telemetry as an operator's collector receives it: two real nodes (`fr` following `zw`)
//! export traces and metrics over OTLP to a real receiver (Python grpcio with the official
//! `opentelemetry-proto` messages). The spans follow the RPC conventions, one trace crosses
//! both nodes, the metrics operators alert on arrive, and nothing exported holds a searcher's
//! position finer than H3 resolution 7, a token, or a query's text (the OTLP half of
//! `services/discovery/tests/privacy.rs`).

#[allow(dead_code)]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hubdir_proto::v1::discovery_service_client::DiscoveryServiceClient;
use hubdir_proto::v1::registry_service_client::RegistryServiceClient;
use hubdir_proto::v1::{
    self as pb, BatchUpsertSitesRequest, CreateSiteRequest, FindNearestRequest, GetSiteRequest, SearchSitesRequest,
};
use serde_json::Value;
use support::{pair, python_bin, workspace_root};

/// The searcher's position: digits that appear nowhere else.
const POSITION: (f64, f64) = (-17.83219876, 31.05234567);
/// A query text that must not be exported.
const QUERY: &str = "zebrawoodlibraryquery";
/// The trace the test's own FindNearest call belongs to (W3C trace context, sampled).
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

fn site(id: &str, latitude: f64, longitude: f64) -> pb::Site {
    pb::Site {
        name: format!("sites/zw/{id}"),
        display_name: format!("Library {id}"),
        kind: pb::Kind::PublicLibrary.into(),
        operator: "zw post".into(),
        country_code: "ZW".into(),
        location: Some(pb::LatLng { latitude, longitude }),
        time_zone: "Africa/Harare".into(),
        ..pb::Site::default()
    }
}

/// What would give the searcher away: the position's digits and its cells of resolution 8 to
/// 15, as text and as numbers.
fn position_needles() -> Vec<String> {
    let mut needles: Vec<String> = ["83219876", "05234567", "17.832", "31.052"].iter().map(|s| s.to_string()).collect();
    let point = h3o::LatLng::new(POSITION.0, POSITION.1).unwrap();
    for resolution in 8..=15u8 {
        let cell = point.to_cell(h3o::Resolution::try_from(resolution).unwrap());
        needles.extend([cell.to_string(), u64::from(cell).to_string()]);
    }
    needles
}

/// Every string value (attribute values, names) in an OTLP JSON document.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        other => out.push(other.to_string()),
    }
}

/// An attribute's value from an OTLP attribute list, as text.
fn attribute(attributes: &Value, key: &str) -> Option<String> {
    attributes.as_array()?.iter().find(|a| a["key"] == key).map(|a| {
        let value = &a["value"];
        value.get("stringValue").or(value.get("intValue")).map(|v| v.as_str().map_or(v.to_string(), str::to_owned))
    })?
}

/// A span as the test reads it: its node, name, kind, trace, and attributes.
struct Span {
    node: String,
    name: String,
    kind: String,
    trace_id: String,
    attributes: Value,
}

fn spans(lines: &[Value]) -> Vec<Span> {
    let mut out = Vec::new();
    for line in lines.iter().filter(|l| l["signal"] == "traces") {
        for resource in line["body"]["resourceSpans"].as_array().into_iter().flatten() {
            let node = attribute(&resource["resource"]["attributes"], "hubdir.node.id").unwrap_or_default();
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    out.push(Span {
                        node: node.clone(),
                        name: span["name"].as_str().unwrap_or_default().to_owned(),
                        kind: span["kind"].as_str().unwrap_or_default().to_owned(),
                        // MessageToDict writes bytes as base64.
                        trace_id: span["traceId"].as_str().unwrap_or_default().to_owned(),
                        attributes: span["attributes"].clone(),
                    });
                }
            }
        }
    }
    out
}

/// (node, metric name) for every metric exported.
fn metrics(lines: &[Value]) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for line in lines.iter().filter(|l| l["signal"] == "metrics") {
        for resource in line["body"]["resourceMetrics"].as_array().into_iter().flatten() {
            let node = attribute(&resource["resource"]["attributes"], "hubdir.node.id").unwrap_or_default();
            for scope in resource["scopeMetrics"].as_array().into_iter().flatten() {
                for metric in scope["metrics"].as_array().into_iter().flatten() {
                    out.insert((node.clone(), metric["name"].as_str().unwrap_or_default().to_owned()));
                }
            }
        }
    }
    out
}

fn base64_hex(hex: &str) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_export_conventional_spans_one_trace_across_nodes_and_their_metrics_without_personal_data() {
    // The receiver.
    let dump = tempfile::NamedTempFile::new().unwrap();
    let mut receiver = Command::new(python_bin())
        .arg(workspace_root().join("integration-tests/python/otlp_receiver.py"))
        .arg(dump.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the OTLP receiver");
    let said = receiver.stdout.take().unwrap();
    let _receiver = KillOnDrop(receiver);
    let mut first = String::new();
    BufReader::new(said).read_line(&mut first).unwrap();
    let port = first.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("receiver said {first:?}"));
    let config = format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\nmetrics_interval_secs = 1\n");
    let nodes = pair::start(&config, "http", |_, _| String::new(), (None, None));
    let leader = format!("http://{}", nodes.leader.address);
    let follower = format!("http://{}", nodes.follower.address);

    // Writes on the leader: one site, then a batch of one.
    let mut registry = RegistryServiceClient::connect(leader.clone()).await.unwrap();
    let created = CreateSiteRequest { site: Some(site("lib1", -17.8, 31.0)) };
    registry.create_site(bearer(&nodes.writer, created)).await.unwrap();
    let batch = BatchUpsertSitesRequest { sites: vec![site("lib2", -17.9, 31.1)], atomic: false };
    registry.batch_upsert_sites(bearer(&nodes.writer, tokio_stream::iter([batch]))).await.unwrap();

    // Reads: FindNearest in the test's own trace, and a text search.
    let mut discovery = DiscoveryServiceClient::connect(leader.clone()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut request = tonic::Request::new(FindNearestRequest {
            location: Some(pb::LatLng { latitude: POSITION.0, longitude: POSITION.1 }),
            max_results: 2,
            ..FindNearestRequest::default()
        });
        let parent = format!("00-{TRACE_ID}-00f067aa0ba902b7-01");
        request.metadata_mut().insert("traceparent", parent.parse().unwrap());
        let found = discovery.find_nearest(request).await.unwrap().into_inner();
        if found.results.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the index never held both sites");
        tokio::task::yield_now().await;
    }
    let search = SearchSitesRequest { query: QUERY.into(), country_code: "ZW".into(), ..SearchSitesRequest::default() };
    discovery.search_sites(search).await.unwrap();
    // And the HTTP API, from the same position: timed by route, the position nowhere.
    let address = leader.trim_start_matches("http://").to_owned();
    let target = format!("/v1/nearest?lat={}&lng={}", POSITION.0, POSITION.1);
    let status = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(stream, "GET {target} HTTP/1.1\r\nHost: zw\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer.split(' ').nth(1).unwrap_or_default().to_owned()
    })
    .await
    .unwrap();
    assert_eq!(status, "200");

    // The follower syncs both sites from the leader.
    let mut replica = RegistryServiceClient::connect(follower).await.unwrap();
    let reader = nodes.follower.token("sites.read", None, None, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in ["lib1", "lib2"] {
        let get = || bearer(&reader, GetSiteRequest { name: format!("sites/zw/{id}") });
        while let Err(status) = replica.get_site(get()).await {
            assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
            assert!(
                Instant::now() < deadline,
                "the follower never received {id}; its logs:\n{}",
                nodes.follower.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // A command-line client continues into the node: `hubdir agent` reports a measurement with
    // its own spans exported (the standard OTEL_* variable names the collector).
    let agent_token = nodes.leader.token("connectivity.report", None, None, &["sites/zw/lib1"]);
    let agent = Command::new(support::binary("hubdir"))
        .args(["agent", "--node", &leader, "--token", &agent_token, "--site", "sites/zw/lib1"])
        .args(["--online", "true", "--download-mbps", "12.5"])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert!(agent.status.success(), "{}", String::from_utf8_lossy(&agent.stderr));

    // The metrics operators alert on arrive (exported every second; the change-log heads are
    // read at each 5-second health check).
    let read_dump = || -> Vec<Value> {
        std::fs::read_to_string(dump.path()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let expected = [
        ("zw", "rpc.server.call.duration"),
        ("zw", "http.server.request.duration"),
        ("zw", "hubdir.index.sites"),
        ("zw", "hubdir.index.applied_seq"),
        ("zw", "hubdir.index.load.duration"),
        ("zw", "hubdir.changelog.head_seq"),
        ("zw", "hubdir.import.rows"),
        ("zw", "hubdir.connectivity.measurements"),
        ("fr", "hubdir.federation.events"),
        ("fr", "hubdir.federation.lag"),
        ("fr", "hubdir.federation.connected"),
        ("fr", "hubdir.changelog.head_seq"),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let exported = metrics(&read_dump());
        let missing: Vec<_> =
            expected.iter().filter(|(node, name)| !exported.contains(&(node.to_string(), name.to_string()))).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "metrics never exported: {missing:?}; exported: {exported:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Stopping flushes what is buffered: the follower first (its subscription span ends),
    // then the leader (whose Subscribe span ends with it).
    let (status, logs) = nodes.follower.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", logs.join("\n"));
    let (status, logs) = nodes.leader.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", logs.join("\n"));
    let lines = read_dump();

    // Spans, by the RPC conventions.
    let spans = spans(&lines);
    let server_span = |node: &str, name: &str| {
        spans
            .iter()
            .find(|s| s.node == node && s.name == name && s.kind == "SPAN_KIND_SERVER")
            .unwrap_or_else(|| panic!("no {name} server span from {node}; spans: {:?}", names(&spans)))
    };
    let nearest = server_span("zw", "hubdir.v1.DiscoveryService/FindNearest");
    assert_eq!(attribute(&nearest.attributes, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(attribute(&nearest.attributes, "rpc.service").as_deref(), Some("hubdir.v1.DiscoveryService"));
    assert_eq!(attribute(&nearest.attributes, "rpc.method").as_deref(), Some("FindNearest"));
    assert_eq!(attribute(&nearest.attributes, "rpc.grpc.status_code").as_deref(), Some("0"));
    // Incoming trace context is continued.
    assert_eq!(nearest.trace_id, base64_hex(TRACE_ID), "FindNearest did not continue the caller's trace");
    let create = server_span("zw", "hubdir.v1.RegistryService/CreateSite");
    assert_eq!(attribute(&create.attributes, "rpc.method").as_deref(), Some("CreateSite"));
    // Child spans: the store's work under CreateSite, the index's under FindNearest.
    assert!(spans.iter().any(|s| s.name == "store.write" && s.trace_id == create.trace_id), "{:?}", names(&spans));
    assert!(spans.iter().any(|s| s.name == "index.nearest" && s.trace_id == nearest.trace_id));
    // One trace across two nodes: the follower's Subscribe call and the leader's answer.
    let subscribe = spans
        .iter()
        .find(|s| s.node == "fr" && s.kind == "SPAN_KIND_CLIENT" && s.name == "hubdir.v1.FederationService/Subscribe")
        .unwrap_or_else(|| panic!("no Subscribe client span from fr; spans: {:?}", names(&spans)));
    assert!(
        spans.iter().any(|s| s.node == "zw"
            && s.kind == "SPAN_KIND_SERVER"
            && s.name == "hubdir.v1.FederationService/Subscribe"
            && s.trace_id == subscribe.trace_id),
        "the leader's Subscribe span is not in the follower's trace"
    );
    assert!(spans.iter().any(|s| s.node == "fr" && s.name == "federation.apply" && s.trace_id == subscribe.trace_id));
    // The agent's call and the node's answer are one trace.
    let report = spans
        .iter()
        .find(|s| s.kind == "SPAN_KIND_CLIENT" && s.name == "hubdir.v1.ConnectivityService/ReportStatus")
        .unwrap_or_else(|| panic!("no ReportStatus client span from the agent; spans: {:?}", names(&spans)));
    assert!(
        spans.iter().any(|s| s.node == "zw"
            && s.kind == "SPAN_KIND_SERVER"
            && s.name == "hubdir.v1.ConnectivityService/ReportStatus"
            && s.trace_id == report.trace_id),
        "the node's ReportStatus span is not in the agent's trace"
    );
    // Only hubdir's own spans: no h2, hyper or tonic internals.
    let ours = |name: &str| {
        name.starts_with("hubdir.v1.")
            || name.starts_with("grpc.")
            || ["store.", "index.", "federation."].iter().any(|p| name.starts_with(p))
    };
    assert!(spans.iter().all(|s| ours(&s.name)), "foreign spans: {:?}", names(&spans));

    // Privacy: no position finer than resolution 7, no token, no query text, anywhere.
    let mut exported = Vec::new();
    lines.iter().for_each(|l| strings(&l["body"], &mut exported));
    let text = exported.join("\n");
    assert!(text.len() > 10_000, "the receiver got almost nothing ({} bytes)", text.len());
    for needle in position_needles() {
        assert!(!text.contains(&needle), "exported telemetry holds the searcher's position ({needle})");
    }
    assert!(!text.contains(QUERY), "exported telemetry holds a query's text");
    for token in [&nodes.writer, &agent_token] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!text.contains(signature) && !text.contains("Bearer"), "exported telemetry holds a token");
    }
    eprintln!("telemetry: {} spans, {} bytes of exported strings", spans.len(), text.len());
}

/// Kills the receiver however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn names(spans: &[Span]) -> BTreeSet<(String, String)> {
    spans.iter().map(|s| (s.node.clone(), s.name.clone())).collect()
}
