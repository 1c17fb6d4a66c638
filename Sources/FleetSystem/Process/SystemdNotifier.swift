import Foundation

/// systemd's notify protocol (`Type=notify` units): one datagram per state change to the Unix socket named in
/// `NOTIFY_SOCKET` (a leading `@` names an abstract socket). Without that variable it does nothing, so the same
/// binary runs under systemd, a shell or a test. The corresponding C function in libsystemd is `sd_notify`.
package struct SystemdNotifier: Sendable {
    private let socketPath: [UInt8]?

    package init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let path = environment["NOTIFY_SOCKET"], path.hasPrefix("/") || path.hasPrefix("@") else {
            socketPath = nil
            return
        }
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        socketPath = bytes
    }

    package var isActive: Bool { socketPath != nil }

    /// Sends `READY=1`, `RELOADING=1`, `STOPPING=1` or `STATUS=…`. Failures are ignored: the service manager
    /// is an observer, not a dependency.
    package func notify(_ state: String) {
        guard let socketPath else { return }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard socketPath.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in socketPath.enumerated() { buffer[index] = byte }
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + socketPath.count)
        let message = Array(state.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                message.withUnsafeBytes { sendto(descriptor, $0.baseAddress, $0.count, 0, socketAddress, length) }
            }
        }
    }
}
