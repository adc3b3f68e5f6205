import Foundation
import JWTKit
import SwitchboardCore

/// Makes JWTs for tests: any claims, any key, and hand-built hostile ones.
enum Tokens {
    static let secret = "test-secret-that-is-long-enough-for-hs256-0123456789"
    static let apiKey = "test-api-key-0123456789abcdef"

    /// Claims as plain JSON, so tests can send missing or wrongly typed ones.
    struct Claims: JWTPayload {
        var value: JSONValue
        init(_ value: JSONValue) { self.value = value }
        init(from decoder: any Decoder) throws { value = try JSONValue(from: decoder) }
        func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func hs256(_ claims: JSONValue, secret: String = Tokens.secret) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return try await keys.sign(Claims(claims))
    }

    /// A token for `sub` with grants, valid for `ttl` seconds.
    static func user(
        _ sub: String,
        channels: [String] = [],
        publish: [String]? = nil,
        read: [String] = [],
        write: [String] = [],
        info: JSONValue? = nil,
        ttl: TimeInterval = 3600
    ) async throws -> String {
        var claims: [String: JSONValue] = [
            "sub": .string(sub),
            "exp": .int(Int64(Date().timeIntervalSince1970 + ttl)),
            "channels": .array(channels.map(JSONValue.string)),
            "collections": ["read": .array(read.map(JSONValue.string)), "write": .array(write.map(JSONValue.string))],
        ]
        if let publish { claims["publish"] = .array(publish.map(JSONValue.string)) }
        if let info { claims["info"] = info }
        return try await hs256(.object(claims))
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// `header.payload.` with no signature, as an `alg: none` attack sends it.
    static func unsigned(_ claims: JSONValue) -> String {
        let header = base64URL(Data(#"{"alg":"none","typ":"JWT"}"#.utf8))
        return header + "." + base64URL(Data(claims.serialized.utf8)) + "."
    }
}

/// Files made with the openssl command line: keys and a self-signed certificate.
enum OpenSSL {
    static func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["openssl"] + arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw TestFailure("openssl \(arguments.first ?? "") failed") }
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-keys-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// An RSA key pair: (private PEM path, public PEM path).
    static func rsaKeyPair() throws -> (privateKey: String, publicKey: String) {
        let dir = try temporaryDirectory()
        let key = dir.appendingPathComponent("rsa.pem").path
        let pub = dir.appendingPathComponent("rsa.pub.pem").path
        try run(["genrsa", "-out", key, "2048"])
        try run(["rsa", "-in", key, "-pubout", "-out", pub])
        return (key, pub)
    }

    /// A self-signed certificate for 127.0.0.1: (certificate path, key path).
    static func selfSignedCertificate() throws -> (certificate: String, key: String) {
        let dir = try temporaryDirectory()
        let cert = dir.appendingPathComponent("cert.pem").path
        let key = dir.appendingPathComponent("key.pem").path
        try run([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        return (cert, key)
    }
}
