//! A Kafka record read as JSON (`kafka.payload_format = "json"`), then, if it decodes,
//! applied to an engine: no input may panic in either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigie::engine::{Engine, EngineConfig};
use vigie::event::{decode, Format};

thread_local! {
    static ENGINE: Engine = Engine::new(EngineConfig::default());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = decode(data, Some(Format::Jsonl)) {
        ENGINE.with(|engine| engine.apply(&event));
    }
});
