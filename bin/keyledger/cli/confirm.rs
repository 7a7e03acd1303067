//! Asking before a delete: on a terminal the user answers `y`; anywhere else (a script, a
//! pipe, CI) the command refuses unless it was given `--yes`, so nothing is deleted by accident.

use std::io::{self, BufRead, IsTerminal, Write};

use anyhow::bail;
use clap::Args;

/// `--yes` / `-y` of every delete command.
#[derive(Debug, Args)]
pub(crate) struct YesArgs {
    /// Delete without asking (needed when standard input is not a terminal).
    #[arg(short = 'y', long)]
    pub(crate) yes: bool,
}

/// Returns once the deletion `question` (e.g. `Delete API key key_1 ("ci")?`) is confirmed:
/// by `--yes`, or by the user answering `y` on the terminal. Otherwise an error says nothing
/// was deleted and, without a terminal, to pass --yes.
pub(crate) fn confirm(question: &str, yes: &YesArgs) -> anyhow::Result<()> {
    if yes.yes {
        return Ok(());
    }
    if !io::stdin().is_terminal() {
        bail!("not deleted: \"{question}\" needs a confirmation and standard input is not a terminal; pass --yes (-y) to delete without asking");
    }
    if ask(question, &mut io::stdin().lock(), &mut io::stderr())? {
        Ok(())
    } else {
        bail!("not deleted: the deletion was not confirmed")
    }
}

/// Writes `question [y/N] ` and reads one line: `true` for `y` or `yes` (any case), `false`
/// for anything else, an empty line and end of input included.
fn ask(question: &str, input: &mut dyn BufRead, prompt: &mut dyn Write) -> io::Result<bool> {
    write!(prompt, "{question} [y/N] ")?;
    prompt.flush()?;
    let mut line = String::new();
    input.read_line(&mut line)?;
    let answer = line.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(typed: &str) -> (bool, String) {
        let mut prompt = Vec::new();
        let yes = ask("Delete API key key_1 (\"ci\")?", &mut typed.as_bytes(), &mut prompt).unwrap();
        (yes, String::from_utf8(prompt).unwrap())
    }

    #[test]
    fn only_y_or_yes_confirms() {
        for typed in ["y\n", "Y\n", "yes\n", " YES \n", "y"] {
            assert!(answer(typed).0, "{typed:?}");
        }
        for typed in ["\n", "", "n\n", "no\n", "yy\n", "sure\n", "ye\n"] {
            assert!(!answer(typed).0, "{typed:?} must not confirm");
        }
        assert_eq!(answer("n\n").1, "Delete API key key_1 (\"ci\")? [y/N] ");
    }

    #[test]
    fn yes_skips_the_question() {
        assert!(confirm("Delete?", &YesArgs { yes: true }).is_ok());
    }
}
