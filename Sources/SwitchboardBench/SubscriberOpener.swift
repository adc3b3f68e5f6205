import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What opening the subscribers came to.
struct OpenReport: Sendable {
    var subscribers: [Subscriber] = []
    /// Failures by reason.
    var failures: [String: Int] = [:]
    /// From the first handshake to the last one finishing.
    var seconds = 0.0

    var handshakesPerSecond: Double { seconds > 0 ? Double(subscribers.count) / seconds : 0 }
}

/// Opens `count` subscribers at up to `rate` handshakes a second (0: no limit), with at most
/// `concurrency` in flight. Its bookkeeping is confined to one event loop; the connections
/// themselves spread over the group.
final class SubscriberOpener {
    static func open(count: Int, rate: Int, concurrency: Int, client: WebSocketClient, on loop: any EventLoop) async throws -> OpenReport {
        try await loop.flatSubmit {
            SubscriberOpener(count: count, rate: rate, concurrency: concurrency, client: client, loop: loop).start()
        }.get()
    }

    private let count: Int
    private let rate: Int
    private let concurrency: Int
    private let client: WebSocketClient
    private let loop: any EventLoop
    private let done: EventLoopPromise<OpenReport>
    private let startTime = NIODeadline.now()
    private var started = 0
    private var finished = 0
    private var timer: Scheduled<Void>?
    private var report = OpenReport()

    private init(count: Int, rate: Int, concurrency: Int, client: WebSocketClient, loop: any EventLoop) {
        self.count = count
        self.rate = rate
        self.concurrency = max(1, concurrency)
        self.client = client
        self.loop = loop
        self.done = loop.makePromise()
    }

    private func start() -> EventLoopFuture<OpenReport> {
        if count == 0 { done.succeed(report) } else { pump() }
        return done.futureResult
    }

    /// Starts every handshake that the rate and the concurrency allow now.
    private func pump() {
        while started < count, started - finished < concurrency {
            if rate > 0 {
                let due = startTime + .nanoseconds(Int64(Double(started) * 1e9 / Double(rate)))
                if due > .now() {
                    wake(at: due)
                    return
                }
            }
            started += 1
            client.connect().hop(to: loop).assumeIsolated().whenComplete { self.finish($0) }
        }
    }

    private func wake(at deadline: NIODeadline) {
        guard timer == nil else { return }
        timer = loop.assumeIsolated().scheduleTask(deadline: deadline) {
            self.timer = nil
            self.pump()
        }
    }

    private func finish(_ result: Result<Subscriber, any Error>) {
        finished += 1
        switch result {
        case .success(let subscriber): report.subscribers.append(subscriber)
        case .failure(let error): report.failures[failureReason(error), default: 0] += 1
        }
        if finished == count {
            report.seconds = Double((NIODeadline.now() - startTime).nanoseconds) / 1e9
            done.succeed(report)
        } else {
            pump()
        }
    }
}

/// A short reason to count failures by: connection errors differ only in their addresses.
func failureReason(_ error: any Error) -> String {
    switch error {
    case let error as NIOConnectionError:
        error.connectionErrors.first.map { failureReason($0.error) } ?? "could not resolve the host"
    case let error as IOError:
        "connect: \(String(cString: strerror(error.errnoCode)))"
    case let error as ChannelError:
        if case .connectTimeout = error { "connect timed out" } else { String(describing: error) }
    default:
        String(describing: error)
    }
}
