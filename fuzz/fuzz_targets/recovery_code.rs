//! libFuzzer entry point for `pushmfa_fuzz::recovery_code`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushmfa_fuzz::recovery_code(data));
