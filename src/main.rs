// Every write goes through the library's `fsio::WriteDir` (see clippy.toml).
#![deny(clippy::disallowed_methods)]

mod cli;

// Rendering allocates many small values (YAML nodes, JSON maps); mimalloc makes that markedly
// cheaper than the system allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
