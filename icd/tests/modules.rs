//! The ICD's modules depend on each other in layers: entry points and the loader interface on
//! the object families, the families on the generic path and the objects, those on the
//! connection, which is transport only. A cycle would mean a family reaching back into a layer
//! below it for state that should live with its objects; this test finds any.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules of the crate it names (`crate::x`), tests left out.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g = BTreeMap::new();
    let mut files: Vec<_> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.push(src.join("generated/entry.rs"));
    // A family's submodules (`swapchain/wayland.rs`) count as the family.
    for dir in std::fs::read_dir(&src).unwrap().map(|e| e.unwrap().path()) {
        if dir.is_dir() && dir.file_name().is_some_and(|n| n != "generated") {
            files.extend(
                std::fs::read_dir(&dir)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "rs")),
            );
        }
    }
    for f in files {
        let parent = f.parent().unwrap();
        let name = match f.file_stem().unwrap().to_str().unwrap() {
            "entry" => "generated".to_string(),
            _ if parent != src => parent.file_name().unwrap().to_str().unwrap().to_string(),
            n => n.to_string(),
        };
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let deps: BTreeSet<String> = code
            .match_indices("crate::")
            .map(|(i, _)| {
                code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect::<String>()
            })
            .filter(|d| !d.is_empty() && *d != name)
            .collect();
        g.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    g
}

#[test]
fn the_modules_import_each_other_without_a_cycle() {
    let g = graph();
    assert!(g.len() > 10, "read only {} modules", g.len());
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            if g.contains_key(d) {
                visit(d, g, path, done);
            }
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        visit(m, &g, &mut Vec::new(), &mut done);
    }
    // The connection is transport: it knows no object family.
    let conn = &g["conn"];
    assert!(
        conn.iter().all(|d| ["log", "stats"].contains(&d.as_str())),
        "conn imports {conn:?}"
    );
}
