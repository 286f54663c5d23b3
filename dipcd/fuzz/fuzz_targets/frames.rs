//! Fuzz target: the wire decoder, on every frame kind (see `src/lib.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dipc_wire_fuzz::check(data, &mut |_| {});
});
