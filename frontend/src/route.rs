//! Owns the view state kept in the URL, so a wall screen boots straight into its view:
//! `/wall?window=1h&site=lyon&lang=fr` or `/switchboard?channel=chat`. Parsing never
//! fails: an unknown value falls back to the default.

use vigie_proto::Subscription;

use crate::i18n::Lang;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Page {
    #[default]
    Wall,
    Switchboard,
}

/// The windows offered by the selector.
pub const WINDOWS: [&str; 3] = ["15m", "1h", "today"];

/// The channel whose pressure the switchboard shows first: the one switches deflect from.
pub const PRESSURE_CHANNEL: &str = "phone";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewState {
    pub page: Page,
    pub window: String,
    pub site: Option<String>,
    pub segment: Option<String>,
    pub reason: Option<String>,
    /// The switchboard's pressure table shows this channel by contact reason
    /// (`None`: [`PRESSURE_CHANNEL`]).
    pub channel: Option<String>,
    /// `None`: the browser's language.
    pub lang: Option<Lang>,
    /// Show every tile's formula (for wall screens without a mouse).
    pub formulas: bool,
}

impl Default for ViewState {
    fn default() -> Self {
        ViewState {
            page: Page::Wall,
            window: WINDOWS[0].into(),
            site: None,
            segment: None,
            reason: None,
            channel: None,
            lang: None,
            formulas: false,
        }
    }
}

impl ViewState {
    /// From `location.pathname` and `location.search` (with or without the `?`).
    pub fn parse(path: &str, query: &str) -> ViewState {
        let mut state = ViewState {
            page: if path.trim_end_matches('/').ends_with("/switchboard") {
                Page::Switchboard
            } else {
                Page::Wall
            },
            ..ViewState::default()
        };
        for pair in query.trim_start_matches('?').split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            let nonempty = || Some(value.clone()).filter(|v| !v.is_empty());
            match key {
                "window" if WINDOWS.contains(&value.as_str()) => state.window = value.clone(),
                "site" => state.site = nonempty(),
                "segment" => state.segment = nonempty(),
                "reason" => state.reason = nonempty(),
                "channel" => state.channel = nonempty(),
                "lang" => state.lang = Lang::from_code(&value),
                "formulas" => state.formulas = matches!(value.as_str(), "1" | "true" | "on"),
                _ => {}
            }
        }
        state
    }

    /// The path and query of this state (defaults left out, so URLs stay short).
    pub fn to_url(&self) -> String {
        let path = match self.page {
            Page::Wall => "/wall",
            Page::Switchboard => "/switchboard",
        };
        let mut params = Vec::new();
        if self.window != WINDOWS[0] {
            params.push(format!("window={}", encode(&self.window)));
        }
        for (key, value) in [
            ("site", &self.site),
            ("segment", &self.segment),
            ("reason", &self.reason),
            ("channel", &self.channel),
        ] {
            if let Some(v) = value {
                params.push(format!("{key}={}", encode(v)));
            }
        }
        if let Some(lang) = self.lang {
            params.push(format!("lang={}", lang.code()));
        }
        if self.formulas {
            params.push("formulas=1".into());
        }
        if params.is_empty() {
            path.into()
        } else {
            format!("{path}?{}", params.join("&"))
        }
    }

    /// The channel of the switchboard's pressure table.
    pub fn pressure_channel(&self) -> &str {
        self.channel.as_deref().unwrap_or(PRESSURE_CHANNEL)
    }

    /// The websocket subscription of this view: the wall's every channel, or the
    /// switchboard's pressure channel by contact reason.
    pub fn subscription(&self) -> Subscription {
        let wall = Subscription {
            window: self.window.clone(),
            site: self.site.clone(),
            segment: self.segment.clone(),
            reason: self.reason.clone(),
            ..Subscription::default()
        };
        match self.page {
            Page::Wall => wall,
            Page::Switchboard => Subscription {
                channel: Some(self.pressure_channel().to_string()),
                by: vec!["reason".into()],
                ..wall
            },
        }
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes `%XX` and `+`; malformed escapes are kept as they are.
pub fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_screen_url_gives_its_view_and_back() {
        let state = ViewState::parse(
            "/wall",
            "?window=1h&site=Lyon%20Part-Dieu&lang=fr&formulas=1",
        );
        assert_eq!(state.page, Page::Wall);
        assert_eq!(state.window, "1h");
        assert_eq!(state.site.as_deref(), Some("Lyon Part-Dieu"));
        assert_eq!(state.lang, Some(Lang::Fr));
        assert!(state.formulas);
        assert_eq!(
            state.to_url(),
            "/wall?window=1h&site=Lyon%20Part-Dieu&lang=fr&formulas=1"
        );
        assert_eq!(ViewState::parse("/wall", &state.to_url()[5..]), state);
    }

    #[test]
    fn unknown_or_broken_values_fall_back_to_defaults() {
        let state = ViewState::parse("/", "window=3y&site=&lang=xx&colour=red&reason=%zz");
        assert_eq!(state.window, "15m");
        assert_eq!(state.site, None);
        assert_eq!(state.lang, None);
        assert_eq!(state.reason.as_deref(), Some("%zz"));
        assert_eq!(
            ViewState::parse("/switchboard/", "").page,
            Page::Switchboard
        );
        assert_eq!(ViewState::default().to_url(), "/wall");
        assert_eq!(decode("a%2"), "a%2", "truncated escape kept");
        assert_eq!(decode("%é%C3%A9"), "%éé", "never splits a character");
    }

    #[test]
    fn the_subscription_carries_window_and_filters() {
        let state = ViewState::parse("/wall", "window=today&segment=pro&reason=billing");
        let sub = state.subscription();
        assert_eq!(sub.window, "today");
        assert_eq!(sub.segment.as_deref(), Some("pro"));
        assert_eq!(sub.reason.as_deref(), Some("billing"));
        assert_eq!(sub.site, None);
        assert_eq!(
            (sub.channel, sub.by.len()),
            (None, 0),
            "the wall: every channel"
        );
    }

    #[test]
    fn the_switchboard_subscribes_to_its_channel_by_reason() {
        let state = ViewState::parse("/switchboard", "segment=pro");
        let sub = state.subscription();
        assert_eq!(sub.channel.as_deref(), Some(PRESSURE_CHANNEL));
        assert_eq!(sub.by, vec!["reason".to_string()]);
        assert_eq!(sub.segment.as_deref(), Some("pro"));
        let chat = ViewState::parse("/switchboard", "channel=chat");
        assert_eq!(chat.subscription().channel.as_deref(), Some("chat"));
        assert_eq!(chat.to_url(), "/switchboard?channel=chat");
    }
}
