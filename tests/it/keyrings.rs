//! The archive keyrings built into stevedore: a recipe for Debian's or Ubuntu's archives works
//! from any folder without a `keyring` line, with the same lockfile inputs as with the file;
//! any other archive must still name its keyring, and the error points at the recipe line.

use crate::common::*;

use std::path::Path;

/// A repository recipe copied alone into an empty folder: no keyrings/ beside it.
fn alone(t: &Path, name: &str) -> std::path::PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dest = t.join(name);
    std::fs::copy(repo.join("recipes").join(name), &dest).unwrap();
    let text = std::fs::read_to_string(&dest).unwrap();
    assert!(!text.contains("keyring"), "{name} still names a keyring");
    dest
}

/// The `inputs = "…"` line of a lockfile: what the keyring digest enters.
fn inputs_line(lock: &Path) -> String {
    std::fs::read_to_string(lock)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("inputs"))
        .unwrap_or_else(|| panic!("no inputs line in {}", lock.display()))
        .to_string()
}

/// bookworm from the real mirror, locked from a folder holding only the recipe; then the same
/// recipe naming the committed keyring file explicitly locks to the very same lockfile (inputs
/// hash included): the built-in keyring is the same bytes, so locks and cache keys do not move
/// when a recipe drops its `keyring` line. (The graph test builds bookworm and xenial end to end
/// from recipes with no keyrings/ beside them.)
#[test]
fn bookworm_locks_alone_and_the_same_as_with_the_keyring_file() {
    let t = tempdir();
    let dir = t.path().join("alone");
    std::fs::create_dir(&dir).unwrap();
    let recipe = alone(&dir, "debian-bookworm.toml");
    let cache = t.path().join("cache");
    let out = stevedore(&cache, &["lock", path_str(&recipe)]);
    assert!(out.status.success(), "{}", stderr(&out));

    let explicit_dir = t.path().join("explicit");
    std::fs::create_dir(&explicit_dir).unwrap();
    let keyring = Path::new(env!("CARGO_MANIFEST_DIR")).join("keyrings/debian-archive-keyring.gpg");
    let text = std::fs::read_to_string(&recipe).unwrap().replace(
        "components = [\"main\"]\n",
        &format!(
            "components = [\"main\"]\nkeyring = \"{}\"\n",
            keyring.display()
        ),
    );
    assert_eq!(text.matches("keyring =").count(), 2, "{text}");
    let explicit = explicit_dir.join("debian-bookworm.toml");
    write(&explicit, &text);
    let out = stevedore(&cache, &["lock", path_str(&explicit)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = std::fs::read_to_string(recipe.with_extension("lock")).unwrap();
    assert!(lock.contains("name = \"dpkg\""), "{lock}");
    assert_eq!(
        inputs_line(&explicit.with_extension("lock")),
        inputs_line(&recipe.with_extension("lock"))
    );
    assert_eq!(
        std::fs::read_to_string(explicit.with_extension("lock")).unwrap(),
        lock
    );
}

/// An archive stevedore ships no keyring for still needs one: exit 3, naming the recipe line
/// of the mirrors and the mirror, before anything is fetched or written.
#[test]
fn another_archive_without_a_keyring_is_refused_at_its_line() {
    let t = tempdir();
    let recipe = t.path().join("recipe.toml");
    write(
        &recipe,
        "[image]\nname = \"localhost/x\"\n\n[[sources]]\nmirrors = [\"http://127.0.0.1:9/debian\"]\nsuites = [\"stable\"]\n\n[[layers]]\nname = \"pkgs\"\npackages = [\"hello\"]\n",
    );
    let mixed = t.path().join("mixed.toml");
    write(
        &mixed,
        "[[sources]]\nmirrors = [\"http://deb.debian.org/debian\", \"http://mirror.example.com/debian\"]\nsuites = [\"bookworm\"]\n\n[[layers]]\nname = \"pkgs\"\npackages = [\"hello\"]\n",
    );
    let cache = t.path().join("cache");
    for (file, at, mirror) in [
        (&recipe, "recipe.toml:5:11", "127.0.0.1:9"),
        (&mixed, "mixed.toml:2:11", "mirror.example.com"),
    ] {
        for cmd in ["plan", "build", "lock"] {
            let out = stevedore(&cache, &[cmd, path_str(file)]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(3), "{cmd}: {err}");
            assert!(err.contains(at), "{cmd}: does not name {at}: {err}");
            assert!(err.contains("no keyring for this archive"), "{err}");
            assert!(err.contains(mirror), "{err}");
            assert!(err.contains("add keyring ="), "{err}");
            assert!(stdout(&out).is_empty());
            assert!(!file.with_extension("lock").exists());
        }
    }
}
