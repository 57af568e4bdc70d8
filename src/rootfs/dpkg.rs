//! The dpkg database of an image: what dpkg would have recorded had it installed the packages.

use std::collections::BTreeMap;

/// The package's key in dpkg's info directory: `name`, or `name:arch` for `Multi-Arch: same`.
pub fn info_name(control: &str) -> String {
    let name = field(control, "Package").unwrap_or_default();
    let same = field(control, "Multi-Arch").is_some_and(|m| m == "same");
    match (same, field(control, "Architecture")) {
        (true, Some(arch)) => format!("{name}:{arch}"),
        _ => name.to_string(),
    }
}

/// A single-line field of a control paragraph.
pub fn field<'a>(control: &'a str, name: &str) -> Option<&'a str> {
    control.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.eq_ignore_ascii_case(name)).then(|| v.trim())
    })
}

/// Names a `Replaces:` field lists (versions and architecture qualifiers dropped).
pub fn replaces(control: &str) -> Vec<String> {
    field(control, "Replaces")
        .map(|v| {
            v.split(',')
                .filter_map(|d| {
                    let name = d.trim().split([' ', '(', ':']).next()?.trim();
                    (!name.is_empty()).then(|| name.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Paths a package's `conffiles` lists (absolute).
pub fn conffile_paths(conffiles: Option<&str>) -> Vec<&str> {
    conffiles
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
        .collect()
}

/// The package's paragraph in `/var/lib/dpkg/status`: its control fields, `Status` after
/// `Package`, and `Conffiles` with the md5 of each conffile as shipped (`conffile_md5`, else
/// the package's `md5sums`, which usually leaves conffiles out).
pub fn status_paragraph(
    control: &str,
    conffiles: Option<&str>,
    md5sums: Option<&str>,
    conffile_md5: &BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    for line in control.trim_end().lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("Package:") {
            out.push_str("Status: install ok installed\n");
        }
    }
    let sums: BTreeMap<&str, &str> = md5sums
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (sum, path) = l.split_once(char::is_whitespace)?;
            Some((
                path.trim().trim_start_matches("./").trim_start_matches('/'),
                sum,
            ))
        })
        .collect();
    let conf = conffile_paths(conffiles);
    if !conf.is_empty() {
        out.push_str("Conffiles:\n");
        for c in conf {
            let sum = conffile_md5
                .get(c)
                .map(String::as_str)
                .or_else(|| sums.get(c.trim_start_matches('/')).copied())
                .unwrap_or("newconffile");
            out.push_str(&format!(" {c} {sum}\n"));
        }
    }
    out
}

/// Merges status paragraphs: `newer` replace same-named ones of `lower`; sorted by name as dpkg
/// keeps the file.
pub fn merge_status(lower: &str, newer: &[String]) -> String {
    let mut by_key: BTreeMap<(String, String), String> = BTreeMap::new();
    let paragraphs = lower
        .split("\n\n")
        .map(str::to_string)
        .chain(newer.iter().cloned());
    for p in paragraphs {
        let p = p.trim().to_string();
        if p.is_empty() {
            continue;
        }
        let name = field(&p, "Package").unwrap_or_default().to_string();
        let arch = if field(&p, "Multi-Arch") == Some("same") {
            field(&p, "Architecture").unwrap_or_default().to_string()
        } else {
            String::new()
        };
        by_key.insert((name, arch), p);
    }
    let mut out = String::new();
    for p in by_key.values() {
        out.push_str(p);
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTROL: &str = "Package: tomcat10\nVersion: 10.1\nArchitecture: all\nReplaces: tomcat9 (<< 9.0.1), libtomcat-java:any\nDescription: x\n more\n";

    #[test]
    fn status_has_status_and_conffiles() {
        let p = status_paragraph(
            CONTROL,
            Some("/etc/tomcat10/server.xml\n"),
            Some("0123abcd  etc/tomcat10/server.xml\n"),
            &BTreeMap::new(),
        );
        assert!(p.starts_with("Package: tomcat10\nStatus: install ok installed\nVersion"));
        assert!(p.ends_with("Conffiles:\n /etc/tomcat10/server.xml 0123abcd\n"));
        assert_eq!(replaces(CONTROL), ["tomcat9", "libtomcat-java"]);
    }

    #[test]
    fn merge_replaces_and_sorts() {
        let lower = "Package: b\nVersion: 1\n\nPackage: a\nVersion: 1\n\n";
        let merged = merge_status(lower, &["Package: b\nVersion: 2".to_string()]);
        assert_eq!(
            merged,
            "Package: a\nVersion: 1\n\nPackage: b\nVersion: 2\n\n"
        );
    }
}
