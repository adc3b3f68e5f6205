import ArgumentParser

@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A real-time API server: REST collections and channels, pushed live over WebSocket.",
        subcommands: [Serve.self, Tail.self],
        defaultSubcommand: Serve.self
    )
}
