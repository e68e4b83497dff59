#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| acqswitch::fuzzing::spec_load(data));
