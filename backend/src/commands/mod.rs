//! The `vigie` subcommands: each parses its arguments and wires library pieces.

pub mod demo;
pub mod ingest;
pub mod replay;
pub mod serve;
pub mod simulate;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_util::sync::CancellationToken;
use vigie::config::KafkaSettings;
use vigie::engine::EngineSet;
use vigie::ingest::AssignmentHook;
use vigie::status::InstanceStatus;

/// A token cancelled on Ctrl-C or SIGTERM.
pub fn shutdown_on_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(_) => {
                        let _ = ctrl_c.await;
                        cancel.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        cancel.cancel();
    });
    token
}

/// Cancels `token` after `duration`, if given.
pub fn cancel_after(duration: Option<std::time::Duration>, token: &CancellationToken) {
    if let Some(duration) = duration {
        let token = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            token.cancel();
        });
    }
}

/// What the live path runs on, made by its caller (which may read them too).
pub struct PipelineParts {
    pub engines: Arc<EngineSet>,
    pub status: Arc<InstanceStatus>,
    pub alerts: Arc<vigie::alert::AlertService>,
    /// A store already following the switches (the demo's simulator reads it); `None`:
    /// the pipeline starts one. One store per process.
    pub switches: Option<Arc<vigie::deflection::SwitchStore>>,
}

/// The live path: the HTTP API on `listen`, the Kafka consumer into `engines` and the
/// alert rules on them, until `shutdown` (or the consumer fails); then everything stops
/// and offsets are committed.
pub async fn run_pipeline(
    kafka: &KafkaSettings,
    settings: &vigie::config::Settings,
    listen: SocketAddr,
    parts: PipelineParts,
    shutdown: CancellationToken,
) -> Result<()> {
    let PipelineParts {
        engines,
        status,
        alerts,
        switches,
    } = parts;
    let auth = &settings.auth;
    let kafka = &vigie::kafka::with_instance_id(kafka.clone());
    // Whatever way this returns, everything else stops too.
    let _stop_all = shutdown.clone().drop_guard();
    // Refuse an unauthenticated API beyond loopback before connecting to anything.
    vigie::server::check_listen_address(listen, auth).map_err(anyhow::Error::msg)?;
    let switches = match switches {
        Some(store) => store,
        None => vigie::deflection::SwitchStore::start(kafka, shutdown.clone())
            .await
            .context("loading the deflection switches")?,
    };
    // One instance expires switches: the one that alerts (every instance alone).
    tokio::spawn(switches.clone().run_expiry(
        {
            let alerts = alerts.clone();
            move || alerts.is_alerting()
        },
        shutdown.clone(),
    ));
    alerts.audit_to({
        let switches = switches.clone();
        Arc::new(move |record| switches.audit_later(record))
    });
    // Scale-out: one instance alerts for all, its state on the partials topic.
    let shared_alerts = if kafka.partials {
        let shared = Arc::new(
            vigie::alert::SharedAlerts::new(kafka).context("creating the shared alert producer")?,
        );
        alerts.share(shared.clone());
        Some(shared)
    } else {
        None
    };
    let alerting = tokio::spawn(alerts.clone().run(shutdown.clone()));
    // The autopilot evaluates where alerts are evaluated (one instance with scale-out).
    tokio::spawn(
        vigie::autopilot::Autopilot::new(
            settings,
            engines.clone(),
            switches.clone(),
            alerts.clone(),
            status.clone(),
        )
        .run(shutdown.clone()),
    );
    let followed = switches.subscribe();
    let state = vigie::server::AppState::new(engines.clone(), status.clone(), shutdown.clone())
        .with_switches(switches)
        .with_alerts(alerts)
        .with_auth(vigie::server::Auth::start(auth, shutdown.clone()).await?)
        .with_cockpit(vigie::server::cockpit::Cockpit::from_settings(settings))
        .with_limits(&settings.server)
        .with_autopilot(settings)
        .with_ingest(kafka)
        .context("creating the producer of POST /api/v1/events")?;
    let mut claimer: Option<Box<dyn AssignmentHook>> = None;
    if let Some(shared_alerts) = shared_alerts {
        vigie::scaleout::start(
            kafka,
            engines.clone(),
            status.clone(),
            followed,
            vec![shared_alerts],
            shutdown.clone(),
        )
        .await
        .context("starting scale-out (kafka.partials)")?;
        claimer = Some(Box::new(
            vigie::scaleout::PartitionClaimer::new(kafka)
                .context("creating the partition claimer")?,
        ));
    }
    let http = start_http(listen, state).await?;
    let consumed =
        vigie::ingest::run_consumer(kafka, engines, status, claimer, shutdown.clone()).await;
    shutdown.cancel();
    alerting.await.context("alerting task")?;
    http.await
        .context("HTTP server task")?
        .context("HTTP server")?;
    consumed.context("Kafka consumer")?;
    Ok(())
}

/// Binds the API (loopback only unless tokens are configured) and serves it until shutdown.
async fn start_http(
    listen: SocketAddr,
    state: vigie::server::AppState,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the HTTP API to {listen}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    if state.auth.enabled() {
        let how = if state.auth.oidc().is_some() {
            "bearer tokens or OIDC JWTs required"
        } else {
            "bearer tokens required"
        };
        tracing::info!(%addr, "HTTP API listening ({how})");
    } else {
        tracing::warn!(%addr, "HTTP API listening without authentication: loopback only");
    }
    eprintln!("listening on http://{addr}");
    Ok(tokio::spawn(vigie::server::serve(listener, state)))
}

/// one line every 5 s when live.
pub async fn report_progress(
    status: std::sync::Arc<vigie::status::InstanceStatus>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    use std::io::IsTerminal;
    use std::sync::atomic::Ordering::Relaxed;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(1000);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("rebuilding [{bar:40}] {percent:>3}% {msg}")
        {
            bar.set_style(style);
        }
        bar
    });
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    let mut last_log = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let consumed = status.consumed.load(Relaxed);
        let progress = status.rebuild_progress();
        if let Some(bar) = &bar {
            match progress {
                Some(p) => {
                    bar.set_position((p * 1000.0) as u64);
                    bar.set_message(format!("{consumed} events"));
                }
                None if !bar.is_finished() && status.is_whole() => {
                    bar.finish_with_message(format!("{consumed} events: live"));
                }
                None => {}
            }
        }
        if last_log.elapsed() >= std::time::Duration::from_secs(5) {
            last_log = tokio::time::Instant::now();
            match progress {
                Some(p) => tracing::info!(
                    progress = format!("{:.0} %", p * 100.0),
                    consumed,
                    "rebuilding"
                ),
                None => tracing::info!(
                    consumed,
                    dead_lettered = status.dead_lettered.load(Relaxed),
                    stale = status.is_stale(),
                    "live"
                ),
            }
        }
    }
}
