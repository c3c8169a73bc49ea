// Starts the cockpit. A file rather than an inline script, so the page's
// Content-Security-Policy allows scripts from this origin only.
import init from "/vigie_cockpit.js";
init({ module_or_path: "/vigie_cockpit_bg.wasm" });
