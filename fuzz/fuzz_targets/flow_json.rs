//! Stored login flows: `serde_json::from_slice::<LoginFlow>`. The store holds what segl
//! wrote, but a damaged or hand-edited row must be an error, not a panic. A flow that
//! parses must also survive a write and a read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segl_core::flow::LoginFlow;

fuzz_target!(|json: &[u8]| {
    if let Ok(flow) = serde_json::from_slice::<LoginFlow>(json) {
        let written = serde_json::to_vec(&flow).expect("a parsed flow serialises");
        serde_json::from_slice::<LoginFlow>(&written).expect("a written flow parses again");
    }
});
