//! TLS and mTLS between real node processes, with certificates made by the test (rcgen):
//! a follower syncs over mTLS (on SQLite and on PostgreSQL nodes); a client whose certificate
//! comes from another CA, an expired certificate, no certificate and a plaintext client are
//! refused, the last with a message saying to use TLS; a renewed certificate is served after
//! SIGHUP without dropping an open connection; health probes have a plaintext listener.

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use hubdir_proto::v1::registry_service_client::RegistryServiceClient;
use hubdir_proto::v1::{CreateSiteRequest, GetSiteRequest};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, SanType};
use support::{NodeDir, NodeProcess, bearer, library, pair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A certificate authority made for the test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { issuer: Issuer::new(params, key), pem }
}

/// A leaf certificate for `localhost` and 127.0.0.1, good as server and as client: (cert, key).
fn leaf(ca: &Ca, name: &str, expired: bool) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.subject_alt_names.push(SanType::IpAddress([127, 0, 0, 1].into()));
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = if expired { now - time::Duration::days(1) } else { now + time::Duration::days(30) };
    let key = KeyPair::generate().unwrap();
    (params.signed_by(&key, &ca.issuer).unwrap().pem(), key.serialize_pem())
}

/// Writes `ca` and a fresh leaf of it into `dir`; returns the `[tls]` section using them.
fn tls_section(dir: &NodeDir, ca: &Ca, name: &str, mutual: bool) -> String {
    let (cert, key) = leaf(ca, name, false);
    let file = |file: &str, text: &str| {
        let path = dir.file(file);
        std::fs::write(&path, text).unwrap();
        format!("{:?}", path.display().to_string())
    };
    let ca_file = file("ca.pem", &ca.pem);
    let mut section = format!(
        "[tls]\ncert_file = {}\nkey_file = {}\npeer_ca_file = {ca_file}\n",
        file("node.pem", &cert),
        file("node.key.pem", &key)
    );
    if mutual {
        section += &format!("client_ca_file = {ca_file}\n");
    }
    section
}

/// A client channel to `https://localhost:{port}` trusting `ca`, with `identity` if given.
async fn tls_channel(port: u16, ca: &Ca, identity: Option<(String, String)>) -> Result<Channel, String> {
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&ca.pem));
    if let Some((cert, key)) = identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    let endpoint = Channel::from_shared(format!("https://localhost:{port}")).unwrap().tls_config(config).unwrap();
    endpoint.connect().await.map_err(|e| format!("{e:?}"))
}

/// A health check through `channel`, or the error as text.
async fn health(channel: Result<Channel, String>) -> Result<ServingStatus, String> {
    let mut client = HealthClient::new(channel?);
    let answer = client.check(HealthCheckRequest { service: String::new() }).await.map_err(|s| format!("{s:?}"))?;
    Ok(ServingStatus::try_from(answer.into_inner().status).unwrap())
}

fn port(node: &NodeProcess) -> u16 {
    node.address.rsplit(':').next().unwrap().parse().unwrap()
}

async fn follower_syncs_over_mtls_and_strangers_are_refused(db: (Option<&str>, Option<&str>)) {
    let trusted = ca("hubdir test CA");
    let other = ca("another CA");
    let nodes = pair::start("", "https", |id, dir| tls_section(dir, &trusted, id, true), db);
    let (leader, follower) = (port(&nodes.leader), port(&nodes.follower));
    let client = || Some(leaf(&trusted, "client", false));

    // A write on the leader, over mTLS.
    let mut registry = RegistryServiceClient::new(tls_channel(leader, &trusted, client()).await.unwrap());
    let site = library("secure1");
    registry.create_site(bearer(&nodes.writer, CreateSiteRequest { site: Some(site) })).await.unwrap();

    // The follower, which reaches the leader only over mTLS, gets it.
    let mut replica = RegistryServiceClient::new(tls_channel(follower, &trusted, client()).await.unwrap());
    let reader = nodes.follower.token("sites.read", None, None, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(status) = replica.get_site(bearer(&reader, GetSiteRequest { name: "sites/zw/secure1".into() })).await
    {
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        assert!(Instant::now() < deadline, "never synced; follower logs:\n{}", nodes.follower.logs().join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Refused: a certificate from another CA, an expired one, none at all.
    assert_eq!(health(tls_channel(leader, &trusted, client()).await).await, Ok(ServingStatus::Serving));
    let stranger = health(tls_channel(leader, &trusted, Some(leaf(&other, "stranger", false))).await).await;
    assert!(stranger.is_err(), "a certificate from another CA was accepted");
    let expired = health(tls_channel(leader, &trusted, Some(leaf(&trusted, "expired", true))).await).await;
    assert!(expired.is_err(), "an expired certificate was accepted");
    let anonymous = health(tls_channel(leader, &trusted, None).await).await;
    assert!(anonymous.is_err(), "a client without a certificate was accepted");
    // A plaintext client is told what to do.
    let plaintext = Channel::from_shared(format!("http://127.0.0.1:{leader}")).unwrap().connect().await;
    let plaintext = health(plaintext.map_err(|e| format!("{e:?}"))).await.unwrap_err();
    assert!(plaintext.contains("TLS only"), "{plaintext}");
    // Refusals are logged (the first, then every thousandth).
    nodes.leader.wait_for_log("TLS handshake refused", Duration::from_secs(10));

    for node in [nodes.follower, nodes.leader] {
        let (status, logs) = node.terminate(Duration::from_secs(30));
        assert!(status.success(), "{}", logs.join("\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_syncs_over_mtls_and_strangers_are_refused_on_sqlite() {
    follower_syncs_over_mtls_and_strangers_are_refused((None, None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_syncs_over_mtls_and_strangers_are_refused_on_postgresql() {
    let (Some(leader), Some(follower)) =
        tokio::task::spawn_blocking(|| (support::postgres_schema(), support::postgres_schema())).await.unwrap()
    else {
        return;
    };
    follower_syncs_over_mtls_and_strangers_are_refused((Some(&leader.url), Some(&follower.url))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_after_sighup_and_open_connections_stay() {
    let first = ca("first CA");
    let renewed = ca("renewed CA");
    let dir = NodeDir::new("zw", "");
    let section = tls_section(&dir, &first, "zw", false);
    // A long handshake deadline: a client held up behind silent sockets would wait for it.
    dir.configure(&format!("[server]\nhandshake_timeout_secs = 60\n{section}probe_listen = \"127.0.0.1:0\"\n"));
    let node = NodeProcess::start_in(&dir, "hubdir", &["serve", "--node-id", "zw"], None, "127.0.0.1:0");
    let port = port(&node);

    // A hundred connections that never say anything hold up no one's handshake.
    let silent: Vec<std::net::TcpStream> =
        (0..100).map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let prompt = tokio::time::timeout(Duration::from_secs(20), tls_channel(port, &first, None)).await;
    let prompt = prompt.expect("a TLS client was held up behind silent sockets").expect("a TLS connection");
    drop((prompt, silent));

    // A connection opened under the first certificate, once the node serves (its first store
    // check comes just after it starts listening).
    let open = tls_channel(port, &first, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(Ok(open.clone())).await != Ok(ServingStatus::Serving) {
        assert!(Instant::now() < deadline, "the node never served");
        tokio::task::yield_now().await;
    }

    // The files are replaced by a certificate of another CA, then SIGHUP.
    let (cert, key) = leaf(&renewed, "zw", false);
    std::fs::write(dir.file("node.pem"), cert).unwrap();
    std::fs::write(dir.file("node.key.pem"), key).unwrap();
    node.signal("HUP");
    node.wait_for_log("TLS certificate reloaded", Duration::from_secs(30));

    // New connections get the renewed certificate; the open one goes on.
    assert_eq!(health(tls_channel(port, &renewed, None).await).await, Ok(ServingStatus::Serving));
    assert!(health(tls_channel(port, &first, None).await).await.is_err(), "the old certificate is still served");
    assert_eq!(health(Ok(open)).await, Ok(ServingStatus::Serving), "the open connection was dropped");

    // Probes have their own plaintext listener.
    let line = node.wait_for_log("serving health probes in plaintext", Duration::from_secs(5));
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let probes = Channel::from_shared(format!("http://{}", event["address"].as_str().unwrap())).unwrap();
    assert_eq!(health(probes.connect().await.map_err(|e| e.to_string())).await, Ok(ServingStatus::Serving));

    let (status, logs) = node.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", logs.join("\n"));
}

/// Turning TLS on for a node's own listener does not stop it following a peer still on
/// `http://` (peers move to TLS one at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_tls_follows_a_plaintext_peer() {
    let trusted = ca("hubdir test CA");
    let prepare =
        |id: &str, dir: &NodeDir| if id == "fr" { tls_section(dir, &trusted, id, true) } else { String::new() };
    let nodes = pair::start("", "http", prepare, (None, None));
    let mut registry = RegistryServiceClient::connect(format!("http://{}", nodes.leader.address)).await.unwrap();
    let site = library("plain1");
    registry.create_site(bearer(&nodes.writer, CreateSiteRequest { site: Some(site) })).await.unwrap();
    let client = Some(leaf(&trusted, "client", false));
    let mut replica = RegistryServiceClient::new(tls_channel(port(&nodes.follower), &trusted, client).await.unwrap());
    let reader = nodes.follower.token("sites.read", None, None, &[]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Err(status) = replica.get_site(bearer(&reader, GetSiteRequest { name: "sites/zw/plain1".into() })).await {
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        assert!(Instant::now() < deadline, "never synced; follower logs:\n{}", nodes.follower.logs().join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
