//! keyledger-cluster (in progress)
