//! Shell completions and man pages, generated from the command-line definition itself (clap's
//! companion crates), so they can never disagree with the binary that prints them.
//!
//! Generated at run time (`stevedore completions SHELL`, `stevedore man`) rather than by the
//! build script: the build script would need clap as a build dependency, compiled a second time
//! for the host on every clean build and CI run, and a packager or a CI image gets the same
//! files from the binary it installs with one command.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Writes the completion script for `shell` to `out`.
pub fn completions(mut cmd: clap::Command, shell: Shell, out: &mut dyn Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Writes the top-level man page (section 1, roff) to `out`.
pub fn man_page(cmd: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    clap_mangen::Man::new(cmd).render(out)
}

/// Writes `NAME.1` and one page per subcommand (`NAME-build.1`, ...) into `dir`; the files
/// written, sorted.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(cmd, dir)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}
