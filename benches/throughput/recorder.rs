//! `PGBUS_BENCH_METRICS=prometheus`: the run with metrics on. The Prometheus recorder
//! (`metrics-exporter-prometheus`) is installed in the bench process and in the latency
//! publisher process, and the bench renders the exposition text every second, as a scraper
//! would ask for it (more often than Prometheus's usual 15 s). Unset: no recorder, so pgbus's
//! recording calls go to the facade's no-op recorder.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;

/// Installs the recorder when asked; returns what the JSON report records ("prometheus" or
/// "off").
pub fn install() -> &'static str {
    match std::env::var("PGBUS_BENCH_METRICS").as_deref() {
        Ok("prometheus") => {
            let handle = PrometheusBuilder::new()
                .install_recorder()
                .expect("installing the Prometheus recorder");
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    std::hint::black_box(handle.render());
                }
            });
            "prometheus"
        }
        Ok("") | Ok("off") | Err(_) => "off",
        Ok(other) => panic!("PGBUS_BENCH_METRICS={other:?}: use prometheus or off"),
    }
}
