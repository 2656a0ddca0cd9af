//! libFuzzer entry point for `pushmfa_fuzz::config_toml`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pushmfa_fuzz::config_toml(data));
