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

/// The page in Debian's Chromium (installed by `.ci/test`, with axe-core from npm): see
/// `python/page_browser.py`. Without Chromium or axe-core it is skipped, and fails under
/// `CI=true`.
#[test]
fn the_page_finds_help_in_a_real_browser_on_a_slow_link_by_keyboard_and_without_javascript() {
    let axe = std::env::var("HUBDIR_AXE_JS").ok().filter(|p| std::path::Path::new(p).is_file());
    let chromium =
        std::path::Path::new("/usr/bin/chromium").exists() && std::path::Path::new("/usr/bin/chromedriver").exists();
    let Some(axe) = axe.filter(|_| chromium) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but Chromium or axe-core is missing (.ci/test installs them)"
        );
        eprintln!("SKIPPED: Chromium, ChromeDriver or axe-core (HUBDIR_AXE_JS) is missing; .ci/test installs them");
        return;
    };
    let node = NodeProcess::start("hubdir", &["serve", "--demo", "--demo-sites", "300", "--node-id", "zw"], "");
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("help-near-me.png");
    let report =
        python("page_browser.py", &node.address, &[&screenshot.display().to_string()], &[("HUBDIR_AXE_JS", &axe)]);
    for check in ["slow link:", "screenshot:", "axe-core:", "keyboard:", "no JavaScript:", "french:"] {
        assert!(report.contains(check), "missing {check}:\n{report}");
    }
    // The position (and its rounding) reached no log line; timestamps are left out, where
    // `12:00:17.829` would read as a latitude.
    let logs: Vec<String> = node
        .logs()
        .iter()
        .map(|line| match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(mut event)) => {
                event.remove("timestamp");
                serde_json::Value::Object(event).to_string()
            }
            _ => line.clone(),
        })
        .collect();
    let logs = logs.join("\n");
    for digits in ["17.829", "31.052", "82919876", "05214567"] {
        assert!(!logs.contains(digits), "the node logged the searcher's position ({digits})");
    }
    println!("{report}");
}
