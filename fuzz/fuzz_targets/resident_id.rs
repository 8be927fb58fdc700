#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| yunid::fuzzing::resident_id(data));
