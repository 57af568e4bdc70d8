//! A deliberately small reading of maintainer scripts: enough to find each command a script
//! runs, with its arguments after substituting the variables the script sets to constants
//! (and `for` loop variables over constant lists, as tomcat10's and openjdk's postinst use).
//!
//! This is not a shell. Conditions with a definite value on a fresh install (`[ "$1" =
//! configure ]`, `[ -z "$2" ]`, `dpkg --compare-versions "$2" lt …`, `case` patterns) are
//! evaluated so that branches not taken are marked dead; other conditions count as possibly
//! true. Functions are read where they are defined, never called; command substitutions are
//! never run (only `$(seq …)` has a known output). What cannot be resolved is kept visible
//! (`unresolved`) so that callers report it as not covered instead of guessing.
//!
//! Scripts come from packages, which may be hostile: reading one has budgets (see [`Limit`]).
//! Past any of them the whole script is one [`Command::too_complex`] stand-in, which the
//! coverage report shows as not covered, never a panic, a hang or unbounded memory.

use std::cell::Cell;
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
    /// Set on the one stand-in for a script past a reading budget: which budget.
    pub too_complex: Option<Limit>,
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
            too_complex: None,
        }
    }

    /// The stand-in for a whole script that went past `limit` at `line`: no program, no
    /// words, so no rule can take it for a command it knows.
    pub fn too_complex(limit: Limit, line: usize) -> Command {
        Command {
            line,
            too_complex: Some(limit),
            ..Command::opaque(format!(
                "(the whole script: too complex to read: {limit}, at line {line})"
            ))
        }
    }

    pub fn program(&self) -> &str {
        self.words.first().map(String::as_str).unwrap_or("")
    }
}

/// The budgets of reading one script. Real maintainer scripts stay far below each of them (the
/// largest of Debian's are tens of KiB with a few hundred commands, loops over a handful of
/// values and a nesting depth under ten); a script past one is read no further and reported as
/// not covered as a whole. Fixed rather than configurable: they bound the cost of reading
/// hostile input, not a property of the image, and nothing legitimate comes near them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The script's size in bytes.
    ScriptSize,
    /// Commands found, counting each expansion of a loop body.
    Commands,
    /// Values of one `for` list (`$(seq …)` included).
    LoopValues,
    /// Nesting of `if`/`case`/loops/functions, and of `$(…)`, backticks and `$((…))`.
    Depth,
    /// Bytes of one word after variable substitution.
    WordSize,
    /// Bytes produced by all variable substitutions of the script.
    ExpandedTotal,
}

pub const MAX_SCRIPT_BYTES: usize = 1 << 20;
pub const MAX_COMMANDS: usize = 10_000;
pub const MAX_LOOP_VALUES: usize = 10_000;
pub const MAX_DEPTH: usize = 64;
pub const MAX_WORD_BYTES: usize = 1 << 20;
pub const MAX_EXPANDED_BYTES: usize = 64 << 20;
/// What one step of substitution costs beyond its bytes, against [`MAX_EXPANDED_BYTES`]: a
/// million references to empty values are as much work as 64 MiB of text.
const SPEND_OVERHEAD: usize = 64;

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::ScriptSize => write!(f, "script size over {} KiB", MAX_SCRIPT_BYTES >> 10),
            Limit::Commands => write!(f, "over {MAX_COMMANDS} commands expanded"),
            Limit::LoopValues => write!(f, "a loop over more than {MAX_LOOP_VALUES} values"),
            Limit::Depth => write!(f, "nesting deeper than {MAX_DEPTH}"),
            Limit::WordSize => write!(f, "a word over {} KiB", MAX_WORD_BYTES >> 10),
            Limit::ExpandedTotal => {
                write!(f, "substitutions over {} MiB", MAX_EXPANDED_BYTES >> 20)
            }
        }
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
    commands_with_debconf(script, args, &BTreeMap::new())
}

/// [`commands_with_args`] knowing the package's debconf templates (template name → its
/// `Default:`): `db_get TEMPLATE` then sets `$RET` to the default, as debconf answers a
/// non-interactive install that nothing preseeded, so `case "$RET" in …` keeps only the
/// branch of the default (fontconfig-config links the one hinting style it names). A
/// template without a default (or unknown) leaves `$RET` unknowable.
pub fn commands_with_debconf(
    script: &str,
    args: Option<&[&str]>,
    debconf: &BTreeMap<String, String>,
) -> Vec<Command> {
    if script.len() > MAX_SCRIPT_BYTES {
        return vec![Command::too_complex(Limit::ScriptSize, 1)];
    }
    let mut p = Parser {
        debconf: debconf.clone(),
        ..Parser::default()
    };
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
        if let Some((limit, line)) = p.over.get() {
            return vec![Command::too_complex(limit, line)];
        }
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
/// mentions never runs. Propagated through a worklist (a function dying can kill the functions
/// only its body calls), so the cost stays linear in the commands' text whatever the script.
fn dead_functions(cmds: &mut [Command]) {
    let names: std::collections::BTreeSet<String> = cmds
        .iter()
        .filter(|c| c.dead.is_none())
        .filter_map(|c| c.function.clone())
        .collect();
    // For each function: the commands outside its body that mention it, in order, and how
    // many of them are live; for each command: the functions it mentions.
    let mut mentions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut mentioned_by: Vec<Vec<&str>> = vec![Vec::new(); cmds.len()];
    for (i, c) in cmds.iter().enumerate() {
        let mut words: Vec<&str> = c.text.split(|ch: char| !is_name_char(ch)).collect();
        words.sort_unstable();
        words.dedup();
        for w in words {
            if let Some(name) = names.get(w)
                && c.function.as_deref() != Some(w)
            {
                mentions.entry(name.as_str()).or_default().push(i);
                mentioned_by[i].push(name.as_str());
            }
        }
    }
    let mut live: BTreeMap<&str, usize> = names
        .iter()
        .map(|n| {
            let list = mentions.get(n.as_str()).map_or(&[][..], Vec::as_slice);
            (
                n.as_str(),
                list.iter().filter(|&&i| cmds[i].dead.is_none()).count(),
            )
        })
        .collect();
    let mut body: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in cmds.iter().enumerate() {
        if let Some(f) = c.function.as_deref().and_then(|f| names.get(f)) {
            body.entry(f.as_str()).or_default().push(i);
        }
    }
    let mut work: Vec<&str> = live
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(f, _)| *f)
        .rev()
        .collect();
    while let Some(f) = work.pop() {
        let why = clip(match mentions.get(f).and_then(|m| m.first()) {
            Some(&i) => format!(
                "function {f} is only called where it does not run ({})",
                cmds[i].dead.as_deref().unwrap_or_default()
            ),
            None => format!("function {f} is never called"),
        });
        for &j in body.get(f).map_or(&[][..], Vec::as_slice) {
            if cmds[j].dead.is_some() {
                continue;
            }
            cmds[j].dead = Some(why.clone());
            for &g in &mentioned_by[j] {
                if let Some(n) = live.get_mut(g) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        work.push(g);
                    }
                }
            }
        }
    }
}

/// Reasons shown in the report, cut to a readable length: they nest (`else of elif …`), and
/// a reason copied into each dead command must not grow with the script.
fn clip(mut why: String) -> String {
    const MAX: usize = 240;
    if why.len() > MAX {
        let mut end = MAX;
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        why.truncate(end);
        why.push('…');
    }
    why
}

/// A character of a function name as [`Parser::logical_line`] accepts one.
fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
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

/// The defaults of a debconf `templates` file: `Template:` name → `Default:` value (the
/// untranslated one), for the templates that have one.
pub fn debconf_defaults(templates: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stanza in templates.split("\n\n") {
        let field = |k: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(k).map(|v| v.trim().to_owned()))
        };
        if let (Some(name), Some(default)) = (field("Template:"), field("Default:")) {
            out.insert(name, default);
        }
    }
    out
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

/// The output of `seq [FIRST [INCREMENT]] LAST` with literal integers, one value per word;
/// `None` for any other command (or numbers seq would read otherwise). The count is worked
/// out before any value is made, in checked arithmetic: `seq 1 18446744073709551615` is over
/// the budget, not a loop that wraps or a panic.
fn seq_output(text: &str) -> Result<Option<Vec<String>>, Limit> {
    let words = lex(text);
    let Some((prog, args)) = words.split_first() else {
        return Ok(None);
    };
    if prog.text != "seq" || prog.quoted {
        return Ok(None);
    }
    let Some(n) = args
        .iter()
        .map(|w| w.text.parse::<i128>().ok())
        .collect::<Option<Vec<i128>>>()
    else {
        return Ok(None);
    };
    let (first, step, last) = match n.as_slice() {
        [l] => (1, 1, *l),
        [f, l] => (*f, 1, *l),
        [f, s, l] => (*f, *s, *l),
        _ => return Ok(None),
    };
    if step == 0 {
        return Ok(None);
    }
    // Values first + k*step for k in 0..count; none when last is on the wrong side.
    let count = match last.checked_sub(first).and_then(|d| d.checked_div(step)) {
        Some(q) if q >= 0 => q.saturating_add(1),
        Some(_) => 0,
        None => return Err(Limit::LoopValues),
    };
    if count > MAX_LOOP_VALUES as i128 {
        return Err(Limit::LoopValues);
    }
    // Within the budget, every value lies between first and last: no overflow.
    Ok(Some(
        (0..count).map(|k| (first + k * step).to_string()).collect(),
    ))
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
            _ if !sq && !dq && bytes[i..].starts_with(needle.as_bytes()) => return Some(i),
            _ => {}
        }
    }
    None
}

/// A `for` loop: its variable and its values (`None`: not known before it runs).
type Loop = (String, Option<std::rc::Rc<[String]>>);

#[derive(Default)]
struct Parser {
    out: Vec<Command>,
    /// Variables with a known value: the raw text, expanded at use (so `slave1="… $i …"`
    /// takes the loop value where it is used). `None`: assigned something unknowable.
    vars: BTreeMap<String, Option<String>>,
    /// Open `for` loops: (variable, values or None when the list is unknowable); `while` and
    /// `until` push a loop without variable so `done` pops the right one.
    /// (Shared values: each command using the loop holds them while it is expanded.)
    loops: Vec<Option<Loop>>,
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
    /// The package's debconf templates: name → default answer ([`commands_with_debconf`]).
    debconf: BTreeMap<String, String>,
    /// The line being read, for the budget report.
    lineno: usize,
    /// The first budget the script went past, and where; reading stops there.
    over: Cell<Option<(Limit, usize)>>,
    /// What substitutions and copies into commands have cost so far, in bytes (see
    /// [`Parser::spend`]).
    spent: Cell<usize>,
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
    // Each connective is a level of recursion; real tests have a few.
    if args.len() > MAX_TEST_WORDS {
        return None;
    }
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

/// Longest `test`/`[` evaluated; a longer one counts as possibly true.
const MAX_TEST_WORDS: usize = 64;

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

/// `*` and `?` matching in time proportional to the product of the lengths at worst (a
/// recursive matcher is exponential on `*a*a*a*…b`): a `*` that fails is retried one byte
/// further, only from the last `*` seen.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == b'*')
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
                    f.why = clip(format!("an earlier branch is taken ({})", f.why));
                } else {
                    f.live = value;
                    f.why = clip(format!("elif {text}"));
                    f.taken = value == Some(true);
                }
            }
        } else {
            self.frames.push(Frame {
                is_case: false,
                live: value,
                taken: value == Some(true),
                why: clip(format!("if {text}")),
                word: None,
            });
        }
    }
}

impl Parser {
    /// Records the first budget the script goes past; reading stops at the next check.
    fn exceed(&self, limit: Limit) {
        if self.over.get().is_none() {
            self.over.set(Some((limit, self.lineno)));
        }
    }

    /// Counts `bytes` against the total budget of substitutions and copies; false (and the
    /// script over budget) past it. Each call also costs [`SPEND_OVERHEAD`], so that a
    /// substitution fanning out to empty values is paid for too.
    fn spend(&self, bytes: usize) -> bool {
        let total = self
            .spent
            .get()
            .saturating_add(bytes)
            .saturating_add(SPEND_OVERHEAD);
        self.spent.set(total);
        if total > MAX_EXPANDED_BYTES {
            self.exceed(Limit::ExpandedTotal);
        }
        self.over.get().is_none()
    }

    /// Open `if`/`case`/loop/function levels, checked against [`MAX_DEPTH`].
    fn check_depth(&self) {
        if self.frames.len() + self.loops.len() + self.function_depth > MAX_DEPTH {
            self.exceed(Limit::Depth);
        }
    }

    fn logical_line(&mut self, line: &str, lineno: usize) {
        self.lineno = lineno;
        if self.over.get().is_some() {
            return;
        }
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
                    f.why = clip(format!(
                        "case {} in {pattern})",
                        f.word.as_deref().unwrap_or_default()
                    ));
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
                self.check_depth();
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
        let segments = match split_segments(&line, 0) {
            Ok(s) => s,
            Err(limit) => return self.exceed(limit),
        };
        for (segment, subs, sep) in segments {
            self.sub_outputs.clear();
            self.segment_subs = subs.iter().map(|s| s.trim().to_owned()).collect();
            for sub in subs {
                match seq_output(&sub) {
                    Ok(out) => self.sub_outputs.push(out),
                    Err(limit) => return self.exceed(limit),
                }
                self.simple(&sub, lineno, true, "");
            }
            self.simple(&segment, lineno, false, &sep);
            if self.over.get().is_some() {
                return;
            }
        }
    }

    /// Leading keywords are syntax, not programs: applies them (conditions, frames, loops,
    /// function ends) and returns how many there are and whether they negate the command;
    /// `None` once the script is over budget.
    fn keywords(&mut self, words: &[RawWord]) -> Option<(usize, bool)> {
        let mut negate = false;
        // Leading keywords are syntax, not programs (skipped by index: removing them one by
        // one from the front is quadratic on a line of ten thousand `while`s).
        let mut skip = 0;
        while let Some(w) = words.get(skip) {
            self.check_depth();
            if self.over.get().is_some() {
                return None;
            }
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
                            f.why = clip(format!("else of {}", f.why));
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
                skip += 1;
            } else {
                break;
            }
        }
        Some((skip, negate))
    }

    /// `case WORD in`: opens a frame whose patterns are matched against WORD when it is known.
    fn start_case(&mut self, words: &[RawWord]) {
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
        self.check_depth();
    }

    /// `for VAR in WORDS`: opens a loop whose values are known when every word is a constant
    /// (`$(seq …)` included), unknown otherwise (a glob, `$1`, a command substitution).
    fn start_for(&mut self, words: &[RawWord]) {
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
                if vals.as_ref().is_some_and(|v| v.len() > MAX_LOOP_VALUES) {
                    return self.exceed(Limit::LoopValues);
                }
            }
            vals
        } else {
            None
        };
        self.loops.push(Some((var, values.map(std::rc::Rc::from))));
        self.check_depth();
    }

    /// Leading `VAR=value` words: alone, they set the variable; before a program they are
    /// its environment. Returns how many there are.
    fn assignments(&mut self, words: &[RawWord], substitution: bool) -> usize {
        let mut env = 0;
        while let Some(w) = words.get(env) {
            let Some((name, value)) = assignment(w) else {
                break;
            };
            if words.len() == 1 && !substitution && self.dead().is_none() {
                let computed = value.contains("$(") || value.contains('`');
                // `$RET` is debconf's answer to the last `db_get`: taken now, before the
                // next `db_get` changes it (tzdata: `AREA="$RET"`, then `db_get …/$AREA`).
                let value = match self.vars.get("RET") {
                    Some(Some(ret)) if !self.debconf.is_empty() => {
                        value.replace("${RET}", ret).replace("$RET", ret)
                    }
                    _ => value,
                };
                // Re-assigning a known variable in a branch that may or may not run: its
                // value is now unknowable.
                let conditional =
                    self.frames.iter().any(|f| f.live.is_none()) && self.vars.contains_key(&name);
                let value = (!computed && !conditional).then_some(value);
                self.vars.insert(name, value);
            }
            env += 1;
        }
        env
    }

    /// `local` and `unset`, which change what the script's variables are known to hold.
    fn variable_builtins(&mut self, words: &[RawWord], substitution: bool) {
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
    }

    /// `db_get TEMPLATE`: `$RET` becomes the template's default ([`commands_with_debconf`]),
    /// unknowable when the template has none or its name is not known.
    fn debconf_get(&mut self, words: &[RawWord], substitution: bool) {
        if self.debconf.is_empty()
            || words[0].text != "db_get"
            || words[0].quoted
            || substitution
            || self.dead().is_some()
        {
            return;
        }
        let answer = words
            .get(1)
            .and_then(|w| self.expand(&w.text, &BTreeMap::new()))
            .and_then(|t| self.debconf.get(&t).cloned());
        self.vars.insert("RET".into(), answer);
    }

    /// The loops whose variable `words` use, directly or through a variable whose value names
    /// it (each value scanned is paid for: a long value named by many words is a cost);
    /// `None` once the script is over budget.
    fn used_loops(&self, words: &[RawWord]) -> Option<Vec<Loop>> {
        let names: std::collections::BTreeSet<&str> = words
            .iter()
            .flat_map(|w| referenced_names(&w.text))
            .collect();
        let values: Vec<&str> = names
            .iter()
            .filter_map(|n| self.vars.get(*n)?.as_deref())
            .collect();
        let used: Vec<Loop> = self
            .loops
            .iter()
            .flatten()
            .filter(|(var, _)| {
                names.contains(var.as_str())
                    || values
                        .iter()
                        .any(|v| self.spend(v.len()) && uses_var(v, var))
            })
            .cloned()
            .collect();
        self.over.get().is_none().then_some(used)
    }

    fn simple(&mut self, text: &str, lineno: usize, substitution: bool, sep: &str) {
        let raw = lex(text);
        let (raw, redirects_raw) = strip_redirects(raw);
        let mut words: Vec<RawWord> = raw;
        let Some((skip, negate)) = self.keywords(&words) else {
            return;
        };
        words.drain(..skip);
        let Some(first) = words.first() else { return };
        if !first.quoted {
            match first.text.as_str() {
                "case" => return self.start_case(&words),
                "for" => return self.start_for(&words),
                _ => {}
            }
        }
        let env = self.assignments(&words, substitution);
        words.drain(..env);
        if words.is_empty() {
            return;
        }
        self.variable_builtins(&words, substitution);
        self.debconf_get(&words, substitution);
        // One command per combination of the loop values it uses: how many is known before
        // any is made (ten nested loops over a hundred values would be 10^20).
        let Some(used) = self.used_loops(&words) else {
            return;
        };
        let count = used
            .iter()
            .filter_map(|(_, values)| values.as_ref().map(|v| v.len()))
            .try_fold(1usize, usize::checked_mul);
        if count.is_none_or(|n| n > MAX_COMMANDS.saturating_sub(self.out.len())) {
            return self.exceed(Limit::Commands);
        }
        // (Borrowed values: a combination per command must not copy a long loop value.)
        let mut combos: Vec<BTreeMap<&str, &str>> = vec![BTreeMap::new()];
        let mut unknown_loop = false;
        for (var, values) in &used {
            match values {
                Some(vals) => {
                    combos = combos
                        .iter()
                        .flat_map(|c| {
                            vals.iter().map(move |v| {
                                let mut c = c.clone();
                                c.insert(var.as_str(), v.as_str());
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
                            Some(raw) if self.spend(raw.len()) => {
                                out_words.extend(lex(raw).into_iter().map(|r| r.text))
                            }
                            _ => out_words.push(w.text.clone()),
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
            // (A reason is clipped, but copied into every command it rules out.)
            if !self.spend(dead.as_deref().map_or(0, str::len)) {
                return;
            }
            if let Some((value, text, _)) = &self.condition
                && dead.is_none()
                && ((sep == "&&" && *value == Some(false)) || (sep == "||" && *value == Some(true)))
            {
                dead = Some(clip(format!("short-circuited by `{text}`")));
            }
            if self.condition.is_some() && !substitution {
                let value = eval_condition(&out_words, unresolved).map(|v| v != negate);
                self.condition_part(sep, value, &out_words.join(" "));
            }
            // Each command copies its text and its segment's substitutions.
            let copied = self.segment_subs.iter().map(String::len).sum::<usize>();
            if !self.spend(text.len().saturating_add(copied)) {
                return;
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
                too_complex: None,
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

    /// Expands `$NAME`/`${NAME}` from known variables and `loop` values. `None` when
    /// something is unknowable (`$1`, an unknown variable, a command substitution).
    /// Past a budget (the word's size, the script's total) also `None`, with the script
    /// marked over budget.
    fn expand(&self, text: &str, loop_vals: &BTreeMap<&str, &str>) -> Option<String> {
        self.expand_depth(text, loop_vals, 0)
    }

    fn expand_depth(
        &self,
        text: &str,
        loop_vals: &BTreeMap<&str, &str>,
        depth: usize,
    ) -> Option<String> {
        if depth > 8 || !self.spend(text.len()) {
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
                if !self.spend(v.len()) {
                    return None;
                }
                out.push_str(v);
            } else {
                let raw = self.vars.get(name)?.as_deref()?;
                out.push_str(&self.expand_depth(raw, loop_vals, depth + 1)?);
            }
            if out.len() > MAX_WORD_BYTES {
                self.exceed(Limit::WordSize);
                return None;
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        (out.len() <= MAX_WORD_BYTES).then_some(out).or_else(|| {
            self.exceed(Limit::WordSize);
            None
        })
    }
}

/// The names `text` references as `$NAME` (longest name) or `${NAME}`: those for which
/// [`uses_var`] holds.
fn referenced_names(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices('$').filter_map(|(i, _)| {
        let after = &text[i + 1..];
        let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let name = match after.strip_prefix('{') {
            Some(inner) => &inner[..inner.find('}')?],
            None => &after[..after.find(|c: char| !is_name(c)).unwrap_or(after.len())],
        };
        (!name.is_empty() && name.chars().all(is_name)).then_some(name)
    })
}

fn uses_var(text: &str, var: &str) -> bool {
    referenced_names(text).any(|n| n == var)
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
/// `depth` counts the substitutions around `line`: past [`MAX_DEPTH`] the line is over budget
/// (ten thousand nested `$(` would otherwise overflow the stack).
type Segments = Vec<(String, Vec<String>, String)>;
fn split_segments(line: &str, depth: usize) -> Result<Segments, Limit> {
    if depth > MAX_DEPTH {
        return Err(Limit::Depth);
    }
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
                for (_, inner_subs, _) in split_segments(&inner, depth + 1)? {
                    subs.extend(inner_subs);
                }
                cur.push_str("$(…)");
                i = j;
            }
            '$' if !sq && chars.get(i + 1) == Some(&'(') && chars.get(i + 2) != Some(&'(') => {
                let j = matching_paren(&chars, i + 1);
                let inner: String = chars[i + 2..j.min(chars.len())].iter().collect();
                for (seg, inner_subs, _) in split_segments(&inner, depth + 1)? {
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
                for (seg, inner_subs, _) in split_segments(&inner, depth + 1)? {
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
    Ok(out)
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

    /// Reads `script` as a postinst on a fresh install, in bounded time.
    /// Reads a hostile script. That the reading stops at a budget is shown by the stand-in
    /// and its [`Limit`] (see `over_budget`); the watchdog only turns a reader that never
    /// stops into a failure instead of a hung suite. Not a speed check: a bound in seconds
    /// would fail on a loaded CI machine and prove nothing the budgets do not.
    fn read_bounded(script: &str) -> Vec<Command> {
        let (tx, rx) = std::sync::mpsc::channel();
        let script = script.to_owned();
        std::thread::spawn(move || {
            let _ = tx.send(commands_with_args(&script, install_args("postinst")));
        });
        rx.recv_timeout(std::time::Duration::from_secs(120))
            .expect("the reader stops at its budgets")
    }

    /// The budget a script goes past: the whole script is one not-covered stand-in.
    fn over_budget(script: &str) -> Limit {
        let cmds = read_bounded(script);
        assert_eq!(cmds.len(), 1, "{:?}", &cmds[..cmds.len().min(3)]);
        assert!(cmds[0].words.is_empty() && cmds[0].unresolved);
        assert!(
            cmds[0].text.contains("too complex to read"),
            "{}",
            cmds[0].text
        );
        cmds[0].too_complex.expect("a too-complex stand-in")
    }

    #[test]
    fn seq_bombs_are_over_budget_not_a_panic_or_a_wrapping_loop() {
        let huge = "for i in $(seq 1 1000000000); do\n  touch /x$i\ndone\n";
        assert_eq!(over_budget(huge), Limit::LoopValues);
        let u64_max = "for i in $(seq 1 18446744073709551615); do touch /x$i; done\n";
        assert_eq!(over_budget(u64_max), Limit::LoopValues);
        let i128_span = "for i in $(seq -170141183460469231731687303715884105728 170141183460469231731687303715884105727); do touch /$i; done\n";
        assert_eq!(over_budget(i128_span), Limit::LoopValues);
        // Near the end of i64, where `i += step` used to overflow: eight exact values.
        let edge = "for i in $(seq 9223372036854775800 9223372036854775807); do touch /x$i; done\n";
        let c = read_bounded(edge);
        assert_eq!(c.len(), 8 + 1, "{c:?}");
        assert_eq!(c.last().unwrap().words, ["touch", "/x9223372036854775807"]);
        // A seq beside a command substitution, not in a loop, is still over budget.
        assert_eq!(
            over_budget("n=$(seq 5 -1 -99999999 | wc -l)\n"),
            Limit::LoopValues
        );
    }

    #[test]
    fn nested_loops_are_counted_before_they_are_expanded() {
        // Ten loops of a hundred values: 10^20 commands.
        let words: Vec<String> = (0..100).map(|i| format!("w{i}")).collect();
        let vars: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        let mut s = String::new();
        for v in &vars {
            s.push_str(&format!("for {v} in {}; do\n", words.join(" ")));
        }
        let used: Vec<String> = vars.iter().map(|v| format!("${v}")).collect();
        s.push_str(&format!("touch /x{}\n", used.join("")));
        s.push_str(&"done\n".repeat(10));
        assert_eq!(over_budget(&s), Limit::Commands);
    }

    #[test]
    fn deep_nesting_is_over_budget() {
        let subst = format!("x={}echo{}\n", "$(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(over_budget(&subst), Limit::Depth);
        let arith = format!("x={}1{}\n", "$((".repeat(10_000), "))".repeat(10_000));
        assert_eq!(over_budget(&arith), Limit::Depth);
        let ifs = "if [ -f /x ]; then\n".repeat(10_000) + &"fi\n".repeat(10_000);
        assert_eq!(over_budget(&ifs), Limit::Depth);
        let whiles = format!("{} true; do :; done\n", "while ".repeat(100_000));
        assert_eq!(over_budget(&whiles), Limit::Depth);
        let functions = "f() {\n".repeat(10_000);
        assert_eq!(over_budget(&functions), Limit::Depth);
        let cases = "case a in ".repeat(10_000) + "\n";
        assert_eq!(over_budget(&cases), Limit::Depth);
        // Subshells are plain separators here: ten thousand of them are one command.
        let sub = format!("{}touch /y{}\n", "(".repeat(10_000), ")".repeat(10_000));
        let c = read_bounded(&sub);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].words, ["touch", "/y"]);
    }

    #[test]
    fn growing_words_are_over_budget() {
        // A hundred bytes multiplied by ten, six times: a 100 MB word.
        let mut s = format!("a0={}\n", "x".repeat(100));
        for k in 1..=6 {
            s.push_str(&format!("a{k}=\"{}\"\n", format!("$a{}", k - 1).repeat(10)));
        }
        s.push_str("echo \"$a6\" > /etc/motd\n");
        assert_eq!(over_budget(&s), Limit::WordSize);
        // Plain doubling from 400 KiB.
        let mut d = format!("b0={}\n", "y".repeat(400 << 10));
        for k in 1..=4 {
            d.push_str(&format!("b{k}=\"$b{0}$b{0}\"\n", k - 1));
        }
        d.push_str("echo $b4\n");
        assert_eq!(over_budget(&d), Limit::WordSize);
        // Doubling that refers to itself is unresolved (the reader keeps assigned text).
        let selfref = "a=x\n".to_owned() + &"a=\"$a$a\"\n".repeat(40) + "touch /$a\n";
        let c = read_bounded(&selfref);
        assert!(c.last().unwrap().unresolved);
        // Many short words each naming a long value: the total is over budget.
        let mut t = format!("v={}\n", "z".repeat(100_000));
        t.push_str(&"echo $v\n".repeat(1_000));
        assert_eq!(over_budget(&t), Limit::ExpandedTotal);
        // Empty values fanned out: each reference is paid for.
        let mut e = "e0=\n".to_owned();
        for k in 1..=6 {
            e.push_str(&format!(
                "e{k}=\"{}\"\n",
                format!("$e{}", k - 1).repeat(100)
            ));
        }
        e.push_str("echo \"$e6\"\n");
        assert_eq!(over_budget(&e), Limit::ExpandedTotal);
    }

    #[test]
    fn functions_and_endless_loops_are_read_not_run() {
        // A function calling itself, and `while true`: nothing is called or iterated, each
        // command is listed once.
        let s = "f() {\n  touch /a\n  f\n}\nf\nwhile true; do\n  /usr/sbin/hostile-tool\ndone\n";
        let c = read_bounded(s);
        let words: Vec<String> = c.iter().map(|c| c.words.join(" ")).collect();
        assert_eq!(
            words,
            ["touch /a", "f", "f", "true", "/usr/sbin/hostile-tool"]
        );
        assert!(
            c.iter()
                .all(|c| c.too_complex.is_none() && c.dead.is_none())
        );
    }

    #[test]
    fn other_costly_shapes_stay_bounded() {
        assert_eq!(
            over_budget(&"#".repeat(MAX_SCRIPT_BYTES + 1)),
            Limit::ScriptSize
        );
        // A case pattern that is exponential for a backtracking matcher.
        let s = format!(
            "case {} in\n  {}b)\n    touch /x\n    ;;\nesac\n",
            "a".repeat(60),
            "*a".repeat(30)
        );
        let c = read_bounded(&s);
        assert!(c[0].dead.is_some(), "the pattern does not match");
        // A test with thousands of connectives, and thousands of elifs.
        let t = format!(
            "if [ {} ]; then touch /t; fi\n",
            vec!["a"; 20_000].join(" -o ")
        );
        assert!(read_bounded(&t).iter().any(|c| c.program() == "touch"));
        let elifs = format!(
            "if [ \"$1\" = configure ]; then :\n{}fi\n",
            "elif [ -f /x ]; then touch /x\n".repeat(5_000)
        );
        let c = read_bounded(&elifs);
        assert!(
            c.iter()
                .all(|c| c.dead.as_ref().is_none_or(|w| w.len() < 300))
        );
        // Functions called only from functions called only from dead code.
        let mut chain = String::new();
        for k in 0..3_000 {
            chain.push_str(&format!("f{k}() {{\n  f{}\n}}\n", k + 1));
        }
        chain.push_str("case \"$1\" in upgrade) f0 ;; esac\n");
        let c = read_bounded(&chain);
        assert!(c.iter().all(|c| c.dead.is_some()));
        // Unquoted multi-byte text next to `<<` detection.
        let c = read_bounded("echo é<<EOF\nbody\nEOF\necho ü\n");
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn unknown_positional_is_unresolved() {
        let c = commands("ucf $1 /etc/x\n");
        assert!(c[0].unresolved);
    }
}

/// Fuzzing on stable: arbitrary bytes, and scripts made of shell tokens (structure-aware: the
/// keywords, quotes, substitutions and numbers the reader treats specially). Never a panic,
/// always within the time bound.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    const TOKENS: &[&str] = &[
        "for",
        "in",
        "do",
        "done",
        "while",
        "until",
        "if",
        "then",
        "elif",
        "else",
        "fi",
        "case",
        "esac",
        ";;",
        "$(",
        ")",
        "(",
        "`",
        "$((",
        "))",
        "{",
        "}",
        "f()",
        "g ()",
        "$x",
        "${x}",
        "${x",
        "$1",
        "$2",
        "$#",
        "x=",
        "x=$x$x",
        "y=\"$x",
        "\"",
        "'",
        "\\",
        "|",
        "||",
        "&&",
        ";",
        "&",
        ">",
        ">>",
        "2>&1",
        "<<",
        "<<-EOF",
        "EOF",
        "seq",
        "1",
        "-1",
        "0",
        "18446744073709551615",
        "-9223372036854775808",
        "*",
        "?",
        "[",
        "]",
        "-o",
        "-a",
        "!",
        "=",
        "!=",
        "-z",
        "-n",
        "\n",
        "\n",
        "\n",
        " ",
        "\t",
        "é",
        "日本",
        "#",
        "local",
        "unset",
        "dpkg",
        "--compare-versions",
        "lt-nl",
        "touch",
        "/x",
        "test",
        "true",
        "false",
        ":",
        "configure)",
        "*)",
        "a|b)",
        "ucf",
        "update-alternatives",
        "--install",
        "\\\n",
        "$((1+",
    ];

    fn check(script: &str) -> Result<(), TestCaseError> {
        let start = std::time::Instant::now();
        for args in [install_args("postinst"), install_args("preinst"), None] {
            let cmds = commands_with_args(script, args);
            prop_assert!(cmds.len() <= MAX_COMMANDS);
        }
        let _ = (functions(script), temp_vars(script));
        let _ = message_only_functions(script);
        // A hang detector, not a speed check (a few-line script takes microseconds; the
        // budgets bound the work): generous enough that a loaded CI machine never trips it.
        prop_assert!(start.elapsed() < std::time::Duration::from_secs(30));
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(3000))]

        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            check(&String::from_utf8_lossy(&bytes))?;
        }

        #[test]
        fn scripts_of_shell_tokens(
            tokens in proptest::collection::vec(
                (proptest::sample::select(TOKENS), proptest::sample::select(&["", " ", "\n"][..])),
                0..200,
            )
        ) {
            let script: String = tokens.iter().flat_map(|(t, sep)| [*t, *sep]).collect();
            check(&script)?;
        }
    }
}
