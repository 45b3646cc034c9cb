fn main() -> anyhow::Result<()> {
    depthkv::cli::main()
}
