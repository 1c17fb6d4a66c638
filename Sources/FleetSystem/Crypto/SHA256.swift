internal import COpenSSL

/// Streaming SHA-256 over OpenSSL's EVP interface.
///
/// The corresponding OpenSSL object is `EVP_MD_CTX`; `deinit` calls `EVP_MD_CTX_free`.
package final class SHA256 {
    private let context: OpaquePointer

    package init() {
        guard let context = EVP_MD_CTX_new() else { fatalError("OpenSSL: EVP_MD_CTX_new failed (out of memory)") }
        guard EVP_DigestInit_ex(context, FetchedDigest.sha256.method, nil) == 1 else {
            fatalError("OpenSSL: SHA-256 unavailable")
        }
        self.context = context
    }

    deinit { EVP_MD_CTX_free(context) }

    /// Adds bytes to the digest. The corresponding OpenSSL function is `EVP_DigestUpdate`.
    package func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
    }

    package func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// The 32-byte digest. The corresponding OpenSSL function is `EVP_DigestFinal_ex`.
    package func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &length)
        return digest
    }

    /// The lowercase hex SHA-256 of `bytes`.
    package static func hex(of bytes: [UInt8]) -> String { digest(bytes).hexString }

    /// HMAC-SHA256 of `message` under `key` (RFC 2104), as two digests of the method fetched once: OpenSSL 3's
    /// one-shot `HMAC` looks the MAC and the digest up by name on every call.
    package static func hmac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        let blockSize = 64
        var block = key.count > blockSize ? digest(key) : key
        block += [UInt8](repeating: 0, count: blockSize - block.count)
        let inner = SHA256()
        inner.update(block.map { $0 ^ 0x36 })
        inner.update(message)
        let outer = SHA256()
        outer.update(block.map { $0 ^ 0x5c })
        outer.update(inner.finalize())
        return outer.finalize()
    }

    /// The 32-byte SHA-256 of `bytes`.
    package static func digest(_ bytes: [UInt8]) -> [UInt8] {
        let hash = SHA256()
        hash.update(bytes)
        return hash.finalize()
    }

    /// The OpenSSL library's version text, for `--version`.
    package static var libraryVersion: String { String(cString: OpenSSL_version(OPENSSL_VERSION)) }
}

extension Array where Element == UInt8 {
    package var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// MD5, for the `Content-MD5` header only (S3 and every S3-compatible server verify it); never for identity.
package enum MD5 {
    /// The 16-byte digest of `bytes`. The corresponding OpenSSL function is `EVP_Digest`.
    package static func digest(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBytes { digest($0) } }

    /// The 16-byte digest of the bytes at `bytes`.
    package static func digest(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 16)
        var length: UInt32 = 0
        _ = EVP_Digest(bytes.baseAddress, bytes.count, &digest, &length, FetchedDigest.md5.method, nil)
        return digest
    }
}

/// A digest algorithm looked up in OpenSSL's default provider once for the whole process. Passing `EVP_sha256()`
/// instead makes OpenSSL 3 fetch the implementation again on every `EVP_DigestInit_ex`, under a lock all upload
/// threads share.
///
/// The corresponding OpenSSL function is `EVP_MD_fetch`; the method is never freed (it lives as long as the process).
/// `@unchecked Sendable`: a fetched `EVP_MD` is immutable and OpenSSL allows using it from any thread.
private final class FetchedDigest: @unchecked Sendable {
    let method: OpaquePointer

    private init(_ name: String) {
        guard let method = EVP_MD_fetch(nil, name, nil) else { fatalError("OpenSSL: \(name) unavailable") }
        self.method = method
    }

    static let sha256 = FetchedDigest("SHA256")
    static let md5 = FetchedDigest("MD5")
}

extension SHA256 {
    /// The SHA-256 of no bytes, the payload hash of a request without a body.
    package static let emptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}
