import ArgumentParser
import Foundation
import JWTKit
import SwitchboardCore

/// `switchboard token`: mints a development JWT (HS256) with SWITCHBOARD_JWT_SECRET.
struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint a JWT for development, signed with SWITCHBOARD_JWT_SECRET (HS256)."
    )

    @Option(help: "The user (sub claim).")
    var sub: String

    @Option(help: "Channels it may subscribe to, comma-separated patterns ('chat:*').")
    var channels: String?

    @Option(help: "Channels it may publish to, comma-separated patterns.")
    var publish: String?

    @Option(help: "Collections it may read, comma-separated patterns.")
    var read: String?

    @Option(help: "Collections it may write, comma-separated patterns.")
    var write: String?

    @Option(help: "The info claim, as JSON (shown in presence).")
    var info: String?

    @Option(help: "Lifetime: 30s, 15m, 1h, 7d (default 1h).")
    var ttl: String = "1h"

    func validate() throws {
        guard Self.seconds(ttl) != nil else { throw ValidationError("--ttl must be a number followed by s, m, h or d, like 1h") }
        if let info, (try? JSONValue.parse(info)) == nil { throw ValidationError("--info must be JSON") }
    }

    func run() async throws {
        guard let secret = ProcessInfo.processInfo.environment["SWITCHBOARD_JWT_SECRET"], !secret.isEmpty else {
            throw ValidationError("set SWITCHBOARD_JWT_SECRET (at least 32 bytes) to the server's secret")
        }
        guard secret.utf8.count >= 32 else {
            throw ValidationError("SWITCHBOARD_JWT_SECRET is \(secret.utf8.count) bytes; HS256 needs at least 32")
        }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        let claims = MintedClaims(
            sub: SubjectClaim(value: sub),
            exp: ExpirationClaim(value: Date().addingTimeInterval(Self.seconds(ttl)!)),
            channels: Self.list(channels),
            publish: Self.list(publish),
            collections: (read == nil && write == nil) ? nil : .init(read: Self.list(read), write: Self.list(write)),
            info: try info.map { try JSONValue.parse($0) }
        )
        print(try await keys.sign(claims))
    }

    static func list(_ text: String?) -> [String]? {
        text.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    static func seconds(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let n = Double(text.dropLast()), n > 0 else { return nil }
        switch unit {
        case "s": return n
        case "m": return n * 60
        case "h": return n * 3600
        case "d": return n * 86400
        default: return nil
        }
    }
}

struct MintedClaims: JWTPayload {
    struct CollectionGrants: Codable, Sendable {
        var read: [String]?
        var write: [String]?
    }

    var sub: SubjectClaim
    var exp: ExpirationClaim
    var channels: [String]?
    var publish: [String]?
    var collections: CollectionGrants?
    var info: JSONValue?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}
