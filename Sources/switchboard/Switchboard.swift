import ArgumentParser
import Foundation

@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A real-time API server: REST collections and channels, pushed live over WebSocket.",
        subcommands: [Serve.self, Tail.self, Token.self, Simulate.self, Bench.self],
        defaultSubcommand: Serve.self
    )

    /// Parse errors are one line naming the problem (help still prints in full).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if command is Serve { Threads.configureForServing() }
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is ExitCode || error is CleanExit { exit(withError: error) }
            let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("switchboard: error: \(message) (see switchboard --help)\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }
}
