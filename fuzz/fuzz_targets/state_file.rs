//! libFuzzer entry point for `pushmfa_fuzz::state_file`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushmfa_fuzz::state_file(data));
