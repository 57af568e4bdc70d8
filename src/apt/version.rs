//! Debian version comparison (`deb-version(7)`), as dpkg and apt do it.
//!
//! Hand-written (about 60 lines) instead of the `debversion` crate: the index compares borrowed
//! `&str`s millions of times and the crate would add regex, bigint and chrono to the build for
//! no gain. A proptest checks it against `dpkg --compare-versions`.

use std::cmp::Ordering;

/// Compares two Debian version strings: epoch, then upstream, then revision.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

/// `[epoch:]upstream[-revision]`; a missing or unparsable epoch counts as 0.
fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, v),
    };
    match rest.rfind('-') {
        Some(i) => (epoch, &rest[..i], &rest[i + 1..]),
        None => (epoch, rest, ""),
    }
}

/// dpkg's character weight: `~` sorts before everything (even the end of the string),
/// letters before other characters.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// dpkg's `verrevcmp`: alternating non-digit and digit runs.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = order(a.get(i).copied());
            let bc = order(b.get(j).copied());
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && a[i].is_ascii_digit() && j < b.len() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

/// A version relation in a dependency field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    Earlier,        // <<
    EarlierOrEqual, // <=  (and the obsolete `<`)
    Equal,          // =
    LaterOrEqual,   // >=  (and the obsolete `>`)
    Later,          // >>
}

impl Relation {
    pub fn parse(op: &str) -> Option<Relation> {
        Some(match op {
            "<<" => Relation::Earlier,
            "<=" | "<" => Relation::EarlierOrEqual,
            "=" => Relation::Equal,
            ">=" | ">" => Relation::LaterOrEqual,
            ">>" => Relation::Later,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Earlier => "<<",
            Relation::EarlierOrEqual => "<=",
            Relation::Equal => "=",
            Relation::LaterOrEqual => ">=",
            Relation::Later => ">>",
        }
    }

    /// Whether `version` stands in this relation to `wanted`.
    pub fn matches(self, version: &str, wanted: &str) -> bool {
        let ord = compare(version, wanted);
        match self {
            Relation::Earlier => ord == Ordering::Less,
            Relation::EarlierOrEqual => ord != Ordering::Greater,
            Relation::Equal => ord == Ordering::Equal,
            Relation::LaterOrEqual => ord != Ordering::Less,
            Relation::Later => ord == Ordering::Greater,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_orderings() {
        let less = [
            ("1.0~rc1", "1.0"),
            ("1.0", "1.0-1"),
            ("1.0-1", "1.0-1+b1"),
            ("1.0~", "1.0"),
            ("1.0~~", "1.0~"),
            ("1:0.1", "2:0.0"),
            ("9.9", "1:0.0"),
            ("1.2.3", "1.2.10"),
            ("1.0a", "1.0+"),
            ("2.36-9+deb12u10", "2.36-9+deb12u13"),
            ("17.0.19+10-1~deb12u2", "17.0.19+10-1"),
        ];
        for (a, b) in less {
            assert_eq!(compare(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(compare(b, a), Ordering::Greater, "{b} > {a}");
        }
        assert_eq!(compare("1.0", "1.00"), Ordering::Equal);
        assert_eq!(compare("0:1.0", "1.0"), Ordering::Equal);
    }

    #[test]
    fn relations() {
        assert!(Relation::parse(">=").unwrap().matches("2.0", "2.0"));
        assert!(Relation::parse("<<").unwrap().matches("1.9", "2.0"));
        assert!(!Relation::parse(">>").unwrap().matches("2.0", "2.0"));
        assert!(Relation::parse("<").unwrap().matches("2.0", "2.0"));
        assert!(Relation::parse("!=").is_none());
    }

    fn version_strategy() -> impl Strategy<Value = String> {
        "([0-9]:)?[0-9][0-9a-z.+~]{0,6}(-[0-9a-z.+~]{1,4})?"
    }

    proptest! {
        #![proptest_config(crate::fuzz::config(200))]
        /// The comparator agrees with dpkg itself (dpkg is on every Debian host; its absence is a
        /// test failure, never a silent pass).
        #[test]
        fn agrees_with_dpkg(a in version_strategy(), b in version_strategy()) {
            let ours = compare(&a, &b);
            let dpkg_lt = std::process::Command::new("dpkg")
                .args(["--compare-versions", &a, "lt", &b])
                .status()
                .expect("dpkg not found: install it with `apt-get install dpkg`");
            let dpkg_eq = std::process::Command::new("dpkg")
                .args(["--compare-versions", &a, "eq", &b])
                .status()
                .expect("dpkg not found: install it with `apt-get install dpkg`");
            let theirs = if dpkg_lt.success() { Ordering::Less } else if dpkg_eq.success() { Ordering::Equal } else { Ordering::Greater };
            prop_assert_eq!(ours, theirs, "{} vs {}", a, b);
        }
    }
}
