//! `pss-tune`: Bayesian tuning of the score against labeled history (not built yet).
fn main() {
    eprintln!(
        "pss-tune: not available yet in this version of pss. Tuning against labeled history \
(pss-tune --history DB) depends on the history store, which is still being built. \
Use `pss analyze` to score traces today."
    );
    std::process::exit(2);
}
