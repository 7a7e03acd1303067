//! What the API's counters count by: the result of a verification, why a request was refused
//! `401` or `429`, and how a write ended. Each enum lists its values in `ALL`, in the order of
//! the counters, gives each its slot in that order (`slot`, a `match`, so counting needs no
//! lookup) and its label value.

use keyledger_cluster::{Committed, ProposeError};
use keyledger_model::{Invalid, Outcome};

/// What `POST /v1/verify` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VerifyResult {
    Valid,
    Forbidden,
    Invalid(Invalid),
}

impl VerifyResult {
    /// Every result, in the order of the counters.
    pub(super) const ALL: [VerifyResult; 8] = [
        VerifyResult::Valid,
        VerifyResult::Forbidden,
        VerifyResult::Invalid(Invalid::Malformed),
        VerifyResult::Invalid(Invalid::NotFound),
        VerifyResult::Invalid(Invalid::Disabled),
        VerifyResult::Invalid(Invalid::Expired),
        VerifyResult::Invalid(Invalid::Deleted),
        VerifyResult::Invalid(Invalid::IdentityDisabled),
    ];

    pub(super) fn slot(self) -> usize {
        match self {
            VerifyResult::Valid => 0,
            VerifyResult::Forbidden => 1,
            VerifyResult::Invalid(why) => 2 + invalid_slot(why),
        }
    }

    /// The label: `valid`, `forbidden`, or the answer's `code`.
    pub(super) fn label(self) -> &'static str {
        match self {
            VerifyResult::Valid => "valid",
            VerifyResult::Forbidden => "forbidden",
            VerifyResult::Invalid(why) => why.as_str(),
        }
    }
}

/// Why a request that needs an API key was answered `401 unauthenticated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization: Bearer` header.
    Missing,
    /// The key does not verify, for this reason.
    Invalid(Invalid),
    /// The key verifies but yields no principal (its identity changed in between).
    Other,
}

impl AuthFailure {
    pub(super) const ALL: [AuthFailure; 8] = [
        AuthFailure::Missing,
        AuthFailure::Invalid(Invalid::Malformed),
        AuthFailure::Invalid(Invalid::NotFound),
        AuthFailure::Invalid(Invalid::Disabled),
        AuthFailure::Invalid(Invalid::Expired),
        AuthFailure::Invalid(Invalid::Deleted),
        AuthFailure::Invalid(Invalid::IdentityDisabled),
        AuthFailure::Other,
    ];

    pub(super) fn slot(self) -> usize {
        match self {
            AuthFailure::Missing => 0,
            AuthFailure::Invalid(why) => 1 + invalid_slot(why),
            AuthFailure::Other => 7,
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Invalid(why) => why.as_str(),
            AuthFailure::Other => "other",
        }
    }
}

fn invalid_slot(why: Invalid) -> usize {
    match why {
        Invalid::Malformed => 0,
        Invalid::NotFound => 1,
        Invalid::Disabled => 2,
        Invalid::Expired => 3,
        Invalid::Deleted => 4,
        Invalid::IdentityDisabled => 5,
    }
}

/// Why a request was answered `429 rate_limited`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateLimited {
    /// Its client address failed to authenticate too often this minute.
    AuthFailures,
    /// The caller or the node had as many audit exports running as allowed.
    Exports,
    /// The caller or the node had as many change feeds open as allowed.
    Feeds,
}

impl RateLimited {
    pub(super) const ALL: [RateLimited; 3] = [RateLimited::AuthFailures, RateLimited::Exports, RateLimited::Feeds];

    pub(super) fn slot(self) -> usize {
        self as usize
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            RateLimited::AuthFailures => "auth_failures",
            RateLimited::Exports => "exports",
            RateLimited::Feeds => "feeds",
        }
    }
}

/// How a write requested through the API ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    /// Committed and applied.
    Committed,
    /// Committed, and refused when applied (a rule, a limit, a revision); nothing changed.
    Refused,
    /// A retry with a known `Idempotency-Key`: answered from the first request, nothing new.
    Replayed,
    /// Not proposed (no leader, no quorum): nothing was written.
    Unavailable,
    /// Proposed but not confirmed in time: it may still commit.
    OutcomeUnknown,
}

impl WriteOutcome {
    pub(super) const ALL: [WriteOutcome; 5] = [
        WriteOutcome::Committed,
        WriteOutcome::Refused,
        WriteOutcome::Replayed,
        WriteOutcome::Unavailable,
        WriteOutcome::OutcomeUnknown,
    ];

    pub(crate) fn of(result: &Result<Committed, ProposeError>) -> WriteOutcome {
        match result {
            Ok(Committed { replayed: true, .. }) => WriteOutcome::Replayed,
            Ok(Committed { outcome: Outcome::Rejected(_), .. }) => WriteOutcome::Refused,
            Ok(_) => WriteOutcome::Committed,
            Err(ProposeError::Unavailable(_)) => WriteOutcome::Unavailable,
            Err(ProposeError::OutcomeUnknown(_)) => WriteOutcome::OutcomeUnknown,
        }
    }

    pub(super) fn slot(self) -> usize {
        self as usize
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            WriteOutcome::Committed => "committed",
            WriteOutcome::Refused => "refused",
            WriteOutcome::Replayed => "replayed",
            WriteOutcome::Unavailable => "unavailable",
            WriteOutcome::OutcomeUnknown => "outcome_unknown",
        }
    }
}
