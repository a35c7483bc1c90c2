//! The `meshline` binary.

fn main() -> std::process::ExitCode {
    meshline::cli::main()
}
