//! `serve --config FILE` and `serve --print-config`: the settings of a node from its flags, its
//! `KEYLEDGER_*` environment variables, a TOML file and the built-in defaults, in that order of
//! precedence.
//!
//! Design decision: the file adds nothing clap does not already know. Its keys are the ids of
//! `serve`'s arguments, and each value is checked by that argument's own value parser, then
//! turned back into a `--flag=value` argument for the settings neither a flag nor the
//! environment gave, and the whole command line is parsed again. So a value has the same
//! ranges, conflicts and requirements from a file as on the command line, and a new flag is a
//! config key the day it is added (the tests below check that it is documented, too).

use std::any::TypeId;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Command};

/// The arguments of `serve` that are not settings: the file itself and what to do with it.
const NOT_SETTINGS: [&str; 2] = ["config", "print_config"];

/// The command line, with the config file's settings merged in, and where each came from.
pub(crate) struct Resolved {
    /// The whole command's matches, as if the file's settings had been given as flags.
    pub(crate) matches: ArgMatches,
    /// The config file read, if any.
    file: Option<PathBuf>,
    /// Ids of the `serve` settings whose value came from the file.
    from_file: BTreeSet<String>,
}

/// Why the command line and the config file do not make a valid command.
pub(crate) enum ResolveError {
    /// The command line itself (clap's usage errors, `--help`, `--version`).
    Usage(clap::Error),
    /// The config file, or the file combined with the flags and environment.
    Config(String),
}

/// How a setting is written in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A flag without a value (`--standby`): a boolean; `true` gives the flag.
    Flag,
    /// A flag taking `true` or `false` (`--access-log false`).
    Bool,
    Integer,
    /// Everything else (paths, addresses, durations, names) is a string.
    Text,
}

impl Kind {
    fn of(arg: &Arg) -> Kind {
        if !arg.get_action().takes_values() {
            return Kind::Flag;
        }
        let parsed = arg.get_value_parser().type_id();
        let integers = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<usize>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
        ];
        if parsed == TypeId::of::<bool>() {
            Kind::Bool
        } else if integers.iter().any(|t| parsed == *t) {
            Kind::Integer
        } else {
            Kind::Text
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Flag | Kind::Bool => "a boolean (true or false)",
            Kind::Integer => "an integer",
            Kind::Text => "a string",
        }
    }
}

/// Parses `argv` and, for `serve` with a config file, merges the file's settings in.
pub(crate) fn resolve(command: Command, argv: Vec<OsString>) -> Result<Resolved, ResolveError> {
    let matches = command.clone().try_get_matches_from(&argv).map_err(ResolveError::Usage)?;
    let Some(("serve", serve_matches)) = matches.subcommand() else {
        return Ok(Resolved { matches, file: None, from_file: BTreeSet::new() });
    };
    let Some(file) = serve_matches.get_one::<PathBuf>("config").cloned() else {
        return Ok(Resolved { matches, file: None, from_file: BTreeSet::new() });
    };
    let serve = command.find_subcommand("serve").expect("the command has `serve`").clone();
    let text = std::fs::read_to_string(&file)
        .map_err(|e| ResolveError::Config(format!("cannot read the config file {}: {e}", file.display())))?;
    let settings = read_settings(&serve, &file, &text).map_err(ResolveError::Config)?;

    let mut merged = argv;
    let mut from_file = BTreeSet::new();
    for (id, value) in settings {
        let overridden =
            matches!(serve_matches.value_source(&id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
        if overridden {
            continue;
        }
        let arg = serve.get_arguments().find(|a| a.get_id() == id.as_str()).expect("a known setting");
        let long = arg.get_long().expect("every setting has a long flag");
        match (Kind::of(arg), value.as_str()) {
            (Kind::Flag, "true") => merged.push(format!("--{long}").into()),
            (Kind::Flag, _) => {}
            (_, value) => merged.push(format!("--{long}={value}").into()),
        }
        from_file.insert(id);
    }
    // `serve` takes no positional arguments, so what is appended can only be read as flags.
    let matches = command.try_get_matches_from(&merged).map_err(|e| {
        ResolveError::Config(format!(
            "{} together with the flags and environment: {}",
            file.display(),
            clap_message(&e)
        ))
    })?;
    Ok(Resolved { matches, file: Some(file), from_file })
}

/// The settings of a config file as `(id, value as the flag would take it)`, each checked
/// with its flag's value parser; an error names the file, the key and its line.
fn read_settings(serve: &Command, file: &Path, text: &str) -> Result<Vec<(String, String)>, String> {
    let document = toml_edit::Document::parse(text)
        .map_err(|e| format!("{} is not valid TOML: {}", file.display(), e.to_string().trim_end()))?;
    let table = document.as_table();
    let mut settings = Vec::new();
    for (key, item) in table.iter() {
        let line = table
            .get_key_value(key)
            .and_then(|(k, _)| k.span())
            .or_else(|| item.span())
            .map_or(0, |span| text[..span.start].matches('\n').count() + 1);
        let at = format!("{}:{line}", file.display());
        let Some(arg) = setting(serve, key) else {
            return Err(format!("{at}: unknown key `{key}`{}", suggestion(serve, key)));
        };
        let kind = Kind::of(arg);
        let value = match (kind, item.as_value()) {
            (Kind::Flag | Kind::Bool, Some(toml_edit::Value::Boolean(b))) => b.value().to_string(),
            (Kind::Integer, Some(toml_edit::Value::Integer(i))) => i.value().to_string(),
            (Kind::Text, Some(toml_edit::Value::String(s))) => s.value().clone(),
            _ => return Err(format!("{at}: `{key}` must be {}", kind.describe())),
        };
        if kind != Kind::Flag {
            check_value(arg, &value).map_err(|e| format!("{at}: `{key}`: {}", clap_message(&e)))?;
        }
        settings.push((key.to_string(), value));
    }
    Ok(settings)
}

/// Runs `arg`'s value parser on `value`, alone: the relations between settings (conflicts,
/// requirements) are checked once everything is merged.
fn check_value(arg: &Arg, value: &str) -> Result<(), clap::Error> {
    let long = arg.get_long().expect("every setting has a long flag");
    let alone = arg.clone().requires(clap::builder::Resettable::Reset).conflicts_with(clap::builder::Resettable::Reset);
    Command::new("serve").no_binary_name(true).arg(alone).try_get_matches_from([format!("--{long}={value}")]).map(drop)
}

/// The `serve` argument a config key sets, if it is one.
fn setting<'a>(serve: &'a Command, key: &str) -> Option<&'a Arg> {
    settings(serve).find(|arg| arg.get_id() == key)
}

/// Every argument of `serve` that is a setting, in the order `--help` shows them.
fn settings(serve: &Command) -> impl Iterator<Item = &Arg> {
    serve.get_arguments().filter(|arg| {
        arg.get_long().is_some()
            && !NOT_SETTINGS.contains(&arg.get_id().as_str())
            && !matches!(arg.get_action(), clap::ArgAction::Help | clap::ArgAction::HelpLong | clap::ArgAction::Version)
    })
}

/// ` (did you mean `x`?)` for a key written with dashes, as the flag is.
fn suggestion(serve: &Command, key: &str) -> String {
    let snake = key.replace('-', "_");
    if snake != key && setting(serve, &snake).is_some() {
        format!(" (did you mean `{snake}`?)")
    } else {
        String::new()
    }
}

/// The message of a clap error on one line, without its `error: ` prefix and the usage.
fn clap_message(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let lines: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect();
    let message = lines.join(" ");
    message.strip_prefix("error: ").unwrap_or(&message).to_string()
}

impl Resolved {
    /// The effective settings of `serve` as a TOML file `--config` accepts, each line
    /// annotated with its source. Files named by a setting (the cluster secret, the TLS key)
    /// appear as their paths; nothing is read from them.
    pub(crate) fn describe(&self, command: &Command) -> String {
        let serve = command.find_subcommand("serve").expect("the command has `serve`");
        let matches = self.matches.subcommand_matches("serve").expect("a serve command line");
        let mut out = String::from("# keyledger serve: the effective configuration\n");
        match &self.file {
            Some(file) => writeln!(out, "# config file: {}", file.display()),
            None => writeln!(out, "# config file: none"),
        }
        .expect("writing to a String");
        if let Some(directives) = std::env::var("RUST_LOG").ok().filter(|d| !d.is_empty()) {
            writeln!(out, "# RUST_LOG is set and replaces log_level: {directives}").expect("writing to a String");
        }
        for arg in settings(serve) {
            let id = arg.get_id().as_str();
            let Some(raw) = matches.get_raw(id).and_then(|mut values| values.next()) else {
                writeln!(out, "# {id}: not set").expect("writing to a String");
                continue;
            };
            let raw = raw.to_string_lossy();
            let value = match Kind::of(arg) {
                Kind::Flag | Kind::Bool | Kind::Integer => raw.into_owned(),
                Kind::Text => toml_string(&raw),
            };
            let source = match matches.value_source(id) {
                Some(ValueSource::EnvVariable) => {
                    let name = arg.get_env().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                    format!("env {name}")
                }
                // `standby = false` in the file adds no flag: the value is the default's.
                _ if self.from_file.contains(id) => "file".into(),
                Some(ValueSource::CommandLine) => "flag".into(),
                _ => "default".into(),
            };
            writeln!(out, "{:<40} # {source}", format!("{id} = {value}")).expect("writing to a String");
        }
        out
    }
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            c if c.is_control() => {
                write!(quoted, "\\u{:04X}", u32::from(c)).expect("writing to a String");
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests;
