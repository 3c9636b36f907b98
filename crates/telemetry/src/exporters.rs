//! The OpenTelemetry providers: traces over OTLP, metrics over OTLP and as Prometheus text.

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::{ProcessInfo, SCOPE, TelemetryError};

/// `[telemetry]`: what is exported, and where. Nothing by default.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector for traces and metrics, `http://collector:4317`. Empty: the
    /// standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT` and
    /// `..._METRICS_ENDPOINT`) if set, otherwise nothing is exported over OTLP.
    pub otlp_endpoint: String,
    /// The share of traces kept, 0 to 1, for a trace that does not arrive sampled already
    /// (parent-based). Unset: `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, or every trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_sample_ratio: Option<f64>,
    /// Seconds between two OTLP metric exports.
    pub metrics_interval_secs: u64,
    /// Where the Prometheus text endpoint (`GET /metrics`) listens, on its own plaintext
    /// listener, `0.0.0.0:9464`. Unset: no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_listen: Option<SocketAddr>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: String::new(),
            trace_sample_ratio: None,
            metrics_interval_secs: 60,
            prometheus_listen: None,
        }
    }
}

impl TelemetryConfig {
    /// Whether a signal (`TRACES`, `METRICS`) is exported over OTLP: an endpoint in the config,
    /// in `OTEL_EXPORTER_OTLP_ENDPOINT` or in the signal's own variable, and the SDK not
    /// disabled (`OTEL_SDK_DISABLED=true`).
    fn otlp_enabled(&self, signal: &str) -> bool {
        let set = |var: &str| std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
        let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
        let configured = !self.otlp_endpoint.is_empty()
            || set("OTEL_EXPORTER_OTLP_ENDPOINT")
            || set(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"));
        configured && !disabled
    }

    /// Whether the signal's collector is an `https://` endpoint (the exporter would otherwise
    /// trust no root at all).
    fn otlp_https(&self, signal: &str) -> bool {
        let endpoint = Some(self.otlp_endpoint.clone())
            .filter(|e| !e.is_empty())
            .or_else(|| std::env::var(format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")).ok())
            .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
            .unwrap_or_default();
        endpoint.trim().starts_with("https://")
    }
}

/// TLS towards an `https://` collector, verified against the system's roots.
fn system_roots() -> tonic::transport::ClientTlsConfig {
    tonic::transport::ClientTlsConfig::new().with_native_roots()
}

/// The installed providers. Dropping it does not flush: call [`Telemetry::shutdown`].
#[derive(Debug, Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    prometheus: Option<prometheus::Registry>,
}

impl Telemetry {
    pub(crate) fn start(config: &TelemetryConfig, process: &ProcessInfo) -> Result<Telemetry, TelemetryError> {
        if let Some(ratio) = config.trace_sample_ratio
            && !(0.0..=1.0).contains(&ratio)
        {
            return Err(TelemetryError::SampleRatio(ratio));
        }
        // W3C trace context in and out, whether or not this process exports: a node in the
        // middle of a trace passes it on.
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        let (traces, metrics) = (config.otlp_enabled("TRACES"), config.otlp_enabled("METRICS"));
        let prometheus = config.prometheus_listen.is_some();
        if !traces && !metrics && !prometheus {
            return Ok(Telemetry::default());
        }
        let resource = resource(process);
        let mut telemetry = Telemetry::default();
        if traces {
            let mut spans = opentelemetry_otlp::SpanExporter::builder().with_tonic();
            if !config.otlp_endpoint.is_empty() {
                spans = spans.with_endpoint(config.otlp_endpoint.clone());
            }
            if config.otlp_https("TRACES") {
                spans = spans.with_tls_config(system_roots());
            }
            let spans = spans.build().map_err(|e| TelemetryError::Otlp { signal: "trace", cause: e.to_string() })?;
            let mut tracer = SdkTracerProvider::builder().with_batch_exporter(spans).with_resource(resource.clone());
            if let Some(ratio) = config.trace_sample_ratio {
                tracer = tracer.with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio))));
            }
            telemetry.tracer = Some(tracer.build());
        }
        if !metrics && !prometheus {
            return Ok(telemetry);
        }
        let mut meter = SdkMeterProvider::builder().with_resource(resource);
        if metrics {
            let mut metrics = opentelemetry_otlp::MetricExporter::builder().with_tonic();
            if !config.otlp_endpoint.is_empty() {
                metrics = metrics.with_endpoint(config.otlp_endpoint.clone());
            }
            if config.otlp_https("METRICS") {
                metrics = metrics.with_tls_config(system_roots());
            }
            let metrics =
                metrics.build().map_err(|e| TelemetryError::Otlp { signal: "metrics", cause: e.to_string() })?;
            let interval = Duration::from_secs(config.metrics_interval_secs.max(1));
            meter = meter.with_reader(PeriodicReader::builder(metrics).with_interval(interval).build());
        }
        if prometheus {
            let registry = prometheus::Registry::new();
            let exporter = opentelemetry_prometheus::exporter()
                .with_registry(registry.clone())
                .build()
                .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
            meter = meter.with_reader(exporter);
            telemetry.prometheus = Some(registry);
        }
        let meter = meter.build();
        opentelemetry::global::set_meter_provider(meter.clone());
        telemetry.meter = Some(meter);
        Ok(telemetry)
    }

    /// The layer that turns hubdir's spans into OpenTelemetry spans; none when traces are not
    /// exported. Only spans of hubdir's own crates pass: h2's, hyper's and tonic's internals
    /// would be a third of the spans and say nothing an operator can act on.
    pub(crate) fn span_layer<S>(&self) -> Option<impl Layer<S> + use<S>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let tracer = self.tracer.as_ref()?.tracer(SCOPE);
        let ours = tracing_subscriber::filter::filter_fn(|meta| meta.is_span() && meta.target().starts_with("hubdir"));
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_threads(false)
                .with_location(false)
                .with_tracked_inactivity(false)
                .with_filter(ours),
        )
    }

    /// Whether spans are exported (request handlers skip building span data otherwise).
    pub fn traces_enabled(&self) -> bool {
        self.tracer.is_some()
    }

    /// Whether metrics are collected (over OTLP, for the Prometheus endpoint, or both).
    pub fn metrics_enabled(&self) -> bool {
        self.meter.is_some()
    }

    /// The current metrics in the Prometheus text format, when that endpoint is configured.
    pub fn prometheus_text(&self) -> Option<String> {
        use prometheus::Encoder;
        let families = self.prometheus.as_ref()?.gather();
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&families, &mut out).ok()?;
        String::from_utf8(out).ok()
    }

    /// Sends what is buffered and stops the providers. Blocking: call it from
    /// `spawn_blocking` or after the runtime's work is done.
    pub fn shutdown(&self) {
        if let Some(tracer) = &self.tracer
            && let Err(err) = tracer.shutdown()
        {
            tracing::warn!(error = %err, "flushing traces on exit failed");
        }
        if let Some(meter) = &self.meter
            && let Err(err) = meter.shutdown()
        {
            tracing::warn!(error = %err, "flushing metrics on exit failed");
        }
    }
}

/// `service.name` (unless `OTEL_SERVICE_NAME` says otherwise), the node id, and whatever
/// `OTEL_RESOURCE_ATTRIBUTES` adds.
fn resource(process: &ProcessInfo) -> Resource {
    let mut builder = Resource::builder().with_attribute(KeyValue::new("hubdir.node.id", process.node_id.clone()));
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        builder = builder.with_service_name(process.service_name.clone());
    }
    builder.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION"))).build()
}
