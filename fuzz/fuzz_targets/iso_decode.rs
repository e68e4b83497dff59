#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| acqswitch::fuzzing::iso_decode_any(data));
