internal import CCurl
internal import CLibPQ
internal import COpenSSL

/// The product's version and the C libraries it runs on, for `--version`.
package enum FleetVersion {
    package static let number = "0.1.0"

    /// `0.1.0 (libpq 15.18, libcurl 7.88.1, OpenSSL 3.0.19 27 Jan 2026)`
    package static var description: String {
        let pq = Int(PQlibVersion())
        let curl = ccurl_version_info_now().pointee.version.map { String(cString: $0) } ?? "?"
        let openSSL = String(cString: OpenSSL_version(OPENSSL_VERSION)).replacingOccurrences(of: "OpenSSL ", with: "")
        return "\(number) (libpq \(pq / 10000).\(pq % 100), libcurl \(curl), OpenSSL \(openSSL))"
    }
}
