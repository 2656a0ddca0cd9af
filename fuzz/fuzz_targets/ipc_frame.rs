//! libFuzzer entry point for `pushmfa_fuzz::ipc_frame`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushmfa_fuzz::ipc_frame(data));
