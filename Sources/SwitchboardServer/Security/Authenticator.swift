import Crypto
import Foundation
import JWTKit
import SwitchboardCore

/// Turns a presented credential (the API key or a JWT) into an `Identity`.
///
/// Tokens never reach a log: errors describe what is wrong with a token, never the token.
public final class Authenticator: Sendable {
    private let apiKeyDigest: [UInt8]?
    private let keys: JWTKeyCollection?
    public let developmentMode: Bool

    /// Fails with a clear message for a short HS256 secret or an unreadable key file.
    public init(configuration: ServerConfiguration) async throws(ConfigurationError) {
        developmentMode = configuration.developmentMode
        apiKeyDigest = configuration.apiKey.map { Array(SHA256.hash(data: Data($0.utf8))) }
        guard configuration.jwtSecret != nil || configuration.jwtPublicKeyFile != nil || configuration.jwksFile != nil else {
            keys = nil
            return
        }
        let keys = JWTKeyCollection()
        if let secret = configuration.jwtSecret {
            guard secret.utf8.count >= 32 else {
                throw ConfigurationError(
                    "SWITCHBOARD_JWT_SECRET is \(secret.utf8.count) bytes; HS256 needs at least 32 (try: openssl rand -base64 48)"
                )
            }
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        }
        if let path = configuration.jwtPublicKeyFile {
            let pem: String
            do {
                pem = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ConfigurationError("cannot read JWT public key file \(path)")
            }
            if let rsa = try? Insecure.RSA.PublicKey(pem: pem) {
                await keys.add(rsa: rsa, digestAlgorithm: .sha256, kid: "rs256")
            } else if let ec = try? ES256PublicKey(pem: pem) {
                await keys.add(ecdsa: ec, kid: "es256")
            } else {
                throw ConfigurationError("JWT public key file \(path) holds no RSA or P-256 public key in PEM")
            }
        }
        if let path = configuration.jwksFile {
            do {
                let json = try String(contentsOfFile: path, encoding: .utf8)
                try await keys.add(jwksJSON: json)
            } catch {
                throw ConfigurationError("cannot load JWKS file \(path): \(error)")
            }
        }
        self.keys = keys
    }

    /// What a credential says without waiting: no credential, the API key, or a token to verify.
    public enum Identification: Sendable {
        case identified(Identity)
        case token(String)
    }

    /// The identity of `credential` when it needs no token verification (none presented, or
    /// the API key), else the token to verify: handshakes without a token are accepted with
    /// no task of their own.
    public func identifyAtOnce(_ credential: String?) -> Identification {
        guard let credential, !credential.isEmpty else {
            return .identified(developmentMode ? .development : .anonymous)
        }
        if let apiKeyDigest, Self.constantTimeEqual(Array(SHA256.hash(data: Data(credential.utf8))), apiKeyDigest) {
            return .identified(.apiKey)
        }
        return .token(credential)
    }

    /// The identity of a request or connection that presented `credential` (nil: none presented).
    public func identify(_ credential: String?) async throws(ProtocolError) -> Identity {
        switch identifyAtOnce(credential) {
        case .identified(let identity): identity
        case .token(let token): try await verify(token: token)
        }
    }

    /// Verifies a JWT (for `auth`, `refresh` and handshakes).
    public func verify(token: String) async throws(ProtocolError) -> Identity {
        guard let keys else {
            if developmentMode { return .development }
            throw ProtocolError(.unauthorized, "invalid credentials: not the API key, and this server accepts no tokens")
        }
        let claims: TokenClaims
        do {
            claims = try await keys.verify(token, as: TokenClaims.self, iteratingKeys: true)
        } catch let error as JWTError {
            if error.errorType == .malformedToken, let problem = ClaimsCheck.problem(in: token) {
                throw ProtocolError(.unauthorized, "invalid token: \(problem)")
            }
            throw ProtocolError(.unauthorized, "invalid token: \(Self.describe(error))")
        } catch let error as DecodingError {
            throw ProtocolError(.unauthorized, "invalid token: \(Self.describe(error))")
        } catch {
            throw ProtocolError(.unauthorized, "invalid token")
        }
        return claims.identity
    }

    private static func describe(_ error: JWTError) -> String {
        switch error.errorType {
        case .claimVerificationFailure:
            if let claim = error.failedClaim as? ExpirationClaim { return "it expired at \(Timestamp.format(claim.value))" }
            if error.failedClaim is NotBeforeClaim { return "it is not valid yet (nbf)" }
            return "a claim failed verification"
        case .signatureVerificationFailed: return "the signature does not verify"
        case .malformedToken: return "it is not a well-formed JWT"
        case .unknownKID, .missingKIDHeader: return "it names no key this server has"
        case .unsupportedAlgorithm, .signingAlgorithmFailure: return "its algorithm is not accepted"
        default: return "it does not verify"
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): return "missing claim \"\(key.stringValue)\""
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "claim \"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
        default: return "its claims are not readable"
        }
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<a.count { difference |= a[i] ^ b[i] }
        return difference == 0
    }
}

/// The claims Switchboard reads from a JWT (SPEC section 5).
struct TokenClaims: JWTPayload {
    struct CollectionGrants: Codable, Sendable {
        var read: [String]?
        var write: [String]?
    }

    var sub: SubjectClaim
    var exp: ExpirationClaim?
    var nbf: NotBeforeClaim?
    var channels: [String]?
    var publish: [String]?
    var collections: CollectionGrants?
    var info: JSONValue?

    func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp?.verifyNotExpired()
        try nbf?.verifyNotBefore()
    }

    var identity: Identity {
        Identity(
            role: .token(Grants(
                channels: channels ?? [], publish: publish,
                read: collections?.read ?? [], write: collections?.write ?? []
            )),
            user: sub.value,
            info: info,
            expiresAtMillis: exp.map { Int64($0.value.timeIntervalSince1970 * 1000) }
        )
    }
}

/// Says what is wrong with a token's claims when jwt-kit could not decode them, so a client
/// learns "missing claim sub" rather than "malformed".
enum ClaimsCheck {
    static func problem(in token: String) -> String? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let data = base64URLDecode(String(parts[1])),
              case .object(let claims) = try? JSONValue.parse(Array(data))
        else { return nil }
        guard let sub = claims["sub"] else { return "missing claim \"sub\"" }
        guard case .string = sub else { return "claim \"sub\" must be a string" }
        for key in ["exp", "nbf"] {
            switch claims[key] {
            case nil, .int, .double: continue
            default: return "claim \"\(key)\" must be a number"
            }
        }
        for key in ["channels", "publish"] {
            if let value = claims[key], !isStringList(value) { return "claim \"\(key)\" must be a list of strings" }
        }
        if let collections = claims["collections"] {
            guard case .object(let grants) = collections,
                  grants.allSatisfy({ ($0.key == "read" || $0.key == "write") && isStringList($0.value) })
            else { return "claim \"collections\" must be {\"read\": [..], \"write\": [..]}" }
        }
        return nil
    }

    private static func isStringList(_ value: JSONValue) -> Bool {
        guard case .array(let items) = value else { return false }
        return items.allSatisfy { $0.stringValue != nil }
    }

    private static func base64URLDecode(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
