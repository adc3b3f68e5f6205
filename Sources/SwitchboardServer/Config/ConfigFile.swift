import Foundation
import SwitchboardCore
import Yams

/// The config file (SPEC section 6), YAML or JSON, applied over the defaults.
/// Unknown keys and wrong types are errors that name the key, so a typo never goes unnoticed.
public enum ConfigFile {
    public static func load(path: String, into configuration: inout ServerConfiguration) throws(ConfigurationError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigurationError("cannot read config file \(path): \((error as NSError).localizedDescription)")
        }
        let value: JSONValue
        do {
            if path.hasSuffix(".json") {
                value = try JSONValue.parse(text)
            } else {
                value = try YAMLDecoder().decode(JSONValue.self, from: text.isEmpty ? "{}" : text)
            }
        } catch {
            throw ConfigurationError("config file \(path) is not valid \(path.hasSuffix(".json") ? "JSON" : "YAML"): \(error)")
        }
        do {
            try apply(value, to: &configuration)
        } catch {
            throw ConfigurationError("config file \(path): \(error.description)")
        }
    }

    static func apply(_ value: JSONValue, to c: inout ServerConfiguration) throws(ConfigurationError) {
        if value == .null { return }
        let root = try object(value, at: "the top level")
        for (key, v) in root {
            switch key {
            case "host": c.host = try string(v, at: key)
            case "port": c.port = try int(v, at: key)
            case "database": c.database = try string(v, at: key)
            case "insecure": c.insecure = try bool(v, at: key)
            case "jwt_public_key": c.jwtPublicKeyFile = try string(v, at: key)
            case "jwks": c.jwksFile = try string(v, at: key)
            case "tls_cert": c.tlsCertificateFile = try string(v, at: key)
            case "tls_key": c.tlsKeyFile = try string(v, at: key)
            case "heartbeat_seconds": c.heartbeatSeconds = try int(v, at: key, min: 1)
            case "drain_timeout_seconds": c.drainTimeoutSeconds = try int(v, at: key, min: 0)
            case "compression": c.compression = try bool(v, at: key)
            case "flush_interval_ms":
                throw ConfigurationError(
                    "flush_interval_ms is gone: writes are no longer delayed; they gather by load (what a connection's socket has not taken yet)"
                )
            case "node_timeout_seconds": c.nodeTimeoutSeconds = try int(v, at: key, min: 2)
            case "trusted_proxies":
                guard case .array(let items) = v else { throw ConfigurationError("trusted_proxies must be a list of addresses or CIDR ranges") }
                c.trustedProxies = try items.map { (item: JSONValue) throws(ConfigurationError) in
                    let text = try string(item, at: "trusted_proxies")
                    guard let range = AddressRange(text) else {
                        throw ConfigurationError("trusted_proxies: \"\(text)\" is not an address or CIDR range (10.0.0.0/8, fd00::/8, 127.0.0.1)")
                    }
                    return range
                }
            case "allowed_origins":
                guard case .array(let items) = v else { throw ConfigurationError("allowed_origins must be a list of strings") }
                c.allowedOrigins = try items.map { (item: JSONValue) throws(ConfigurationError) in try string(item, at: "allowed_origins") }
            case "limits": try applyLimits(v, to: &c.limits)
            case "socketio": c.socketIO = try socketIO(v)
            case "namespaces": c.namespaces = try namespaces(v)
            default:
                throw ConfigurationError("unknown key \"\(key)\"")
            }
        }
    }

    static func applyLimits(_ value: JSONValue, to l: inout Limits) throws(ConfigurationError) {
        for (key, v) in try object(value, at: "limits") {
            let at = "limits.\(key)"
            switch key {
            case "message_bytes": l.messageBytes = try int(v, at: at, min: 64)
            case "body_bytes": l.bodyBytes = try int(v, at: at, min: 64)
            case "subscriptions": l.subscriptions = try int(v, at: at, min: 1)
            case "commands_per_second": l.commandsPerSecond = try int(v, at: at, min: 1)
            case "command_burst": l.commandBurst = try int(v, at: at, min: 1)
            case "queue_bytes": l.queueBytes = try int(v, at: at, min: 1024)
            case "connections_per_ip": l.connectionsPerIP = try int(v, at: at, min: 1)
            case "handshakes_per_second": l.handshakesPerSecond = try int(v, at: at, min: 1)
            case "request_timeout_seconds": l.requestTimeoutSeconds = try int(v, at: at, min: 1)
            case "limit_loopback":
                throw ConfigurationError(
                    "limits.limit_loopback is gone: per-IP limits apply to every peer, loopback included; behind a proxy, list it in trusted_proxies"
                )
            default: throw ConfigurationError("unknown key \"\(at)\"")
            }
        }
    }

    static func socketIO(_ value: JSONValue) throws(ConfigurationError) -> SocketIOSettings {
        var settings = SocketIOSettings()
        for (key, v) in try object(value, at: "socketio") {
            switch key {
            case "recovery": settings.recovery = try bool(v, at: "socketio.recovery")
            case "channels":
                guard case .array(let items) = v else { throw ConfigurationError("socketio.channels must be a list of channel names") }
                settings.channels = try items.map { (item: JSONValue) throws(ConfigurationError) in
                    let name = try string(item, at: "socketio.channels")
                    guard Names.isChannel(name) else { throw ConfigurationError("socketio.channels: bad channel name \"\(name)\"") }
                    return name
                }
            default: throw ConfigurationError("unknown key \"socketio.\(key)\"")
            }
        }
        return settings
    }

    static func namespaces(_ value: JSONValue) throws(ConfigurationError) -> Namespaces {
        var policies: [String: NamespacePolicy] = [:]
        for (name, v) in try object(value, at: "namespaces") {
            guard name.isEmpty || Names.isCollection(name) else {
                throw ConfigurationError("bad namespace name \"\(name)\"")
            }
            var p = NamespacePolicy()
            for (key, field) in try object(v, at: "namespaces.\(name)") {
                let at = "namespaces.\(name).\(key)"
                switch key {
                case "anonymous": p.anonymous = try bool(field, at: at)
                case "client_publish": p.clientPublish = try bool(field, at: at)
                case "presence": p.presence = try bool(field, at: at)
                case "history_size": p.historySize = try int(field, at: at, min: 0)
                case "history_ttl": p.historyTTL = try int(field, at: at, min: 0)
                default: throw ConfigurationError("unknown key \"\(at)\"")
                }
            }
            policies[name] = p
        }
        return Namespaces(policies: policies)
    }

    private static func object(_ v: JSONValue, at: String) throws(ConfigurationError) -> [String: JSONValue] {
        if v == .null { return [:] }
        guard case .object(let o) = v else { throw ConfigurationError("\(at) must be a mapping, not \(v.typeName)") }
        return o
    }

    private static func string(_ v: JSONValue, at: String) throws(ConfigurationError) -> String {
        guard case .string(let s) = v else { throw ConfigurationError("\(at) must be a string, not \(v.typeName)") }
        return s
    }

    private static func bool(_ v: JSONValue, at: String) throws(ConfigurationError) -> Bool {
        guard case .bool(let b) = v else { throw ConfigurationError("\(at) must be true or false, not \(v.typeName)") }
        return b
    }

    private static func int(_ v: JSONValue, at: String, min: Int = 0) throws(ConfigurationError) -> Int {
        guard case .int(let i) = v, i >= min, i <= Int64(Int32.max) else {
            throw ConfigurationError("\(at) must be a whole number of at least \(min)")
        }
        return Int(i)
    }
}
