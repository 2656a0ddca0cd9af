//! libFuzzer entry point for `pushmfa_fuzz::sealed_messages`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushmfa_fuzz::sealed_messages(data));
