//! ReportStatus over real gRPC, and what discovery makes of it: a server on 127.0.0.1:0 with
//! the connectivity and discovery services (here, where the node composes services), agents
//! with real tokens.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hubdir_core::{Kind, SiteInput};
use hubdir_node::testing::{Setup, TestNode};
use hubdir_proto::convert;
use hubdir_proto::v1::connectivity_service_client::ConnectivityServiceClient;
use hubdir_proto::v1::discovery_service_client::DiscoveryServiceClient;
use hubdir_proto::v1::{self as pb, FindNearestRequest, ReportStatusRequest, SiteFilter};
use hubdir_store::testing::Backend;
use hubdir_store::{Change, Precondition, Store, Write};
use tonic::transport::Channel;

struct Node {
    connectivity: ConnectivityServiceClient<Channel>,
    discovery: DiscoveryServiceClient<Channel>,
    store: Arc<Store>,
    node: TestNode,
}

const HERE: (f64, f64) = (-17.8292, 31.0522);

async fn start(backend: Backend) -> Option<Node> {
    let seed = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let site = SiteInput {
                name: format!("sites/zw/{id}"),
                display_name: format!("Help point {id}"),
                kind: Some(Kind::Telecentre),
                country_code: "ZW".into(),
                location: Some((HERE.0 + i as f64 * 0.001, HERE.1)),
                time_zone: "Africa/Harare".into(),
                ..SiteInput::default()
            }
            .validate()
            .unwrap();
            Write { change: Change::Upsert(Box::new(site)), precondition: Precondition::None }
        })
        .collect();
    // The node composes services here: connectivity feeds discovery's filters.
    let mounts = [hubdir_connectivity::MOUNT, hubdir_discovery::MOUNT];
    let node = TestNode::start_with(backend, &mounts, Setup { seed, ..Setup::default() }).await?;
    let channel = Channel::from_shared(node.endpoint()).unwrap().connect().await.unwrap();
    Some(Node {
        connectivity: ConnectivityServiceClient::new(channel.clone()),
        discovery: DiscoveryServiceClient::new(channel),
        store: node.store.clone(),
        node,
    })
}

impl Node {
    /// A request carrying a token with `scope` (and, for agents, the `sites` it covers).
    fn with_token<T>(&self, scope: &str, sites: &[&str], message: T) -> tonic::Request<T> {
        TestNode::with_token(&self.node.token("tester", scope, None, None, sites), message)
    }

    /// A ReportStatus call from an agent whose token covers `sites`.
    async fn report(&mut self, sites: &[&str], messages: Vec<Vec<pb::Measurement>>) -> pb::ReportStatusResponse {
        let stream = tokio_stream::iter(messages.into_iter().map(|measurements| ReportStatusRequest { measurements }));
        let request = self.with_token("connectivity.report", sites, stream);
        self.connectivity.report_status(request).await.unwrap().into_inner()
    }

    async fn nearest(&mut self, filter: SiteFilter) -> Vec<String> {
        let request = FindNearestRequest {
            location: Some(pb::LatLng { latitude: HERE.0, longitude: HERE.1 }),
            max_results: 10,
            max_distance_meters: 0.0,
            filter: Some(filter),
            view: 0,
        };
        let found = self.discovery.find_nearest(request).await.unwrap().into_inner();
        found.results.into_iter().map(|r| r.site.unwrap().name).collect()
    }

    /// Asks FindNearest until it gives `want`, waking on each commit of the store and at least
    /// every 50 ms: the index applies a report's STATUS event on the same wake-up. The
    /// deadline is generous (a shared 2-core machine can stall); the usual figure is
    /// milliseconds.
    async fn nearest_becomes(&mut self, filter: SiteFilter, want: &[&str]) {
        let acknowledged = Instant::now();
        let mut changes = self.store.watch_changes();
        loop {
            let got = self.nearest(filter.clone()).await;
            let elapsed = acknowledged.elapsed();
            assert!(elapsed < Duration::from_secs(30), "FindNearest gave {got:?}, want {want:?}, after {elapsed:?}");
            if got == want {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), changes.changed()).await;
        }
    }
}

fn measurement(site: &str, key: &str, seconds_ago: i64, online: bool, download: Option<f64>) -> pb::Measurement {
    pb::Measurement {
        site: site.into(),
        observe_time: Some(convert::timestamp(chrono::Utc::now() - chrono::Duration::seconds(seconds_ago))),
        online,
        download_mbps: download,
        technology: pb::AccessTechnology::Fibre.into(),
        idempotency_key: key.into(),
        ..pb::Measurement::default()
    }
}

async fn agents_report_only_for_their_sites_and_bad_reports_are_quarantined(backend: Backend) {
    let Some(mut node) = start(backend).await else { return };
    let response = node
        .report(
            &["sites/zw/a"],
            vec![
                vec![
                    measurement("sites/zw/a", "k1", 60, true, Some(30.0)),
                    measurement("sites/zw/b", "k2", 60, true, Some(30.0)),
                    measurement("sites/zw/a", "k3", -600, true, Some(30.0)),
                ],
                vec![
                    measurement("sites/zw/a", "k4", 8 * 24 * 3600, true, Some(30.0)),
                    measurement("sites/zw/a", "k1", 60, true, Some(30.0)),
                    // Older than k1: stored in the history, never the latest.
                    measurement("sites/zw/a", "k5", 120, false, None),
                ],
            ],
        )
        .await;
    assert_eq!((response.accepted_count, response.duplicate_count), (2, 1), "{response:?}");
    let refused: Vec<(i64, &str, &str)> = response
        .refused
        .iter()
        .map(|r| (r.index, r.idempotency_key.as_str(), r.reason.split(':').next().unwrap()))
        .collect();
    assert_eq!(refused, [(1, "k2", "NOT_PERMITTED"), (2, "k3", "FROM_THE_FUTURE"), (3, "k4", "TOO_OLD")]);

    let status = node
        .connectivity
        .get_status(pb::GetStatusRequest { name: "sites/zw/a/connectivity".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state, i32::from(pb::ConnectivityState::Online));
    assert_eq!(status.class, i32::from(pb::ConnectivityClass::Good));
    assert_eq!(status.latest.unwrap().idempotency_key, "k1", "the older k5 must not replace k1");

    let quarantined = node.store.list_quarantine(None, None, 10).await.unwrap();
    let mut reasons: Vec<(&str, &str, &str, &str)> = quarantined
        .iter()
        .map(|q| {
            (q.idempotency_key.as_str(), q.site.as_str(), q.principal.as_str(), q.reason.split(':').next().unwrap())
        })
        .collect();
    reasons.sort();
    // A refusal for a site the agent may not report for is filed under the agent, not the
    // site it named: `hubdir quarantine --site sites/zw/b` shows no fakes.
    assert_eq!(
        reasons,
        [
            ("k2", "", "tester", "NOT_PERMITTED"),
            ("k3", "sites/zw/a", "tester", "FROM_THE_FUTURE"),
            ("k4", "sites/zw/a", "tester", "TOO_OLD")
        ]
    );
    assert!(node.store.list_quarantine(Some("sites/zw/b"), None, 10).await.unwrap().is_empty());
    assert!(quarantined.iter().all(|q| q.body.contains(&q.idempotency_key)), "the measurement is kept as sent");
}

async fn an_online_only_search_follows_reports_and_their_time_to_live(backend: Backend) {
    let Some(mut node) = start(backend).await else { return };
    let online =
        SiteFilter { connectivity_states: vec![pb::ConnectivityState::Online.into()], ..SiteFilter::default() };
    // Nothing reported yet: every site is UNKNOWN.
    assert!(node.nearest(online.clone()).await.is_empty());

    node.report(&["sites/zw/a"], vec![vec![measurement("sites/zw/a", "up", 30, true, Some(30.0))]]).await;
    node.nearest_becomes(online.clone(), &["sites/zw/a"]).await;
    let fast = SiteFilter { min_download_mbps: 25.0, ..SiteFilter::default() };
    assert_eq!(node.nearest(fast).await, ["sites/zw/a"]);
    let faster = SiteFilter { min_download_mbps: 50.0, ..SiteFilter::default() };
    assert!(node.nearest(faster).await.is_empty());

    node.report(&["sites/zw/a"], vec![vec![measurement("sites/zw/a", "down", 20, false, None)]]).await;
    node.nearest_becomes(online.clone(), &[]).await;
    let offline =
        SiteFilter { connectivity_states: vec![pb::ConnectivityState::Offline.into()], ..SiteFilter::default() };
    assert_eq!(node.nearest(offline).await, ["sites/zw/a"]);

    node.report(&["sites/zw/a"], vec![vec![measurement("sites/zw/a", "up-again", 10, true, Some(30.0))]]).await;
    node.nearest_becomes(online.clone(), &["sites/zw/a"]).await;

    // A report older than the time to live (one hour by default) is stored, but the site
    // reads UNKNOWN: not online, and found by an UNKNOWN search.
    node.report(&["sites/zw/c"], vec![vec![measurement("sites/zw/c", "stale", 2 * 3600, true, Some(30.0))]]).await;
    let status = node
        .connectivity
        .get_status(pb::GetStatusRequest { name: "sites/zw/c/connectivity".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state, i32::from(pb::ConnectivityState::Unknown));
    assert_eq!(status.latest.unwrap().idempotency_key, "stale");
    let unknown =
        SiteFilter { connectivity_states: vec![pb::ConnectivityState::Unknown.into()], ..SiteFilter::default() };
    node.nearest_becomes(unknown, &["sites/zw/b", "sites/zw/c"]).await;
    assert_eq!(node.nearest(online).await, ["sites/zw/a"]);
}

/// The hand-computed example of `metrics`, end to end: reported over gRPC, summarised for the
/// country over the last hour.
async fn a_country_summary_matches_the_hand_computed_example(backend: Backend) {
    let Some(mut node) = start(backend).await else { return };
    let mut a: Vec<pb::Measurement> = [10.0, 20.0, 30.0, 40.0]
        .iter()
        .enumerate()
        .map(|(i, d)| pb::Measurement {
            upload_mbps: Some(d / 10.0),
            latency_ms: [Some(30.0), None, Some(50.0), None][i],
            ..measurement("sites/zw/a", &format!("a{i}"), 600 - i as i64 * 60, true, Some(*d))
        })
        .collect();
    a.push(measurement("sites/zw/a", "a-down", 100, false, None));
    let b = pb::Measurement {
        upload_mbps: Some(10.0),
        latency_ms: Some(10.0),
        ..measurement("sites/zw/b", "b0", 300, true, Some(100.0))
    };
    let response = node.report(&["sites/zw/a", "sites/zw/b"], vec![a, vec![b]]).await;
    assert_eq!(response.accepted_count, 6);
    let now = chrono::Utc::now();
    let request = pb::SummarizeConnectivityRequest {
        scope: Some(pb::summarize_connectivity_request::Scope::CountryCode("ZW".into())),
        start_time: Some(convert::timestamp(now - chrono::Duration::hours(1))),
        end_time: Some(convert::timestamp(now + chrono::Duration::seconds(1))),
    };
    let summary = node
        .connectivity
        .summarize_connectivity(node.with_token("sites.read", &[], request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((summary.site_count, summary.sites_without_data_count), (3, 1));
    assert!((summary.uptime_ratio - 5.0 / 6.0).abs() < 1e-12);
    assert_eq!((summary.median_download_mbps, summary.p10_download_mbps), (30.0, 10.0));
    assert_eq!((summary.median_upload_mbps, summary.p10_upload_mbps), (3.0, 1.0));
    assert_eq!(summary.median_latency_ms, 30.0);
    assert_eq!(summary.meeting_benchmark_ratio, 1.0);

    // No window: INVALID_ARGUMENT naming the field.
    let bad = pb::SummarizeConnectivityRequest {
        scope: Some(pb::summarize_connectivity_request::Scope::CountryCode("ZW".into())),
        ..Default::default()
    };
    let status = node.connectivity.summarize_connectivity(node.with_token("sites.read", &[], bad)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

hubdir_store::on_both_backends!(
    agents_report_only_for_their_sites_and_bad_reports_are_quarantined,
    an_online_only_search_follows_reports_and_their_time_to_live,
    a_country_summary_matches_the_hand_computed_example,
);
