//! Black-box tests of keyledger: real `keyledger` processes on loopback ports, driven over
//! HTTP (the typed client, or plain requests for input the client cannot express) and through
//! the command line. One test binary, so the workspace is linked once and the tests of every
//! module run in parallel; each test has its own nodes, ports and directories.
//!
//! Modules:
//! - `axum_auth`: the `keyledger-axum` layer on an axum app against a real node: identities,
//!   401/403, an unreachable address passed over, the revocation barrier over a cached verdict.
//! - `audit`: a key's history, audit event pages and filters, who may read them, the streamed
//!   export (JSON lines, CSV) and the `history` / `audit` commands.
//! - `backup`: `admin backup` from a follower while writes go on, `admin restore` into a new
//!   dir, a new 3-node cluster on it with the same ledger, verdicts and checkpoints; the
//!   operator only; a non-empty dir and a truncated file refused.
//! - `checkpoints`: signed checkpoints, the public keys, inclusion and consistency proofs
//!   through the API and the CLI, checked offline; a new leader signing after a failover.
//! - `hostile`: hostile callers: a burst of bad keys (429 per address), caps on exports and
//!   change feeds per caller, unread exports, SIGTERM with feeds open, the data dir's modes,
//!   `--file` paths that cannot be written, `Bearer` in any case.
//! - `util`: starts, kills and restarts nodes; free ports; temp dirs; polling with deadlines.
//! - `secret_rotation`: the cluster secret rotated by three rolling restarts (stage, promote,
//!   retire) with writes through every node between them; the old secret refused afterwards.
//! - `shutdown`: SIGTERM on a follower and on the leader: clean exits, writes go on, rejoining
//!   from the state saved at shutdown.
//! - `single_node`: bootstrap, the key lifecycle, listing and paging, ETag, verify answers.
//! - `replay`: an account as of a past moment from a node and from its data dir, and `admin rebuild`.
//! - `restart`: a node killed with SIGKILL restarts on its data dir with everything kept.
//! - `errors`: 401, 404, 400, 413, 409, each with the JSON error shape and nothing written.
//! - `cluster`: three voters, writes on followers, verify on every node, a follower catching up.
//! - `chaos`: a short run of the chaos harness (`crates/chaos`): kills and partitions under
//!   concurrent traffic, then linearizability, identical ledgers, nothing acknowledged lost.
//! - `console`: the web console in headless Chromium: sign-in with a key and with an enrollment
//!   code, a key created and its secret shown once, a disable seen by the API, a `read` user and
//!   a second account seeing only their own, a forged form refused, sign-out and a disabled key
//!   ending the session; the security headers.
//! - `config`: `serve --config FILE`, `KEYLEDGER_*` variables and flags in their order of
//!   precedence (by `--print-config` and by where a node listens and stores), unknown keys refused
//!   before anything is created, no secret file's content printed, the packaged example; JSON logs
//!   and the access log (method, route, status, request id, the caller's key id, no secret).
//! - `consistency`: `consistency=linearizable` reads on a follower that just restarted, and
//!   without a leader.
//! - `crash_loop`: random SIGKILLs during writes: every acknowledged write kept, identical
//!   ledgers that verify offline (`scripts/crash-loop N` for a long run).
//! - `disk_full`: a node on a small tmpfs below its disk reserve refuses writes (503), goes on
//!   verifying, resumes when space returns, and loses nothing acknowledged.
//! - `failover`: a killed leader (writes resume, nothing lost, ledgers identical) and lost quorum.
//! - `snapshot`: a node joining after log compaction receives the whole ledger by snapshot.
//! - `idempotency`: retried writes with an `Idempotency-Key` answer once and write once.
//! - `cli`: the command-line client's output and exit codes.
//! - `cli_parity`: a command for every API operation, its JSON checked against the server's state.
//! - `cli_usability`: several addresses with failover past a dead port and a killed node (and
//!   `login` storing them), confirmation before deleting, a key selected by its exact name,
//!   errors that say what to do next, `keyledger health`.
//! - `packaging`: the release tarball's contents and checksums, the systemd unit's hardening
//!   (and `systemd-analyze verify` where systemd is installed).
//! - `identities`: users, service accounts, namespaces, settings and accounts: shapes, who may
//!   see and change them, refusals.
//! - `metrics`: `GET /metrics` parses as Prometheus text; verifications, requests by route,
//!   requests without a valid key and writes are counted exactly; one leader on three nodes.
//! - `nginx`: Debian's nginx with the `auth_request` configuration of `docs/integrate.md` in
//!   front of an app: only valid keys reach it, with identity headers a client cannot forge;
//!   403 without the permission; a disabled key refused at once.
//! - `membership`: adding a standby node through the API, removing live and dead nodes, a
//!   removed node refusing to serve; five nodes with two down; adding a member where nothing
//!   or a silent listener answers changes nothing; a member that cannot catch up stays a
//!   learner and can be removed, cancelling its addition.
//! - `peer_auth`: the node-to-node routes refuse requests not signed for the node (a forged
//!   leader, vote or removal changes nothing; the bare secret and replays are refused); a
//!   listener added as a member captures nothing usable; a node with the wrong secret cannot
//!   join; the AppendEntries stream drops a peer that sends garbage.
//! - `enrollment`: a new user redeems its one-time code for its own key (once; a fresh code
//!   voids the old; rank decides who may issue), nobody mints another user's key, `login --enroll`.
//! - `leaked`: leak reports without a credential: the same `202 {}` for any key, the key
//!   disabled (or deleted, or left) as the account says, one `leaked` event per key.
//! - `privilege`: rank (an admin cannot take over the owner through its keys), accounts by the
//!   operator only, caps as settings (`409 limit_exceeded`), paged lists, bidi-free names, and
//!   rotating the bootstrap key as README says.
//! - `key_batch`: `POST /v1/keys/batch`: each item created once or refused alone as a single
//!   create would be, a malformed item refuses the whole batch, retries with `Idempotency-Key`.
//! - `key_ops`: update with `If-Match`, lock, rotate and its defaults, scopes, list filters.
//! - `upgrade`: mixed releases: a peer of another protocol refused with `409 protocol_mismatch`
//!   naming both releases (the raft stream too); a data dir stamped by a later release refused
//!   and left as it was.
//! - `tls`: HTTPS for the CLI, the client and peers; plain HTTP refused off loopback; 5,000
//!   half-open connections, the connection cap and the header-read timeout.
//! - `usage`: one `used` event per key per `last_used_granularity`, however many nodes verify
//!   it; the granularity as the operator's setting.
//! - `webhooks`: deliveries signed and in ledger order, retries with the attempts in the
//!   delivery log, a killed leader mid-stream (nothing lost, a repeat keeps its id), refused
//!   URLs, other accounts and lesser roles; `webhook_receiver` is the test receiver.
//! - `workflows`: the seed workflows end to end (rotation, self-rotating service accounts,
//!   namespace admins, locks, limits, the creation switch, expiry, last use, permissions).

mod audit;
mod axum_auth;
mod backup;
mod chaos;
mod checkpoints;
mod cli;
mod cli_parity;
mod cli_usability;
mod cluster;
mod config;
mod consistency;
mod console;
mod crash_loop;
mod disk_full;
mod enrollment;
mod errors;
mod failover;
mod hostile;
mod idempotency;
mod identities;
mod key_batch;
mod key_ops;
mod leaked;
mod membership;
mod metrics;
mod nginx;
mod packaging;
mod peer_auth;
mod privilege;
mod replay;
mod restart;
mod secret_rotation;
mod shutdown;
mod single_node;
mod snapshot;
mod tls;
mod upgrade;
mod usage;
mod util;
mod webhook_receiver;
mod webhooks;
mod workflows;
