import Testing
@testable import SwitchboardBench

@Suite struct FrameScannerTests {
    private func scan(_ text: String) -> FrameScanner.Push {
        Array(text.utf8).withUnsafeBytes(FrameScanner.scan)
    }

    @Test func readsOffsetAndSendTimeOfABenchMessage() {
        let frame = #"{"channel":"bench","data":{"p":"xxxx","s":7,"t":1795569533811940537},"epoch":"bj6g6tbe","offset":600,"type":"message"}"#
        #expect(scan(frame) == .message(offset: 600, sentAt: 1_795_569_533_811_940_537))
    }

    @Test func aMessageOfOtherDataHasNoSendTime() {
        #expect(scan(#"{"channel":"bench","data":{"t":"soon"},"epoch":"e1","offset":3,"type":"message"}"#) == .message(offset: 3, sentAt: nil))
        #expect(scan(#"{"channel":"bench","data":{"a":{"t":5}},"epoch":"e1","offset":4,"type":"message"}"#) == .message(offset: 4, sentAt: nil))
        #expect(scan(#"{"channel":"bench","data":12,"epoch":"e1","offset":5,"type":"message"}"#) == .message(offset: 5, sentAt: nil))
    }

    @Test func repliesAndBrokenFramesAreNotMessages() {
        #expect(scan(#"{"id":1,"result":{"channel":"bench","epoch":"e1","offset":0,"recovered":false},"type":"reply"}"#) == .other)
        #expect(scan(#"{"client":"3f9a","heartbeat":25,"type":"welcome","version":"0.1.0"}"#) == .other)
        #expect(scan(#"{"channel":"bench","data":1,"epoch":"e1","offset":x,"type":"message"}"#) == .other)
        #expect(scan(#"{"channel":"bench","data":1,"epoch":"e1","offset":99999999999999999999,"type":"message"}"#) == .other)
        #expect(scan("") == .other)
    }
}

@Suite struct BenchTargetTests {
    @Test func derivesTheWebSocketAndREST() throws {
        let target = try BenchTarget(url: "http://127.0.0.1:8199/")
        #expect(target.webSocketURL == "ws://127.0.0.1:8199/v1/ws")
        #expect(target.messagesPath(channel: "chat:a") == "/v1/channels/chat:a/messages")
        let proxied = try BenchTarget(url: "http://[::1]/switchboard")
        #expect(proxied.host == "::1" && proxied.port == 80)
        #expect(proxied.webSocketURL == "ws://[::1]:80/switchboard/v1/ws")
    }

    @Test func refusesTLSAndOtherSchemes() {
        #expect(throws: BenchError.self) { try BenchTarget(url: "https://example.com") }
        #expect(throws: BenchError.self) { try BenchTarget(url: "ftp://example.com") }
        #expect(throws: BenchError.self) { try BenchTarget(url: "127.0.0.1:8080") }
    }
}

@Suite struct BenchResultTests {
    @Test func theJSONLineHasSortedSnakeCaseKeysAndNoNils() throws {
        let result = ConnectionsResult(
            url: "ws://h:1/v1/ws", channel: "bench", threads: 2, count: 2, rate: 0, hold: 1, opened: 2, failed: 0,
            connectErrors: nil, handshakesPerSec: 10, live: 2, disconnects: 0, closeCodes: nil,
            serverRssBeforeKib: nil, serverRssAfterKib: nil, rssPerConnKib: nil
        )
        #expect(try result.jsonLine() == #"{"channel":"bench","count":2,"disconnects":0,"failed":0,"handshakes_per_sec":10,"hold":1,"live":2,"opened":2,"rate":0,"scenario":"connections","threads":2,"url":"ws://h:1/v1/ws"}"#)
    }
}
