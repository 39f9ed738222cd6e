//! The caselists and expectations shipped in cts/ are valid.

use cts::caselist::{CaseUniverse, CaselistSpec};
use cts::expectations::Expectations;
use std::path::Path;

fn cts_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_caselists_parse_and_expand() {
    let universe = CaseUniverse::parse(
        "GROUP: dEQP-VK.api\nGROUP: dEQP-VK.api.smoke\nTEST: dEQP-VK.api.smoke.triangle\n\
         TEST: dEQP-VK.ssbo.layout.single_basic_type.std140.float\n",
        "cases",
    )
    .unwrap();
    for name in ["quick", "full"] {
        let path = cts_dir().join(format!("caselists/{name}.txt"));
        let spec = CaselistSpec::load(&path).unwrap();
        let expansion = spec.expand(&universe).unwrap();
        assert!(expansion
            .cases
            .contains(&"dEQP-VK.api.smoke.triangle".to_string()));
    }
}

#[test]
fn shipped_expectations_load() {
    let e = Expectations::load(&cts_dir().join("expectations")).unwrap();
    for list in [&e.fails, &e.skips, &e.flakes] {
        for entry in list.entries() {
            assert!(!entry.reason.is_empty());
        }
    }
}
