//! FindNearest in process on 1,000,000 clustered sites, then the same points and queries in
//! PostGIS (KNN `<->` on a GiST index, through pgbench with prepared statements) and Redis
//! (`GEOSEARCH`), each printed as a ratio to the index in the same run.
//!
//! cargo bench -p hubdir-geo --bench nearest
//!
//! PostGIS runs when HUBDIR_BENCH_POSTGRES_URL is set (the database needs the `postgis`
//! extension available: Debian's postgresql-15-postgis-3); Redis when HUBDIR_BENCH_REDIS
//! (host:port) is set. HUBDIR_BENCH_SITES changes the number of sites (default 1,000,000).
//!
//! Sites are scattered around 8,146 seed positions taken from India Post and the US public
//! library survey (`seeds.csv`, see SEEDS.md), at exponentially distributed distances (mean
//! 3 km), so density follows where real help points are. Queries start near seeds too (mean
//! 10 km away), with one in twenty anywhere on Earth.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use hubdir_core::{Accessibility, Filter, Kind};
use hubdir_geo::SiteIndex;
use support::{Point, Rng, generate, scatter, seeds};

/// The process's resident memory, in bytes (Linux).
fn resident_bytes() -> isize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<isize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn queries(count: usize, rng: &mut Rng) -> Vec<(f64, f64)> {
    let seeds = seeds();
    (0..count)
        .map(|_| {
            if rng.below(20) == 0 {
                ((2.0 * rng.unit() - 1.0).asin().to_degrees(), 360.0 * rng.unit() - 180.0)
            } else {
                let seed = seeds[rng.below(seeds.len())].1;
                scatter(rng, seed, 10_000.0)
            }
        })
        .collect()
}

struct Latency {
    qps: f64,
    p50_us: f64,
    p99_us: f64,
}

fn measure(index: &SiteIndex, queries: &[(f64, f64)], filter: &Filter) -> Latency {
    // One warm-up pass, then the measured one.
    for (lat, lng) in queries.iter().take(1000) {
        std::hint::black_box(index.nearest(*lat, *lng, 10, None, filter));
    }
    let mut samples = Vec::with_capacity(queries.len());
    let started = Instant::now();
    for (lat, lng) in queries {
        let t = Instant::now();
        std::hint::black_box(index.nearest(*lat, *lng, 10, None, filter));
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6;
    Latency { qps: queries.len() as f64 / total.as_secs_f64(), p50_us: at(0.50), p99_us: at(0.99) }
}

fn main() {
    let n: usize = std::env::var("HUBDIR_BENCH_SITES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut rng = Rng(0x6875_6264_6972);
    let started = Instant::now();
    let (records, points) = generate(n, &mut rng);
    let queries = queries(10_000, &mut rng);
    println!("generated {n} sites in {:.1} s", started.elapsed().as_secs_f64());

    let before = resident_bytes();
    let started = Instant::now();
    let index = <SiteIndex>::from_records(records);
    let build = started.elapsed();
    let index_bytes = (resident_bytes() - before) as f64 / n as f64;
    // The R-tree alone, as rstar lays it out, over the same points.
    let before = resident_bytes();
    let tree = rstar::RTree::bulk_load(
        points
            .iter()
            .enumerate()
            .map(|(i, p)| rstar::primitives::GeomWithData::new(hubdir_geo::unit_vector(p.lat, p.lng), i as u32))
            .collect(),
    );
    let tree_bytes = (resident_bytes() - before) as f64 / n as f64;
    drop(tree);
    println!("index build: {:.2} s for {n} sites", build.as_secs_f64());
    // The records move into the index behind an `Arc`: each one's inline part is copied into
    // a new allocation with two counters, and the input vector (one large mapping) is
    // unmapped, so the growth is the index's own structures plus 16 bytes per site.
    println!(
        "resident set growth over the build: {index_bytes:.0} bytes per site, so about {:.0} for the index's \
         own structures (the R-tree alone: {tree_bytes:.0})",
        index_bytes - 16.0
    );

    let filters = [
        ("unfiltered", Filter::default(), None),
        ("1 in 8 (kind)", Filter { kinds: vec![Kind::PostOffice], ..Filter::default() }, Some("kind = 3")),
        (
            "1 in 1,000 (accessibility)",
            Filter { accessibility: vec![Accessibility::HearingLoop], ..Filter::default() },
            Some("rare"),
        ),
    ];
    let kind_code = Kind::ALL.iter().position(|k| *k == Kind::PostOffice).unwrap_or(0);
    assert_eq!(kind_code, 3, "the SQL filter below names kind 3");
    let postgres = std::env::var("HUBDIR_BENCH_POSTGRES_URL").ok();
    let postgis = postgres.as_deref().map(|url| PostGis::load(url, &points, &queries));
    let mut redis = std::env::var("HUBDIR_BENCH_REDIS").ok().map(|address| Redis::load(&address, &points));

    println!();
    println!(
        "| k=10, {n} sites | index QPS | p50 µs | p99 µs | PostGIS QPS | index ÷ PostGIS | Redis QPS | index ÷ Redis |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (label, filter, sql) in &filters {
        let ours = measure(&index, &queries, filter);
        let pg = postgis.as_ref().map(|p| p.qps(*sql));
        // Redis has no attribute filters: it answers the unfiltered query only.
        let rd = if sql.is_none() { redis.as_mut().map(|r| r.qps(&queries)) } else { None };
        let cell = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.0}"));
        let ratio = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{:.1}", ours.qps / v));
        println!(
            "| {label} | {:.0} | {:.1} | {:.1} | {} | {} | {} | {} |",
            ours.qps,
            ours.p50_us,
            ours.p99_us,
            cell(pg),
            ratio(pg),
            cell(rd),
            ratio(rd)
        );
    }
    if postgis.is_none() {
        println!("(PostGIS skipped: set HUBDIR_BENCH_POSTGRES_URL)");
    }
    if redis.is_none() {
        println!("(Redis skipped: set HUBDIR_BENCH_REDIS=127.0.0.1:6379)");
    }
    if let Some(p) = postgis {
        p.agreement(&index, &queries);
        p.drop_schema();
    }
}

/// The same sites and queries in PostGIS, queried through pgbench (one client, prepared).
struct PostGis {
    url: String,
    dir: std::path::PathBuf,
}

impl PostGis {
    fn psql(url: &str, sql: &str, stdin: Option<&[u8]>) -> String {
        let mut child = Command::new("psql")
            .args([url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql])
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run psql");
        if let Some(data) = stdin {
            child.stdin.take().expect("psql stdin").write_all(data).expect("feed psql");
        }
        let out = child.wait_with_output().expect("wait for psql");
        assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn load(url: &str, points: &[Point], queries: &[(f64, f64)]) -> PostGis {
        let started = Instant::now();
        Self::psql(url, "CREATE EXTENSION IF NOT EXISTS postgis", None);
        Self::psql(
            url,
            "DROP SCHEMA IF EXISTS hubdir_bench CASCADE; CREATE SCHEMA hubdir_bench; CREATE TABLE hubdir_bench.sites (id int, kind int, rare bool, geog geography(Point, 4326)); CREATE TABLE hubdir_bench.queries (id int PRIMARY KEY, geog geography(Point, 4326))",
            None,
        );
        let mut csv = String::with_capacity(points.len() * 60);
        for (i, p) in points.iter().enumerate() {
            let kind = Kind::ALL.iter().position(|k| *k == p.kind).unwrap_or(0);
            csv.push_str(&format!("{i},{kind},{},SRID=4326;POINT({} {})\n", p.rare, p.lng, p.lat));
        }
        Self::psql(url, "COPY hubdir_bench.sites FROM STDIN (FORMAT csv)", Some(csv.as_bytes()));
        let csv: String = queries
            .iter()
            .enumerate()
            .map(|(i, (lat, lng))| format!("{},SRID=4326;POINT({lng} {lat})\n", i + 1))
            .collect();
        Self::psql(url, "COPY hubdir_bench.queries FROM STDIN (FORMAT csv)", Some(csv.as_bytes()));
        Self::psql(url, "CREATE INDEX ON hubdir_bench.sites USING gist (geog); ANALYZE hubdir_bench.sites", None);
        println!("PostGIS: loaded and indexed in {:.1} s", started.elapsed().as_secs_f64());
        let dir = std::env::temp_dir().join(format!("hubdir-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("bench scratch dir");
        PostGis { url: url.to_owned(), dir }
    }

    fn sql(filter: Option<&str>, q: &str) -> String {
        let filter = filter.map(|f| format!("WHERE {f} ")).unwrap_or_default();
        format!(
            "SELECT id FROM hubdir_bench.sites {filter}ORDER BY geog <-> (SELECT geog FROM hubdir_bench.queries WHERE id = {q}) LIMIT 10"
        )
    }

    /// pgbench's transactions per second over 10 s, one client, prepared statements.
    fn qps(&self, filter: Option<&str>) -> f64 {
        let script = self.dir.join("knn.sql");
        std::fs::write(&script, format!("\\set q random(1, 10000)\n{};\n", Self::sql(filter, ":q"))).expect("script");
        let out = Command::new("pgbench")
            .args(["-n", "-M", "prepared", "-c", "1", "-j", "1", "-T", "10", "-f"])
            .arg(&script)
            .arg(&self.url)
            .output()
            .expect("run pgbench");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "pgbench: {text}{}", String::from_utf8_lossy(&out.stderr));
        text.lines()
            .find_map(|l| l.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
            .expect("pgbench printed no tps")
    }

    /// How often PostGIS and the index return the same ten sites (ties and the sphere versus
    /// PostGIS's own distance may reorder the last one).
    fn agreement(&self, index: &SiteIndex, queries: &[(f64, f64)]) {
        let sample = 50;
        let mut same = 0;
        for (q, (lat, lng)) in queries.iter().enumerate().take(sample) {
            let theirs: Vec<String> = Self::psql(&self.url, &Self::sql(None, &(q + 1).to_string()), None)
                .lines()
                .map(|id| format!("sites/bench/s{id}"))
                .collect();
            let mut ours: Vec<String> = index
                .nearest(*lat, *lng, 10, None, &Filter::default())
                .iter()
                .map(|n| n.facts.name.to_string())
                .collect();
            let mut theirs_sorted = theirs.clone();
            ours.sort();
            theirs_sorted.sort();
            same += usize::from(ours == theirs_sorted);
        }
        println!("PostGIS and the index return the same ten sites for {same} of {sample} queries");
    }

    fn drop_schema(&self) {
        Self::psql(&self.url, "DROP SCHEMA hubdir_bench CASCADE", None);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The same sites in a Redis geo set, queried with GEOSEARCH over one connection.
struct Redis {
    stream: BufReader<TcpStream>,
}

const REDIS_KEY: &str = "hubdir:bench:sites";
/// GEOSEARCH needs a radius; 100 km holds ten sites around nearly every query here.
const REDIS_RADIUS_KM: &str = "100";

impl Redis {
    fn command(args: &[&str]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        out
    }

    /// Reads one reply; returns the number of elements of an array (0 otherwise).
    fn reply(&mut self) -> usize {
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("redis reply");
        let (kind, rest) = line.split_at(1);
        let rest = rest.trim_end();
        match kind {
            "*" => {
                let n: usize = rest.parse().unwrap_or(0);
                for _ in 0..n {
                    self.reply();
                }
                n
            }
            "$" => {
                let len: i64 = rest.parse().unwrap_or(-1);
                if len >= 0 {
                    let mut buf = vec![0; len as usize + 2];
                    self.stream.read_exact(&mut buf).expect("redis bulk");
                }
                0
            }
            "-" => panic!("redis error: {rest}"),
            _ => 0,
        }
    }

    fn load(address: &str, points: &[Point]) -> Redis {
        let started = Instant::now();
        let stream = TcpStream::connect(address).expect("connect to redis");
        stream.set_read_timeout(Some(Duration::from_secs(120))).expect("timeout");
        let mut redis = Redis { stream: BufReader::new(stream) };
        redis.stream.get_mut().write_all(&Self::command(&["DEL", REDIS_KEY])).expect("write");
        redis.reply();
        // Pipelined in chunks of 1,000 members.
        for (chunk_no, chunk) in points.chunks(1000).enumerate() {
            let mut args = vec!["GEOADD".to_owned(), REDIS_KEY.to_owned()];
            for (i, p) in chunk.iter().enumerate() {
                // Redis's geo sets stop at ±85.05°.
                args.push(p.lng.to_string());
                args.push(p.lat.clamp(-85.05, 85.05).to_string());
                args.push((chunk_no * 1000 + i).to_string());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            redis.stream.get_mut().write_all(&Self::command(&args)).expect("write");
            redis.reply();
        }
        println!("Redis: loaded in {:.1} s", started.elapsed().as_secs_f64());
        redis
    }

    fn qps(&mut self, queries: &[(f64, f64)]) -> f64 {
        let redis = self;
        let started = Instant::now();
        let mut found = 0;
        for (lat, lng) in queries {
            let (lng, lat) = (lng.to_string(), lat.clamp(-85.05, 85.05).to_string());
            let command = Self::command(&[
                "GEOSEARCH",
                REDIS_KEY,
                "FROMLONLAT",
                &lng,
                &lat,
                "BYRADIUS",
                REDIS_RADIUS_KM,
                "km",
                "ASC",
                "COUNT",
                "10",
            ]);
            redis.stream.get_mut().write_all(&command).expect("write");
            found += redis.reply();
        }
        let qps = queries.len() as f64 / started.elapsed().as_secs_f64();
        println!("Redis: {found} results for {} queries (fewer than 10 where 100 km holds fewer)", queries.len());
        qps
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.stream.get_mut().write_all(&Self::command(&["DEL", REDIS_KEY]));
    }
}
