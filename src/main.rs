fn main() -> std::process::ExitCode {
    // A worker that compiles GPU kernels for the parent's first run (engine/device.rs).
    if depthkv::engine::device::jit_child() {
        return std::process::ExitCode::SUCCESS;
    }
    depthkv::engine::device::enable_jit_warmup();
    depthkv::cli::main()
}
