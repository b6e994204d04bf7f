//! Replays the committed fuzzing corpora (`fuzz/corpus/TARGET/*`) through the same entry
//! points as the fuzzers: a regression test that runs in seconds with the stable toolchain.

use std::path::Path;

/// A fuzz target's entry point.
type Target = fn(&[u8]);

#[test]
fn every_corpus_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let targets: [(&str, Target); 9] = [
        ("identifiers", rampart_gateway::fuzzing::identifiers),
        ("messages", rampart_gateway::fuzzing::messages),
        ("tokens", rampart_gateway::fuzzing::tokens),
        ("proxy_header", rampart_gateway::fuzzing::proxy_header),
        ("recording_inputs", rampart_gateway::fuzzing::recording_inputs),
        ("sign_in", rampart_gateway::fuzzing::sign_in),
        ("rd_gateway", rampart_gateway::fuzzing::rd_gateway),
        ("azure_requests", rampart_gateway::fuzzing::azure_requests),
        ("graphics_pipeline", rampart_gateway::fuzzing::graphics_pipeline),
    ];
    let mut replayed = 0;
    for (name, target) in targets {
        let dir = root.join(name);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).unwrap_or_default();
            target(&data);
            replayed += 1;
        }
    }
    assert!(replayed >= 10, "only {replayed} corpus inputs: the corpora are missing");
}
