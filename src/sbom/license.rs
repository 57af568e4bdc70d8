//! A package's license from its `/usr/share/doc/PKG/copyright`, when that file is
//! machine-readable (DEP-5, <https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/>):
//! the `License:` of the `Files: *` paragraph, as an SPDX expression. A short name that is an
//! SPDX id (or DEP-5's spelling of one, `GPL-2+`, `Expat`) becomes that id; any other becomes a
//! `LicenseRef-…` whose text is the file's stand-alone `License:` paragraph of that name.
//! A file in another form says nothing we can rely on: no license (NOASSERTION).

use std::collections::BTreeMap;

use crate::apt::deb822;

/// A declared license: the SPDX expression and the `LicenseRef-`s it uses, with their text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct License {
    pub expression: String,
    /// `LicenseRef-…` id → (the DEP-5 short name, its text in the copyright file).
    pub refs: BTreeMap<String, (String, String)>,
}

/// SPDX license-list ids Debian packages use (matched case-insensitively). Only real ids: the
/// validators refuse unknown ones, which is why anything else becomes a `LicenseRef-`.
const SPDX_IDS: &[&str] = &[
    "0BSD",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-1.0",
    "Apache-1.1",
    "Apache-2.0",
    "Artistic-1.0",
    "Artistic-1.0-Perl",
    "Artistic-2.0",
    "Beerware",
    "BSD-1-Clause",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSD-4-Clause",
    "BSL-1.0",
    "bzip2-1.0.6",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CDDL-1.0",
    "CDDL-1.1",
    "curl",
    "EPL-1.0",
    "EPL-2.0",
    "FSFAP",
    "FSFUL",
    "FSFULLR",
    "FTL",
    "GFDL-1.2-only",
    "GFDL-1.2-or-later",
    "GFDL-1.3-only",
    "GFDL-1.3-or-later",
    "GPL-1.0-only",
    "GPL-1.0-or-later",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ICU",
    "IJG",
    "ISC",
    "LGPL-2.0-only",
    "LGPL-2.0-or-later",
    "LGPL-2.1-only",
    "LGPL-2.1-or-later",
    "LGPL-3.0-only",
    "LGPL-3.0-or-later",
    "Libpng",
    "libpng-2.0",
    "LPPL-1.3c",
    "MIT",
    "MIT-0",
    "MPL-1.1",
    "MPL-2.0",
    "NTP",
    "OFL-1.1",
    "OpenSSL",
    "PSF-2.0",
    "Python-2.0",
    "Ruby",
    "Sleepycat",
    "TCL",
    "Unicode-3.0",
    "Unicode-DFS-2016",
    "Unlicense",
    "W3C",
    "WTFPL",
    "X11",
    "Zlib",
    "ZPL-2.1",
];

/// DEP-5 short names that are not SPDX ids but name one (the spec's table of short names).
fn dep5_synonym(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let fixed = match lower.as_str() {
        "expat" => Some("MIT"),
        "artistic" | "artistic-1" => Some("Artistic-1.0-Perl"),
        "apache-2" => Some("Apache-2.0"),
        "zlib" => Some("Zlib"),
        "psf-2" => Some("PSF-2.0"),
        "mpl-2" => Some("MPL-2.0"),
        "cc0" => Some("CC0-1.0"),
        _ => None,
    };
    if let Some(id) = fixed {
        return Some(id.to_string());
    }
    // GPL-2, GPL-2+, LGPL-2.1+, AGPL-3, GFDL-1.3+ ...
    let (base, plus) = match name.strip_suffix('+') {
        Some(b) => (b, true),
        None => (name, false),
    };
    let (family, version) = base.split_once('-')?;
    let family = family.to_ascii_uppercase();
    if !["GPL", "LGPL", "AGPL", "GFDL"].contains(&family.as_str()) {
        return None;
    }
    let version = if version.contains('.') {
        version.to_string()
    } else {
        format!("{version}.0")
    };
    let id = format!(
        "{family}-{version}-{}",
        if plus { "or-later" } else { "only" }
    );
    spdx_id(&id)
}

/// The SPDX id `name` is, in the list's own case.
fn spdx_id(name: &str) -> Option<String> {
    SPDX_IDS
        .iter()
        .find(|id| id.eq_ignore_ascii_case(name))
        .map(|id| (*id).to_string())
}

/// `LicenseRef-` + the name with anything but letters, digits, `.` and `-` made `-`.
fn license_ref(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut collapsed = String::with_capacity(clean.len());
    for c in clean.chars() {
        if !(c == '-' && collapsed.ends_with('-')) {
            collapsed.push(c);
        }
    }
    format!("LicenseRef-{}", collapsed.trim_matches('-'))
}

/// Reads a copyright file; `None` unless it is DEP-5 with a `Files: *` paragraph.
pub fn from_copyright(text: &str) -> Option<License> {
    let paragraphs: Vec<deb822::Paragraph> =
        deb822::paragraphs(text).collect::<Result<_, _>>().ok()?;
    let header = paragraphs.first()?;
    let format = header.first_line("Format")?;
    if !format.contains("copyright-format/1.0") {
        return None;
    }
    let files_star = paragraphs.iter().skip(1).find(|p| {
        p.get("Files")
            .is_some_and(|f| f.split_whitespace().next() == Some("*"))
    })?;
    let short = files_star.first_line("License")?;
    if short.is_empty() {
        return None;
    }
    // Stand-alone `License:` paragraphs hold the texts of the short names.
    let mut texts: BTreeMap<String, String> = BTreeMap::new();
    for p in paragraphs
        .iter()
        .skip(1)
        .filter(|p| p.get("Files").is_none())
    {
        if let Some(name) = p.first_line("License") {
            let body: Vec<&str> = p.continuation_lines("License").map(undot).collect();
            texts.insert(name.to_string(), body.join("\n"));
        }
    }
    let own: Vec<&str> = files_star
        .continuation_lines("License")
        .map(undot)
        .collect();
    if !own.is_empty() {
        texts.insert(short.to_string(), own.join("\n"));
    }
    Some(expression(short, &texts))
}

/// A ` .` line of a deb822 value is an empty line.
fn undot(line: &str) -> &str {
    if line == "." { "" } else { line }
}

/// Translates a DEP-5 license field (`GPL-2+ or Artistic, and BSD-3-clause`): `or`/`and` keep
/// their meaning (and binds tighter in both), a comma closes a group.
fn expression(field: &str, texts: &BTreeMap<String, String>) -> License {
    let mut refs = BTreeMap::new();
    let mut groups: Vec<(String, String)> = Vec::new(); // (joining operator, expression)
    for (i, group) in field.split(',').enumerate() {
        let mut words: Vec<&str> = group.split_whitespace().collect();
        let mut joiner = "AND".to_string();
        if i > 0
            && let Some(first) = words.first()
            && ["and", "or"].contains(&first.to_ascii_lowercase().as_str())
        {
            joiner = first.to_ascii_uppercase();
            words.remove(0);
        }
        let mut out: Vec<String> = Vec::new();
        let mut term: Vec<&str> = Vec::new();
        let mut flush = |term: &mut Vec<&str>, out: &mut Vec<String>| {
            if !term.is_empty() {
                out.push(map_term(&term.join(" "), texts, &mut refs));
                term.clear();
            }
        };
        for w in words {
            match w.to_ascii_lowercase().as_str() {
                "or" | "and" => {
                    flush(&mut term, &mut out);
                    out.push(w.to_ascii_uppercase());
                }
                _ => term.push(w),
            }
        }
        flush(&mut term, &mut out);
        // Drop dangling operators (a malformed field must not make an invalid expression).
        while out.last().is_some_and(|t| t == "AND" || t == "OR") {
            out.pop();
        }
        while out.first().is_some_and(|t| t == "AND" || t == "OR") {
            out.remove(0);
        }
        if !out.is_empty() {
            groups.push((joiner, out.join(" ")));
        }
    }
    let several = groups.len() > 1;
    let mut expression = String::new();
    for (i, (joiner, e)) in groups.iter().enumerate() {
        if i > 0 {
            expression.push_str(&format!(" {joiner} "));
        }
        if several && e.contains(' ') {
            expression.push_str(&format!("({e})"));
        } else {
            expression.push_str(e);
        }
    }
    License { expression, refs }
}

/// One license name (maybe `X with Y exception`) → an SPDX id or expression, or a new
/// `LicenseRef-` recorded in `refs`.
fn map_term(
    term: &str,
    texts: &BTreeMap<String, String>,
    refs: &mut BTreeMap<String, (String, String)>,
) -> String {
    let lower = term.to_ascii_lowercase();
    if let Some((base, exception)) = lower.split_once(" with ")
        && exception.starts_with("classpath")
        && let Some(id) = spdx_id(base).or_else(|| dep5_synonym(base))
    {
        return format!("{id} WITH Classpath-exception-2.0");
    }
    if let Some(id) = spdx_id(term).or_else(|| dep5_synonym(term)) {
        return id;
    }
    let id = license_ref(term);
    let text = texts
        .get(term)
        .filter(|t| !t.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| format!("The license the package's copyright file calls `{term}`."));
    refs.entry(id.clone())
        .or_insert_with(|| (term.to_string(), text));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP5: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: x\n\nFiles: *\nCopyright: 1999 Someone\nLicense: GPL-2+ or Artistic, and public-domain\n\nFiles: debian/*\nLicense: Expat\n\nLicense: public-domain\n This is in the public domain.\n .\n Really.\n";

    #[test]
    fn dep5_files_star_license_becomes_an_spdx_expression() {
        let l = from_copyright(DEP5).unwrap();
        assert_eq!(
            l.expression,
            "(GPL-2.0-or-later OR Artistic-1.0-Perl) AND LicenseRef-public-domain"
        );
        let (name, text) = &l.refs["LicenseRef-public-domain"];
        assert_eq!(name, "public-domain");
        assert!(text.starts_with("This is in the public domain."), "{text}");
    }

    #[test]
    fn names_map_to_ids_or_refs() {
        let none = BTreeMap::new();
        let e = |s: &str| expression(s, &none).expression;
        assert_eq!(e("Expat"), "MIT");
        assert_eq!(e("LGPL-2.1+"), "LGPL-2.1-or-later");
        assert_eq!(e("GPL-3"), "GPL-3.0-only");
        assert_eq!(e("bsd-3-clause"), "BSD-3-Clause");
        assert_eq!(
            e("GPL-2 with Classpath exception"),
            "GPL-2.0-only WITH Classpath-exception-2.0"
        );
        assert_eq!(
            e("GPL-2+ with OpenSSL exception"),
            "LicenseRef-GPL-2-with-OpenSSL-exception"
        );
        assert_eq!(e("MIT or"), "MIT");
    }

    #[test]
    fn other_copyright_files_say_nothing() {
        assert_eq!(
            from_copyright("This is Debian's prepackaged foo.\n\nGPL.\n"),
            None
        );
        let no_star = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: src/*\nLicense: MIT\n";
        assert_eq!(from_copyright(no_star), None);
    }
}
