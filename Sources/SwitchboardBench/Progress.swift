import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A status line on stderr once a second while a scenario runs: rewritten in place on a
/// terminal, one line a second otherwise.
final class Progress: Sendable {
    /// Whether it wrote anything.
    private let task: Task<Bool, Never>?
    private let inPlace = isatty(STDERR_FILENO) != 0

    /// `line` gets the newest sample, the one before (nil the first time) and the seconds
    /// between them.
    init<Sample: Sendable>(
        enabled: Bool,
        sample: @escaping @Sendable () async throws -> Sample,
        line: @escaping @Sendable (_ now: Sample, _ before: Sample?, _ seconds: Double) -> String
    ) {
        guard enabled else {
            task = nil
            return
        }
        let inPlace = self.inPlace
        task = Task {
            var before: (sample: Sample, at: ContinuousClock.Instant)?
            while true {
                do { try await Task.sleep(for: .seconds(1)) } catch { return before != nil }
                guard let now = try? await sample() else { continue }
                let at = ContinuousClock.now
                let seconds = before.map { $0.at.duration(to: at) / .seconds(1) } ?? 1
                let text = line(now, before?.sample, seconds)
                before = (now, at)
                writeStandardError(inPlace ? "\r\(text)\u{1B}[K" : "\(text)\n")
            }
        }
    }

    func stop() async {
        guard let task else { return }
        task.cancel()
        if await task.value, inPlace { writeStandardError("\n") }
    }
}

func writeStandardError(_ text: String) {
    FileHandle.standardError.write(Data(text.utf8))
}
