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
}

impl Command {
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
/// lists (one command per loop value).
pub fn commands(script: &str) -> Vec<Command> {
    let mut p = Parser::default();
    // dpkg sets DPKG_ROOT to the empty string unless it installs into another root.
    p.vars.insert("DPKG_ROOT".into(), Some(String::new()));
    let lines: Vec<&str> = script.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let mut logical = lines[i].to_owned();
        // `\` continuations join the next line.
        while logical.ends_with('\\') && i + 1 < lines.len() {
            logical.pop();
            i += 1;
            logical.push(' ');
            logical.push_str(lines[i].trim_start());
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
    p.out
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
    /// Open `if`s (assignments inside are conditional).
    if_depth: usize,
    in_case: usize,
    function_depth: usize,
}

impl Parser {
    fn logical_line(&mut self, line: &str, lineno: usize) {
        let mut line = line.trim().to_owned();
        if line.starts_with('#') || line.is_empty() {
            return;
        }
        // `case` patterns (`configure)`, `abort-upgrade|abort-remove)`, `!*)`) are not commands.
        if self.in_case > 0
            && let Some(close) = find_unquoted(&line, ")")
        {
            let before = &line[..close];
            if !before.contains('(') && !before.starts_with("esac") {
                line = line[close + 1..].to_owned();
            }
        }
        // Function definitions: `name() {`.
        if let Some(pos) = line.find("()") {
            let name = line[..pos].trim();
            if !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            {
                self.function_depth += 1;
                line = line[pos + 2..].trim().trim_start_matches('{').to_owned();
            }
        }
        for (segment, subs) in split_segments(&line) {
            for sub in subs {
                self.simple(&sub, lineno, true);
            }
            self.simple(&segment, lineno, false);
        }
    }

    fn simple(&mut self, text: &str, lineno: usize, substitution: bool) {
        let raw = lex(text);
        let (raw, redirects_raw) = strip_redirects(raw);
        let mut words: Vec<RawWord> = raw;
        // Leading keywords are syntax, not programs.
        while let Some(w) = words.first() {
            let lit = w.text.as_str();
            if !w.quoted && KEYWORDS.contains(&lit) {
                match lit {
                    "if" => self.if_depth += 1,
                    "fi" => self.if_depth = self.if_depth.saturating_sub(1),
                    "done" => {
                        self.loops.pop();
                    }
                    "esac" => self.in_case = self.in_case.saturating_sub(1),
                    "}" if self.function_depth > 0 => self.function_depth -= 1,
                    "while" | "until" => self.loops.push(None),
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
                    return;
                }
                "for" => {
                    let var = words.get(1).map(|w| w.text.clone()).unwrap_or_default();
                    let values = if words.get(2).is_some_and(|w| w.text == "in") {
                        let mut vals = Some(Vec::new());
                        for w in &words[3..] {
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
            if words.len() == 1 && !substitution {
                let known = value.contains("$(") || value.contains('`');
                let value = (!known && !(self.if_depth > 0 && self.vars.contains_key(&name)))
                    .then_some(value);
                // Conditional re-assignment of a known variable: its value is now unknowable.
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
                        out_words.push(w.text.clone());
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
            self.out.push(Command {
                line: lineno,
                text: text.trim().to_owned(),
                words: out_words,
                redirects,
                unresolved,
                in_function: self.function_depth > 0,
            });
        }
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

/// Splits one logical line into simple-command segments on `;`, `&&`, `||`, `|`, `(`, `)`
/// outside quotes; command substitutions `$(…)` and backticks become their own segments,
/// listed with the segment that contains them (their text stays as an unresolvable `$(`).
fn split_segments(line: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut subs = Vec::new();
    let chars: Vec<char> = line.chars().collect();
    let (mut sq, mut dq) = (false, false);
    let mut i = 0;
    let flush = |cur: &mut String, subs: &mut Vec<String>, out: &mut Vec<(String, Vec<String>)>| {
        if !cur.trim().is_empty() || !subs.is_empty() {
            out.push((std::mem::take(cur), std::mem::take(subs)));
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
            '$' if !sq && chars.get(i + 1) == Some(&'(') && chars.get(i + 2) != Some(&'(') => {
                // find the matching parenthesis
                let mut depth = 0;
                let mut j = i + 1;
                while j < chars.len() {
                    match chars[j] {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let inner: String = chars[i + 2..j.min(chars.len())].iter().collect();
                for (seg, inner_subs) in split_segments(&inner) {
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
                for (seg, inner_subs) in split_segments(&inner) {
                    subs.extend(inner_subs);
                    subs.push(seg);
                }
                cur.push_str("$(…)");
                i = j;
            }
            ';' | '|' | '&' | '(' | ')' if !sq && !dq => {
                // `2>&1` and `>&2` are redirections, not separators
                if c == '&'
                    && (cur.ends_with('>')
                        || chars.get(i + 1).is_some_and(|n| n.is_ascii_digit())
                            && cur.ends_with('>'))
                {
                    cur.push(c);
                } else if c == '&' && i > 0 && chars[i - 1] == '>' {
                    cur.push(c);
                } else {
                    flush(&mut cur, &mut subs, &mut out);
                }
            }
            '#' if !sq && !dq && (i == 0 || chars[i - 1].is_whitespace()) => break,
            _ => cur.push(c),
        }
        i += 1;
    }
    flush(&mut cur, &mut subs, &mut out);
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
    fn unknown_positional_is_unresolved() {
        let c = commands("ucf $1 /etc/x\n");
        assert!(c[0].unresolved);
    }
}
