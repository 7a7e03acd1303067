use std::ffi::OsStr;
use std::io::Write as _;

use clap::CommandFactory;

use super::*;
use crate::Cli;

/// The guide whose table must list every setting.
const GUIDE: &str = include_str!("../../../../docs/configuration.md");
/// The example a package installs at /etc/keyledger/keyledger.toml.
const PACKAGED_EXAMPLE: &str = include_str!("../../../../packaging/keyledger.toml");

/// Values for the settings that have no default, so that every setting can be written in a
/// file. A new flag without a default needs one here, or the round trip below fails.
const SAMPLES: &[(&str, &str)] = &[
    ("join", "\"http://10.0.0.1:7700\""),
    ("cluster_secret_file", "\"/etc/keyledger/cluster.secret\""),
    ("advertise", "\"10.0.0.2:7700\""),
    ("worker_threads", "2"),
    ("tls_cert", "\"/etc/keyledger/tls/node.crt\""),
    ("tls_key", "\"/etc/keyledger/tls/node.key\""),
    ("peer_cacert", "\"/etc/keyledger/tls/ca.crt\""),
];

fn serve_command() -> Command {
    let mut command = Cli::command();
    command.build();
    command.find_subcommand("serve").expect("serve").clone()
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().expect("a temp file");
    file.write_all(text.as_bytes()).expect("write the config");
    file
}

fn resolve_with(file: &Path, flags: &[&str]) -> Result<Resolved, String> {
    let mut argv: Vec<OsString> = vec!["keyledger".into(), "serve".into(), "--config".into(), file.into()];
    argv.extend(flags.iter().map(OsString::from));
    resolve(Cli::command(), argv).map_err(|e| match e {
        ResolveError::Usage(e) => e.to_string(),
        ResolveError::Config(message) => message,
    })
}

/// The `key = value  # source` line of `id` in a description.
fn line_of<'a>(described: &'a str, id: &str) -> &'a str {
    described.lines().find(|l| l.starts_with(&format!("{id} = "))).unwrap_or_else(|| panic!("no {id} in\n{described}"))
}

#[test]
fn every_setting_reads_its_variable_and_is_documented() {
    let serve = serve_command();
    let mut count = 0;
    for arg in settings(&serve) {
        let id = arg.get_id().as_str();
        let env = format!("KEYLEDGER_{}", id.to_uppercase());
        assert_eq!(arg.get_env().and_then(OsStr::to_str), Some(env.as_str()), "`--{id}` must read {env}");
        let row = GUIDE
            .lines()
            .find(|l| l.starts_with(&format!("| `{id}` |")))
            .unwrap_or_else(|| panic!("docs/configuration.md has no table row for `{id}`"));
        let flag = format!("`--{}`", arg.get_long().expect("a long flag"));
        assert!(row.contains(&flag) && row.contains(&env), "the row of `{id}` must name {flag} and {env}: {row}");
        count += 1;
    }
    assert!(count >= 25, "only {count} settings found");
    // A positional argument would be no setting: every argument is a long flag.
    for arg in
        serve.get_arguments().filter(|a| !matches!(a.get_action(), clap::ArgAction::Help | clap::ArgAction::HelpLong))
    {
        assert!(arg.get_long().is_some(), "`{}` has no long flag, so no config key", arg.get_id());
    }
    // And the table names no setting that does not exist.
    let table =
        GUIDE.split("\n## Settings\n").nth(1).and_then(|rest| rest.split("\n## ").next()).expect("a Settings section");
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let key = row.trim_start_matches("| `").split('`').next().unwrap_or_default();
        assert!(setting(&serve, key).is_some(), "docs/configuration.md documents `{key}`, which is no setting");
    }
}

#[test]
fn every_setting_can_be_given_in_a_file_and_its_description_is_a_config_file_too() {
    let serve = serve_command();
    let mut text = String::new();
    for arg in settings(&serve) {
        let id = arg.get_id().as_str();
        let value = match (SAMPLES.iter().find(|(k, _)| *k == id), arg.get_default_values().first()) {
            (Some((_, sample)), _) => sample.to_string(),
            (None, Some(default)) => match Kind::of(arg) {
                Kind::Text => toml_string(&default.to_string_lossy()),
                _ => default.to_string_lossy().into_owned(),
            },
            (None, None) => panic!("`{id}` has no default: add a sample value for it to SAMPLES"),
        };
        writeln!(text, "{id} = {value}").unwrap();
    }
    // `join` and `standby` exclude each other; the file sets `standby = false`.
    let file = config_file(&text);
    let resolved = resolve_with(file.path(), &[]).expect("every setting accepted");
    let described = resolved.describe(&Cli::command());
    for arg in settings(&serve) {
        let line = line_of(&described, arg.get_id().as_str());
        let from_env = arg.get_env().is_some_and(|name| std::env::var_os(name).is_some());
        assert!(from_env || line.ends_with("# file"), "{line}");
    }
    // The description, read back as a config file, describes the same settings.
    let again = config_file(&described);
    let described_again =
        resolve_with(again.path(), &[]).expect("the description is a config file").describe(&Cli::command());
    let settings_only = |d: &str| d.lines().filter(|l| !l.starts_with('#')).map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(settings_only(&described), settings_only(&described_again));
}

#[test]
fn a_flag_beats_the_file_and_the_file_beats_the_default() {
    let file = config_file("node_id = 3\nlisten = \"127.0.0.1:7800\"\n");
    let resolved = resolve_with(file.path(), &["--node-id", "5"]).unwrap();
    let described = resolved.describe(&Cli::command());
    if std::env::var_os("KEYLEDGER_NODE_ID").is_none() {
        assert!(line_of(&described, "node_id").starts_with("node_id = 5 ") && described.contains("# flag"));
    }
    if std::env::var_os("KEYLEDGER_LISTEN").is_none() {
        assert!(line_of(&described, "listen").contains("\"127.0.0.1:7800\""));
        assert!(line_of(&described, "listen").ends_with("# file"));
    }
    if std::env::var_os("KEYLEDGER_SNAPSHOT_LOGS").is_none() {
        assert!(line_of(&described, "snapshot_logs").ends_with("# default"));
    }
    assert!(described.contains("# join: not set"), "{described}");
}

#[test]
fn an_unknown_key_is_named_with_its_file_and_line() {
    let file = config_file("listen = \"127.0.0.1:7800\"\n\ndata-dir = \"/tmp/x\"\n");
    let error = resolve_with(file.path(), &[]).err().expect("refused");
    let expected = format!("{}:3: unknown key `data-dir` (did you mean `data_dir`?)", file.path().display());
    assert_eq!(error, expected);
    for (text, key) in [
        ("config = \"other.toml\"\n", "config"),
        ("print_config = true\n", "print_config"),
        ("[serve]\nlisten = \"x\"\n", "serve"),
    ] {
        let file = config_file(text);
        let error = resolve_with(file.path(), &[]).err().expect("refused");
        assert!(error.contains(&format!("unknown key `{key}`")), "{error}");
    }
}

#[test]
fn a_value_of_the_wrong_type_or_out_of_range_is_refused_as_the_flag_would_be() {
    let cases = [
        ("node_id = \"1\"\n", "`node_id` must be an integer"),
        ("standby = \"yes\"\n", "`standby` must be a boolean"),
        ("listen = 7700\n", "`listen` must be a string"),
        ("access_log = 1\n", "`access_log` must be a boolean"),
        ("snapshot_logs = 0\n", "`snapshot_logs`: invalid value"),
        ("checkpoint_interval = \"0s\"\n", "`checkpoint_interval`: invalid value"),
        ("listen = \"not an address\"\n", "`listen`: invalid value"),
        ("log_format = \"xml\"\n", "`log_format`: invalid value"),
        ("log_level = \"loud\"\n", "`log_level`: invalid value"),
    ];
    for (text, expected) in cases {
        let file = config_file(&format!("# a comment\n{text}"));
        let error = resolve_with(file.path(), &[]).err().unwrap_or_else(|| panic!("{text} accepted"));
        assert!(error.starts_with(&format!("{}:2: ", file.path().display())), "{error}");
        assert!(error.contains(expected), "{text}: {error}");
    }
    let file = config_file("checkpoint_interval = \"0s\"\n");
    let error = resolve_with(file.path(), &[]).err().unwrap();
    assert!(error.contains("must be at least 1s"), "the flag's own message: {error}");
}

#[test]
fn settings_that_exclude_each_other_are_refused_across_file_and_flags() {
    let file = config_file("join = \"http://127.0.0.1:7700\"\n");
    let error = resolve_with(file.path(), &["--standby"]).err().expect("refused");
    assert!(error.contains(&file.path().display().to_string()) && error.contains("--standby"), "{error}");
    let file = config_file("tls_cert = \"/etc/keyledger/node.crt\"\n");
    let error = resolve_with(file.path(), &[]).err().expect("a certificate without its key is refused");
    assert!(error.contains("--tls-key"), "{error}");
}

#[test]
fn a_missing_file_and_bad_toml_are_errors() {
    let error = resolve_with(Path::new("/nonexistent/keyledger.toml"), &[]).err().expect("refused");
    assert!(error.starts_with("cannot read the config file /nonexistent/keyledger.toml"), "{error}");
    let file = config_file("listen = \n");
    let error = resolve_with(file.path(), &[]).err().expect("refused");
    assert!(error.contains("is not valid TOML") && error.contains("line 1"), "{error}");
}

#[test]
fn the_packaged_example_is_accepted_and_production_like() {
    let file = config_file(PACKAGED_EXAMPLE);
    let described = resolve_with(file.path(), &[]).expect("accepted").describe(&Cli::command());
    for expected in ["data_dir = \"/var/lib/keyledger\"", "log_format = \"json\"", "tls_cert = \"/etc/keyledger/"] {
        assert!(described.contains(expected) || std::env::var_os("KEYLEDGER_DATA_DIR").is_some(), "{described}");
    }
}

#[test]
fn strings_are_quoted_so_that_toml_reads_them_back() {
    for text in ["/plain/path", "with \"quotes\" and \\ back", "tab\tnew\nline \u{7f} é"] {
        let document = toml_edit::Document::parse(format!("k = {}", toml_string(text))).expect("valid TOML");
        assert_eq!(document.as_table().get("k").and_then(|i| i.as_str()), Some(text));
    }
}
