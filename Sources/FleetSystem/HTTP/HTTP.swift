import Foundation

/// One HTTP request as the S3 client and the trigger send it.
package struct HTTPRequest {
    package var method: String
    package var url: String
    package var headers: [(name: String, value: String)]
    package var body: HTTPBody
    package var timeouts: HTTPTimeouts
    /// Called from the transfer thread with the number of body bytes sent so far.
    package var onBytesSent: ((Int64) -> Void)?
    /// Asked before each piece of the body goes out: true ends the request there (`HTTPError.Kind.ended`), so
    /// a stop does not wait for a large body to finish.
    package var shouldEnd: (@Sendable () -> Bool)?
    /// The process's cap on body bytes per second (`upload.max_bandwidth`), if any: the body waits its turn.
    package var bandwidth: BandwidthLimiter?

    package init(
        method: String,
        url: String,
        headers: [(name: String, value: String)] = [],
        body: HTTPBody = .none,
        timeouts: HTTPTimeouts = HTTPTimeouts(),
        onBytesSent: ((Int64) -> Void)? = nil,
        shouldEnd: (@Sendable () -> Bool)? = nil,
        bandwidth: BandwidthLimiter? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeouts = timeouts
        self.onBytesSent = onBytesSent
        self.shouldEnd = shouldEnd
        self.bandwidth = bandwidth
    }
}

/// What a request sends.
package enum HTTPBody {
    case none
    /// A short document (XML, a form); each transfer sends it from a copy of its own.
    case bytes([UInt8])
    /// Bytes read into memory once (a small file): every transfer of the body, a resend too, sends them from
    /// where they are.
    case memory(BodyBytes)
    /// A region of an open file, read as it is sent: a file is never loaded whole into memory.
    case file(FileRegion)

    var length: Int64 {
        switch self {
        case .none: 0
        case .bytes(let bytes): Int64(bytes.count)
        case .memory(let bytes): Int64(bytes.count)
        case .file(let region): region.length
        }
    }

    /// Whether the whole body is in memory (it goes out in one piece once a bandwidth cap lets it).
    var isInMemory: Bool {
        switch self {
        case .bytes, .memory: true
        case .none, .file: false
        }
    }
}

/// Bytes at one address for as long as anything refers to them, so libcurl sends them from there
/// (`CURLOPT_POSTFIELDS`) and no transfer needs a copy of its own.
///
/// `@unchecked Sendable`: the bytes are written only by `init`, before the value is shared.
package final class BodyBytes: @unchecked Sendable {
    let storage: UnsafeMutableRawBufferPointer

    /// `count` bytes that `fill` writes once.
    package init<Failure: Error>(
        count: Int,
        fill: (UnsafeMutableRawBufferPointer) throws(Failure) -> Void
    ) throws(Failure) {
        storage = .allocate(byteCount: max(count, 1), alignment: 1)
        do {
            try fill(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
        } catch {
            storage.deallocate()
            throw error
        }
        self.count = count
    }

    deinit { storage.deallocate() }

    package let count: Int

    package func withUnsafeBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }
}

/// `length` bytes of an open file from `offset`.
package struct FileRegion: Sendable {
    package var descriptor: Int32
    package var offset: Int64
    package var length: Int64
    /// The file's size and mtime when the body's checksum was taken. Before the last bytes go out the file is
    /// looked at again (`fstat`), and a file that no longer has them ends the request unfinished (`.bodyRead`):
    /// the server never receives a whole body, so no object of a file that changed while it was sent is stored.
    package var unchangedSince: (size: Int64, mtime: Timestamp)?

    package init(
        descriptor: Int32,
        offset: Int64,
        length: Int64,
        unchangedSince: (size: Int64, mtime: Timestamp)? = nil
    ) {
        self.descriptor = descriptor
        self.offset = offset
        self.length = length
        self.unchangedSince = unchangedSince
    }
}

/// How long to wait, and when a transfer counts as stalled.
package struct HTTPTimeouts: Sendable {
    /// Giving up on connecting (TCP and TLS).
    package var connectSeconds: Double = 10
    /// A transfer slower than `stallBytesPerSecond` for `stallSeconds` is abandoned: a dead WiFi link is
    /// noticed in seconds, not minutes.
    package var stallBytesPerSecond = 1024
    package var stallSeconds = 15
    /// The whole request; 0 for no limit (large parts on slow links).
    package var totalSeconds: Double = 0

    package init() {}

    package init(connectSeconds: Double, stallBytesPerSecond: Int = 1024, stallSeconds: Int, totalSeconds: Double = 0) {
        self.connectSeconds = connectSeconds
        self.stallBytesPerSecond = stallBytesPerSecond
        self.stallSeconds = stallSeconds
        self.totalSeconds = totalSeconds
    }
}

/// An HTTP response: the status, the headers (names lowercased, in order) and the body (capped).
package struct HTTPResponse: Sendable {
    package var status: Int
    package var headers: [(name: String, value: String)]
    package var body: [UInt8]

    /// The last value of a header, by case-insensitive name.
    package func header(_ name: String) -> String? {
        let lowercased = name.lowercased()
        return headers.last(where: { $0.name == lowercased })?.value
    }

    package var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// A request that did not produce an HTTP response.
package struct HTTPError: Error, Sendable, CustomStringConvertible {
    package enum Kind: String, Sendable {
        /// The name did not resolve.
        case dns
        /// Nothing accepted the connection.
        case connect
        /// Connecting or the whole request took too long.
        case timeout
        /// The transfer stalled below the minimum speed.
        case stalled
        /// The connection broke while sending or receiving.
        case network
        /// The TLS handshake or certificate check failed.
        case tls
        /// The request body could not be read (the local file); `message` says why.
        case bodyRead
        /// The URL or an option was not acceptable.
        case invalidRequest
        /// The caller ended the request before its body was sent (`HTTPRequest.shouldEnd`); nothing was stored.
        case ended
    }

    package var kind: Kind
    package var message: String
    /// libcurl's code, for logs.
    package var curlCode: Int

    package init(kind: Kind, message: String, curlCode: Int) {
        self.kind = kind
        self.message = message
        self.curlCode = curlCode
    }

    package var description: String { "\(kind.rawValue): \(message)" }

    /// Worth trying again later: the link or the server may come back.
    package var isTransient: Bool { [.dns, .connect, .timeout, .stalled, .network].contains(kind) }
}
