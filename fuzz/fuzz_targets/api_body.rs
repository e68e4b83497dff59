#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| acqswitch::fuzzing::api_body(data));
