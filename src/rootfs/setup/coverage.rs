//! What happened to each command of each maintainer script: reproduced (and by which
//! mechanism), ignored on purpose (and why), or not covered, and the report `plan --scripts`
//! prints. Unknown commands are never dropped: anything no rule recognises is "not covered"
//! (the rules are in [`super`]'s table).

use std::collections::BTreeSet;
use std::fmt::Write as _;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Status {
    /// Reproduced by the named mechanism.
    Reproduced(String),
    /// Deliberately not reproduced, with the reason.
    Ignored(String),
    /// Not reproduced, with what is missing.
    NotCovered(String),
}

impl Status {
    pub fn label(&self) -> &'static str {
        match self {
            Status::Reproduced(_) => "reproduced",
            Status::Ignored(_) => "ignored",
            Status::NotCovered(_) => "NOT COVERED",
        }
    }
    pub fn detail(&self) -> &str {
        match self {
            Status::Reproduced(s) | Status::Ignored(s) | Status::NotCovered(s) => s,
        }
    }
}

/// One command of one script.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandReport {
    pub package: String,
    /// `preinst`, `postinst`, `prerm`, `postrm`.
    pub script: String,
    pub line: usize,
    /// The command after substitution (the words joined), as the report shows it.
    pub command: String,
    pub status: Status,
}

/// Counts for `build`'s one-line summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub packages: usize,
    pub commands: usize,
    pub reproduced: usize,
    pub ignored: usize,
    pub not_covered: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "maintainer scripts of {} packages: {} commands, {} reproduced, {} ignored on purpose, {} not covered",
            self.packages, self.commands, self.reproduced, self.ignored, self.not_covered
        )
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Coverage {
    /// By package, script, line.
    pub commands: Vec<CommandReport>,
    /// Data-file lines not applied (sysusers.d, tmpfiles.d, alternatives whose path is missing).
    pub data_notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{count} maintainer-script commands are not covered (strict):\n{list}")]
pub struct StrictError {
    pub count: usize,
    pub list: String,
}

impl Coverage {
    pub fn summary(&self) -> Summary {
        let packages: BTreeSet<&str> = self.commands.iter().map(|c| c.package.as_str()).collect();
        let mut s = Summary {
            packages: packages.len(),
            commands: self.commands.len(),
            ..Summary::default()
        };
        for c in &self.commands {
            match c.status {
                Status::Reproduced(_) => s.reproduced += 1,
                Status::Ignored(_) => s.ignored += 1,
                Status::NotCovered(_) => s.not_covered += 1,
            }
        }
        s
    }

    pub fn not_covered(&self) -> impl Iterator<Item = &CommandReport> {
        self.commands
            .iter()
            .filter(|c| matches!(c.status, Status::NotCovered(_)))
    }

    /// `--strict`: fails when any command is not covered.
    pub fn strict(&self) -> Result<(), StrictError> {
        let list: Vec<String> = self.not_covered().map(line).collect();
        if list.is_empty() {
            Ok(())
        } else {
            Err(StrictError {
                count: list.len(),
                list: list.join("\n"),
            })
        }
    }

    /// The full report for `plan --scripts`: per package and script, one line per command.
    pub fn report(&self) -> String {
        let mut out = String::new();
        let mut last = (String::new(), String::new());
        for c in &self.commands {
            if (c.package.as_str(), c.script.as_str()) != (last.0.as_str(), last.1.as_str()) {
                let _ = writeln!(out, "{} {}:", c.package, c.script);
                last = (c.package.clone(), c.script.clone());
            }
            let _ = writeln!(
                out,
                "  {:>4}  {:<11} {}  ({})",
                c.line,
                c.status.label(),
                c.command,
                c.status.detail()
            );
        }
        for n in &self.data_notes {
            let _ = writeln!(out, "note: {n}");
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }
}

fn line(c: &CommandReport) -> String {
    format!(
        "{} {}:{}: {} ({})",
        c.package,
        c.script,
        c.line,
        c.command,
        c.status.detail()
    )
}
