//! `hubdir agent`: reports one site's connectivity to a node, from values it is given or from
//! a built-in probe that fetches a configured `http://` URL. Meant for cron: one report per
//! run, a non-zero exit when the node refuses it or cannot be reached.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hubdir_node::client::Outgoing;
use hubdir_proto::convert;
use hubdir_proto::v1::connectivity_service_client::ConnectivityServiceClient;
use hubdir_proto::v1::{self as pb, ReportStatusRequest};
use tracing::Instrument;

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The node to report to (`http://host:50051`).
    #[arg(long)]
    node: String,
    /// A bearer token with the connectivity.report scope that lists this site.
    #[arg(long)]
    token: String,
    #[command(flatten)]
    tls: hubdir_node::client::ClientTlsArgs,
    /// The site measured (`sites/{origin}/{site_id}`).
    #[arg(long)]
    site: String,
    /// Measure by fetching this `http://` URL: the connection time is the latency, the body's
    /// size over its transfer time the download speed; a failure reports the line down.
    #[arg(long, conflicts_with_all = ["online", "download_mbps", "latency_ms"])]
    probe_url: Option<String>,
    /// Whether the line is up (without --probe-url).
    #[arg(long)]
    online: Option<bool>,
    /// Measured download speed, Mbit/s.
    #[arg(long)]
    download_mbps: Option<f64>,
    /// Measured upload speed, Mbit/s.
    #[arg(long)]
    upload_mbps: Option<f64>,
    /// Measured round-trip latency, milliseconds.
    #[arg(long)]
    latency_ms: Option<f64>,
    /// How the site is connected: fibre, dsl, cable, cellular, satellite, fixed-wireless, other.
    #[arg(long, value_parser = technology, default_value = "unspecified")]
    technology: pb::AccessTechnology,
    /// Public wifi access points in service.
    #[arg(long)]
    public_wifi_access_points: Option<i32>,
    /// Public computers in service.
    #[arg(long)]
    public_computers: Option<i32>,
    /// The measurement's idempotency key; default: the site and the time of measurement, so a
    /// retried run of the same measurement is recognised.
    #[arg(long)]
    key: Option<String>,
    /// Seconds the probe may take.
    #[arg(long, default_value_t = 30)]
    probe_timeout_secs: u64,
}

/// A technology by the contract's name, without its prefix (`fixed-wireless`).
fn technology(name: &str) -> Result<pb::AccessTechnology, String> {
    let wire = format!("ACCESS_TECHNOLOGY_{}", name.to_ascii_uppercase().replace('-', "_"));
    pb::AccessTechnology::from_str_name(&wire).ok_or_else(|| format!("unknown technology {name:?}"))
}

/// What the probe measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probed {
    pub latency_ms: f64,
    pub download_mbps: f64,
}

/// Fetches an `http://host[:port]/path` URL with a plain HTTP/1.1 GET and times it.
pub fn probe(url: &str, timeout: Duration) -> anyhow::Result<Probed> {
    let Some(rest) = url.strip_prefix("http://") else { bail!("the probe takes http:// URLs only, got {url:?}") };
    let (authority, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let address = if authority.contains(':') { authority.to_owned() } else { format!("{authority}:80") };
    let target = address.to_socket_addrs()?.next().with_context(|| format!("{authority} does not resolve"))?;
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&target, timeout)?;
    let latency = started.elapsed();
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: hubdir-agent\r\nConnection: close\r\n\r\n"
    )?;
    let transfer = Instant::now();
    let mut body = Vec::new();
    stream.read_to_end(&mut body)?;
    let seconds = transfer.elapsed().as_secs_f64().max(1e-6);
    let status_ok = body.starts_with(b"HTTP/1.1 2") || body.starts_with(b"HTTP/1.0 2");
    if !status_ok {
        let line = String::from_utf8_lossy(body.split(|b| *b == b'\n').next().unwrap_or_default()).into_owned();
        bail!("{url} answered {:?}", line.trim());
    }
    Ok(Probed { latency_ms: latency.as_secs_f64() * 1000.0, download_mbps: body.len() as f64 * 8.0 / seconds / 1e6 })
}

/// Measures (or takes the given values), reports, and returns the node's answer as a line.
pub async fn run(args: &AgentArgs) -> anyhow::Result<String> {
    let observed = chrono::Utc::now();
    let mut measurement = pb::Measurement {
        site: args.site.clone(),
        observe_time: Some(convert::timestamp(observed)),
        online: args.online.unwrap_or(true),
        download_mbps: args.download_mbps,
        upload_mbps: args.upload_mbps,
        latency_ms: args.latency_ms,
        technology: args.technology.into(),
        public_wifi_access_points: args.public_wifi_access_points,
        public_computers: args.public_computers,
        source: pb::MeasurementSource::Agent.into(),
        idempotency_key: args.key.clone().unwrap_or_else(|| format!("{}@{}", args.site, observed.to_rfc3339())),
        ..pb::Measurement::default()
    };
    let mut note = String::new();
    if let Some(url) = &args.probe_url {
        let timeout = Duration::from_secs(args.probe_timeout_secs);
        let url = url.clone();
        match tokio::task::spawn_blocking(move || probe(&url, timeout)).await? {
            Ok(p) => {
                measurement.online = true;
                measurement.latency_ms = Some(p.latency_ms);
                measurement.download_mbps = Some(p.download_mbps);
                note = format!("probe: online, {:.1} ms, {:.2} Mbit/s; ", p.latency_ms, p.download_mbps);
            }
            Err(err) => {
                measurement.online = false;
                note = format!("probe failed ({err:#}): reporting the line down; ");
            }
        }
    }
    let channel = hubdir_node::client::connect(&args.node, &args.tls.tls_for(&args.node)?)
        .await
        .with_context(|| format!("cannot reach the node at {}", args.node))?;
    let mut client = ConnectivityServiceClient::with_interceptor(channel, Outgoing::bearer(&args.token)?);
    let request = tonic::Request::new(tokio_stream::iter([ReportStatusRequest { measurements: vec![measurement] }]));
    let span = hubdir_node::client::call_span("hubdir.v1.ConnectivityService", "ReportStatus");
    let response = client.report_status(request).instrument(span).await;
    let response = response.context("the node refused the report")?.into_inner();
    if let Some(refused) = response.refused.first() {
        bail!("{note}the node refused the measurement: {}", refused.reason);
    }
    Ok(format!("{note}accepted {}, duplicate {}", response.accepted_count, response.duplicate_count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot HTTP server on loopback answering `status` and `body_bytes` bytes.
    fn serve_once(status: &'static str, body_bytes: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // Read the whole request head: closing with unread bytes would reset the connection.
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            let head = format!("HTTP/1.1 {status}\r\nContent-Length: {body_bytes}\r\nConnection: close\r\n\r\n");
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&vec![b'x'; body_bytes]).unwrap();
        });
        format!("http://{address}/speed")
    }

    #[test]
    fn the_probe_times_a_real_download_and_reports_failures() {
        let measured = probe(&serve_once("200 OK", 2_000_000), Duration::from_secs(10)).unwrap();
        assert!(measured.download_mbps > 0.0 && measured.latency_ms >= 0.0, "{measured:?}");
        let refused = probe(&serve_once("503 Service Unavailable", 10), Duration::from_secs(10)).unwrap_err();
        assert!(refused.to_string().contains("503"), "{refused}");
        assert!(probe("https://example.org/", Duration::from_secs(1)).unwrap_err().to_string().contains("http://"));
    }
}
