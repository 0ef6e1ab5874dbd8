//! Logging: `tracing` to stderr, as text or JSON, filtered by `RUST_LOG`.
//!
//! Lines emitted while a request is handled carry its span's fields (`request_id`, `method`,
//! `route`): in text after the span name, in JSON under `"span"`.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::settings::LogFormat;

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(format: LogFormat, default_level: &str) {
    init_with_writer(format, default_level, std::io::stderr);
}

/// [`init`] writing somewhere else than stderr (tests read what was logged).
pub fn init_with_writer<W>(format: LogFormat, default_level: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
}
