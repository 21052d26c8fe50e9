//! The worker's YAML config: nothing may panic, and a config that parses writes out as YAML
//! that parses back to the same config.

#![no_main]

use libfuzzer_sys::fuzz_target;
use outsourced_worker::WorkerConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = WorkerConfig::parse(text) {
        let written = config.to_yaml();
        let read = WorkerConfig::parse(&written);
        assert_eq!(read.as_ref(), Ok(&config), "{written}");
    }
});
