//! The cockpit in a real headless Chromium against the real `vigie serve` on a real
//! broker.

mod autopilot;
mod cockpit;
