//! Federation between real node processes on loopback: three nodes (`zw`, `fr`, `in`) in a
//! chain (fr relays between zw and in) and in a triangle (every link through a
//! fault-injecting proxy). Sites published on each node reach the others and are found by
//! FindNearest there (asked by Python grpcio); deletions propagate. Faults: kill -9 of random
//! nodes at random points, twenty times; delayed, reset and cut connections; a leader whose
//! database is wiped (a new epoch). After each, every node's digests match within a bounded
//! time and every acknowledged write is there.

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hubdir_proto::v1::federation_service_client::FederationServiceClient;
use hubdir_proto::v1::registry_service_client::RegistryServiceClient;
use hubdir_proto::v1::{CreateSiteRequest, DeleteSiteRequest, GetDigestRequest, GetSiteRequest, LatLng, Site};
use support::proxy::Proxy;
use support::{NodeDir, NodeProcess, binary, free_port, python};

/// How long every node may take to agree after a fault.
const CONVERGENCE: Duration = Duration::from_secs(60);

/// A tiny deterministic generator; the seed is printed so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    /// `HUBDIR_FAULT_SEED` if set, else the clock.
    fn seeded() -> Rng {
        let clock = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        let seed = std::env::var("HUBDIR_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(clock) | 1;
        eprintln!("fault schedule seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// One node of a test federation: its directory, port and process (none while killed).
struct Member {
    id: &'static str,
    dir: Arc<NodeDir>,
    port: u16,
    process: Option<NodeProcess>,
    writer: String,
    peer_token: String,
    /// Its database: SQLite in its directory unless a URL is given.
    db: Option<String>,
}

impl Member {
    fn new(id: &'static str) -> Member {
        let dir = NodeDir::new(id, "");
        let writer = dir.token("sites.write", Some(id), Some(&format!("{id} post")), &[]);
        let peer_token = dir.token("federation.sync", None, None, &[]);
        Member { id, dir, port: free_port(), process: None, writer, peer_token, db: None }
    }

    /// The same, on PostgreSQL (a schema of its own).
    fn on(self, db: Option<String>) -> Member {
        Member { db, ..self }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// This node's public key, as `hubdir federation key` prints it for peers to pin.
    fn public_key(&self) -> String {
        let output = Command::new(binary("hubdir"))
            .args(["federation", "key", "--node-id", self.id, "--config"])
            .arg(self.dir.file("hubdir.toml"))
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    fn start(&mut self) {
        let listen = format!("127.0.0.1:{}", self.port);
        let db = self.db.as_deref();
        self.process = Some(NodeProcess::start_in(&self.dir, "hubdir", &["serve", "--node-id", self.id], db, &listen));
    }

    fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.kill();
        }
    }

    fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            let (status, logs) = process.terminate(Duration::from_secs(30));
            assert!(status.success(), "{} exit status {status}; logs:\n{}", self.id, logs.join("\n"));
        }
    }
}

/// Who follows whom: (follower, leader, origins the leader may supply, endpoint override).
struct Link {
    follower: usize,
    leader: usize,
    origins: Vec<&'static str>,
    endpoint: Option<String>,
}

/// Writes every node's config: its peers with pinned keys and tokens, and the keys of every
/// other origin (for events relayed to it).
fn configure(members: &[Member], links: &[Link]) {
    let keys: Vec<String> = members.iter().map(Member::public_key).collect();
    for (i, member) in members.iter().enumerate() {
        let mut config = String::new();
        for (j, other) in members.iter().enumerate() {
            let pinned = member.dir.file(&format!("{}.pub.pem", other.id));
            std::fs::write(&pinned, &keys[j]).unwrap();
            if j != i {
                config += &format!(
                    "[[federation.origin_keys]]\norigin = \"{}\"\npublic_key_file = {:?}\n",
                    other.id,
                    pinned.display().to_string()
                );
            }
        }
        for link in links.iter().filter(|l| l.follower == i) {
            let leader = &members[link.leader];
            let token = member.dir.file(&format!("{}.token", leader.id));
            std::fs::write(&token, &leader.peer_token).unwrap();
            config += &format!(
                "[[federation.peers]]\nnode_id = \"{}\"\nendpoint = \"{}\"\npublic_key_file = {:?}\norigins = {:?}\ntoken_file = {:?}\n",
                leader.id,
                link.endpoint.clone().unwrap_or_else(|| leader.endpoint()),
                member.dir.file(&format!("{}.pub.pem", leader.id)).display().to_string(),
                link.origins,
                token.display().to_string()
            );
        }
        member.dir.configure(&config);
    }
}

/// The sites acknowledged per origin: name -> location.
type Acknowledged = BTreeMap<String, (f64, f64)>;

/// Creates `sites/{id}/{site_id}` on `member`; whether the node acknowledged it.
async fn create(member: &Member, site_id: &str, location: (f64, f64)) -> bool {
    let Ok(mut client) = RegistryServiceClient::connect(member.endpoint()).await else { return false };
    let site = Site {
        name: format!("sites/{}/{site_id}", member.id),
        display_name: format!("Help point {site_id}"),
        kind: hubdir_proto::v1::Kind::Telecentre.into(),
        operator: format!("{} post", member.id),
        country_code: member.id.to_ascii_uppercase(),
        location: Some(LatLng { latitude: location.0, longitude: location.1 }),
        time_zone: "UTC".into(),
        ..Site::default()
    };
    let mut request = tonic::Request::new(CreateSiteRequest { site: Some(site) });
    request.metadata_mut().insert("authorization", format!("Bearer {}", member.writer).parse().unwrap());
    client.create_site(request).await.is_ok()
}

async fn delete(member: &Member, name: &str) -> bool {
    let Ok(mut client) = RegistryServiceClient::connect(member.endpoint()).await else { return false };
    let mut request = tonic::Request::new(DeleteSiteRequest { name: name.into(), etag: String::new() });
    request.metadata_mut().insert("authorization", format!("Bearer {}", member.writer).parse().unwrap());
    client.delete_site(request).await.is_ok()
}

/// Each origin's (max seq, live sites, hash) as `member` holds it.
async fn digests(member: &Member) -> Option<BTreeMap<String, (u64, i64, Vec<u8>)>> {
    let mut client = FederationServiceClient::connect(member.endpoint()).await.ok()?;
    let mut request = tonic::Request::new(GetDigestRequest::default());
    request.metadata_mut().insert("authorization", format!("Bearer {}", member.peer_token).parse().unwrap());
    let response = client.get_digest(request).await.ok()?.into_inner();
    Some(response.digests.into_iter().map(|d| (d.origin, (d.max_seq, d.live_site_count, d.hash))).collect())
}

/// Waits until every node holds the same digests for every origin, and each origin's live
/// sites number at least its acknowledged ones; returns how long it took.
async fn converge(members: &[Member], acknowledged: &BTreeMap<&str, Acknowledged>, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = Vec::new();
        for member in members {
            all.push(digests(member).await);
        }
        let agreed = all.iter().all(|d| d.is_some() && *d == all[0])
            && acknowledged.iter().all(|(origin, sites)| {
                all[0].as_ref().and_then(|d| d.get(*origin)).is_some_and(|(_, live, _)| *live >= sites.len() as i64)
            });
        if agreed {
            return started.elapsed();
        }
        assert!(started.elapsed() < CONVERGENCE, "{what}: no agreement within {CONVERGENCE:?}: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged site is on every node, every acknowledged deletion is gone.
async fn nothing_lost(members: &[Member], acknowledged: &BTreeMap<&str, Acknowledged>, deleted: &[String]) {
    for member in members {
        let mut client = RegistryServiceClient::connect(member.endpoint()).await.unwrap();
        let get = |name: &String| {
            let mut request = tonic::Request::new(GetSiteRequest { name: name.clone() });
            request.metadata_mut().insert("authorization", format!("Bearer {}", member.writer).parse().unwrap());
            request
        };
        for name in acknowledged.values().flat_map(|sites| sites.keys()) {
            let found = client.get_site(get(name)).await;
            assert!(found.is_ok(), "{name} acknowledged but missing on {}: {found:?}", member.id);
        }
        for name in deleted {
            let found = client.get_site(get(name)).await;
            assert_eq!(
                found.map_err(|s| s.code()).err(),
                Some(tonic::Code::NotFound),
                "{name} came back on {}",
                member.id
            );
        }
    }
}

/// A distinct location per site: spread over southern Africa, France and India by origin.
fn location(origin: &str, n: usize) -> (f64, f64) {
    let (lat, lng) = match origin {
        "zw" => (-18.0, 30.0),
        "fr" => (46.0, 2.0),
        _ => (21.0, 78.0),
    };
    (lat + (n % 20) as f64 * 0.05, lng + (n / 20) as f64 * 0.05)
}

fn members() -> Vec<Member> {
    vec![Member::new("zw"), Member::new("fr"), Member::new("in")]
}

/// Chain zw <-> fr <-> in: fr relays zw's events to in and in's to zw.
fn chain_links() -> Vec<Link> {
    let link = |follower, leader, origins: &[&'static str]| Link {
        follower,
        leader,
        origins: origins.to_vec(),
        endpoint: None,
    };
    vec![link(1, 0, &["zw"]), link(0, 1, &["fr", "in"]), link(1, 2, &["in"]), link(2, 1, &["fr", "zw"])]
}

#[test]
fn a_chain_relays_every_origin_and_survives_twenty_kill_9_at_random_points() {
    chain_with_kills(members(), 20);
}

/// The same on PostgreSQL, each node in a schema of its own; eight kills keep CI's time.
#[test]
fn on_postgresql_a_chain_relays_every_origin_and_survives_eight_kill_9() {
    let mut members = Vec::new();
    let mut schemas = Vec::new();
    for id in ["zw", "fr", "in"] {
        let Some(schema) = support::postgres_schema() else { return };
        members.push(Member::new(id).on(Some(schema.url.clone())));
        schemas.push(schema);
    }
    chain_with_kills(members, 8);
}

fn chain_with_kills(mut members: Vec<Member>, rounds: usize) {
    configure(&members, &chain_links());
    members.iter_mut().for_each(Member::start);
    let rt = runtime();
    let mut acknowledged: BTreeMap<&str, Acknowledged> = BTreeMap::new();
    let mut deleted = Vec::new();
    let mut written = 0;
    // Five sites on each node to begin with.
    for member in &members {
        for _ in 0..5 {
            let at = location(member.id, written);
            assert!(rt.block_on(create(member, &format!("s{written}"), at)));
            acknowledged.entry(member.id).or_default().insert(format!("sites/{}/s{written}", member.id), at);
            written += 1;
        }
    }
    let took = rt.block_on(converge(&members, &acknowledged, "initial sync"));
    eprintln!("chain: initial sync in {took:?}");

    let mut rng = Rng::seeded();
    for round in 0..rounds {
        let victim = rng.below(3) as usize;
        // Writes to the live nodes, then the kill at a random moment while they propagate.
        for _ in 0..rng.below(4) {
            let member = &members[rng.below(3) as usize];
            let at = location(member.id, written);
            if rt.block_on(create(member, &format!("s{written}"), at)) {
                acknowledged.entry(member.id).or_default().insert(format!("sites/{}/s{written}", member.id), at);
            }
            written += 1;
        }
        if rng.below(3) == 0 {
            // Delete one acknowledged site of a live node.
            let member = &members[rng.below(3) as usize];
            if let Some(name) = acknowledged.get(member.id).and_then(|s| s.keys().next().cloned())
                && rt.block_on(delete(member, &name))
            {
                acknowledged.get_mut(member.id).unwrap().remove(&name);
                deleted.push(name);
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        eprintln!("round {round}: kill -9 {}", members[victim].id);
        members[victim].kill();
        members[victim].start();
    }
    let took = rt.block_on(converge(&members, &acknowledged, "after the kill loop"));
    eprintln!("chain: converged {took:?} after the last restart");
    rt.block_on(nothing_lost(&members, &acknowledged, &deleted));

    // Python grpcio's FindNearest on every node finds one site of each origin at its place.
    let probes: Vec<(String, String)> = acknowledged
        .values()
        .filter_map(|sites| sites.iter().next_back())
        .map(|(name, (lat, lng))| (name.clone(), format!("{lat},{lng}")))
        .collect();
    let points: Vec<&str> = probes.iter().map(|(_, p)| p.as_str()).collect();
    for member in &members {
        let address = member.process.as_ref().unwrap().address.clone();
        let found = python("nearest.py", &address, &points, &[]);
        let expected: Vec<&str> = probes.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(found.lines().collect::<Vec<_>>(), expected, "FindNearest on {}", member.id);
    }
    members.iter_mut().for_each(Member::stop);
}

/// Waits for `done`, checking every 50 ms, at most `deadline`.
fn wait_for(deadline: Duration, what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < deadline, "not within {deadline:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_triangle_over_faulty_links_converges_after_delays_resets_cuts_and_silence() {
    let mut members = members();
    // Every node follows both others, each through its own proxy, each peer allowed to relay
    // every origin: events arrive twice and are applied once.
    let mut proxies = Vec::new();
    let mut links = Vec::new();
    for follower in 0..3 {
        for leader in (0..3).filter(|l| *l != follower) {
            let target = format!("127.0.0.1:{}", members[leader].port).parse().unwrap();
            let proxy = Proxy::start(target);
            let endpoint = Some(format!("http://{}", proxy.address));
            let origins: Vec<&'static str> =
                members.iter().map(|m| m.id).filter(|o| *o != members[follower].id).collect();
            links.push(Link { follower, leader, origins, endpoint });
            proxies.push(proxy);
        }
    }
    configure(&members, &links);
    members.iter_mut().for_each(Member::start);
    let rt = runtime();
    let mut acknowledged: BTreeMap<&str, Acknowledged> = BTreeMap::new();
    let mut deleted = Vec::new();
    let mut written = 0;
    let mut write_round = |members: &[Member], acknowledged: &mut BTreeMap<&str, Acknowledged>| {
        for member in members {
            for _ in 0..3 {
                let at = location(member.id, written);
                assert!(rt.block_on(create(member, &format!("s{written}"), at)));
                acknowledged.entry(member.id).or_default().insert(format!("sites/{}/s{written}", member.id), at);
                written += 1;
            }
        }
    };
    write_round(&members, &mut acknowledged);
    let rt2 = runtime();
    rt2.block_on(converge(&members, &acknowledged, "initial sync"));
    // Every link carried the sync: a proxy that carried nothing would make the rest moot.
    assert!(proxies.iter().all(|p| p.stats().bytes > 0), "{:?}", proxies.iter().map(Proxy::stats).collect::<Vec<_>>());

    // Slow links: every chunk 150 ms late.
    proxies.iter().for_each(|p| p.delay(Duration::from_millis(150)));
    write_round(&members, &mut acknowledged);
    rt2.block_on(converge(&members, &acknowledged, "over delayed links"));
    assert!(proxies.iter().all(|p| p.stats().delayed_chunks > 0), "a link was never delayed");
    // Resets in the middle of streams, then links cut while writes go on, then restored.
    proxies.iter().for_each(|p| p.pass());
    write_round(&members, &mut acknowledged);
    proxies.iter().for_each(Proxy::reset);
    wait_for(Duration::from_secs(30), "every reset met an open connection", || {
        proxies.iter().all(|p| p.stats().reset_open > 0)
    });
    write_round(&members, &mut acknowledged);
    proxies.iter().for_each(|p| p.cut(true));
    write_round(&members, &mut acknowledged);
    // Every follower tried its cut link again (and was refused) before the links come back.
    wait_for(Duration::from_secs(60), "every cut link refused a reconnection", || {
        proxies.iter().all(|p| p.stats().refused > 0)
    });
    let name = acknowledged["fr"].keys().next().unwrap().clone();
    assert!(rt2.block_on(delete(&members[1], &name)));
    acknowledged.get_mut("fr").unwrap().remove(&name);
    deleted.push(name);
    proxies.iter().for_each(Proxy::pass);
    let took = rt2.block_on(converge(&members, &acknowledged, "after cut links were restored"));
    eprintln!("triangle: converged {took:?} after the links came back");

    // Silent peers: every link holds its bytes with the connection open. A follower hears no
    // heartbeat for 15 s, gives the stream up and connects again: each proxy sees a new
    // connection. Then the links flow again and everything written meanwhile arrives.
    let before: Vec<u64> = proxies.iter().map(|p| p.stats().connections).collect();
    proxies.iter().for_each(|p| p.stall(true));
    write_round(&members, &mut acknowledged);
    wait_for(Duration::from_secs(90), "every follower reconnected after its peer fell silent", || {
        proxies.iter().zip(&before).all(|(p, b)| p.stats().connections > *b)
    });
    proxies.iter().for_each(Proxy::pass);
    let took = rt2.block_on(converge(&members, &acknowledged, "after silent links came back"));
    eprintln!("triangle: converged {took:?} after the silent links came back");
    rt2.block_on(nothing_lost(&members, &acknowledged, &deleted));
    members.iter_mut().for_each(Member::stop);
}

#[test]
fn a_leader_whose_database_was_wiped_is_resynced_not_silently_diverged() {
    let mut members = vec![Member::new("zw"), Member::new("fr")];
    let links = [Link { follower: 1, leader: 0, origins: vec!["zw"], endpoint: None }];
    configure(&members, &links);
    members.iter_mut().for_each(Member::start);
    let rt = runtime();
    let mut acknowledged: BTreeMap<&str, Acknowledged> = BTreeMap::new();
    for n in 0..4 {
        let at = location("zw", n);
        assert!(rt.block_on(create(&members[0], &format!("old{n}"), at)));
        acknowledged.entry("zw").or_default().insert(format!("sites/zw/old{n}"), at);
    }
    rt.block_on(converge(&members, &acknowledged, "before the wipe"));

    // zw loses its database (not its key) and starts a new log: a new epoch.
    members[0].kill();
    for file in ["node.db", "node.db-wal", "node.db-shm"] {
        let _ = std::fs::remove_file(members[0].dir.file(file));
    }
    members[0].start();
    let mut fresh: BTreeMap<&str, Acknowledged> = BTreeMap::new();
    for n in 0..2 {
        let at = location("zw", 10 + n);
        assert!(rt.block_on(create(&members[0], &format!("new{n}"), at)));
        fresh.entry("zw").or_default().insert(format!("sites/zw/new{n}"), at);
    }
    rt.block_on(converge(&members, &fresh, "after the wipe"));
    let old: Vec<String> = acknowledged["zw"].keys().cloned().collect();
    rt.block_on(nothing_lost(&members, &fresh, &old));
    let zw = rt.block_on(digests(&members[1])).unwrap();
    assert_eq!((zw["zw"].0, zw["zw"].1), (2, 2), "fr holds exactly zw's new log");
    // fr's discovery index dropped the old sites too: at an old site's place, FindNearest
    // (Python grpcio) finds a new one.
    let (lat, lng) = acknowledged["zw"]["sites/zw/old0"];
    let address = members[1].process.as_ref().unwrap().address.clone();
    let found = python("nearest.py", &address, &[&format!("{lat},{lng}")], &[]);
    assert!(found.trim().starts_with("sites/zw/new"), "FindNearest on fr found {found}");
    members.iter_mut().for_each(Member::stop);
}

/// Key rotation as docs/FEDERATION.md tells it, on real processes: the leader moves to a new
/// key before its follower pinned it, so the follower refuses its new events (UNKNOWN_KEY)
/// and holds at the last one it could apply; once the follower pins the new key and
/// restarts it resumes without loss; then the old key is ended with `valid_until` and the
/// peer entry points at the new key, and events keep arriving.
#[test]
fn a_rotated_key_is_refused_until_pinned_then_the_follower_resumes() {
    let mut members = vec![Member::new("zw"), Member::new("fr")];
    let links = [Link { follower: 1, leader: 0, origins: vec!["zw"], endpoint: None }];
    configure(&members, &links);
    members.iter_mut().for_each(Member::start);
    let rt = runtime();
    let mut acknowledged: BTreeMap<&str, Acknowledged> = BTreeMap::new();
    let write = |members: &[Member], n: usize, acknowledged: &mut BTreeMap<&str, Acknowledged>| {
        let at = location("zw", n);
        assert!(rt.block_on(create(&members[0], &format!("r{n}"), at)));
        acknowledged.entry("zw").or_default().insert(format!("sites/zw/r{n}"), at);
    };
    write(&members, 0, &mut acknowledged);
    let rt2 = runtime();
    rt2.block_on(converge(&members, &acknowledged, "before the rotation"));

    // 1. The leader creates its new key beside the old one (`hubdir federation key` with a
    // config whose key_file is a new path) and 3. moves to it, before the follower pinned it.
    let zw_dir = members[0].dir.clone();
    let new_config = zw_dir.file("rotate.toml");
    let new_key = zw_dir.file("node-2027.key");
    std::fs::write(&new_config, format!("[federation]\nkey_file = {:?}\n", new_key.display().to_string())).unwrap();
    let printed = Command::new(binary("hubdir"))
        .args(["federation", "key", "--node-id", "zw", "--config"])
        .arg(&new_config)
        .output()
        .unwrap();
    assert!(printed.status.success(), "{}", String::from_utf8_lossy(&printed.stderr));
    let new_public = String::from_utf8(printed.stdout).unwrap();
    members[0].stop();
    std::fs::rename(zw_dir.file("node.key"), zw_dir.file("node-old.key")).unwrap();
    std::fs::rename(&new_key, zw_dir.file("node.key")).unwrap();
    members[0].start();
    write(&members, 1, &mut acknowledged);
    let follower = members[1].process.as_ref().unwrap();
    wait_for(Duration::from_secs(60), "the follower refused the new key's events", || {
        follower.logs().iter().any(|l| l.contains("event rejected") && l.contains("UNKNOWN_KEY"))
    });
    let held = rt2.block_on(digests(&members[1])).unwrap();
    assert_eq!(held["zw"].0, 1, "the follower applied an event signed by a key it never pinned");

    // 2. The follower pins the new key as a second key of the origin and restarts: it resumes.
    let fr_dir = members[1].dir.clone();
    std::fs::write(fr_dir.file("zw-2027.pub.pem"), &new_public).unwrap();
    let leader_endpoint = members[0].endpoint();
    let peer = |public_key_file: &str| {
        format!(
            "[[federation.peers]]\nnode_id = \"zw\"\nendpoint = \"{}\"\npublic_key_file = {:?}\norigins = [\"zw\"]\ntoken_file = {:?}\n",
            leader_endpoint,
            fr_dir.file(public_key_file).display().to_string(),
            fr_dir.file("zw.token").display().to_string()
        )
    };
    let second_key = format!(
        "[[federation.origin_keys]]\norigin = \"zw\"\npublic_key_file = {:?}\n",
        fr_dir.file("zw-2027.pub.pem").display().to_string()
    );
    fr_dir.configure(&format!("{second_key}{}", peer("zw.pub.pem")));
    members[1].stop();
    members[1].start();
    rt2.block_on(converge(&members, &acknowledged, "after the new key was pinned"));

    // 4. The old key is ended and the peer entry names the new key: new events still arrive,
    // and what the old key signed before stays.
    let ended = chrono::Utc::now().to_rfc3339();
    let old_key = format!(
        "[[federation.origin_keys]]\norigin = \"zw\"\npublic_key_file = {:?}\nvalid_until = {ended:?}\n",
        fr_dir.file("zw.pub.pem").display().to_string()
    );
    fr_dir.configure(&format!("{old_key}{}", peer("zw-2027.pub.pem")));
    members[1].stop();
    members[1].start();
    write(&members, 2, &mut acknowledged);
    rt2.block_on(converge(&members, &acknowledged, "after the old key was ended"));
    rt2.block_on(nothing_lost(&members, &acknowledged, &[]));
    members.iter_mut().for_each(Member::stop);
}
