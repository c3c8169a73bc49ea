//! Owns what every component of the page reads: the view state (kept in the URL), the
//! language, what the server said at start (caller, targets, filter values), the token
//! and the live link, in one `Copy` context ([`Ctx`]).

use leptos::prelude::*;
use vigie_proto::{CockpitInfo, Role};

use crate::format::Freshness;
use crate::i18n::{Lang, Say, Text};
use crate::live::Live;
use crate::route::ViewState;

/// What every component reads.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub view: RwSignal<ViewState>,
    pub lang: Memo<Lang>,
    pub info: RwSignal<Option<CockpitInfo>>,
    pub token: RwSignal<Option<String>>,
    pub live: Live,
}

impl Ctx {
    pub fn t(&self, text: Text) -> &'static str {
        self.lang.get().text(text)
    }

    /// The caller's role (viewer until the server said otherwise).
    pub fn role(&self) -> Role {
        self.info
            .with(|i| i.as_ref().and_then(|i| i.me.as_ref()).map(|m| m.role))
            .unwrap_or(Role::Viewer)
    }

    /// The targets tiles are coloured against (defaults until the server's are loaded).
    pub fn targets(&self) -> vigie_proto::Targets {
        self.info
            .with(|i| i.as_ref().map(|i| i.targets.clone()))
            .unwrap_or_default()
    }

    /// The values the server has seen of a dimension (`channel`, `site`…), for selectors.
    pub fn dimension_values(&self, dimension: &str) -> Vec<String> {
        self.info.with(|i| {
            i.as_ref()
                .and_then(|i| i.dimensions.get(dimension).cloned())
                .unwrap_or_default()
        })
    }

    pub fn freshness(&self) -> Freshness {
        self.live.freshness(self.targets().quiet_after_ms)
    }
}

pub fn ctx() -> Ctx {
    expect_context::<Ctx>()
}
