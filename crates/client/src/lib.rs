//! keyledger-client (in progress)
