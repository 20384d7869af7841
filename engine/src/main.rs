//! The `ringway` binary: the allocator and the CLI.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(ringway::cli::main());
}
