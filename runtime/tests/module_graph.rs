//! The runtime's files import each other without a circle: `abi` files lean on `core`,
//! `core` on `state`, never back (test modules aside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn sources(dir: &Path, root: &Path, out: &mut BTreeMap<Vec<String>, String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, root, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            // Test modules may reach anywhere.
            let text = match text.find("#[cfg(test)]\nmod tests") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            out.insert(module_of(p.strip_prefix(root).unwrap()), text);
        }
    }
}

/// The modules `text` (the file of module `me`) refers to by `crate::`/`super::` paths.
fn references(me: &[String], text: &str, modules: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
    let mut found = BTreeSet::new();
    let mut resolve = |base: &[String], path: &[String]| {
        let full: Vec<String> = base.iter().chain(path).cloned().collect();
        if let Some(k) = (1..=full.len())
            .rev()
            .find(|&k| modules.contains(&full[..k].to_vec()))
        {
            let m = full[..k].to_vec();
            if m != me {
                found.insert(m);
            }
        }
    };
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (at, _) in text.match_indices("::") {
        // The path this `::` starts or continues: back to its first segment.
        let start = text[..at]
            .rfind(|c: char| !(ident(c) || c == ':'))
            .map_or(0, |i| i + 1);
        if start + text[start..].find("::").unwrap_or(0) != at {
            continue; // not the first `::` of the path
        }
        let head = &text[start..at];
        let base = match head {
            "crate" => Vec::new(),
            "super" => parent.clone(),
            _ => continue,
        };
        let rest = &text[at + 2..];
        if let Some(list) = rest.strip_prefix('{') {
            let list = &list[..list.find('}').unwrap_or(0)];
            for item in list.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").to_string();
                resolve(&base, &[first]);
            }
        } else {
            let end = rest
                .find(|c: char| !(ident(c) || c == ':'))
                .unwrap_or(rest.len());
            let path: Vec<String> = rest[..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            resolve(&base, &path);
        }
    }
    found
}

#[test]
fn no_import_circle_among_the_runtime_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    sources(&root, &root, &mut files);
    let modules: BTreeSet<Vec<String>> = files.keys().cloned().collect();
    let graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = files
        .iter()
        .map(|(m, text)| (m.clone(), references(m, text, &modules)))
        .collect();
    assert!(
        graph[&vec!["abi".to_string(), "session".to_string()]]
            .contains(&vec!["core".to_string(), "session".to_string()]),
        "the reader sees references (abi::session uses core::session)"
    );
    // Depth-first search for a back edge.
    fn visit(
        m: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        path: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.clone());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.clone());
        for d in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.clone());
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(c) = visit(m, &graph, &mut Vec::new(), &mut done) {
            let names: Vec<String> = c
                .iter()
                .map(|m| {
                    if m.is_empty() {
                        "lib".into()
                    } else {
                        m.join("::")
                    }
                })
                .collect();
            panic!("an import circle: {}", names.join(" -> "));
        }
    }
}
