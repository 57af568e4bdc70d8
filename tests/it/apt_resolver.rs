//! Resolver edge cases on small hand-written indexes (no network, no files).

use stevedore::apt::index::Index;
use stevedore::apt::resolver::{
    DepField, InstalledPackage, Reason, Request, ResolveError, resolve,
};

/// Builds a Packages text: each entry is `name version [Field: value]...` separated by `;`.
fn index(entries: &[&str]) -> Index {
    let mut text = String::new();
    for (i, entry) in entries.iter().enumerate() {
        let mut parts = entry.split(';').map(str::trim);
        let head = parts.next().unwrap();
        let (name, version) = head.split_once(' ').unwrap();
        text.push_str(&format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\nFilename: pool/{name}_{version}.deb\nSize: 100\nSHA256: {:064x}\n",
            i
        ));
        for field in parts {
            text.push_str(field);
            text.push('\n');
        }
        text.push('\n');
    }
    let mut index = Index::new("amd64");
    index
        .add_packages(&text, "test-Packages", "http://mirror.invalid/debian")
        .unwrap();
    index.finish();
    index
}

fn req(names: &[&str]) -> Request {
    Request {
        packages: names.iter().map(|s| s.to_string()).collect(),
        ..Request::default()
    }
}

fn chosen(index: &Index, request: &Request) -> Vec<String> {
    resolve(index, request, &[])
        .unwrap()
        .packages
        .iter()
        .map(|r| format!("{}={}", r.package.name, r.package.version))
        .collect()
}

#[test]
fn depends_follow_highest_version_and_record_reasons() {
    let idx = index(&[
        "app 1.0; Depends: libx (>= 1.2)",
        "libx 1.1",
        "libx 1.3; Pre-Depends: libc",
        "libc 2.0",
    ]);
    let res = resolve(&idx, &req(&["app"]), &[]).unwrap();
    let names: Vec<_> = res
        .packages
        .iter()
        .map(|r| (r.package.name.as_str(), r.package.version.as_str()))
        .collect();
    assert_eq!(names, [("app", "1.0"), ("libc", "2.0"), ("libx", "1.3")]);
    assert_eq!(res.packages[0].reason, Reason::Requested);
    assert_eq!(
        res.packages[1].reason,
        Reason::Dependency {
            by: "libx".into(),
            field: DepField::PreDepends
        }
    );
    assert_eq!(res.packages[2].reason.to_string(), "Depends of app");
    assert_eq!(res.why("libc"), ["app", "libx", "libc"]);
    assert_eq!(res.why("app"), ["app"]);
    assert!(res.why("nothing").is_empty());
}

#[test]
fn alternatives_take_the_first_satisfiable_unless_one_is_already_selected() {
    let idx = index(&["app 1; Depends: a | b", "a 1", "b 1", "other 1; Depends: b"]);
    assert_eq!(chosen(&idx, &req(&["app"])), ["a=1", "app=1"]);
    // b is requested too, so it is marked first and satisfies `a | b`.
    assert_eq!(chosen(&idx, &req(&["app", "b"])), ["app=1", "b=1"]);
    // first alternative's candidate too old: the second is taken.
    let idx = index(&["app 1; Depends: a (>= 2) | b", "a 1", "b 1"]);
    assert_eq!(chosen(&idx, &req(&["app"])), ["app=1", "b=1"]);
}

#[test]
fn lower_layers_satisfy_dependencies_and_are_not_repeated() {
    let idx = index(&["app 1; Depends: a | b, c", "a 1", "b 1", "c 1"]);
    let installed = [InstalledPackage {
        name: "b".into(),
        version: "1".into(),
        multi_arch: stevedore::apt::index::MultiArch::No,
        provides: vec![],
        conflicts: vec![],
        breaks: vec![],
    }];
    let res = resolve(&idx, &req(&["app", "b"]), &installed).unwrap();
    assert_eq!(res.names(), ["app", "c"]);
}

#[test]
fn versioned_provides_satisfy_versioned_dependencies_unversioned_do_not() {
    let idx = index(&[
        "app 1; Depends: virt (>= 2)",
        "old 1; Provides: virt",
        "new 1; Provides: virt (= 2.5)",
    ]);
    assert_eq!(chosen(&idx, &req(&["app"])), ["app=1", "new=1"]);
    let idx = index(&["app 1; Depends: virt (>= 2)", "old 1; Provides: virt"]);
    let err = resolve(&idx, &req(&["app"]), &[]).unwrap_err().to_string();
    assert!(
        err.contains("virt (>= 2)") && err.contains("provided by old"),
        "{err}"
    );
}

#[test]
fn providers_are_ordered_like_apt_real_package_then_priority() {
    // The real package named by the dependency wins over providers.
    let idx = index(&[
        "app 1; Depends: mta",
        "mta 1; Priority: extra",
        "exim 1; Provides: mta; Priority: required",
    ]);
    assert_eq!(chosen(&idx, &req(&["app"])), ["app=1", "mta=1"]);
    // Among providers of a virtual package, the more important Priority wins.
    let idx = index(&[
        "app 1; Depends: mail-transport-agent",
        "postfix 1; Provides: mail-transport-agent; Priority: optional",
        "exim4 1; Provides: mail-transport-agent; Priority: standard",
    ]);
    assert_eq!(chosen(&idx, &req(&["app"])), ["app=1", "exim4=1"]);
}

#[test]
fn conflicts_and_breaks_name_both_packages() {
    let idx = index(&["a 1; Conflicts: b", "b 1"]);
    let err = resolve(&idx, &req(&["a", "b"]), &[]).unwrap_err();
    assert!(matches!(err, ResolveError::Conflict { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("a 1 Conflicts `b`") && msg.contains("b 1"),
        "{msg}"
    );

    let idx = index(&["a 1; Breaks: b (<< 2)", "b 1"]);
    let msg = resolve(&idx, &req(&["b", "a"]), &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("Breaks `b (<< 2)`") && msg.contains("b 1"),
        "{msg}"
    );

    // A conflicting alternative is skipped in favour of the next one.
    let idx = index(&[
        "app 1; Depends: x | y",
        "x 1; Conflicts: base",
        "y 1",
        "base 1",
    ]);
    assert_eq!(
        chosen(&idx, &req(&["base", "app"])),
        ["app=1", "base=1", "y=1"]
    );
    // Conflicting with a virtual package one provides itself is fine.
    let idx = index(&["a 1; Provides: v; Conflicts: v", "b 1; Depends: v"]);
    assert_eq!(chosen(&idx, &req(&["b"])), ["a=1", "b=1"]);
}

#[test]
fn multi_arch_any_needs_allowed() {
    let idx = index(&["app 1; Depends: perl:any", "perl 5; Multi-Arch: allowed"]);
    assert_eq!(chosen(&idx, &req(&["app"])), ["app=1", "perl=5"]);
    let idx = index(&["app 1; Depends: tool:any", "tool 1"]);
    let msg = resolve(&idx, &req(&["app"]), &[]).unwrap_err().to_string();
    assert!(
        msg.contains("tool:any") && msg.contains("Multi-Arch: allowed"),
        "{msg}"
    );
    let idx = index(&[
        "app 1; Depends: lib:native, all-pkg",
        "lib 1; Multi-Arch: same",
        "all-pkg 1; Multi-Arch: foreign",
    ]);
    assert_eq!(
        chosen(&idx, &req(&["app"])),
        ["all-pkg=1", "app=1", "lib=1"]
    );
}

#[test]
fn unsatisfiable_version_says_what_exists_and_who_asked() {
    let idx = index(&[
        "top 1; Depends: mid",
        "mid 2; Depends: libz (>= 9)",
        "libz 1.2",
        "libz 1.3",
    ]);
    let err = resolve(&idx, &req(&["top"]), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("top 1 → mid 2"), "{msg}");
    assert!(msg.contains("libz (>= 9)"), "{msg}");
    assert!(msg.contains("libz has 1.3, 1.2 (candidate 1.3)"), "{msg}");
}

#[test]
fn unknown_package_suggests_close_names() {
    let idx = index(&["tomcat10 1", "tomcat10-common 1", "bash 5"]);
    let err = resolve(&idx, &req(&["tomcat1"]), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown package `tomcat1`"), "{msg}");
    assert!(msg.contains("did you mean tomcat10"), "{msg}");
    let err = resolve(&idx, &req(&["bash=4.0"]), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no version 4.0") && err.contains("available: 5"),
        "{err}"
    );
}

#[test]
fn pinned_versions_and_virtual_requests() {
    let idx = index(&[
        "a 1",
        "a 2",
        "p 1; Provides: v",
        "q 1; Provides: w",
        "r 1; Provides: w",
    ]);
    assert_eq!(chosen(&idx, &req(&["a=1"])), ["a=1"]);
    assert_eq!(chosen(&idx, &req(&["a:amd64"])), ["a=2"]);
    assert_eq!(chosen(&idx, &req(&["a:amd64=1"])), ["a=1"]);
    assert_eq!(chosen(&idx, &req(&["v"])), ["p=1"]);
    let msg = resolve(&idx, &req(&["w"]), &[]).unwrap_err().to_string();
    assert!(msg.contains("virtual package provided by q, r"), "{msg}");
}

#[test]
fn recommends_only_with_the_flag() {
    let idx = index(&["app 1; Recommends: extra, missing-thing", "extra 1"]);
    assert_eq!(chosen(&idx, &req(&["app"])), ["app=1"]);
    let with = Request {
        recommends: true,
        ..req(&["app"])
    };
    // An unsatisfiable Recommends is skipped, as apt does.
    assert_eq!(chosen(&idx, &with), ["app=1", "extra=1"]);
}

#[test]
fn minbase_takes_essential_and_required_and_prefers_usr_is_merged() {
    let idx = index(&[
        "base-files 1; Essential: yes; Priority: required",
        "init-system-helpers 1; Priority: required; Depends: usrmerge | usr-is-merged",
        "usrmerge 1; Depends: perl",
        "perl 1",
        "usr-is-merged 1",
        "optional-thing 1; Priority: optional",
    ]);
    let res = resolve(
        &idx,
        &Request {
            minbase: true,
            ..Request::default()
        },
        &[],
    )
    .unwrap();
    assert_eq!(
        res.names(),
        ["base-files", "init-system-helpers", "usr-is-merged"]
    );
    assert_eq!(res.packages[0].reason, Reason::Essential);
    assert_eq!(res.packages[1].reason, Reason::Required);
    assert_eq!(res.packages[2].reason, Reason::MergedUsr);
}

#[test]
fn pre_depends_cycles_terminate() {
    let idx = index(&["a 1; Pre-Depends: b", "b 1; Depends: a"]);
    assert_eq!(chosen(&idx, &req(&["a"])), ["a=1", "b=1"]);
}

#[test]
fn lower_layers_can_come_from_a_dpkg_status_file() {
    let status = "Package: libfoo\nStatus: install ok installed\nVersion: 2.0\nArchitecture: amd64\nProvides: foo-abi (= 2)\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\nArchitecture: amd64\n";
    let installed = InstalledPackage::from_dpkg_status(status, "/var/lib/dpkg/status").unwrap();
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0].provides[0].version.as_deref(), Some("2"));
    let idx = index(&["app 1; Depends: foo-abi (>= 2), gone", "gone 1"]);
    let res = resolve(&idx, &req(&["app"]), &installed).unwrap();
    // foo-abi comes from the status file; `gone` is only config files there, so it is added.
    assert_eq!(res.names(), ["app", "gone"]);
    let err =
        InstalledPackage::from_dpkg_status("Package: x\nStatus: install ok installed\n", "st")
            .unwrap_err();
    assert!(
        err.to_string().contains("st") && err.to_string().contains("missing Version"),
        "{err}"
    );
}
