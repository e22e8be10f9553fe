//! `pss-tune`: see `pss-tune --help`.
fn main() {
    std::process::exit(pss::cli::run_pss_tune(std::env::args_os()));
}
