#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rampart_gateway::fuzzing::recording_inputs(data));
