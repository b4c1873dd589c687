//! The test target kind: the same check from an integration test of the dependent crate.

#[test]
fn every_family_matches_the_reference_goldens() {
    let n = diffulex_downstream::check_goldens(&diffulex_downstream::repository()).unwrap();
    assert!(n >= 4, "only {n} cases");
}
