//! The doors for browsers, apps on slow links and the web: gRPC-Web, CORS, compression and
//! lighter answers, checked on a real node with clients that are not hubdir's.

#[allow(dead_code)]
mod support;

use support::{NodeProcess, python};

const ALLOWED: &str = "http://maps.example";

#[test]
fn browsers_reach_discovery_through_grpc_web_with_cors_gzip_and_a_basic_view() {
    let config = format!("[server]\ncors_allowed_origins = [\"{ALLOWED}\"]\n");
    let node = NodeProcess::start("hubdir", &["serve", "--demo", "--demo-sites", "300", "--node-id", "zw"], &config);
    let reader = node.token("discovery.read", None, None, &[]);
    let report = python("grpc_web.py", &node.address, &[ALLOWED], &[("HUBDIR_TOKEN", &reader)]);
    for check in ["grpc-web: binary", "grpc-web: text", "INVALID_ARGUMENT", "cors:", "view:", "gzip:"] {
        assert!(report.contains(check), "missing {check}:\n{report}");
    }
    println!("{report}");
}

#[test]
fn the_http_api_answers_json_and_geojson_from_the_same_handlers() {
    let node = NodeProcess::start("hubdir", &["serve", "--demo", "--demo-sites", "300", "--node-id", "zw"], "");
    let reader = node.token("sites.read", None, None, &[]);
    let report = python("http_api.py", &node.address, &[], &[("HUBDIR_TOKEN", &reader)]);
    for check in ["json:", "geojson:", "errors:", "gzip:", "sites:"] {
        assert!(report.contains(check), "missing {check}:\n{report}");
    }
    println!("{report}");
}
