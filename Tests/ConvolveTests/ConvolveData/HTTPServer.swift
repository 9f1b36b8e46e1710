import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.0 server on 127.0.0.1 for download tests. Each route answers with a status,
/// a body and optionally a lying Content-Length (to simulate a truncated transfer). Bounded: it
/// serves at most `maxRequests` requests, then stops.
final class TestHTTPServer: @unchecked Sendable {
    struct Route { var status: Int; var body: [UInt8]; var declaredLength: Int? = nil }
    let port: UInt16
    private let fd: Int32
    private var routes: [String: Route]
    private let lock = NSLock()
    private(set) var requests: [String] = []

    init(routes: [String: Route], maxRequests: Int = 64) throws {
        self.routes = routes
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.port = UInt16(bigEndian: addr.sin_port)
        let thread = Thread { [self] in self.serve(maxRequests) }
        thread.start()
    }

    var base: String { "http://127.0.0.1:\(port)" }

    private func serve(_ maxRequests: Int) {
        for _ in 0..<maxRequests {
            let client = accept(fd, nil, nil)
            if client < 0 { return }
            var buf = [UInt8](repeating: 0, count: 4096)
            let n = recv(client, &buf, buf.count, 0)
            let request = n > 0 ? String(decoding: buf[0..<n], as: UTF8.self) : ""
            let path = request.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
            lock.lock(); requests.append(path); let route = routes[path]; lock.unlock()
            let r = route ?? Route(status: 404, body: Array("not found".utf8))
            let reason = r.status == 200 ? "OK" : "Not Found"
            let header = "HTTP/1.0 \(r.status) \(reason)\r\nContent-Length: \(r.declaredLength ?? r.body.count)\r\nConnection: close\r\n\r\n"
            var out = Array(header.utf8) + r.body
            _ = out.withUnsafeMutableBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            close(client)
        }
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
}
