fn main() -> std::process::ExitCode {
    depthkv::cli::main()
}
