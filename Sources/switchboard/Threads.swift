import Foundation
import NIOCore
import NIOPosix

/// The threads a server runs on, set before anything starts.
enum Threads {
    /// One event loop per CPU the process may run on (its affinity: `taskset`, a cpuset),
    /// not per CPU of the machine: a server pinned to one core runs one loop, as a
    /// single-threaded server would, instead of loops that take turns on that core. And
    /// Swift concurrency's jobs (HTTP handlers, commands) run on those loops instead of a
    /// pool of their own, so that a request does not cross threads to be answered.
    /// An operator's `NIO_SINGLETON_GROUP_LOOP_COUNT` still decides, as NIO documents.
    static func configureForServing() {
        if ProcessInfo.processInfo.environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil {
            NIOSingletons.groupLoopCountSuggestion = allowedCPUs() ?? System.coreCount
        }
        concurrencyOnEventLoops = runTasksOnEventLoops()
    }

    /// Whether Swift concurrency's jobs run on the event loops (for the startup log).
    nonisolated(unsafe) static var concurrencyOnEventLoops = false

    /// Installs Swift concurrency's global-executor hook so that jobs run on the event loops
    /// (the current loop when enqueued from one, else the next), as NIO's
    /// `unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor` does, with
    /// one difference: a job runs as the generic executor, not as the loop's serial executor.
    /// Run as the loop's, every return from an async call in nonisolated code (each
    /// middleware, each layer of a request) is a switch to the generic executor that queues
    /// the task again behind whatever the loop has to do; run as the generic executor, it
    /// goes straight on. False if the hook cannot be found (the default pool is used then).
    private static func runTasksOnEventLoops() -> Bool {
        typealias Hook = @convention(thin) (UnownedJob, @convention(thin) (UnownedJob) -> Void) -> Void
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "swift_task_enqueueGlobal_hook") else { return false }
        let slot = symbol.assumingMemoryBound(to: UnsafeRawPointer?.self)
        guard slot.pointee == nil else { return false }
        return withUnsafeTemporaryAllocation(of: Hook.self, capacity: 1) { hook in
            hook.baseAddress!.initialize(to: { job, _ in
                let loop = MultiThreadedEventLoopGroup.currentEventLoop ?? MultiThreadedEventLoopGroup.singleton.next()
                loop.execute { job.runSynchronously(on: globalConcurrentExecutor.asUnownedTaskExecutor()) }
            })
            hook.baseAddress!.withMemoryRebound(to: UnsafeRawPointer.self, capacity: 1) { slot.pointee = $0.pointee }
            return true
        }
    }

    /// How many CPUs this process may run on (`Cpus_allowed_list` of /proc/self/status,
    /// such as `0`, `0-3` or `0,2-3`); nil if that cannot be read.
    static func allowedCPUs() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        var count = 0
        for part in line.dropFirst("Cpus_allowed_list:".count).split(separator: ",") {
            let bounds = part.split(separator: "-").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard let first = bounds.first else { return nil }
            count += (bounds.last ?? first) - first + 1
        }
        return count > 0 ? min(count, System.coreCount) : nil
    }
}
