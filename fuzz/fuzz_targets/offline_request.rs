//! libFuzzer entry point for `pushmfa_fuzz::offline_request`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushmfa_fuzz::offline_request(data));
