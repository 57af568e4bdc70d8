//! Commands on dpkg's own state: diversions, triggers, conffile migrations, queries. The
//! image build writes dpkg's database itself ([`crate::rootfs::dpkg`]) from what was
//! installed; these commands only ask it things, act on upgrades, or record a diversion
//! (written by [`super::dpkgstate`]).

use super::coverage::Status;
use super::rule::{Call, Context, Rule};

pub const RULES: &[Rule] = &[
    Rule::named(&["dpkg-divert"]).judge(divert),
    Rule::named(&["dpkg-trigger"]).judge(|_, _| {
        Some(Status::Ignored(
            "trigger: the triggered package's effect comes from its own mechanism".into(),
        ))
    }),
    Rule::named(&["dpkg-maintscript-helper"]).judge(|_, _| {
        Some(Status::Ignored(
            "conffile/symlink migration: only acts on upgrades".into(),
        ))
    }),
    Rule::named(&["dpkg"]).judge(|call, _| {
        call.args()
            .iter()
            .any(|a| {
                matches!(
                    *a,
                    "--compare-versions" | "--print-architecture" | "-s" | "-l" | "-L" | "--status"
                )
            })
            .then(|| Status::Ignored("read-only query".into()))
    }),
    Rule::named(&["dpkg-statoverride"]).judge(|call, _| {
        call.args()
            .contains(&"--list")
            .then(|| Status::Ignored("read-only query".into()))
    }),
];

/// dash's `claim_binsh`: queries, the removal of bash's diversion, and its own.
fn divert(call: &Call<'_>, ctx: &Context<'_>) -> Option<Status> {
    let args = call.args();
    Some(
        if args
            .iter()
            .any(|a| a.starts_with("--list") || *a == "--truename")
        {
            Status::Ignored("read-only query".into())
        } else if args.contains(&"--remove") {
            if (ctx.exists)(super::dpkgstate::DIVERSIONS) {
                Status::NotCovered("removes a diversion from dpkg's database".into())
            } else {
                Status::Ignored(
                    "removes a diversion: a fresh install has none to remove (dash's claim_binsh removes bash's before adding its own)"
                        .into(),
                )
            }
        } else if let Some(mech) = ctx.produced.get(super::dpkgstate::DIVERSIONS) {
            Status::Reproduced(format!("{mech} (/var/lib/dpkg/diversions)"))
        } else {
            Status::NotCovered(
                "records a diversion in dpkg's database (/var/lib/dpkg/diversions): its arguments are not known"
                    .into(),
            )
        },
    )
}
