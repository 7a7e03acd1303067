//! keyledger-api (in progress)
