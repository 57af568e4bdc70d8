//! A deliberately small reading of maintainer scripts: enough to find each command a script
//! runs, with its arguments after substituting the variables the script sets to constants
//! (and `for` loop variables over constant lists, as tomcat10's and openjdk's postinst use).
//!
//! This is not a shell. Conditions are not evaluated, functions are not called, command
//! substitutions are not run. What cannot be resolved is kept visible (`unresolved`) so that
//! callers report it as not covered instead of guessing.

use std::collections::BTreeMap;

/// One simple command found in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// 1-based line where the command starts.
    pub line: usize,
    /// The command as written (one logical line segment, continuations joined).
    pub text: String,
    /// Words after quote removal and variable substitution; `[0]` is the program.
    pub words: Vec<String>,
    /// Targets of `>`/`>>` redirections (`cat > /etc/passwd <<EOF`).
    pub redirects: Vec<String>,
    /// A word still holds `$…` or a command substitution that could not be resolved.
    pub unresolved: bool,
    /// Inside a shell function body.
    pub in_function: bool,
    /// The (outermost) function whose body holds the command.
    pub function: Option<String>,
    /// The text of the command substitutions in its words (`eval $(apt-config shell …)`).
    pub substitutions: Vec<String>,
    /// In a branch that does not run on a fresh install (`if [ -n "$2" ]`, `case "$1" in
    /// abort-upgrade)`): the condition that rules it out.
    pub dead: Option<String>,
}

impl Command {
    /// A stand-in for something that is not a parsed command (a whole binary script).
    pub fn opaque(text: String) -> Command {
        Command {
            line: 1,
            text,
            words: Vec::new(),
            redirects: Vec::new(),
            unresolved: true,
            in_function: false,
            function: None,
            substitutions: Vec::new(),
            dead: None,
        }
    }

    pub fn program(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
}

/// Shell syntax words that start or end a compound command; they are not programs.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "esac", "!", "{", "}",
    "in", "time",
];

/// Splits a script into simple commands, expanding constant variables and constant `for`
/// lists (one command per loop value). Positional parameters stay unknown.
pub fn commands(script: &str) -> Vec<Command> {
    commands_with_args(script, None)
}

/// The arguments dpkg passes on a fresh install: `preinst install`, `postinst configure`
/// (with an empty old version, `$2`). `None` for scripts that do not run on install.
pub fn install_args(script: &str) -> Option<&'static [&'static str]> {
    match script {
        "preinst" => Some(&["install", ""]),
        "postinst" => Some(&["configure", ""]),
        _ => None,
    }
}

/// [`commands`] with known positional parameters: `if`/`elif`/`case` conditions that then
/// have a definite value (`[ "$1" = configure ]`, `[ -z "$2" ]`, `dpkg --compare-versions
/// "$2" lt-nl 1.0`) mark the commands of branches not taken as [`Command::dead`]. Other
/// conditions (file tests, command results) count as possibly true.
pub fn commands_with_args(script: &str, args: Option<&[&str]>) -> Vec<Command> {
    let mut p = Parser::default();
    if let Some(args) = args {
        for (i, a) in args.iter().enumerate() {
            p.vars.insert((i + 1).to_string(), Some((*a).to_owned()));
        }
        p.vars.insert("#".into(), Some(args.len().to_string()));
    }
    // dpkg sets DPKG_ROOT to the empty string unless it installs into another root.
    p.vars.insert("DPKG_ROOT".into(), Some(String::new()));
    let lines: Vec<&str> = script.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let mut logical = lines[i].to_owned();
        // `\` continuations join the next line; so does a quote left open at the end of the
        // line (libpam-runtime's `sed -n -e'…` spans three lines).
        loop {
            if logical.ends_with('\\') {
                logical.pop();
                if i + 1 >= lines.len() {
                    break;
                }
                i += 1;
                logical.push(' ');
                logical.push_str(lines[i].trim_start());
            } else if open_quote(&logical) && i + 1 < lines.len() && i - start < MAX_QUOTED_LINES {
                i += 1;
                logical.push('\n');
                logical.push_str(lines[i]);
            } else {
                break;
            }
        }
        i += 1;
        let heredoc = heredoc_delimiter(&logical);
        p.logical_line(&logical, start + 1);
        if let Some(delim) = heredoc {
            while i < lines.len() && lines[i].trim() != delim {
                i += 1;
            }
            i += 1;
        }
    }
    let mut out = p.out;
    if args.is_some() {
        dead_functions(&mut out);
    }
    out
}

/// A function is only as live as the places that name it: when every command outside its
/// body that mentions it (a call, `trap f EXIT`, `$(f)`) is dead, its body is dead too
/// (adduser's `create_adduser_conf`, called under `upgrade)` only); a function nothing
/// mentions never runs. Repeated until stable, for functions called from functions.
fn dead_functions(cmds: &mut [Command]) {
    loop {
        let names: std::collections::BTreeSet<String> = cmds
            .iter()
            .filter(|c| c.dead.is_none())
            .filter_map(|c| c.function.clone())
            .collect();
        let mut changed = false;
        for f in names {
            let mentions: Vec<&Command> = cmds
                .iter()
                .filter(|c| c.function.as_deref() != Some(f.as_str()))
                .filter(|c| mentions_word(&c.text, &f))
                .collect();
            if mentions.iter().any(|c| c.dead.is_none()) {
                continue;
            }
            let why = match mentions.first() {
                Some(c) => format!(
                    "function {f} is only called where it does not run ({})",
                    c.dead.clone().unwrap_or_default()
                ),
                None => format!("function {f} is never called"),
            };
            for c in cmds.iter_mut() {
                if c.function.as_deref() == Some(f.as_str()) && c.dead.is_none() {
                    c.dead = Some(why.clone());
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

/// `word` appears in `text` as a whole word (not as part of a longer name).
fn mentions_word(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(word)
        .any(|(i, _)| !text[..i].ends_with(is_name) && !text[i + word.len()..].starts_with(is_name))
}

/// Variables a script sets to a temporary file (`tmp=$(mktemp)`).
pub fn temp_vars(script: &str) -> std::collections::BTreeSet<String> {
    script
        .lines()
        .filter_map(|l| {
            let (name, value) = l.trim().split_once('=')?;
            // `$(mktemp …)`, `` `mktemp …` ``, and debianutils' older `tempfile`.
            let value = value.trim_start_matches('"');
            let temp = ["$(mktemp", "`mktemp", "$(tempfile", "`tempfile"]
                .iter()
                .any(|p| value.starts_with(p));
            (temp && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .then(|| name.to_owned())
        })
        .collect()
}

/// Names of the shell functions a script defines (`name() {`).
pub fn functions(script: &str) -> std::collections::BTreeSet<String> {
    script
        .lines()
        .filter_map(|l| {
            let (name, _) = l.trim().split_once("()")?;
            let name = name.trim();
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-'))
            .then(|| name.to_owned())
        })
        .collect()
}

/// Whether the text before a `)` is a `case` pattern: `|`-separated words, none holding
/// unquoted blanks, `;` or `(` (ca-certificates' `(echo … | tr ',' '\n'; …)` subshell is not).
fn is_case_pattern(text: &str) -> bool {
    text.split('|').all(|alt| {
        let alt = alt.trim();
        let (mut sq, mut dq) = (false, false);
        !alt.is_empty()
            && alt.chars().all(|c| {
                match c {
                    '\'' if !dq => sq = !sq,
                    '"' if !sq => dq = !dq,
                    _ => {}
                }
                sq || dq || !(c.is_whitespace() || matches!(c, ';' | '(' | '&'))
            })
    })
}

/// The output of `seq [FIRST [INCREMENT]] LAST` with literal integers, one value per word.
fn seq_output(text: &str) -> Option<Vec<String>> {
    let words = lex(text);
    let (prog, args) = words.split_first()?;
    if prog.text != "seq" || prog.quoted {
        return None;
    }
    let n: Vec<i64> = args
        .iter()
        .map(|w| w.text.parse().ok())
        .collect::<Option<_>>()?;
    let (first, step, last) = match n.as_slice() {
        [l] => (1, 1, *l),
        [f, l] => (*f, 1, *l),
        [f, s, l] => (*f, *s, *l),
        _ => return None,
    };
    if step == 0 || (last - first) / step > 10_000 {
        return None;
    }
    let mut out = Vec::new();
    let mut i = first;
    while (step > 0 && i <= last) || (step < 0 && i >= last) {
        out.push(i.to_string());
        i += step;
    }
    Some(out)
}

/// How many lines a quoted word may span before the quote is taken as unbalanced.
const MAX_QUOTED_LINES: usize = 40;

/// Whether `line` ends inside a single- or double-quoted string (comments and escapes
/// taken into account).
fn open_quote(line: &str) -> bool {
    let (mut sq, mut dq) = (false, false);
    let mut prev_space = true;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' if !dq => sq = !sq,
            '"' if !sq => dq = !dq,
            '\\' if !sq => {
                chars.next();
            }
            '#' if !sq && !dq && prev_space => return false,
            _ => {}
        }
        prev_space = c.is_whitespace() || (!sq && !dq && matches!(c, ';' | '(' | '&' | '|'));
    }
    sq || dq
}

/// Programs that only print, test or leave: a function made of them has no effect on the
/// filesystem.
const MESSAGE_ONLY: &[&str] = &[
    "echo", "printf", ":", "[", "test", "true", "false", "exit", "return", "local", "shift",
];

/// The functions of a helper file (`dpkg-error.sh`) whose every command only prints a
/// message, tests something, sets variables or exits the script, and writes no file.
pub fn message_only_functions(script: &str) -> std::collections::BTreeSet<String> {
    let cmds = commands(script);
    functions(script)
        .into_iter()
        .filter(|name| {
            cmds.iter()
                .filter(|c| c.function.as_deref() == Some(name.as_str()))
                .all(|c| MESSAGE_ONLY.contains(&c.program()) && c.redirects.is_empty())
        })
        .collect()
}

fn heredoc_delimiter(line: &str) -> Option<String> {
    let pos = find_unquoted(line, "<<")?;
    let rest = line[pos + 2..].trim_start_matches('-').trim_start();
    let word: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ';')
        .filter(|c| *c != '\'' && *c != '"')
        .collect();
    (!word.is_empty()).then_some(word)
}

fn find_unquoted(line: &str, needle: &str) -> Option<usize> {
    let (mut sq, mut dq) = (false, false);
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' if !dq => sq = !sq,
            b'"' if !sq => dq = !dq,
            b'#' if !sq && !dq && (i == 0 || bytes[i - 1].is_ascii_whitespace()) => return None,
            _ if !sq && !dq && line[i..].starts_with(needle) => return Some(i),
            _ => {}
        }
    }
    None
}

#[derive(Default)]
struct Parser {
    out: Vec<Command>,
    /// Variables with a known value: the raw text, expanded at use (so `slave1="… $i …"`
    /// takes the loop value where it is used). `None`: assigned something unknowable.
    vars: BTreeMap<String, Option<String>>,
    /// Open `for` loops: (variable, values or None when the list is unknowable); `while` and
    /// `until` push a loop without variable so `done` pops the right one.
    loops: Vec<Option<(String, Option<Vec<String>>)>>,
    in_case: usize,
    function_depth: usize,
    /// A function name was read (`name()`), its body opens on the next line.
    fn_body_pending: bool,
    /// Function bodies that are subshells `( … )`: the function depth each one opened at.
    fn_paren: Vec<usize>,
    /// Name of the outermost function being read.
    current_fn: Option<String>,
    /// Output of the current segment's command substitutions, where it is constant
    /// (`$(seq 6 -1 0)`), in order.
    sub_outputs: Vec<Option<Vec<String>>>,
    /// The texts of the current segment's command substitutions.
    segment_subs: Vec<String>,
    /// Open `if`/`case` branches, innermost last.
    frames: Vec<Frame>,
    /// While reading an `if`/`elif` condition: its value so far, its text, `elif`.
    condition: Option<(Option<bool>, String, bool)>,
    /// The pending condition's left fold: value so far, the operator after it, the value
    /// of the operand being read.
    cond_fold: (Option<bool>, String, Option<bool>),
}

/// One open `if` or `case`.
#[derive(Debug, Clone)]
struct Frame {
    is_case: bool,
    /// The current branch runs: Some(false) when ruled out.
    live: Option<bool>,
    /// Some branch so far is certainly taken (later `elif`/`else`/patterns are dead).
    taken: bool,
    /// Text of the deciding condition, for the report.
    why: String,
    /// `case` word, when known.
    word: Option<String>,
}

fn and3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), x) | (x, Some(true)) => x,
        _ => None,
    }
}

/// `acc OP last` for the condition fold; no operator yet: `last`.
fn combine(acc: Option<bool>, op: &str, last: Option<bool>) -> Option<bool> {
    match op {
        "&&" => and3(acc, last),
        "||" => or3(acc, last),
        _ => last,
    }
}

fn or3(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), x) | (x, Some(false)) => x,
        _ => None,
    }
}

/// `test`/`[`/`dpkg --compare-versions`/`true`/`false` on resolved words; `None` otherwise.
fn eval_condition(words: &[String], unresolved: bool) -> Option<bool> {
    if unresolved {
        return None;
    }
    let (neg, words) = match words.first().map(String::as_str) {
        Some("!") => (true, &words[1..]),
        _ => (false, words),
    };
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let v = match w.as_slice() {
        ["true"] | [":"] => Some(true),
        ["false"] => Some(false),
        ["[", rest @ .., "]"] | ["test", rest @ ..] => eval_test(rest),
        ["dpkg", "--compare-versions", rest @ ..] => {
            let rest: Vec<&str> = rest.iter().copied().filter(|a| *a != "--").collect();
            match rest.as_slice() {
                [a, op, b] => compare_versions(a, op, b),
                _ => None,
            }
        }
        _ => None,
    };
    v.map(|b| b != neg)
}

fn eval_test(args: &[&str]) -> Option<bool> {
    // `-o` binds looser than `-a`, both looser than `!` (debian-archive-keyring's
    // `[ "$1" = 'configure' -a -n "$2" ]`). A unary test's operand is never split on.
    if let Some(i) = binary_connective(args, "-o") {
        return or3(eval_test(&args[..i]), eval_test(&args[i + 1..]));
    }
    if let Some(i) = binary_connective(args, "-a") {
        return and3(eval_test(&args[..i]), eval_test(&args[i + 1..]));
    }
    match args {
        ["!", rest @ ..] => eval_test(rest).map(|b| !b),
        [] => Some(false),
        [s] => Some(!s.is_empty()),
        ["-z", s] => Some(s.is_empty()),
        ["-n", s] => Some(!s.is_empty()),
        [a, "=" | "==", b] => Some(a == b),
        [a, "!=", b] => Some(a != b),
        _ => None,
    }
}

/// Position of `-a`/`-o` used as a connective: not the operand of a unary or binary test.
fn binary_connective(args: &[&str], conn: &str) -> Option<usize> {
    let mut i = 0;
    while i < args.len() {
        if args[i] == "!" {
            i += 1;
            continue;
        }
        // One primary: `-x FILE`, `A op B` or a single word.
        let len = if args.get(i + 1).is_some_and(|op| BINARY_OPS.contains(op)) {
            3
        } else if args[i].starts_with('-') && args[i].len() == 2 && i + 1 < args.len() {
            2
        } else {
            1
        };
        i += len;
        if args.get(i) == Some(&conn) {
            return Some(i);
        }
    }
    None
}

const BINARY_OPS: &[&str] = &[
    "=", "==", "!=", "-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-nt", "-ot", "-ef",
];

/// dpkg's operators when one side is the empty "old version" of a fresh install: plain
/// operators take it as older than everything, `-nl` ones as newer.
fn compare_versions(a: &str, op: &str, b: &str) -> Option<bool> {
    use std::cmp::Ordering::*;
    let nl = op.ends_with("-nl");
    let ord = match (a.is_empty(), b.is_empty()) {
        (true, true) => Equal,
        (true, false) => {
            if nl {
                Greater
            } else {
                Less
            }
        }
        (false, true) => {
            if nl {
                Less
            } else {
                Greater
            }
        }
        (false, false) => crate::apt::version::compare(a, b),
    };
    Some(match op.trim_end_matches("-nl") {
        "lt" | "<<" => ord == Less,
        "le" | "<=" => ord != Greater,
        "gt" | ">>" => ord == Greater,
        "ge" | ">=" => ord != Less,
        "eq" | "=" => ord == Equal,
        "ne" => ord != Equal,
        _ => return None,
    })
}

/// `case` patterns: `|` alternatives with `*` and `?` globs.
fn case_matches(pattern: &str, word: &str) -> bool {
    pattern
        .split('|')
        .any(|p| glob(p.trim().trim_matches('"').as_bytes(), word.as_bytes()))
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

impl Parser {
    /// Why the current position does not run, if it certainly does not.
    fn dead(&self) -> Option<String> {
        self.frames
            .iter()
            .find(|f| f.live == Some(false))
            .map(|f| f.why.clone())
    }

    /// A condition segment: combine it into the pending condition.
    fn condition_part(&mut self, sep: &str, value: Option<bool>, text: &str) {
        if let Some((v, t, _)) = &mut self.condition {
            // `&&` and `||` fold left with equal precedence; a pipeline's status is its last
            // command's (`dpkg-divert --list … | grep -q …`), so `|` replaces the operand.
            let (acc, op, last) = &mut self.cond_fold;
            match sep {
                "|" => *last = value,
                "&&" | "||" => {
                    *acc = combine(*acc, op, *last);
                    *op = sep.to_owned();
                    *last = value;
                }
                _ => {
                    *acc = None;
                    op.clear();
                    *last = value;
                }
            }
            *v = combine(*acc, op, *last);
            if !t.is_empty() {
                t.push_str(&format!(" {sep} "));
            }
            t.push_str(text.trim());
        }
    }

    /// `then`: the pending condition decides the branch.
    fn then(&mut self) {
        let Some((value, text, elif)) = self.condition.take() else {
            return;
        };
        if elif {
            if let Some(f) = self.frames.last_mut() {
                if f.taken {
                    f.live = Some(false);
                    f.why = format!("an earlier branch is taken ({})", f.why);
                } else {
                    f.live = value;
                    f.why = format!("elif {text}");
                    f.taken = value == Some(true);
                }
            }
        } else {
            self.frames.push(Frame {
                is_case: false,
                live: value,
                taken: value == Some(true),
                why: format!("if {text}"),
                word: None,
            });
        }
    }
}

impl Parser {
    fn logical_line(&mut self, line: &str, lineno: usize) {
        let mut line = line.trim().to_owned();
        if line.starts_with('#') || line.is_empty() {
            return;
        }
        // A first pattern on the `case` line (openjdk-8: `case amd64 in i386|sparc)`): the
        // `case … in` part first, then the rest as a line of its own.
        if line.starts_with("case ")
            && let Some(pos) = find_unquoted(&line, " in ")
            && !line[pos + 4..].trim().is_empty()
        {
            let rest = line[pos + 4..].trim().to_owned();
            self.logical_line(&line[..pos + 3], lineno);
            self.logical_line(&rest, lineno);
            return;
        }
        // `case` patterns (`configure)`, `abort-upgrade|abort-remove)`, `!*)`) are not commands.
        if self.in_case > 0
            && let Some(close) = find_unquoted(&line, ")")
        {
            // POSIX allows an opening parenthesis: debianutils writes `(configure)`.
            let before = line[..close].trim();
            let before = before.strip_prefix('(').unwrap_or(before);
            if is_case_pattern(before) && !before.starts_with("esac") {
                let pattern = before.trim().to_owned();
                if let Some(f) = self.frames.iter_mut().rev().find(|f| f.is_case) {
                    let m = f.word.as_deref().map(|w| case_matches(&pattern, w));
                    f.live = match m {
                        _ if f.taken => Some(false),
                        Some(true) => Some(true),
                        Some(false) => Some(false),
                        None => None,
                    };
                    f.taken |= m == Some(true);
                    f.why = format!("case {} in {pattern})", f.word.clone().unwrap_or_default());
                }
                line = line[close + 1..].to_owned();
            }
        }
        // The body of a function defined on the previous line: `{` or a subshell `(`.
        if self.fn_body_pending {
            self.fn_body_pending = false;
            if let Some(rest) = line.strip_prefix('(') {
                self.fn_paren.push(self.function_depth);
                line = rest.trim().to_owned();
            } else {
                line = line.trim_start_matches('{').trim().to_owned();
            }
            if line.is_empty() {
                return;
            }
        }
        // The end of a subshell function body (dpkg's `fixup_misplaced_alternatives() ( … )`).
        if line == ")" && self.fn_paren.last() == Some(&self.function_depth) {
            self.fn_paren.pop();
            self.function_depth = self.function_depth.saturating_sub(1);
            if self.function_depth == 0 {
                self.current_fn = None;
            }
            return;
        }
        // Function definitions: `name() {`, `name() (`, `name ()` with the body below.
        if let Some(pos) = line.find("()") {
            let name = line[..pos].trim();
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                if self.function_depth == 0 {
                    self.current_fn = Some(name.to_owned());
                }
                self.function_depth += 1;
                let rest = line[pos + 2..].trim();
                if rest.is_empty() {
                    self.fn_body_pending = true;
                    return;
                }
                if let Some(body) = rest.strip_prefix('(') {
                    self.fn_paren.push(self.function_depth);
                    line = body.trim().to_owned();
                } else {
                    line = rest.trim_start_matches('{').to_owned();
                }
            }
        }
        for (segment, subs, sep) in split_segments(&line) {
            self.sub_outputs.clear();
            self.segment_subs = subs.iter().map(|s| s.trim().to_owned()).collect();
            for sub in subs {
                self.sub_outputs.push(seq_output(&sub));
                self.simple(&sub, lineno, true, "");
            }
            self.simple(&segment, lineno, false, &sep);
        }
    }

    fn simple(&mut self, text: &str, lineno: usize, substitution: bool, sep: &str) {
        let raw = lex(text);
        let (raw, redirects_raw) = strip_redirects(raw);
        let mut words: Vec<RawWord> = raw;
        let mut negate = false;
        // Leading keywords are syntax, not programs.
        while let Some(w) = words.first() {
            let lit = w.text.as_str();
            if !w.quoted && KEYWORDS.contains(&lit) {
                match lit {
                    "if" => {
                        self.condition = Some((None, String::new(), false));
                        self.cond_fold = (None, String::new(), None);
                    }
                    "elif" => {
                        self.condition = Some((None, String::new(), true));
                        self.cond_fold = (None, String::new(), None);
                    }
                    "then" => self.then(),
                    "else" => {
                        if let Some(f) = self.frames.last_mut() {
                            f.live = if f.taken {
                                Some(false)
                            } else {
                                f.live.map(|l| !l)
                            };
                            f.why = format!("else of {}", f.why);
                        }
                    }
                    "fi" => {
                        self.frames.pop();
                    }
                    "done" => {
                        self.loops.pop();
                    }
                    "esac" => {
                        self.in_case = self.in_case.saturating_sub(1);
                        if self.frames.last().is_some_and(|f| f.is_case) {
                            self.frames.pop();
                        }
                    }
                    "}" if self.function_depth > 0 => {
                        self.function_depth -= 1;
                        if self.function_depth == 0 {
                            self.current_fn = None;
                        }
                    }
                    "while" | "until" => self.loops.push(None),
                    "!" => negate = !negate,
                    _ => {}
                }
                words.remove(0);
            } else {
                break;
            }
        }
        let Some(first) = words.first() else { return };
        if !first.quoted {
            match first.text.as_str() {
                "case" => {
                    self.in_case += 1;
                    let word = words
                        .get(1)
                        .and_then(|w| self.expand(&w.text, &BTreeMap::new()));
                    self.frames.push(Frame {
                        is_case: true,
                        live: None,
                        taken: false,
                        why: String::new(),
                        word,
                    });
                    return;
                }
                "for" => {
                    let var = words.get(1).map(|w| w.text.clone()).unwrap_or_default();
                    let values = if words.get(2).is_some_and(|w| w.text == "in") {
                        let mut vals = Some(Vec::new());
                        let mut outputs = self.sub_outputs.iter();
                        for w in &words[3..] {
                            // `for i in $(seq 6 -1 0)` (ucf's preinst): a constant list.
                            if !w.quoted && w.text == "$(…)" {
                                match (outputs.next().cloned().flatten(), vals.as_mut()) {
                                    (Some(out), Some(v)) => v.extend(out),
                                    _ => vals = None,
                                }
                                continue;
                            }
                            // A glob (`for file in *`) lists files at run time: unknowable.
                            if !w.quoted && w.text.contains(['*', '?', '[']) {
                                vals = None;
                                break;
                            }
                            match self.expand(&w.text, &BTreeMap::new()) {
                                Some(v) if w.quoted => vals.as_mut().map(|x| x.push(v)),
                                Some(v) => vals
                                    .as_mut()
                                    .map(|x| x.extend(v.split_whitespace().map(str::to_owned))),
                                None => {
                                    vals = None;
                                    None
                                }
                            };
                        }
                        vals
                    } else {
                        None
                    };
                    self.loops.push(Some((var, values)));
                    return;
                }
                _ => {}
            }
        }
        // Assignments: `VAR=value` alone sets a variable; before a program they are env.
        let mut assigned = false;
        while let Some(w) = words.first() {
            let Some((name, value)) = assignment(w) else {
                break;
            };
            if words.len() == 1 && !substitution && self.dead().is_none() {
                let computed = value.contains("$(") || value.contains('`');
                // Re-assigning a known variable in a branch that may or may not run: its
                // value is now unknowable.
                let conditional =
                    self.frames.iter().any(|f| f.live.is_none()) && self.vars.contains_key(&name);
                let value = (!computed && !conditional).then_some(value);
                self.vars.insert(name, value);
                assigned = true;
            }
            words.remove(0);
        }
        if words.is_empty() {
            if !assigned {
                return;
            }
            return;
        }
        // `local NAME=value` inside functions (usr-is-merged's `local arch_directories="…"`
        // feeds a `for`): a variable like any other here; `local NAME` makes it unknown.
        if words[0].text == "local" && !words[0].quoted && !substitution && self.dead().is_none() {
            for w in &words[1..] {
                match assignment(w) {
                    Some((name, value)) => {
                        let computed = value.contains("$(") || value.contains('`');
                        self.vars.insert(name, (!computed).then_some(value));
                    }
                    None => {
                        self.vars.insert(w.text.clone(), None);
                    }
                }
            }
        }
        // Builtins that change variables.
        if words[0].text == "unset" {
            for w in &words[1..] {
                self.vars.remove(&w.text);
            }
        }
        // One command per combination of the loop values it uses.
        let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
        let mut unknown_loop = false;
        for (var, values) in self.loops.iter().flatten() {
            let used = words.iter().any(|w| uses_var(&w.text, var))
                || words.iter().any(|w| self.uses_var_indirect(&w.text, var));
            if !used {
                continue;
            }
            match values {
                Some(vals) => {
                    combos = combos
                        .iter()
                        .flat_map(|c| {
                            vals.iter().map(move |v| {
                                let mut c = c.clone();
                                c.insert(var.clone(), v.clone());
                                c
                            })
                        })
                        .collect()
                }
                None => unknown_loop = true,
            }
        }
        for combo in combos {
            let mut unresolved = unknown_loop;
            let mut out_words = Vec::new();
            for w in &words {
                match self.expand(&w.text, &combo) {
                    Some(v) if w.quoted || !w.had_var => out_words.push(v),
                    Some(v) => out_words.extend(v.split_whitespace().map(str::to_owned)),
                    None => {
                        unresolved = true;
                        // A program held in a variable (libpam0g's `idl="invoke-rc.d
                        // ${service}"; $idl stop`): its value as written, still unresolved.
                        match self.raw_value(&w.text).filter(|_| out_words.is_empty()) {
                            Some(raw) => out_words.extend(lex(raw).into_iter().map(|r| r.text)),
                            None => out_words.push(w.text.clone()),
                        }
                    }
                }
            }
            let redirects = redirects_raw
                .iter()
                .map(|r| {
                    self.expand(r, &combo).unwrap_or_else(|| {
                        unresolved = true;
                        r.clone()
                    })
                })
                .collect();
            let mut dead = self.dead();
            if let Some((value, text, _)) = &self.condition
                && dead.is_none()
                && ((sep == "&&" && *value == Some(false)) || (sep == "||" && *value == Some(true)))
            {
                dead = Some(format!("short-circuited by `{text}`"));
            }
            if self.condition.is_some() && !substitution {
                let value = eval_condition(&out_words, unresolved).map(|v| v != negate);
                self.condition_part(sep, value, &out_words.join(" "));
            }
            self.out.push(Command {
                line: lineno,
                text: text.trim().to_owned(),
                words: out_words,
                redirects,
                unresolved,
                in_function: self.function_depth > 0,
                function: self.current_fn.clone().filter(|_| self.function_depth > 0),
                substitutions: if substitution {
                    Vec::new()
                } else {
                    self.segment_subs.clone()
                },
                dead,
            });
        }
    }

    /// The assigned text of `$NAME`/`${NAME}` when `text` is exactly that reference.
    fn raw_value(&self, text: &str) -> Option<&str> {
        let name = text.strip_prefix('$')?;
        let name = name
            .strip_prefix('{')
            .and_then(|n| n.strip_suffix('}'))
            .unwrap_or(name);
        self.vars.get(name)?.as_deref()
    }

    fn uses_var_indirect(&self, text: &str, var: &str) -> bool {
        self.vars.iter().any(|(name, value)| {
            uses_var(text, name) && value.as_deref().is_some_and(|v| uses_var(v, var))
        })
    }

    /// Expands `$NAME`/`${NAME}` from known variables and `loop` values. `None` when
    /// something is unknowable (`$1`, an unknown variable, a command substitution).
    fn expand(&self, text: &str, loop_vals: &BTreeMap<String, String>) -> Option<String> {
        self.expand_depth(text, loop_vals, 0)
    }

    fn expand_depth(
        &self,
        text: &str,
        loop_vals: &BTreeMap<String, String>,
        depth: usize,
    ) -> Option<String> {
        if depth > 8 {
            return None;
        }
        if text.contains("$(") || text.contains('`') {
            return None;
        }
        let mut out = String::new();
        let mut rest = text;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let (name, len) = if let Some(inner) = after.strip_prefix('{') {
                let end = inner.find('}')?;
                (&inner[..end], end + 2)
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            // Inside a function body, `$1`.. are the function's arguments, not the script's.
            if self.function_depth > 0 && name.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            if let Some(v) = loop_vals.get(name) {
                out.push_str(v);
            } else {
                let raw = self.vars.get(name)?.as_deref()?;
                out.push_str(&self.expand_depth(raw, loop_vals, depth + 1)?);
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        Some(out)
    }
}

fn uses_var(text: &str, var: &str) -> bool {
    text.contains(&format!("${{{var}}}"))
        || text.match_indices(&format!("${var}")).any(|(i, m)| {
            !text[i + m.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// A word before substitution, with quotes removed but `$` kept.
#[derive(Debug, Clone)]
struct RawWord {
    text: String,
    /// Any part was quoted: no field splitting after substitution.
    quoted: bool,
    /// Contains an unquoted `$` (field splitting applies).
    had_var: bool,
}

fn assignment(w: &RawWord) -> Option<(String, String)> {
    let (name, value) = w.text.split_once('=')?;
    (!name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit()))
    .then(|| (name.to_owned(), value.to_owned()))
}

fn lex(text: &str) -> Vec<RawWord> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut had_var, mut in_word) = (false, false, false);
    let mut chars = text.chars().peekable();
    let (mut sq, mut dq) = (false, false);
    while let Some(c) = chars.next() {
        match c {
            '\'' if !dq => {
                sq = !sq;
                quoted = true;
                in_word = true;
            }
            '"' if !sq => {
                dq = !dq;
                quoted = true;
                in_word = true;
            }
            '\\' if !sq => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            c if c.is_whitespace() && !sq && !dq => {
                if in_word {
                    words.push(RawWord {
                        text: std::mem::take(&mut cur),
                        quoted,
                        had_var,
                    });
                }
                (quoted, had_var, in_word) = (false, false, false);
            }
            '#' if !sq && !dq && !in_word => break,
            c => {
                if c == '$' && !sq && !dq {
                    had_var = true;
                }
                if c == '$' && sq {
                    // single-quoted `$` is literal; mark so expansion leaves it alone
                    cur.push('\u{0}');
                    continue;
                }
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(RawWord {
            text: cur,
            quoted,
            had_var,
        });
    }
    for w in &mut words {
        if w.text.contains('\u{0}') {
            w.text = w.text.replace('\u{0}', "\\$");
        }
    }
    words
}

/// Removes redirections (`>/dev/null`, `2>&1`, `> file`, `<<EOF`, `< in`) and returns the
/// targets of output redirections.
fn strip_redirects(words: Vec<RawWord>) -> (Vec<RawWord>, Vec<String>) {
    let mut out = Vec::new();
    let mut targets = Vec::new();
    let mut it = words.into_iter().peekable();
    while let Some(w) = it.next() {
        if w.quoted {
            out.push(w);
            continue;
        }
        let t = w.text.trim_start_matches(|c: char| c.is_ascii_digit());
        let (op, rest) = if let Some(r) = t.strip_prefix("<<") {
            ("<<", r)
        } else if let Some(r) = t.strip_prefix(">>") {
            (">", r)
        } else if let Some(r) = t.strip_prefix('>') {
            (">", r)
        } else if let Some(r) = t.strip_prefix('<') {
            ("<", r)
        } else {
            out.push(w);
            continue;
        };
        let rest = rest.trim_start_matches('-').trim_start_matches('&');
        let target = if rest.is_empty() {
            it.next().map(|n| n.text).unwrap_or_default()
        } else {
            rest.to_owned()
        };
        if op == ">" && !target.chars().all(|c| c.is_ascii_digit()) && target != "/dev/null" {
            targets.push(target);
        }
    }
    (out, targets)
}

/// Index of the `)` matching the `(` at `open` (or the end).
fn matching_paren(chars: &[char], open: usize) -> usize {
    let mut depth = 0;
    let mut j = open;
    while j < chars.len() {
        match chars[j] {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
        j += 1;
    }
    chars.len()
}

/// Splits one logical line into simple-command segments on `;`, `&&`, `||`, `|`, `(`, `)`
/// outside quotes; command substitutions `$(…)` and backticks become their own segments,
/// listed with the segment that contains them (their text stays as an unresolvable `$(`).
fn split_segments(line: &str) -> Vec<(String, Vec<String>, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut subs = Vec::new();
    let mut sep = String::from(";");
    let chars: Vec<char> = line.chars().collect();
    let (mut sq, mut dq) = (false, false);
    let mut i = 0;
    let flush = |cur: &mut String,
                 subs: &mut Vec<String>,
                 sep: &str,
                 out: &mut Vec<(String, Vec<String>, String)>| {
        if !cur.trim().is_empty() || !subs.is_empty() {
            out.push((std::mem::take(cur), std::mem::take(subs), sep.to_owned()));
        }
        cur.clear();
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' if !dq => {
                sq = !sq;
                cur.push(c);
            }
            '"' if !sq => {
                dq = !dq;
                cur.push(c);
            }
            '\\' if !sq => {
                cur.push(c);
                if let Some(&n) = chars.get(i + 1) {
                    cur.push(n);
                    i += 1;
                }
            }
            '$' if !sq && chars.get(i + 1) == Some(&'(') && chars.get(i + 2) == Some(&'(') => {
                // Arithmetic `$((…))`: not a command, but command substitutions inside it
                // (libc6's `$(($(echo "$1" | sed …)))`) are.
                let j = matching_paren(&chars, i + 1);
                let inner: String = chars[(i + 3).min(j)..j.saturating_sub(1).max(i + 3)]
                    .iter()
                    .collect();
                for (_, inner_subs, _) in split_segments(&inner) {
                    subs.extend(inner_subs);
                }
                cur.push_str("$(…)");
                i = j;
            }
            '$' if !sq && chars.get(i + 1) == Some(&'(') && chars.get(i + 2) != Some(&'(') => {
                let j = matching_paren(&chars, i + 1);
                let inner: String = chars[i + 2..j.min(chars.len())].iter().collect();
                for (seg, inner_subs, _) in split_segments(&inner) {
                    subs.extend(inner_subs);
                    subs.push(seg);
                }
                cur.push_str("$(…)");
                i = j;
            }
            '`' if !sq => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .map(|p| p + i + 1);
                let j = end.unwrap_or(chars.len());
                let inner: String = chars[i + 1..j].iter().collect();
                for (seg, inner_subs, _) in split_segments(&inner) {
                    subs.extend(inner_subs);
                    subs.push(seg);
                }
                cur.push_str("$(…)");
                i = j;
            }
            ';' | '|' | '&' | '(' | ')' if !sq && !dq => {
                // `2>&1` and `>&2` are redirections, not separators
                if c == '&' && cur.ends_with('>') {
                    cur.push(c);
                } else {
                    let was_empty = cur.trim().is_empty() && subs.is_empty();
                    flush(&mut cur, &mut subs, &sep, &mut out);
                    let next = chars.get(i + 1).copied();
                    let op = match (c, next) {
                        ('&', Some('&')) => "&&",
                        ('|', Some('|')) => "||",
                        _ => "",
                    };
                    if !op.is_empty() {
                        sep = op.to_owned();
                        i += 1;
                    } else if !was_empty || c == ';' {
                        sep = c.to_string();
                    }
                }
            }
            '#' if !sq && !dq && (i == 0 || chars[i - 1].is_whitespace()) => break,
            _ => cur.push(c),
        }
        i += 1;
    }
    flush(&mut cur, &mut subs, &sep, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progs(script: &str) -> Vec<String> {
        commands(script).iter().map(|c| c.words.join(" ")).collect()
    }

    #[test]
    fn loops_and_variables_expand() {
        let s = "X=\"a b\"\nBASE=/usr/lib\nfor f in $X;\ndo\n  ucf $BASE/$f /etc/$f\ndone\n";
        assert_eq!(progs(s), ["ucf /usr/lib/a /etc/a", "ucf /usr/lib/b /etc/b"]);
    }

    #[test]
    fn continuations_case_patterns_and_substitutions() {
        let s = "case \"$1\" in\n  configure)\n    update-alternatives --install \\\n      /usr/bin/x x /opt/x 10\n    ;;\nesac\nif [ -x \"$(command -v foo)\" ]; then foo >/dev/null || true; fi\n";
        let c = commands(s);
        let p: Vec<_> = c.iter().map(|c| c.program().to_owned()).collect();
        assert_eq!(p, ["update-alternatives", "command", "[", "foo", "true"]);
        assert_eq!(c[0].words[2..], ["/usr/bin/x", "x", "/opt/x", "10"]);
        assert!(c[2].unresolved);
    }

    #[test]
    fn heredocs_are_skipped_and_redirects_recorded() {
        let s = "cat > /etc/passwd <<'EOF'\nroot:x:0:0\nEOF\necho done\n";
        let c = commands(s);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].redirects, ["/etc/passwd"]);
        assert_eq!(c[1].program(), "echo");
    }

    #[test]
    fn branches_not_taken_on_a_fresh_install_are_dead() {
        let s = "case \"$1\" in\n  configure)\n    if [ -z \"$2\" ]; then a; else b; fi\n    if dpkg --compare-versions \"$2\" lt-nl 1.0 && [ -f /x ]; then c; fi\n    if [ -f /y ] || false; then d; fi\n  ;;\n  abort-upgrade) e ;;\nesac\n";
        let c = commands_with_args(s, install_args("postinst"));
        let live: Vec<(&str, bool)> = c
            .iter()
            .filter(|c| c.program().len() == 1 && c.program() != "[")
            .map(|c| (c.program(), c.dead.is_none()))
            .collect();
        assert_eq!(
            live,
            [
                ("a", true),
                ("b", false),
                ("c", false),
                ("d", true),
                ("e", false)
            ]
        );
    }

    fn live(script: &str, kind: &str) -> Vec<(String, bool)> {
        commands_with_args(script, install_args(kind))
            .iter()
            .map(|c| (c.words.join(" "), c.dead.is_none()))
            .collect()
    }

    #[test]
    fn parenthesized_case_patterns_are_not_commands() {
        // debianutils' postinst.
        let s = "case \"$1\" in\n    (configure)\n\tupdate-shells\n    ;;\n    (triggered)\n\tupdate-shells\n    ;;\n\n    (abort-upgrade|abort-remove|abort-deconfigure)\n\tua\n    ;;\n\n    (*)\n        echo \"postinst called with unknown argument \\`$1'\" >&2\n        exit 1\n    ;;\nesac\n";
        assert_eq!(
            live(s, "postinst"),
            [
                ("update-shells".to_owned(), true),
                ("update-shells".to_owned(), false),
                ("ua".to_owned(), false),
                (
                    "echo postinst called with unknown argument `$1'".to_owned(),
                    false
                ),
                ("exit 1".to_owned(), false),
            ]
        );
    }

    #[test]
    fn a_subshell_in_a_case_branch_is_not_a_pattern() {
        // ca-certificates' postinst.
        let s = "case \"$1\" in\nconfigure)\n  (echo $A | tr ',' '\\n'; \\\n   echo $B | tr ',' '\\n') | \\\n    sort >> /etc/ca-certificates.conf\n  ;;\nesac\n";
        let c = commands_with_args(s, install_args("postinst"));
        assert!(c.iter().all(|c| c.dead.is_none()), "{c:?}");
        assert_eq!(c.last().unwrap().redirects, ["/etc/ca-certificates.conf"]);
    }

    #[test]
    fn quotes_spanning_lines_stay_one_word() {
        // libpam-runtime's postinst.
        let s = "calculate_md5sum()\n{\n\tconfigfile=\"$1\"\n\tsed -n -e'1,/# here are the per-package modules (the \"Primary\" block)/p;\n\t          /# here.s the fallback if no module succeeds/,/# and here are more per-package modules (the \"Additional\" block)/p;\n\t          /# end of pam-auth-update config/,$p' \\\n\t    \"$DPKG_ROOT\"/etc/pam.d/\"$configfile\" | md5sum | awk '{ print $1 }'\n}\n";
        let c = commands(s);
        let p: Vec<&str> = c.iter().map(|c| c.program()).collect();
        assert_eq!(p, ["sed", "md5sum", "awk"]);
        assert_eq!(c[0].line, 4);
        assert!(c[0].words[2].contains("\n") && c[0].words[2].ends_with(",\\$p"));
    }

    #[test]
    fn subshell_function_bodies_end_and_sourced_helpers_are_read() {
        // dpkg's postinst: `name()` with a `( … )` body on the next lines.
        let s = "fixup()\n(\n  admindir=${DPKG_ADMINDIR:-/var/lib/dpkg}\n  cd \"$admindir\"\n  for file in *; do\n    mv \"$file\" \"alternatives/$file\"\n  done\n)\n\ncase \"$1\" in\nconfigure)\n  fixup\n  ;;\n*)\n  error \"called with unknown argument '$1'\"\n  ;;\nesac\n";
        let c = commands_with_args(s, install_args("postinst"));
        let mv = c.iter().find(|c| c.program() == "mv").unwrap();
        assert!(mv.unresolved, "a glob loop is not a constant list");
        assert_eq!(mv.function.as_deref(), Some("fixup"));
        let last = c.last().unwrap();
        assert_eq!(last.program(), "error");
        assert!(!last.in_function && last.dead.is_some());
        // dpkg-error.sh: message-only functions.
        let helper = "setup_colors()\n{\n  : \"${DPKG_COLORS=auto}\"\n  case \"$DPKG_COLORS\" in\n  auto)\n    if [ -t 1 ]; then\n      USE_COLORS=yes\n    fi\n    ;;\n  esac\n}\n\nerror() {\n  echo \"$FMT_PROG: error: $*\" >&2\n  exit 1\n}\n\nsave() {\n  echo \"$*\" > /etc/x\n}\n";
        let f: Vec<String> = message_only_functions(helper).into_iter().collect();
        assert_eq!(f, ["error", "setup_colors"]);
    }

    #[test]
    fn test_connectives_and_pipelines_in_conditions() {
        // debian-archive-keyring, e2fsprogs' preinst, init-system-helpers.
        let s = "if [ \"$1\" = 'configure' -a -n \"$2\" ]; then\n  a\nfi\nif [ \"$1\" = configure -o -n \"$2\" ]; then\n  b\nfi\nif [ \"$1\" = \"configure\" ] && [ -n \"$2\" ] && dpkg-divert --list /etc/os-release | grep -q os-release.debootstrap; then\n  c\nfi\n";
        let l: Vec<(String, bool)> = live(s, "postinst")
            .into_iter()
            .filter(|(w, _)| w.len() == 1)
            .collect();
        assert_eq!(
            l,
            [("a".into(), false), ("b".into(), true), ("c".into(), false)]
        );
        let e2 = "PKG=e2fsprogs\nDOCLNK=/usr/share/doc/$PKG\nif test \"$1\" = upgrade \\\n    -a -L $DOCLNK\nthen\n    rm $DOCLNK\nfi\n";
        assert_eq!(
            live(e2, "preinst").last().unwrap(),
            &("rm /usr/share/doc/e2fsprogs".to_owned(), false)
        );
    }

    #[test]
    fn arithmetic_is_not_a_command() {
        // libc6's preinst.
        let s = "kernel_compare_versions () {\n    verA=$(($(echo \"$1\" | sed 's/\\([0-9]*\\)\\.\\([0-9]*\\).*/\\1 \\* 100 + \\2/')))\n    test $verA -$2 $verB\n}\n";
        let p: Vec<String> = commands(s).iter().map(|c| c.program().to_owned()).collect();
        assert_eq!(p, ["echo", "sed", "test"]);
    }

    #[test]
    fn functions_called_only_from_dead_branches_are_dead() {
        // adduser's preinst (create_adduser_conf under `upgrade)`), dash's unclaim_binsh.
        let s = "create_conf() {\n  mv --no-clobber /etc/adduser.conf /etc/adduser.conf.update-old\n}\nunused() {\n  rm -f /x\n}\nhelper() {\n  touch /y\n}\ncase $1 in\n  upgrade)\n    create_conf \"${2:-}\"\n    ;;\n  install)\n    v=$(helper)\n    ;;\nesac\n";
        let c = commands_with_args(s, install_args("preinst"));
        let dead = |p: &str| c.iter().find(|c| c.program() == p).unwrap().dead.clone();
        assert!(dead("mv").unwrap().contains("create_conf is only called"));
        assert!(dead("rm").unwrap().contains("never called"));
        assert_eq!(dead("touch"), None);
    }

    #[test]
    fn seq_and_local_lists_expand() {
        // ucf's preinst and usr-is-merged's postinst.
        let s = "statedir='/var/lib/ucf';\nfor i in $(seq 6 -1 4); do\n  cp -f \"${statedir}/hashfile.${i}\" \"${statedir}/hashfile.$(($i+1))\"\ndone\nf() {\n  local dirs=\"/lib64 /lib32\"\n  for dir in $dirs; do\n    rm -v \"$DPKG_ROOT$dir\"\n  done\n}\n";
        let c: Vec<String> = commands(s)
            .iter()
            .filter(|c| matches!(c.program(), "cp" | "rm"))
            .map(|c| c.words[..c.words.len().min(3)].join(" "))
            .collect();
        assert_eq!(
            c,
            [
                "cp -f /var/lib/ucf/hashfile.6",
                "cp -f /var/lib/ucf/hashfile.5",
                "cp -f /var/lib/ucf/hashfile.4",
                "rm -v /lib64",
                "rm -v /lib32"
            ]
        );
    }

    #[test]
    fn a_program_in_a_variable_shows_its_value() {
        // libpam0g's `idl="invoke-rc.d ${service}"; $idl stop`.
        let c =
            commands("f() {\n  service=\"$1\"\n  idl=\"invoke-rc.d ${service}\"\n  $idl stop\n}\n");
        let last = c.last().unwrap();
        assert_eq!(last.program(), "invoke-rc.d");
        assert!(last.unresolved);
    }

    #[test]
    fn a_pattern_on_the_case_line_is_not_a_command() {
        let s = "case amd64 in i386|sparc)\n\trm -f /x\n\t;;\nesac\ntouch /y\n";
        let cmds = commands_with_args(s, install_args("postinst"));
        let words: Vec<String> = cmds.iter().map(|c| c.words.join(" ")).collect();
        assert!(!words.iter().any(|w| w.contains("sparc")), "{words:?}");
        let rm = cmds.iter().find(|c| c.program() == "rm").unwrap();
        assert!(rm.dead.is_some(), "amd64 does not match i386|sparc");
        let touch = cmds.iter().find(|c| c.program() == "touch").unwrap();
        assert!(touch.dead.is_none());
    }

    #[test]
    fn unknown_positional_is_unresolved() {
        let c = commands("ucf $1 /etc/x\n");
        assert!(c[0].unresolved);
    }
}
