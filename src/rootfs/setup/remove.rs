//! `rm`, `rmdir`, `mv`: on a fresh install they remove what an earlier command of the
//! scripts made (a marker file the package consumes during configure), or find nothing to
//! remove. Every judgement on a removal is here:
//! - in script order, an `rm` of what an earlier script command made undoes that effect,
//!   and an `rm` of what nothing made is a no-op;
//! - after every script was read, an `rm` in a function body of what a later line of the
//!   same script made (ca-certificates-java's `touch …/fresh`, consumed by the function that
//!   then removes it) undoes it too: the function runs after that line;
//! - what is left is judged from the finished tree.

use super::coverage::Status;
use super::rule::{Call, Context, Pass, Rule, Verdict};
use super::tree::normalize;

pub const RULES: &[Rule] = &[
    Rule::named(&["rm"]).run(run).settle(settle),
    Rule::named(&["rm", "rmdir", "mv"]).judge(judge),
];

/// The paths an `rm` names, normalized.
fn targets(call: &Call<'_>) -> Vec<String> {
    call.operands().into_iter().map(normalize).collect()
}

fn run(pass: &mut Pass<'_>, call: &Call<'_>) -> Verdict {
    if call.cmd.unresolved {
        return Verdict::Later(None);
    }
    let targets = targets(call);
    let root = pass.root;
    let produced = &pass.made.produced;
    let by_script = |p: &String| {
        !root.exists(p)
            && produced
                .get(p)
                .is_some_and(|m| m.ends_with("preinst") || m.ends_with("postinst"))
    };
    // Nothing there at this point of the install (fontconfig's `[ -h … ] && rm` of a link
    // made only later, or by an earlier version).
    let absent = |p: &String| !root.exists(p) && !produced.contains_key(p);
    // (A function body may run later, when more exists: not judged here.)
    if !call.cmd.in_function && !targets.is_empty() && targets.iter().all(absent) {
        return Verdict::Now(Status::Ignored(format!(
            "{} does not exist on a fresh install",
            targets.join(" ")
        )));
    }
    if !targets.is_empty() && targets.iter().all(by_script) {
        pass.made.remove(&targets);
        return Verdict::Now(Status::Reproduced(
            "filesystem command (removes what an earlier command made)".into(),
        ));
    }
    Verdict::Later(None)
}

fn settle(pass: &mut Pass<'_>, call: &Call<'_>) -> Option<Status> {
    if !call.runs() || !call.cmd.in_function || call.cmd.unresolved {
        return None;
    }
    let targets = targets(call);
    let mech = call.mechanism();
    let made_here = |t: &String| !pass.root.exists(t) && pass.made.produced.get(t) == Some(&mech);
    if targets.is_empty() || !targets.iter().all(made_here) {
        return None;
    }
    pass.made.remove(&targets);
    Some(Status::Reproduced(
        "filesystem command (removes what another command of the script made)".into(),
    ))
}

fn judge(call: &Call<'_>, ctx: &Context<'_>) -> Option<Status> {
    let (prog, args, operands) = (call.program(), call.args(), call.operands());
    let temp = |o: &&str| {
        let v = o
            .trim_start_matches('$')
            .trim_start_matches('{')
            .trim_end_matches('}');
        o.starts_with('$') && ctx.temp_vars.contains(v)
    };
    if prog == "rm" && !operands.is_empty() && operands.iter().all(temp) {
        return Some(Status::Ignored(
            "removes the script's own temporary file".into(),
        ));
    }
    let src: Vec<&str> = if prog == "mv" {
        operands
            .split_last()
            .map(|(_, s)| s.to_vec())
            .unwrap_or_default()
    } else {
        operands.clone()
    };
    let recursive = args.iter().any(|a| {
        a.starts_with('-') && !a.starts_with("--") && a.contains(['r', 'R']) || *a == "--recursive"
    });
    Some(
        if !call.cmd.unresolved
            && !src.is_empty()
            && src
                .iter()
                .all(|p| !(ctx.exists)(p) && !ctx.produced.contains_key(*p))
        {
            Status::Ignored("nothing to remove or move on a fresh install".into())
        } else if prog == "rm"
            && !call.cmd.unresolved
            && !recursive
            && !src.is_empty()
            && src.iter().all(|p| (ctx.is_dir)(p))
        {
            // openjdk-8's preinst: `[ -h DOC ] && rm -f DOC` where the package ships DOC
            // as a directory. rm without -r never removes a directory.
            Status::Ignored("rm without -r does not remove a directory: no effect".into())
        } else {
            Status::NotCovered("removes or moves files".into())
        },
    )
}
