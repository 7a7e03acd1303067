//! `keyledger completions SHELL` and `keyledger man`: shell completion scripts and roff manual
//! pages, generated from the same clap definitions that parse the command line, so they can
//! never describe flags the binary does not have.

use std::io::{self, Write};
use std::path::Path;

use anyhow::Context;
use clap_complete::Shell;

/// Writes the completion script for `shell` to stdout.
pub(crate) fn completions(shell: Shell, mut command: clap::Command) -> io::Result<()> {
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut command, "keyledger", &mut buffer);
    let mut stdout = io::stdout().lock();
    stdout.write_all(&buffer)?;
    stdout.flush()
}

/// Without `out`: the main page (`keyledger.1`) to stdout. With it: `keyledger.1` and one page
/// per subcommand (`keyledger-apikey.1`, `keyledger-apikey-create.1`, ...) written into `out`,
/// which is created if missing.
pub(crate) fn man(out: Option<&Path>, command: clap::Command) -> anyhow::Result<()> {
    let Some(dir) = out else {
        let mut buffer = Vec::new();
        clap_mangen::Man::new(command).render(&mut buffer)?;
        let mut stdout = io::stdout().lock();
        stdout.write_all(&buffer)?;
        return Ok(stdout.flush()?);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(command, dir).with_context(|| format!("cannot write the pages into {}", dir.display()))?;
    eprintln!("Wrote the manual pages to {}.", dir.display());
    Ok(())
}
