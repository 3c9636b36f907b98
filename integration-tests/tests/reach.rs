//! The doors for browsers, apps on slow links and the web: gRPC-Web, CORS, compression and
//! lighter answers, checked on a real node with clients that are not hubdir's.

#[allow(dead_code)]
mod support;

use std::process::Command;

use support::{NodeProcess, binary, python, python_script, workspace_root};

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

/// Runs `hubdir` with `args`; panics with its output unless it exits with one of `codes`.
fn hubdir(args: &[&str], codes: &[i32]) {
    let output = Command::new(binary("hubdir")).args(args).output().expect("run hubdir");
    assert!(
        output.status.code().is_some_and(|code| codes.contains(&code)),
        "hubdir {args:?}: {:?}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The HSDS 3.0 API on a node holding two real datasets (Toronto Public Library branches and
/// US public library outlets, fixture samples): `python/hsds_api.py` validates every answer
/// against Open Referral's schemas with formats checked, holds the answers to the export's ids
/// and to its own computation (filters, pages, proximity), and runs schemathesis on every
/// operation of the official spec.
#[test]
fn the_hsds_api_serves_real_data_to_open_referrals_schemas_and_schemathesis() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("hsds.db").display());
    let root = workspace_root();
    for (file, mapping) in
        [("ca-toronto-libraries.geojson", "ca-toronto-libraries"), ("us-imls-sample.csv", "us-imls-pls-outlets")]
    {
        let file = root.join("integration-tests/fixtures/import").join(file);
        let mapping = root.join("examples/mappings").join(format!("{mapping}.toml"));
        let errors = dir.path().join(format!("{file:?}-errors.csv").replace(['/', '"'], "_"));
        // The samples hold a few rows the mappings reject (exit 3), as the import tests show.
        let args = ["import", &file.display().to_string(), "--mapping", &mapping.display().to_string()];
        hubdir(&[&args[..], &["--db", &db, "--errors", &errors.display().to_string()]].concat(), &[0, 3]);
    }
    let export = dir.path().join("export.json");
    hubdir(&["export", "--format", "hsds", "--db", &db, "--out", &export.display().to_string()], &[0]);

    let node = NodeProcess::start_on("hubdir", &["serve", "--node-id", "zz"], "", Some(&db));
    let schemas = root.join("integration-tests/fixtures/hsds-3.0");
    let report = python_script(
        "hsds_api.py",
        &[
            &node.address,
            &schemas.display().to_string(),
            &export.display().to_string(),
            &dir.path().display().to_string(),
        ],
    );
    for check in [
        "about:",
        "services: 125",
        "service_at_locations: 125",
        "organizations:",
        "taxonomies:",
        "proximity:",
        "errors:",
        "schemathesis: Tested: 11",
    ] {
        assert!(report.contains(check), "missing {check}:\n{report}");
    }
    println!("{report}");
}
