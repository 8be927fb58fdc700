#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yunid::fuzzing::licence_id(data));
