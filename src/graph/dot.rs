//! The graph as graphviz DOT text.
//!
//! Written by hand: DOT is a tiny text format, and the only care it needs is quoting labels
//! (done in [`quote`]); the graphviz-writing crates would add a dependency for a few lines.

use std::fmt::Write as _;

use super::{Graph, Image, ImageKind, Layer, LayerState};
use crate::cli::human;

/// The graph in DOT: layers top to bottom (the base first), each image beside its top layer,
/// `from` edges between images. Nodes and edges come in id order, so the same graph gives the
/// same text.
pub fn to_dot(g: &Graph) -> String {
    let mut out = String::from(
        "digraph stevedore {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n",
    );
    for l in &g.layers {
        let (style, fill) = match l.state {
            LayerState::Cached => ("rounded,filled", "#d9ead3"),
            LayerState::ToBuild => ("rounded,dashed", "white"),
            LayerState::Registry => ("rounded,filled", "#cfe2f3"),
        };
        let _ = writeln!(
            out,
            "  {} [shape=box, style=\"{style}\", fillcolor=\"{fill}\", label={}];",
            quote(&l.id),
            quote(&layer_label(l))
        );
    }
    for i in &g.images {
        let (fill, peripheries) = match (i.kind, i.requested) {
            (ImageKind::Registry, _) => ("#9fc5e8", 1),
            (ImageKind::Recipe, true) => ("#ffe599", 2),
            (ImageKind::Recipe, false) => ("#fff2cc", 1),
        };
        let _ = writeln!(
            out,
            "  {} [shape=box3d, style=filled, fillcolor=\"{fill}\", peripheries={peripheries}, label={}];",
            quote(&i.id),
            quote(&image_label(i, g))
        );
    }
    for l in &g.layers {
        if let Some(p) = &l.parent {
            let _ = writeln!(out, "  {} -> {};", quote(p), quote(&l.id));
        }
    }
    for i in &g.images {
        if let Some(top) = i.layers.last() {
            let _ = writeln!(
                out,
                "  {} -> {} [style=dashed, arrowhead=none];",
                quote(top),
                quote(&i.id)
            );
        }
        if let Some(f) = &i.from {
            let _ = writeln!(
                out,
                "  {} -> {} [label=\"from\", style=dotted, color=\"#666666\", constraint=false];",
                quote(f),
                quote(&i.id)
            );
        }
    }
    out.push_str("}\n");
    out
}

fn layer_label(l: &Layer) -> String {
    let blob = match (&l.digest, l.size) {
        (Some(d), Some(size)) => format!("{} · {}", short(d), human(size)),
        _ => "to build".to_string(),
    };
    match l.state {
        LayerState::Cached | LayerState::ToBuild => format!("{}\n{blob}", l.name),
        LayerState::Registry => format!("{} (registry)\n{blob}", l.name),
    }
}

fn image_label(i: &Image, g: &Graph) -> String {
    let mut lines = if i.names.is_empty() {
        vec!["(unnamed image)".to_string()]
    } else {
        i.names.clone()
    };
    if let Some(r) = &i.recipe {
        lines.push(r.clone());
    }
    if let Some(d) = &i.digest {
        lines.push(format!("@{d}"));
    }
    let layers: Vec<&Layer> = i
        .layers
        .iter()
        .filter_map(|id| g.layers.iter().find(|l| &l.id == id))
        .collect();
    let known: u64 = layers.iter().filter_map(|l| l.size).sum();
    let to_build = layers.iter().filter(|l| l.size.is_none()).count();
    let n = layers.len();
    let mut summary = format!("{n} layer{}", if n == 1 { "" } else { "s" });
    if to_build < n {
        let _ = write!(summary, ", {}", human(known));
    }
    if to_build > 0 {
        let _ = write!(summary, ", {to_build} to build");
    }
    lines.push(summary);
    lines.join("\n")
}

/// `sha256:` and the first 12 hex digits.
fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// A DOT double-quoted string: `"` and `\` escaped, line breaks as DOT's centred `\n`, other
/// control characters dropped (a recipe path or layer name can hold any of them).
pub(super) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::ImageKind;

    #[test]
    fn quoting_escapes_what_dot_would_read_as_syntax() {
        assert_eq!(quote("plain"), "\"plain\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(quote("back\\slash"), "\"back\\\\slash\"");
        assert_eq!(quote("two\nlines"), "\"two\\nlines\"");
        assert_eq!(quote("bell\u{7}\r"), "\"bell\"");
        assert_eq!(quote("\\\"}; x -> y"), "\"\\\\\\\"}; x -> y\"");
    }

    fn layer(id: &str, parent: Option<&str>, state: LayerState, size: Option<u64>) -> Layer {
        Layer {
            id: id.into(),
            name: format!("n{id}"),
            recipe: None,
            key: None,
            parent: parent.map(Into::into),
            state,
            digest: size.map(|_| format!("sha256:{}", "ab".repeat(32))),
            size,
        }
    }

    #[test]
    fn one_node_per_layer_and_image_and_the_edges_between() {
        let g = Graph {
            images: vec![Image {
                id: "i1".into(),
                kind: ImageKind::Recipe,
                names: vec!["localhost/app:v\"1".into()],
                recipe: Some("r.toml".into()),
                digest: None,
                requested: true,
                from: Some("r9".into()),
                layers: vec!["l1".into(), "l2".into()],
            }],
            layers: vec![
                layer("l1", None, LayerState::Cached, Some(1500)),
                layer("l2", Some("l1"), LayerState::ToBuild, None),
            ],
        };
        let dot = to_dot(&g);
        assert!(dot.starts_with("digraph stevedore {\n") && dot.ends_with("}\n"));
        assert_eq!(dot.matches("\"l1\" [").count(), 1);
        assert!(dot.contains("\"l1\" -> \"l2\";"), "{dot}");
        assert!(dot.contains("\"l2\" -> \"i1\" [style=dashed"), "{dot}");
        assert!(dot.contains("\"r9\" -> \"i1\" [label=\"from\""), "{dot}");
        assert!(
            dot.contains("label=\"nl1\\nsha256:abababababab · 1.5 KB\""),
            "{dot}"
        );
        assert!(dot.contains("label=\"nl2\\nto build\""), "{dot}");
        assert!(
            dot.contains("label=\"localhost/app:v\\\"1\\nr.toml\\n2 layers, 1.5 KB, 1 to build\""),
            "{dot}"
        );
        assert_eq!(to_dot(&g), dot, "the same graph gives the same text");
    }
}
