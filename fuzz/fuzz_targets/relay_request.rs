//! libFuzzer entry point for `pushmfa_fuzz::relay_request`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushmfa_fuzz::relay_request(data));
