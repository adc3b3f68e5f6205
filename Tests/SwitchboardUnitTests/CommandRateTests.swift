import Testing
import SwitchboardCore

@Suite("Command rate")
struct CommandRateTests {
    @Test("a burst runs, then each command is refused, and another burst refused in a row closes; a command that runs starts the count again")
    func verdicts() {
        let start = ContinuousClock.now
        var rate = CommandRate(perSecond: 10, burst: 3, now: start)
        #expect((0..<3).map { _ in rate.admit(now: start) } == [.run, .run, .run])
        #expect((0..<3).map { _ in rate.admit(now: start) } == [.refuse, .refuse, .refuse])
        // 0.1 s later one token has come back: it runs, and the refusals count from zero.
        let later = start + .milliseconds(100)
        #expect(rate.admit(now: later) == .run)
        #expect((0..<4).map { _ in rate.admit(now: later) } == [.refuse, .refuse, .refuse, .close])
    }
}
