//! Where a command writes, and how it asks for confirmation.

use std::io::{BufRead, IsTerminal, Write};

use crate::error::{Error, Result};
use crate::escape::escape;

/// A command's terminal: standard output for results, standard error for
/// prompts, hints and progress, standard input for answers.
pub(crate) struct Console {
    /// Results: tables or JSON.
    pub(crate) out: Box<dyn Write + Send>,
    /// Prompts, hints, progress and warnings.
    pub(crate) err: Box<dyn Write + Send>,
    /// Answers to prompts.
    pub(crate) input: Box<dyn BufRead + Send>,
    /// Whether there is someone to ask: stdin is a terminal.
    pub(crate) interactive: bool,
    /// Whether to draw progress bars: stderr is a terminal.
    pub(crate) progress: bool,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("interactive", &self.interactive)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The process's standard streams.
    pub(crate) fn stdio() -> Self {
        Self {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            input: Box::new(std::io::BufReader::new(std::io::stdin())),
            interactive: std::io::stdin().is_terminal(),
            progress: std::io::stderr().is_terminal(),
        }
    }

    /// Asks `question` (yes/no) unless `yes`; refuses when there is no
    /// terminal to ask on, or the answer is not yes.
    pub(crate) fn confirm(&mut self, yes: bool, question: &str) -> Result<()> {
        if yes {
            return Ok(());
        }
        if !self.interactive {
            return Err(Error::Refused(format!(
                "refusing to {question} without confirmation: stdin is not a terminal (pass --yes)"
            )));
        }
        write!(self.err, "{}? [y/N] ", escape(question)).map_err(Error::Output)?;
        self.err.flush().map_err(Error::Output)?;
        let mut answer = String::new();
        self.input.read_line(&mut answer).map_err(Error::Output)?;
        match answer.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(()),
            _ => Err(Error::Refused(
                "not confirmed: nothing was changed".to_owned(),
            )),
        }
    }
}

/// `writeln!` to a console stream, mapping the error.
macro_rules! say {
    ($stream:expr, $($arg:tt)*) => {
        writeln!($stream, $($arg)*).map_err($crate::error::Error::Output)?
    };
}
pub(crate) use say;
