fn main() -> std::process::ExitCode {
    pqom_gateway::cli::main()
}
