//! Commands known to change the image that no mechanism reproduces yet: reported as not
//! covered, saying what they would have written. Teaching setup one of them means a
//! mechanism file with a rule for it, and removing its line here.

use super::coverage::Status;
use super::rule::{Programs, Rule};

pub const RULES: &[Rule] = &[
    Rule::new(Programs::Suffix("/glib-compile-schemas")).judge(|_, _| {
        not_covered("compiles the GSettings schemas into gschemas.compiled: no mechanism")
    }),
    Rule::new(Programs::Suffix("/gio-querymodules"))
        .judge(|_, _| not_covered("writes the GIO module cache (giomodule.cache): no mechanism")),
    // Without `-i`, sed only prints: see [`super::inert`].
    Rule::named(&["sed"]).judge(|call, _| {
        call.args()
            .iter()
            .any(|a| a.starts_with("-i"))
            .then(|| Status::NotCovered("edits a file in place".into()))
    }),
    Rule::named(&["find"]).judge(|call, _| {
        call.args()
            .iter()
            .any(|a| matches!(*a, "-delete" | "-exec" | "-execdir"))
            .then(|| Status::NotCovered("find with actions".into()))
    }),
];

fn not_covered(what: &str) -> Option<Status> {
    Some(Status::NotCovered(what.to_owned()))
}
