//! The `vigie` binary as a process: found next to the test binaries, started with
//! `--listen 127.0.0.1:0` and read until it prints the address it bound; and
//! `vigie serve` launched from a `Settings` value, the way an operator runs it from a
//! config file (secrets, never written to the file, go by environment).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use vigie::config::Settings;

use crate::signal;

/// The `vigie` binary Cargo built for these tests: `$VIGIE_BIN`, else `vigie` in the
/// target directory the test binary runs from (`target/<profile>/deps/..`).
pub fn vigie_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("VIGIE_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("vigie");
    assert!(
        bin.is_file(),
        "{} is not built: run the tests with cargo test -p vigie",
        bin.display()
    );
    bin
}

/// A `vigie` command, logging warnings only and reading no config file but its own.
pub fn vigie() -> Command {
    let mut command = Command::new(vigie_bin());
    command.env("RUST_LOG", "warn").env_remove("VIGIE_CONFIG");
    command
}

/// A `vigie` process started with `--listen 127.0.0.1:0` (or any address): waits for
/// the address it prints, then drains its stderr (into `log` if given) so that it never
/// blocks on a full pipe. Killed (SIGKILL) on drop unless it exited before; if the test
/// is failing, the end of its log goes to the test's output first (the log's folder is
/// usually a temporary one, gone with the test).
#[derive(Debug)]
pub struct Listening {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: Option<PathBuf>,
}

/// Lines of a server's log shown when a test fails.
const LOG_TAIL_LINES: usize = 60;

impl Listening {
    pub fn start(command: &mut Command, log: Option<PathBuf>) -> Listening {
        use std::io::{BufRead, BufReader, Write};
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("vigie starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut line = String::new();
        let base = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).expect("read") > 0,
                "vigie exited before listening"
            );
            if let Some(url) = line.trim().strip_prefix("listening on ") {
                break url.to_string();
            }
        };
        let path = log.clone();
        std::thread::spawn(move || {
            let mut file = path.and_then(|path| std::fs::File::create(path).ok());
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(f) = file.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
            }
        });
        Listening { child, base, log }
    }

    /// SIGTERM, then waits for the exit: whether it exited cleanly.
    pub fn terminate(mut self) -> bool {
        signal(self.child.id(), "-TERM");
        self.child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let log = self.log.as_ref().filter(|_| std::thread::panicking());
        if let Some((path, text)) = log.and_then(|p| Some((p, std::fs::read_to_string(p).ok()?))) {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "--- the last {} lines of {} ---\n{}\n---",
                tail.len(),
                path.display(),
                tail.join("\n")
            );
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `settings` as the TOML file `vigie --config` reads, and the environment that carries
/// its secrets (webhook URLs and keys are shown as `<redacted>` when serialized, so they
/// go as `VIGIE__ALERTS__SINKS__<NAME>__URL` and `..__SECRET`, as in production).
pub fn config_file(settings: &Settings) -> (String, Vec<(String, String)>) {
    let toml = toml::to_string(settings).expect("settings serialize to TOML");
    let mut env = Vec::new();
    for (name, sink) in &settings.alerts.sinks {
        let prefix = format!("VIGIE__ALERTS__SINKS__{}", name.to_uppercase());
        env.push((format!("{prefix}__URL"), sink.url.expose().to_string()));
        if let Some(secret) = &sink.secret {
            env.push((format!("{prefix}__SECRET"), secret.expose().to_string()));
        }
    }
    (toml, env)
}

/// `vigie serve` started from a `Settings` value; killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct VigieServe {
    process: Listening,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its config file, and its log (`info`) next to it.
    pub config: PathBuf,
    pub client: reqwest::Client,
}

impl VigieServe {
    /// `vigie --config <dir>/<name>.toml serve --listen 127.0.0.1:0`, its log in
    /// `<dir>/<name>.log`.
    pub fn start(dir: &Path, name: &str, settings: &Settings) -> VigieServe {
        VigieServe::start_on(dir, name, settings, "127.0.0.1:0")
    }

    /// The same on a given address (to restart on the same one).
    pub fn start_on(dir: &Path, name: &str, settings: &Settings, listen: &str) -> VigieServe {
        VigieServe::start_with_args(dir, name, settings, listen, &[])
    }

    /// The same with `serve` flags after the settings (`--brokers`, `--topic`).
    pub fn start_with_args(
        dir: &Path,
        name: &str,
        settings: &Settings,
        listen: &str,
        args: &[&str],
    ) -> VigieServe {
        // Without tokens, the laptop mode an operator asks for explicitly.
        let mut settings = settings.clone();
        settings.auth.open = !settings.auth.enabled();
        let settings = &settings;
        settings
            .validate()
            .unwrap_or_else(|e| panic!("{name}: settings are valid: {e}"));
        let config = dir.join(format!("{name}.toml"));
        let (toml, env) = config_file(settings);
        std::fs::write(&config, toml).expect("config file");
        let process = Listening::start(
            vigie()
                .args(["--config", &config.display().to_string()])
                .args(["serve", "--listen", listen])
                .args(args)
                .envs(env)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1"),
            Some(dir.join(format!("{name}.log"))),
        );
        VigieServe {
            base: process.base.clone(),
            process,
            config,
            client: reqwest::Client::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.child.id()
    }

    /// SIGTERM, then waits: whether it exited cleanly.
    pub fn terminate(self) -> bool {
        self.process.terminate()
    }

    /// SIGKILL, at once.
    pub fn kill(self) {}

    /// `GET path` with an optional token: status and JSON body, `None` if unreachable or
    /// not JSON.
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> Option<(u16, Value)> {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.ok()?))
    }

    pub async fn get(&self, path: &str) -> Option<(u16, Value)> {
        self.get_as(path, None).await
    }

    /// The value of metric `name` (without labels), `None` if absent or unreachable.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    /// The snapshot of `window`, without `breakdown` (whose row order follows interning),
    /// `None` unless answered 200.
    pub async fn kpis(&self, window: &str) -> Option<Value> {
        let (status, mut s) = self
            .get(&format!("/api/v1/snapshot?window={window}"))
            .await?;
        if status != 200 {
            return None;
        }
        s.as_object_mut()?.remove("breakdown");
        Some(s)
    }
}

/// A process the test started (a bridge, the demo), killed when the test ends whatever
/// happens.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a server and a replay are compared on: the KPIs, not the consumer's own counters
/// (late, duplicates, rejected) nor the breakdown's row order.
pub fn contact_kpis(s: &Value) -> Value {
    serde_json::json!({"total": s["total"], "by_channel": s["by_channel"], "queues": s["queues"]})
}

/// `vigie replay <args> <file>`: its [`contact_kpis`] (panics with its stderr if it fails).
pub fn replay_kpis(args: &[&str], file: &Path) -> Value {
    let out = vigie()
        .arg("replay")
        .args(args)
        .arg(file)
        .output()
        .expect("vigie replay runs");
    assert!(
        out.status.success(),
        "vigie replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    contact_kpis(&serde_json::from_slice(&out.stdout).expect("one snapshot"))
}

impl VigieServe {
    /// Waits (`deadline` at most) until the snapshot of `window`, read with `token`,
    /// has exactly the [`contact_kpis`] `expected`.
    pub async fn shows(
        &self,
        window: &str,
        token: Option<&str>,
        expected: &Value,
        deadline: std::time::Duration,
    ) {
        crate::wait_for(
            "vigie serve shows the replay's numbers",
            deadline,
            || async {
                let (status, s) = self
                    .get_as(&format!("/api/v1/snapshot?window={window}"), token)
                    .await?;
                (status == 200).then(|| contact_kpis(&s))
            },
            |got| got == expected,
        )
        .await;
    }
}
