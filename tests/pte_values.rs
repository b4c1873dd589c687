//! Every committed fixture reproduces PyTorch eager outputs (tools/make_pte_fixtures.py).
#![cfg(feature = "pte")]

mod common;

use common::replay;

#[test]
fn mlp_portable_matches_pytorch() {
    replay("mlp", 1e-5);
}

#[test]
fn mlp_xnnpack_matches_pytorch() {
    replay("xnnpack", 1e-5);
}

#[test]
fn dynamic_sequence_lengths_match_pytorch() {
    replay("dynamic", 1e-5);
}

#[test]
fn mutable_state_matches_pytorch_call_by_call() {
    replay("stateful", 1e-5);
}

#[test]
fn dtypes_match_pytorch() {
    replay("dtypes", 1e-5);
}

#[test]
fn int8_quantized_matches_pytorch() {
    replay("quantized", 1e-5);
}
