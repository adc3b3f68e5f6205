import Foundation
import Testing
@testable import SwitchboardClient

/// The client's rules, without a server: backoff, what each close code means, token expiry.
@Suite("Client rules")
struct ClientRulesTests {
    @Test("backoff: the cap doubles from the base up to the maximum; delays stay within 0…cap")
    func backoff() {
        let backoff = Backoff(base: .milliseconds(250), maximum: .seconds(10))
        #expect(backoff.cap(attempt: 0) == .milliseconds(250))
        #expect(backoff.cap(attempt: 1) == .milliseconds(500))
        #expect(backoff.cap(attempt: 5) == .seconds(8))
        #expect(backoff.cap(attempt: 6) == .seconds(10))
        #expect(backoff.cap(attempt: 1000) == .seconds(10))
        var generator = SystemRandomNumberGenerator()
        for attempt in 0..<12 {
            let delays = (0..<200).map { _ in backoff.delay(attempt: attempt, using: &generator) }
            #expect(delays.allSatisfy { $0 >= .zero && $0 <= backoff.cap(attempt: attempt) })
            // Full jitter: spread over the whole range, not bunched at the cap.
            #expect(delays.min()! < backoff.cap(attempt: attempt) / 4)
        }
    }

    @Test("close codes: what a client does after each (SPEC section 3)")
    func closeCodes() {
        let table: [(UInt16, CloseReason.Reconnect)] = [
            (1000, .no), (1001, .now), (1002, .no), (1006, .withBackoff), (1007, .no), (1008, .no), (1009, .no),
            (1011, .withBackoff), (1012, .now), (4000, .no), (4001, .no), (4003, .no), (4099, .no),
            (4100, .withBackoff), (4101, .withNewToken), (4129, .withBackoff), (4199, .withBackoff),
        ]
        for (code, expected) in table {
            #expect(CloseReason.reconnect(forCode: code) == expected, "\(code)")
        }
        // The server's own reasons agree with the table.
        for reason in [CloseReason.restart, .tokenExpired, .rateLimited, .slowCatchUp, .goingAway("x"), .unauthorized("x"), .tooBig("x")] {
            #expect(CloseReason.reconnect(forCode: reason.code) == reason.reconnect, "\(reason)")
        }
    }

    @Test("token expiry: read from a JWT's exp; refreshed a tenth of its life (at least 5 s) before")
    func tokenExpiry() {
        func jwt(_ claims: String) -> String {
            let body = Data(claims.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            return "eyJhbGciOiJIUzI1NiJ9.\(body).sig"
        }
        #expect(TokenExpiry.expiry(of: jwt(#"{"sub":"a","exp":2000000000}"#)) == Date(timeIntervalSince1970: 2_000_000_000))
        #expect(TokenExpiry.expiry(of: jwt(#"{"sub":"a"}"#)) == nil)
        #expect(TokenExpiry.expiry(of: "an-api-key") == nil)
        let now = Date(timeIntervalSince1970: 1000)
        #expect(TokenExpiry.refreshTime(expiry: now.addingTimeInterval(3600), now: now) == now.addingTimeInterval(3240))
        #expect(TokenExpiry.refreshTime(expiry: now.addingTimeInterval(20), now: now) == now.addingTimeInterval(15))
        #expect(TokenExpiry.refreshTime(expiry: now.addingTimeInterval(2), now: now) == now)
    }

    @Test("server frames decode into what the client acts on")
    func frames() throws {
        #expect(try ServerFrame.decode(#"{"client":"c1","heartbeat":25,"type":"welcome","version":"0.1.0"}"#) == .welcome(client: "c1", heartbeat: 25, version: "0.1.0"))
        #expect(try ServerFrame.decode(#"{"id":7,"result":{"offset":3},"type":"reply"}"#) == .reply(id: 7, result: .success(["offset": 3])))
        #expect(try ServerFrame.decode(#"{"error":{"code":"forbidden","message":"no","temporary":false},"id":8,"type":"reply"}"#)
            == .reply(id: 8, result: .failure(ProtocolError(.forbidden, "no"))))
        #expect(try ServerFrame.decode(#"{"channel":"c","data":[1],"epoch":"e","offset":4,"type":"message"}"#)
            == .message(ReceivedMessage(channel: "c", position: Position(epoch: "e", offset: 4), data: [1])))
        #expect(try ServerFrame.decode(#"{"channel":"c","member":{"client":"x","info":null,"user":"ann"},"type":"join"}"#)
            == .join(channel: "c", member: Member(client: "x", user: "ann", info: nil)))
        #expect(throws: (any Error).self) { try ServerFrame.decode(#"{"type":"message"}"#) }
        #expect(throws: (any Error).self) { try ServerFrame.decode(#"{"type":"surprise"}"#) }
    }
}
