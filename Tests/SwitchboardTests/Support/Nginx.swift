import Foundation

/// A real nginx (Debian's package) in front of some nodes: round robin, no stickiness,
/// WebSocket upgrades passed through, `X-Forwarded-For` set, as docs/OPERATIONS.md
/// configures it. One process (`master_process off`), everything in a temp dir.
final class Nginx: Sendable {
    let port: Int
    private let process: Spawned

    var baseURL: String { "http://127.0.0.1:\(port)" }

    static func with<T: Sendable>(upstreams: [Int], _ body: @Sendable (Nginx) async throws -> T) async throws -> T {
        let nginx = try Nginx(upstreams: upstreams)
        defer { nginx.process.stop(signal: SIGKILL) }
        return try await body(nginx)
    }

    private init(upstreams: [Int]) throws {
        guard let binary = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"].first(where: FileManager.default.isExecutableFile) else {
            throw TestFailure("nginx is not installed (apt-get install nginx)")
        }
        port = try FreePort.find()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("switchboard-nginx-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let servers = upstreams.map { "        server 127.0.0.1:\($0) max_fails=1 fail_timeout=2s;" }.joined(separator: "\n")
        let config = """
            daemon off;
            master_process off;
            worker_processes 1;
            error_log \(dir)/error.log warn;
            pid \(dir)/nginx.pid;
            events { worker_connections 4096; }
            http {
                access_log off;
                client_body_temp_path \(dir)/body;
                proxy_temp_path \(dir)/proxy;
                fastcgi_temp_path \(dir)/fastcgi;
                uwsgi_temp_path \(dir)/uwsgi;
                scgi_temp_path \(dir)/scgi;
                upstream switchboard {
            \(servers)
                }
                map $http_upgrade $connection_upgrade { default upgrade; '' close; }
                server {
                    listen 127.0.0.1:\(port);
                    location / {
                        proxy_pass http://switchboard;
                        proxy_http_version 1.1;
                        proxy_set_header Upgrade $http_upgrade;
                        proxy_set_header Connection $connection_upgrade;
                        proxy_set_header Host $host;
                        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                        proxy_read_timeout 3600s;
                        proxy_buffering off;
                        proxy_next_upstream error timeout;
                        proxy_connect_timeout 2s;
                    }
                }
            }
            """
        try config.write(toFile: "\(dir)/nginx.conf", atomically: true, encoding: .utf8)
        process = try Spawned([binary, "-p", dir, "-c", "\(dir)/nginx.conf"])
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let fd = try? RawSocket.connect(port: port) {
                RawSocket.close(fd)
                return
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.stop()
        throw TestFailure("nginx did not start: \((try? String(contentsOfFile: "\(dir)/error.log", encoding: .utf8)) ?? "")")
    }
}
