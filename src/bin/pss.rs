//! `pss`: see `pss --help`.
fn main() {
    std::process::exit(pss::cli::run_pss(std::env::args_os()));
}
