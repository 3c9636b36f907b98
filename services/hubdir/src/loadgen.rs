//! `hubdir-loadgen`: a load generator for a running node. It drives FindNearest and, as the
//! floor, the standard health `Check` served by the same server stack (same listener, HTTP/2
//! settings and limits): what tonic itself costs on this machine; and the same queries through
//! the HTTP/JSON API (`GET /v1/nearest`, HTTP/1.1 keep-alive, one request in flight per
//! connection, so as many connections as requests in flight), each answer parsed as JSON
//! as the gRPC answers are decoded.
//!
//! For each RPC it measures saturation (a closed loop: `--concurrency` requests always in
//! flight over `--connections` HTTP/2 connections) and then a fixed offered load (an open
//! loop at `--rate` requests per second; latency counts from each request's scheduled
//! start, so a stalled server cannot hide its queueing, and the generator spins the last
//! stretch to that instant rather than trust tokio's millisecond timer). Any RPC that fails is counted and
//! reported: a run with errors is not a result.
//!
//! Queries start from `--positions FILE` (replayed in order, round and round), or from
//! positions uniform on the sphere. `hubdir-loadgen positions uniform|realistic` writes such a
//! file, so that another client (pgbench against PostGIS) can ask exactly the same queries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hubdir_proto::answer::FindNearestAnswer;
use hubdir_proto::v1::discovery_service_client::DiscoveryServiceClient;
use hubdir_proto::v1::{FindNearestRequest, LatLng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

// Shared with the demo data; the load generator uses only part of it.
#[allow(dead_code)]
#[path = "rng.rs"]
mod rng;
use rng::Rng;

mod positions;

#[derive(Parser, Debug)]
#[command(
    name = "hubdir-loadgen",
    about = "Measure FindNearest against the health-check floor over gRPC",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Write a file of query positions (`latitude,longitude`) for `--positions`.
    Positions(positions::Generate),
}

/// Positions asked when no `--positions` file is given: uniform on the sphere.
const UNIFORM_POSITIONS: usize = 100_000;

#[derive(clap::Args, Debug)]
struct Args {
    /// The node to load.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    address: String,
    /// HTTP/2 connections, shared round-robin by the workers.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight during the saturation phase.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Offered load of the fixed-rate phase, requests per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds per phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Nearest sites asked for.
    #[arg(long, default_value_t = 10)]
    k: i32,
    /// Send each fixed-load request when tokio's millisecond timer fires, without spinning to
    /// its scheduled instant (to measure what that lateness adds).
    #[arg(long)]
    timer_only: bool,
    /// Ask from the positions of this file (CSV `latitude,longitude` with that header), in
    /// order; without it, from positions uniform on the sphere.
    #[arg(long)]
    positions: Option<std::path::PathBuf>,
    /// How much of a FindNearest answer the client decodes: `sites`, every field of every
    /// site (as an application would); `results`, each result's distance and the site as
    /// bytes, unparsed (as pgbench treats PostGIS's rows), so that the client's share of the
    /// cores is like a SQL benchmark client's.
    #[arg(long, value_enum, default_value = "sites")]
    decode: Decode,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Decode {
    Sites,
    Results,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rpc {
    HealthCheck,
    FindNearest,
    /// `GET /v1/nearest` with the same positions and k, answered as JSON.
    HttpNearest,
}

/// One client per connection for each RPC, and the positions they ask from.
#[derive(Clone)]
struct Clients {
    positions: Arc<Vec<LatLng>>,
    health: Vec<HealthClient<Channel>>,
    discovery: Vec<DiscoveryServiceClient<Channel>>,
    /// The same connections, for FindNearest decoded as `FindNearestAnswer` (sites as bytes).
    raw: Vec<tonic::client::Grpc<Channel>>,
    decode: Decode,
    http: Arc<Http>,
}

/// HTTP/1.1 keep-alive connections, one request in flight on each, opened on first use and
/// again after an error.
struct Http {
    host: String,
    connections: Vec<Mutex<Option<BufReader<TcpStream>>>>,
}

impl Http {
    /// GET `target` on connection `i`; the body of a 200, or `None`. A kept-alive connection
    /// the server has closed meanwhile (hyper closes one idle for 30 s) is replaced and the
    /// request sent again once, as HTTP clients do for a GET.
    async fn get(&self, i: usize, target: &str) -> Option<Vec<u8>> {
        let mut slot = self.connections[i % self.connections.len()].lock().await;
        for fresh in [slot.is_none(), true] {
            if fresh {
                let stream = TcpStream::connect(&self.host).await.ok()?;
                stream.set_nodelay(true).ok()?;
                *slot = Some(BufReader::new(stream));
            }
            match Http::exchange(slot.as_mut()?, &self.host, target).await {
                Exchange::Answered(body) => return body,
                Exchange::Closed if !fresh => continue,
                Exchange::Closed => break,
            }
        }
        *slot = None;
        None
    }

    /// One request and its answer on `stream`.
    async fn exchange(stream: &mut BufReader<TcpStream>, host: &str, target: &str) -> Exchange {
        let head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n");
        if stream.get_mut().write_all(head.as_bytes()).await.is_err() {
            return Exchange::Closed;
        }
        let (mut line, mut status, mut length) = (String::new(), None, 0usize);
        loop {
            line.clear();
            match stream.read_line(&mut line).await {
                Ok(0) | Err(_) if status.is_none() => return Exchange::Closed,
                Ok(0) | Err(_) => return Exchange::Answered(None),
                Ok(_) => {}
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some(code) = header.strip_prefix("HTTP/1.1 ") {
                status = code.get(..3).and_then(|c| c.parse::<u16>().ok());
            } else if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let read = stream.read_exact(&mut body).await.is_ok();
        Exchange::Answered((read && status == Some(200)).then_some(body))
    }
}

/// How one HTTP exchange ended.
enum Exchange {
    /// The connection was closed before any answer: a fresh one may be tried.
    Closed,
    /// The body of a 200, or `None` for any other answer.
    Answered(Option<Vec<u8>>),
}

impl Clients {
    /// The `n`-th request of a phase, on `connection`.
    async fn call(&self, rpc: Rpc, connection: usize, n: usize, k: i32) -> bool {
        let i = connection % self.health.len();
        let position = self.positions[n % self.positions.len()];
        match rpc {
            Rpc::HealthCheck => {
                let mut client = self.health[i].clone();
                client.check(HealthCheckRequest { service: String::new() }).await.is_ok()
            }
            Rpc::FindNearest => {
                let mut client = self.discovery[i].clone();
                let request = FindNearestRequest {
                    location: Some(position),
                    max_results: k,
                    max_distance_meters: 0.0,
                    filter: None,
                    // FULL, as BENCHMARKS.md's figures were measured.
                    view: 0,
                };
                match self.decode {
                    Decode::Sites => {
                        client.find_nearest(request).await.is_ok_and(|r| r.into_inner().results.len() == k as usize)
                    }
                    Decode::Results => {
                        let mut grpc = self.raw[i].clone();
                        if grpc.ready().await.is_err() {
                            return false;
                        }
                        let codec = tonic_prost::ProstCodec::<FindNearestRequest, FindNearestAnswer>::default();
                        let path = PathAndQuery::from_static("/hubdir.v1.DiscoveryService/FindNearest");
                        grpc.unary(tonic::Request::new(request), path, codec).await.is_ok_and(|r| {
                            let results = r.into_inner().results;
                            results.len() == k as usize && results.iter().all(|r| !r.site.is_empty())
                        })
                    }
                }
            }
            Rpc::HttpNearest => {
                let LatLng { latitude, longitude } = position;
                let target = format!("/v1/nearest?lat={latitude}&lng={longitude}&k={k}");
                let Some(body) = self.http.get(connection, &target).await else { return false };
                serde_json::from_slice::<serde_json::Value>(&body)
                    .is_ok_and(|v| v["results"].as_array().is_some_and(|r| r.len() == k as usize))
            }
        }
    }
}

struct Outcome {
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: usize,
}

fn outcome(mut latencies: Vec<Duration>, errors: usize, elapsed: Duration) -> Outcome {
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    };
    Outcome { qps: latencies.len() as f64 / elapsed.as_secs_f64(), p50_us: at(0.5), p99_us: at(0.99), errors }
}

/// Closed loop: `concurrency` workers, each sending its next request when the last returns.
async fn saturate(clients: &Clients, rpc: Rpc, args: &Args) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (clients, k) = (clients.clone(), args.k);
        let concurrency = args.concurrency;
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0);
            // Worker w asks positions w, w + concurrency, w + 2 × concurrency...
            let mut n = w;
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = clients.call(rpc, w, n, k).await;
                n += concurrency;
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (l, e) = worker.await.unwrap_or_default();
        latencies.extend(l);
        errors += e;
    }
    outcome(latencies, errors, started.elapsed())
}

/// How long before a request's scheduled instant the open loop stops sleeping and spins:
/// tokio's timer fires on millisecond ticks, up to 1 ms late, and at a low offered load that
/// lateness would be counted as the server's latency.
const SPIN: Duration = Duration::from_micros(1500);

/// Open loop: one request every 1/rate seconds, whether or not earlier ones returned. Also
/// returns the median delay from each request's scheduled instant to its sending (the
/// generator's own lateness, included in the latencies).
async fn offer(clients: &Clients, rpc: Rpc, args: &Args) -> (Outcome, f64) {
    let total = args.rate * args.seconds;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let results = Arc::new(Mutex::new((Vec::with_capacity(total as usize), 0usize, Vec::new())));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        let scheduled = started + interval * n as u32;
        // Sleep on the timer, then spin the last stretch when the interval leaves room for it
        // (at high rates the spin would never stop, on a core the server needs).
        match scheduled.checked_sub(SPIN).filter(|_| interval >= SPIN * 2 && !args.timer_only) {
            Some(wake) => {
                tokio::time::sleep_until(wake.into()).await;
                while Instant::now() < scheduled {
                    std::hint::spin_loop();
                }
            }
            None => tokio::time::sleep_until(scheduled.into()).await,
        }
        let (clients, results, k) = (clients.clone(), results.clone(), args.k);
        tasks.push(tokio::spawn(async move {
            let late = scheduled.elapsed();
            let ok = clients.call(rpc, n as usize, n as usize, k).await;
            let mut results = results.lock().await;
            results.2.push(late);
            if ok {
                results.0.push(scheduled.elapsed());
            } else {
                results.1 += 1;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed();
    let (latencies, errors, mut late) = std::mem::take(&mut *results.lock().await);
    late.sort();
    let late_p50 = late.get(late.len() / 2).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6);
    (outcome(latencies, errors, elapsed), late_p50)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Positions(generate)) = cli.command {
        return positions::generate(generate).await;
    }
    let args = cli.run;
    let positions = match &args.positions {
        Some(path) => positions::read(path)?,
        None => {
            let mut rng = Rng(1);
            (0..UNIFORM_POSITIONS).map(|_| positions::uniform(&mut rng)).collect()
        }
    };
    let positions: Vec<LatLng> =
        positions.into_iter().map(|(latitude, longitude)| LatLng { latitude, longitude }).collect();
    let host = args.address.split("://").last().unwrap_or(&args.address).trim_end_matches('/').to_owned();
    let http = Http { host, connections: (0..args.concurrency.max(1)).map(|_| Mutex::new(None)).collect() };
    let mut clients = Clients {
        positions: Arc::new(positions),
        health: Vec::new(),
        discovery: Vec::new(),
        raw: Vec::new(),
        decode: args.decode,
        http: Arc::new(http),
    };
    for _ in 0..args.connections.max(1) {
        let channel = Channel::from_shared(args.address.clone())?.connect().await?;
        clients.health.push(HealthClient::new(channel.clone()));
        clients.raw.push(tonic::client::Grpc::new(channel.clone()));
        clients.discovery.push(DiscoveryServiceClient::new(channel));
    }
    // Wait for the node's index (a large one takes a while to load), then warm up both paths.
    let ready_by = Instant::now() + Duration::from_secs(300);
    while !clients.call(Rpc::FindNearest, 0, 0, args.k).await {
        anyhow::ensure!(Instant::now() < ready_by, "FindNearest still fails against {} after 300 s", args.address);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for n in 0..200 {
        for rpc in [Rpc::HealthCheck, Rpc::FindNearest, Rpc::HttpNearest] {
            anyhow::ensure!(clients.call(rpc, 0, n, args.k).await, "{rpc:?} fails against {}", args.address);
        }
    }
    let from =
        args.positions.as_ref().map_or("positions uniform on the sphere".to_owned(), |p| p.display().to_string());
    println!(
        "{} s per phase, {} connections, {} in flight at saturation, {} requests/s offered, k = {}, from {from}, \
         FindNearest decoded: {:?}",
        args.seconds, args.connections, args.concurrency, args.rate, args.k, args.decode
    );
    println!("| RPC | phase | QPS | p50 µs | p99 µs | errors | sent late p50 µs |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut saturated = Vec::new();
    for rpc in [Rpc::HealthCheck, Rpc::FindNearest, Rpc::HttpNearest] {
        let name = match rpc {
            Rpc::HealthCheck => "health Check (floor)",
            Rpc::FindNearest => "FindNearest",
            Rpc::HttpNearest => "GET /v1/nearest (JSON)",
        };
        let max = saturate(&clients, rpc, &args).await;
        println!(
            "| {name} | saturation | {:.0} | {:.0} | {:.0} | {} | – |",
            max.qps, max.p50_us, max.p99_us, max.errors
        );
        let (fixed, late) = offer(&clients, rpc, &args).await;
        println!(
            "| {name} | {} req/s offered | {:.0} | {:.0} | {:.0} | {} | {late:.0} |",
            args.rate, fixed.qps, fixed.p50_us, fixed.p99_us, fixed.errors
        );
        saturated.push(max.qps);
    }
    println!("FindNearest saturated QPS ÷ health Check saturated QPS = {:.2}", saturated[1] / saturated[0]);
    println!("GET /v1/nearest (JSON) saturated QPS ÷ FindNearest saturated QPS = {:.2}", saturated[2] / saturated[1]);
    Ok(())
}
