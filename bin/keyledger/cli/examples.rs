//! The EXAMPLES sections of `--help`. Every line starting with `$ keyledger` is a real
//! invocation: a test parses each with the command-line definitions, so none goes stale.

/// `keyledger --help`.
pub(crate) const TOP: &str = "\
Examples:
  Start a node; a new data dir founds a cluster and holds the first admin key:
  $ keyledger serve --data-dir ./keyledger-data
  $ export KEYLEDGER_API_KEY=\"$(cat ./keyledger-data/bootstrap-admin.key)\"

  Create a key for 30 days, list the enabled ones, check one (read from standard input):
  $ keyledger apikey create --name ci-deploy --duration 30d
  $ keyledger apikey list --state enabled
  $ keyledger verify --permission namespace:payments:write

  Remember the cluster's nodes and a key (read from standard input) for later commands:
  $ keyledger login --address http://10.0.0.1:7700,http://10.0.0.2:7700,http://10.0.0.3:7700

  Shell completions and manual pages:
  $ keyledger completions bash
  $ keyledger man --out /usr/local/share/man/man1";

/// `keyledger serve --help`.
pub(crate) const SERVE: &str = "\
Examples:
  One node on loopback (plain HTTP), founding a cluster:
  $ keyledger serve --node-id 1 --listen 127.0.0.1:7700 --data-dir ./node1

  A first node serving HTTPS on the network, then a second joining it with a copy of the
  first's cluster.secret:
  $ keyledger serve --node-id 1 --listen 0.0.0.0:7700 --advertise 10.0.0.1:7700 \\
      --data-dir /var/lib/keyledger --tls-cert node1.pem --tls-key node1-key.pem
  $ keyledger serve --node-id 2 --listen 0.0.0.0:7700 --advertise 10.0.0.2:7700 \\
      --data-dir /var/lib/keyledger --tls-cert node2.pem --tls-key node2-key.pem \\
      --join https://10.0.0.1:7700 --cluster-secret-file ./cluster.secret";

/// `keyledger apikey create --help`.
pub(crate) const APIKEY_CREATE: &str = "\
Examples:
  $ keyledger apikey create --name ci-deploy --duration 30d
  $ keyledger apikey create --name payments-writer --scope namespace:payments:write --file ./payments.key
  $ keyledger apikey create --name backup --service-account-id sa_01 --expires-at 2030-01-31T00:00:00Z
  $ keyledger apikey create --name ci-deploy --duration 90d --output json";

/// `keyledger apikey list --help`.
pub(crate) const APIKEY_LIST: &str = "\
Examples:
  $ keyledger apikey list
  $ keyledger apikey list --state disabled --limit 50
  $ keyledger apikey list --name-contains deploy --output json
  $ keyledger apikey list --identity-type service-account --namespace payments";

/// `keyledger apikey rotate --help`.
pub(crate) const APIKEY_ROTATE: &str = "\
Examples:
  Replace the key named ci-deploy; the old one keeps working for one more hour:
  $ keyledger apikey rotate --name ci-deploy --grace 1h --file ./ci-deploy.key
  $ keyledger apikey rotate --id key_01 --grace 0 --duration 30d";

/// `keyledger apikey delete --help`.
pub(crate) const APIKEY_DELETE: &str = "\
Examples:
  Asks `Delete API key <id> (\"<name>\")? [y/N]` on a terminal:
  $ keyledger apikey delete --name old-ci
  In a script (no terminal) --yes is required:
  $ keyledger apikey delete --id key_01 --yes";

/// `keyledger verify --help`.
pub(crate) const VERIFY: &str = "\
Examples:
  The key is read from standard input, keeping it out of the shell history:
  $ keyledger verify
  $ keyledger verify --permission namespace:payments:write --output json
  Would the key have verified at a past moment, and which event decided it:
  $ keyledger verify --at 2026-01-31T12:00:00Z --key-id key_01
  $ keyledger verify --at 2026-01-31T12:00:00Z --key-name ci-deploy";

/// `keyledger login --help`.
pub(crate) const LOGIN: &str = "\
Examples:
  The key is read from standard input; every node is stored, tried in order:
  $ keyledger login --address https://10.0.0.1:7700,https://10.0.0.2:7700 --cacert ./ca.pem
  A new user redeems the enrollment code it was given for a key of its own:
  $ keyledger login --address http://10.0.0.1:7700 --enroll kle_0123456789 --name laptop";

/// `keyledger audit export --help`.
pub(crate) const AUDIT_EXPORT: &str = "\
Examples:
  $ keyledger audit export --format jsonl --out ./audit.jsonl
  $ keyledger audit verify ./audit.jsonl
  $ keyledger audit export --format csv --from 2026-01-01T00:00:00Z --to 2026-02-01T00:00:00Z";

/// `keyledger cluster status --help`.
pub(crate) const CLUSTER_STATUS: &str = "\
Examples:
  $ keyledger cluster status
  $ keyledger cluster status --address http://10.0.0.1:7700,http://10.0.0.2:7700 --output json";

/// `keyledger cluster add --help`.
pub(crate) const CLUSTER_ADD: &str = "\
Examples:
  Start the new node with --standby, then add it through any member:
  $ keyledger serve --node-id 4 --listen 0.0.0.0:7700 --advertise 10.0.0.4:7700 --standby \\
      --data-dir /var/lib/keyledger --cluster-secret-file ./cluster.secret --insecure-plain-http
  $ keyledger cluster add --node-id 4 --node-address 10.0.0.4:7700 --address http://10.0.0.1:7700";

/// Every EXAMPLES text, for the test that parses them.
#[cfg(test)]
pub(crate) const ALL: [&str; 11] = [
    TOP,
    SERVE,
    APIKEY_CREATE,
    APIKEY_LIST,
    APIKEY_ROTATE,
    APIKEY_DELETE,
    VERIFY,
    LOGIN,
    AUDIT_EXPORT,
    CLUSTER_STATUS,
    CLUSTER_ADD,
];

/// The `keyledger` invocations in an EXAMPLES text, each split into words: lines starting with
/// `$ keyledger`, joined with their `\` continuation lines; double quotes group words.
#[cfg(test)]
pub(crate) fn invocations(text: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(mut command) = line.strip_prefix("$ keyledger ").map(str::to_string) else { continue };
        while command.ends_with('\\') {
            command.pop();
            command.push(' ');
            command.push_str(lines.next().unwrap_or_default());
        }
        let mut words = vec!["keyledger".to_string()];
        let mut word = String::new();
        let mut quoted = false;
        for c in command.chars() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                other => word.push(other),
            }
        }
        if !word.is_empty() {
            words.push(word);
        }
        commands.push(words);
    }
    commands
}
