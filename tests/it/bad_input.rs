//! Every kind of bad input gets an error that names the file, line and column, says how to fix
//! it, exits with code 3, and writes nothing.

use crate::common;

use std::path::Path;

use common::*;

struct Case {
    name: &'static str,
    recipe: &'static str,
    /// (line, column) the error must point at, in `recipe.toml` unless `file` says otherwise.
    at: (usize, usize),
    file: &'static str,
    /// Words the message must contain.
    says: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "unknown key",
        recipe: "[image]\nname = \"a\"\ncolour = \"red\"\n",
        file: "recipe.toml",
        at: (3, 1),
        says: &["unknown field `colour`", "help:"],
    },
    Case {
        name: "wrong type",
        recipe: "[image]\ntags = \"v1\"\n",
        file: "recipe.toml",
        at: (2, 8),
        says: &["invalid type", "help:"],
    },
    Case {
        name: "toml syntax",
        recipe: "[image\nname = \"a\"\n",
        file: "recipe.toml",
        at: (1, 7),
        says: &["help:"],
    },
    Case {
        name: "missing source",
        recipe: "[[layers]]\nname = \"x\"\nfiles = [{ src = \"nope.txt\", dest = \"/a\" }]\n",
        file: "recipe.toml",
        at: (3, 18),
        says: &["`nope.txt` does not exist", "help:"],
    },
    Case {
        name: "source escaping the folder",
        recipe: "[[layers]]\nname = \"x\"\nfiles = [{ src = \"../outside.txt\", dest = \"/a\" }]\n",
        file: "recipe.toml",
        at: (3, 18),
        says: &["leaves the recipe's folder"],
    },
    Case {
        name: "source symlink escaping the folder",
        recipe: "[[layers]]\nname = \"x\"\nfiles = [{ src = \"escape\", dest = \"/a\" }]\n",
        file: "recipe.toml",
        at: (3, 18),
        says: &["outside the recipe's folder"],
    },
    Case {
        name: "relative dest",
        recipe: "[[layers]]\nname = \"x\"\nfiles = [{ src = \"f.txt\", dest = \"opt/a\" }]\n",
        file: "recipe.toml",
        at: (3, 34),
        says: &["not an absolute path", "\"/opt/a\""],
    },
    Case {
        name: "decimal mode",
        recipe: "[[layers]]\nname = \"x\"\nfiles = [{ src = \"f.txt\", dest = \"/a\", mode = 644 }]\n",
        file: "recipe.toml",
        at: (3, 47),
        says: &["decimal", "\"0644\""],
    },
    Case {
        name: "bad mode string",
        recipe: "[[layers]]\nname = \"x\"\ndirs = [{ path = \"/d\", mode = \"0999\" }]\n",
        file: "recipe.toml",
        at: (3, 31),
        says: &["not a file mode", "octal"],
    },
    Case {
        name: "unknown owner",
        recipe: "[[layers]]\nname = \"x\"\ndirs = [{ path = \"/d\", owner = \"nobody\" }]\n",
        file: "recipe.toml",
        at: (3, 32),
        says: &["unknown user `nobody`", "[[users]]"],
    },
    Case {
        name: "from cycle",
        recipe: "from = \"cycle-b.toml\"\n",
        file: "cycle-b.toml",
        at: (1, 8),
        says: &["cycle", "recipe.toml -> ", "cycle-b.toml -> "],
    },
    Case {
        name: "missing base recipe",
        recipe: "from = \"no-such-base.toml\"\n",
        file: "recipe.toml",
        at: (1, 8),
        says: &["cannot read recipe", "no-such-base.toml"],
    },
    Case {
        name: "bad port",
        recipe: "[config]\nexposed-ports = [\"80/tcpx\"]\n",
        file: "recipe.toml",
        at: (2, 18),
        says: &["is not a port"],
    },
    Case {
        name: "glob that matches nothing",
        recipe: "[[layers]]\nname = \"x\"\nfiles = [{ src = \"*.jar\", dest = \"/a/\" }]\n",
        file: "recipe.toml",
        at: (3, 18),
        says: &["matched no files"],
    },
    Case {
        name: "hard link to a missing file",
        recipe: "[[layers]]\nname = \"x\"\nhardlinks = [{ path = \"/a\", target = \"/missing\" }]\n",
        file: "recipe.toml",
        at: (3, 23),
        says: &["hard link", "not in this layer"],
    },
    Case {
        name: "file under a file",
        recipe: "[[layers]]\nname = \"x\"\nfiles = [{ src = \"f.txt\", dest = \"/a\" }, { src = \"f.txt\", dest = \"/a/b\" }]\n",
        file: "recipe.toml",
        at: (3, 50),
        says: &["/a", "file"],
    },
    Case {
        name: "duplicate layer name",
        recipe: "[[layers]]\nname = \"x\"\n[[layers]]\nname = \"x\"\n",
        file: "recipe.toml",
        at: (4, 8),
        says: &["two layers are named `x`"],
    },
];

fn setup(dir: &Path) {
    write(&dir.join("proj/f.txt"), "x");
    write(&dir.join("outside.txt"), "secret");
    std::os::unix::fs::symlink(dir.join("outside.txt"), dir.join("proj/escape")).unwrap();
    write(&dir.join("proj/cycle-b.toml"), "from = \"recipe.toml\"\n");
}

#[test]
fn each_bad_input_names_the_place_and_writes_nothing() {
    let mut failures = Vec::new();
    for case in CASES {
        let t = tempdir();
        setup(t.path());
        let recipe = t.path().join("proj/recipe.toml");
        write(&recipe, case.recipe);
        let cache = t.path().join("cache");
        let out_dir = t.path().join("out");
        let archive = t.path().join("out.tar");
        let out = stevedore(
            &cache,
            &[
                "build",
                path_str(&recipe),
                "-o",
                &format!("oci:{}", out_dir.display()),
                "-o",
                &format!("docker-archive:{}", archive.display()),
            ],
        );
        let err = stderr(&out);
        let place = format!(
            "{}:{}:{}",
            recipe.with_file_name(case.file).display(),
            case.at.0,
            case.at.1
        );
        let mut problems = Vec::new();
        if out.status.code() != Some(3) {
            problems.push(format!("exit code {:?}, want 3", out.status.code()));
        }
        if !stdout(&out).is_empty() {
            problems.push("stdout is not empty".into());
        }
        if !err.contains(&place) {
            problems.push(format!("does not name {place}"));
        }
        for s in case.says {
            if !err.contains(s) {
                problems.push(format!("does not say {s:?}"));
            }
        }
        if out_dir.exists() || archive.exists() {
            problems.push("wrote output".into());
        }
        let blobs = cache.join("blobs/sha256");
        if blobs.exists() && std::fs::read_dir(&blobs).unwrap().next().is_some() {
            problems.push("wrote blobs to the cache".into());
        }
        if err.contains("secret") {
            problems.push("leaked file content".into());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n--- stderr ---\n{err}",
                case.name,
                problems.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn several_mistakes_are_reported_together() {
    let t = tempdir();
    let recipe = t.path().join("r.toml");
    write(
        &recipe,
        "[config]\nworkdir = \"app\"\nexposed-ports = [\"x\"]\n[[layers]]\nname = \"l\"\ndirs = [{ path = \"rel\" }]\n",
    );
    let out = stevedore(&t.path().join("cache"), &["build", path_str(&recipe)]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3));
    for place in ["r.toml:2:11", "r.toml:3:18", "r.toml:6:18"] {
        assert!(err.contains(place), "missing {place} in:\n{err}");
    }
}

#[test]
fn bad_command_line_and_environment() {
    let t = tempdir();
    write(&t.path().join("r.toml"), "");
    let recipe = t.path().join("r.toml");
    let out = stevedore(
        &t.path().join("c"),
        &["build", path_str(&recipe), "-o", "tarball:x"],
    );
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(stderr(&out).contains("oci:DIR[:TAG] or docker-archive:FILE"));

    let out = stevedore_env(
        &t.path().join("c"),
        &["build", path_str(&recipe)],
        &[("SOURCE_DATE_EPOCH", "yesterday")],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("SOURCE_DATE_EPOCH"),
        "{}",
        stderr(&out)
    );

    let out = stevedore(&t.path().join("c"), &["build", "/nonexistent/recipe.toml"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("/nonexistent/recipe.toml"));
}

/// `SOURCE_DATE_EPOCH` values the image cannot hold are input errors naming the value, for
/// `plan` and `build` alike; before 1970, past 9999, and not numbers. A value past year 9999
/// used to panic when `created` was written.
#[test]
fn source_date_epoch_out_of_range_is_an_input_error() {
    let t = tempdir();
    let recipe = t.path().join("r.toml");
    write(
        &recipe,
        "[image]\nname = \"localhost/sde\"\n[[layers]]\nname = \"l\"\ndirs = [{ path = \"/d\" }]\n",
    );
    let layout = t.path().join("out");
    let out_arg = format!("oci:{}", layout.display());
    for (value, why) in [
        ("253402300800", "after 9999-12-31T23:59:59Z"),
        ("18446744073709551616", "after 9999-12-31T23:59:59Z"),
        ("-1", "before 1970-01-01"),
        ("1.5e9", "not a whole number"),
        ("0x10", "not a whole number"),
    ] {
        for args in [
            vec!["plan", path_str(&recipe)],
            vec!["build", path_str(&recipe), "-o", &out_arg],
        ] {
            let out = stevedore_env(&t.path().join("c"), &args, &[("SOURCE_DATE_EPOCH", value)]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(3), "{value} {args:?}: {err}");
            assert!(
                err.contains(&format!("SOURCE_DATE_EPOCH=\"{value}\"")) && err.contains(why),
                "{value}: {err}"
            );
            assert!(
                !err.contains("panicked") && !err.contains("bug in stevedore"),
                "{err}"
            );
            assert!(!layout.exists());
        }
    }
    // The last second of year 9999 is a valid time.
    let digest = build_ok_env(
        &t.path().join("c"),
        &[path_str(&recipe), "-o", &out_arg],
        &[("SOURCE_DATE_EPOCH", "253402300799")],
    );
    assert!(digest.starts_with("sha256:"));
}
