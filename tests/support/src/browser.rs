//! Headless Chromium through chromedriver (WebDriver, fantoccini): the driver in a
//! process group of its own (a failed test leaves no Chromium behind), sessions with
//! their own empty profile, and reading the page with deadlines.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::{free_port, repo_root, wait_for};

/// The built cockpit bundle (`scripts/build-cockpit.sh`).
pub fn bundle_dir() -> PathBuf {
    let dir = repo_root().join("frontend/dist");
    assert!(
        dir.join("index.html").is_file(),
        "the cockpit bundle is not built: run scripts/build-cockpit.sh (scripts/test.sh does)"
    );
    dir
}

/// Where the README's screenshots are written.
pub fn screenshot_dir() -> PathBuf {
    let dir = repo_root().join("docs/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// chromedriver and the browsers it started (its process group), killed on drop.
#[derive(Debug)]
pub struct Chromedriver {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Chromedriver {
    /// chromedriver on a free port, in a process group of its own.
    pub fn start() -> Chromedriver {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let child = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/setup.sh installs it)");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(40),
                "chromedriver did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Chromedriver {
            child,
            url: format!("http://{addr}"),
        }
    }

    /// A new headless Chromium session, 1920×1080 (a wall screen), with its own empty
    /// profile in `profile`.
    pub async fn session(&self, profile: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1920,1080",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }),
        );
        ClientBuilder::native()
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The element at `css` once the page shows it, or panics naming `what`.
pub async fn element(
    client: &Client,
    css: &str,
    what: &str,
    deadline: Duration,
) -> fantoccini::elements::Element {
    wait_for(
        what,
        deadline,
        async || client.find(Locator::Css(css)).await.ok(),
        |_| true,
    )
    .await
}

/// The text of the element at `css`, if the page has one.
pub async fn text_of(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// The number a text shows, thin-space thousands separators and units aside.
pub fn number(text: &str) -> Option<u64> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Writes a screenshot of the page to `docs/screenshots/<name>`.
pub async fn save_screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(screenshot_dir().join(name), png).expect("write screenshot");
}
