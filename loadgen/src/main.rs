//! The `ringway-load` binary: the allocator and the CLI, nothing else.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ringway_load::cli::main()
}
