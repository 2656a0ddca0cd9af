//! libFuzzer entry point for `pushmfa_fuzz::enroll_uri`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushmfa_fuzz::enroll_uri(data));
