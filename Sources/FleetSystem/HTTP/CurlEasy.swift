internal import CCurl
import Foundation

/// Process-wide libcurl setup.
package enum Curl {
    private static let initialised: Bool = curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK

    /// Runs `curl_global_init` once. Call it from `main` before any worker starts; later calls do nothing.
    package static func globalInit() { _ = initialised }
}

/// One libcurl easy handle, reused request after request by one thread (not Sendable).
///
/// Reuse keeps live connections and the DNS cache (`curl_easy_reset` clears options only). The
/// corresponding libcurl object is `CURL`; `deinit` calls `curl_easy_cleanup`.
package final class CurlEasy {
    private let handle: UnsafeMutableRawPointer

    /// Bodies above this many bytes are cut (S3 error and listing documents are far smaller).
    package var maximumResponseBytes = 64 * 1024 * 1024

    /// A PEM file of certificate authorities to trust instead of the system's (a private CA in front of a
    /// custom endpoint); `nil` keeps libcurl's default. The corresponding libcurl option is `CURLOPT_CAINFO`.
    package var caBundle: String?

    package init() throws(HTTPError) {
        Curl.globalInit()
        guard let handle = curl_easy_init() else {
            throw HTTPError(kind: .invalidRequest, message: "curl_easy_init failed", curlCode: -1)
        }
        self.handle = handle
    }

    deinit { curl_easy_cleanup(handle) }

    /// Sends `request` and waits for the whole response. The corresponding libcurl function is
    /// `curl_easy_perform`.
    ///
    /// - Throws: `HTTPError` when no HTTP response arrived; an HTTP error status is a response, not a throw.
    package func perform(_ request: HTTPRequest) throws(HTTPError) -> HTTPResponse {
        // A body from memory goes out in one piece once the bandwidth cap lets its bytes go.
        if let limiter = request.bandwidth, request.body.isInMemory, request.body.length > 0,
            !TransferContext.waitForBandwidth(
                limiter.delay(sending: Int(request.body.length)),
                shouldEnd: request.shouldEnd
            )
        {
            throw HTTPError(kind: .ended, message: "ended before the body was sent", curlCode: 0)
        }
        let transfer = CurlTransfer(
            handle: handle,
            request: request,
            maximumResponseBytes: maximumResponseBytes,
            caBundle: caBundle
        )
        let code = transfer.configured ? curl_easy_perform(handle) : CURLE_BAD_FUNCTION_ARGUMENT
        return try transfer.result(code).get()
    }

    /// The libcurl version, for `--version`.
    package static var version: String {
        ccurl_version_info_now().pointee.version.map { String(cString: $0) } ?? "?"
    }
}

// MARK: - One transfer

/// One request on an easy handle: the options set from an `HTTPRequest`, the header list and the state its
/// callbacks share, kept until the transfer is over (by `curl_easy_perform`, or by a multi handle).
final class CurlTransfer {
    let handle: UnsafeMutableRawPointer
    let request: HTTPRequest
    private let context: TransferContext
    private var headerList: UnsafeMutablePointer<curl_slist>?
    /// False when libcurl refused an option: the transfer must not start.
    private(set) var configured = true

    /// Resets `handle` and sets it up for `request`.
    ///
    /// - Parameter receiveBufferBytes: libcurl's receive buffer for this handle (`CURLOPT_BUFFERSIZE`); `nil`
    ///   keeps its default (16 KiB).
    init(
        handle: UnsafeMutableRawPointer,
        request: HTTPRequest,
        maximumResponseBytes: Int,
        caBundle: String?,
        receiveBufferBytes: Int? = nil
    ) {
        self.handle = handle
        self.request = request
        context = TransferContext(body: request.body, maximumResponseBytes: maximumResponseBytes)
        context.onBytesSent = request.onBytesSent
        context.shouldEnd = request.shouldEnd
        context.bandwidth = request.bandwidth
        curl_easy_reset(handle)
        // curl adds `Expect: 100-continue` to large PUTs and waits up to a second for an answer many S3
        // servers never send; the empty value removes it.
        var extraHeaders = [("Expect", "")]
        // Without a content type of its own, a request body from memory would go out as a form.
        if context.inMemoryBody != nil, !request.headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            extraHeaders.append(("Content-Type", ""))
        }
        for (name, value) in request.headers + extraHeaders {
            headerList = curl_slist_append(headerList, value.isEmpty ? "\(name):" : "\(name): \(value)")
        }
        configured = configure(caBundle: caBundle, receiveBufferBytes: receiveBufferBytes)
    }

    deinit { curl_slist_free_all(headerList) }

    private func configure(caBundle: String?, receiveBufferBytes: Int?) -> Bool {
        let userData = Unmanaged.passUnretained(context).toOpaque()
        var ok = true
        func set(_ option: CURLoption, _ value: Int) {
            ok = ok && ccurl_easy_setopt_long(handle, option, value) == CURLE_OK
        }
        func set(_ option: CURLoption, pointer: UnsafeRawPointer?) {
            ok = ok && ccurl_easy_setopt_ptr(handle, option, pointer) == CURLE_OK
        }
        request.url.withCString { url in set(CURLOPT_URL, pointer: url) }  // libcurl copies strings
        caBundle?.withCString { path in set(CURLOPT_CAINFO, pointer: path) }
        set(CURLOPT_NOSIGNAL, 1)
        set(CURLOPT_TCP_KEEPALIVE, 1)
        if let receiveBufferBytes { set(CURLOPT_BUFFERSIZE, receiveBufferBytes) }
        set(CURLOPT_CONNECTTIMEOUT_MS, Int(request.timeouts.connectSeconds * 1000))
        // Under a bandwidth cap a transfer may wait its turn for a while: stalled then means nothing sent.
        let capped = request.bandwidth?.limitsNow == true && context.inMemoryBody == nil
        set(CURLOPT_LOW_SPEED_LIMIT, capped ? 1 : request.timeouts.stallBytesPerSecond)
        set(CURLOPT_LOW_SPEED_TIME, request.timeouts.stallSeconds)
        set(CURLOPT_TIMEOUT_MS, Int(request.timeouts.totalSeconds * 1000))
        set(CURLOPT_HTTPHEADER, pointer: UnsafeRawPointer(headerList))
        set(CURLOPT_ERRORBUFFER, pointer: context.errorBuffer)
        ok = ok && ccurl_easy_setopt_data_cb(handle, CURLOPT_WRITEFUNCTION, curlWrite) == CURLE_OK
        set(CURLOPT_WRITEDATA, pointer: userData)
        ok = ok && ccurl_easy_setopt_data_cb(handle, CURLOPT_HEADERFUNCTION, curlHeader) == CURLE_OK
        set(CURLOPT_HEADERDATA, pointer: userData)

        if let bytes = context.inMemoryBody {
            // curl sends a body it holds in memory in the same write as the headers when it is small, and
            // can resend it on a new connection by itself: one system call per small file instead of two.
            ok = ok && ccurl_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, bytes.count) == CURLE_OK
            set(CURLOPT_POSTFIELDS, pointer: UnsafeRawPointer(bytes.storage.baseAddress))
            if request.method != "POST" {
                request.method.withCString { method in set(CURLOPT_CUSTOMREQUEST, pointer: method) }
            }
        } else {
            switch request.method {
            case "GET": break
            case "HEAD": set(CURLOPT_NOBODY, 1)
            case "PUT":
                set(CURLOPT_UPLOAD, 1)
                ok =
                    ok
                    && ccurl_easy_setopt_off_t(handle, CURLOPT_INFILESIZE_LARGE, Int(request.body.length))
                        == CURLE_OK
            case "POST":
                set(CURLOPT_POST, 1)
                ok =
                    ok
                    && ccurl_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, Int(request.body.length))
                        == CURLE_OK
            default:
                request.method.withCString { method in set(CURLOPT_CUSTOMREQUEST, pointer: method) }
            }
            if request.method == "PUT" || request.method == "POST" {
                ok = ok && ccurl_easy_setopt_data_cb(handle, CURLOPT_READFUNCTION, curlRead) == CURLE_OK
                set(CURLOPT_READDATA, pointer: userData)
                // A reused connection the server had closed makes curl resend on a new one: it rewinds the
                // body.
                ok = ok && ccurl_easy_setopt_seek_cb(handle, CURLOPT_SEEKFUNCTION, curlSeek) == CURLE_OK
                set(CURLOPT_SEEKDATA, pointer: userData)
            }
        }
        return ok
    }

    /// What the transfer produced, once libcurl finished it with `code`.
    func result(_ code: CURLcode) -> Result<HTTPResponse, HTTPError> {
        if context.ended {
            return .failure(
                HTTPError(
                    kind: .ended,
                    message: "ended after \(context.sent) of \(request.body.length) body bytes",
                    curlCode: Int(code.rawValue)
                )
            )
        }
        if let readError = context.readError {
            return .failure(HTTPError(kind: .bodyRead, message: readError, curlCode: Int(code.rawValue)))
        }
        guard code == CURLE_OK else { return .failure(HTTPError(code: code, detail: context.errorText)) }
        if let bytes = context.inMemoryBody { context.onBytesSent?(Int64(bytes.count)) }
        var status = 0
        _ = ccurl_easy_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPResponse(status: status, headers: context.headers, body: context.response))
    }
}

// MARK: - Transfer state and callbacks

/// State one transfer's callbacks share; lives as long as its `CurlTransfer`.
private final class TransferContext {
    let body: HTTPBody
    var sent: Int64 = 0
    var onBytesSent: ((Int64) -> Void)?
    var shouldEnd: (@Sendable () -> Bool)?
    /// The process's bandwidth cap: a streamed body waits for it piece by piece (on a blocking transfer only;
    /// the transfer loop hands capped streamed bodies to one, see `TransferLoop.perform`).
    var bandwidth: BandwidthLimiter?
    /// The request was ended on `shouldEnd`.
    var ended = false
    var readError: String?
    var response: [UInt8] = []
    let maximumResponseBytes: Int
    var headers: [(name: String, value: String)] = []
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    /// An in-memory body at an address that stays put for the whole transfer (`CURLOPT_POSTFIELDS` keeps the
    /// pointer): a `.memory` body as it is, a `.bytes` document copied; nil for other bodies and an empty one.
    let inMemoryBody: BodyBytes?

    init(body: HTTPBody, maximumResponseBytes: Int) {
        self.body = body
        self.maximumResponseBytes = maximumResponseBytes
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        switch body {
        case .bytes(let bytes) where !bytes.isEmpty:
            inMemoryBody = BodyBytes(count: bytes.count) { copy in bytes.withUnsafeBytes { copy.copyMemory(from: $0) } }
        case .memory(let bytes) where bytes.count > 0:
            inMemoryBody = bytes
        default:
            inMemoryBody = nil
        }
    }

    deinit { errorBuffer.deallocate() }

    var errorText: String { String(cString: errorBuffer) }

    /// Waits out a bandwidth reservation of `seconds`, a tenth of a second at a time so that a stop is not held
    /// up; false when `shouldEnd` said stop meanwhile.
    static func waitForBandwidth(_ seconds: Double, shouldEnd: (@Sendable () -> Bool)?) -> Bool {
        var left = seconds
        while left > 0 {
            if let shouldEnd, shouldEnd() { return false }
            Thread.sleep(forTimeInterval: min(left, 0.1))
            left -= 0.1
        }
        return true
    }

    /// Fills `buffer` with the next body bytes; returns the count, 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int? {
        let remaining = body.length - sent
        guard remaining > 0 else { return 0 }
        if let shouldEnd, shouldEnd() {
            ended = true
            return nil
        }
        var count = Int(min(Int64(buffer.count), remaining))
        if let bandwidth { count = bandwidth.piece(upTo: count) }
        switch body {
        case .none: return 0
        case .bytes(let bytes):
            bytes.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + Int(sent), byteCount: count)
            }
        case .memory(let bytes):
            bytes.withUnsafeBytes { source in
                buffer.baseAddress!.copyMemory(from: source.baseAddress! + Int(sent), byteCount: count)
            }
        case .file(let region):
            let got = pread(region.descriptor, buffer.baseAddress, count, off_t(region.offset + sent))
            if got < 0 {
                readError = "reading the file failed: \(String(cString: strerror(errno)))"
                return nil
            }
            if got == 0 {
                readError = "the file ended \(body.length - sent) bytes early (it shrank while being sent)"
                return nil
            }
            if sent + Int64(got) == body.length, let expected = region.unchangedSince {
                // The last bytes: held back, and the request left unfinished, when the file changed meanwhile.
                var info = stat()
                let now =
                    fstat(region.descriptor, &info) == 0
                    ? (
                        size: Int64(info.st_size),
                        mtime: Timestamp(seconds: Int64(info.st_mtim.tv_sec), nanoseconds: Int64(info.st_mtim.tv_nsec))
                    ) : nil
                guard let now, now.size == expected.size, now.mtime == expected.mtime else {
                    readError =
                        "the file changed while it was sent (size \(expected.size) → \(now.map { String($0.size) } ?? "?"))"
                        + "; the request was ended before its last byte, so nothing was stored"
                    return nil
                }
            }
            if let bandwidth, !Self.waitForBandwidth(bandwidth.delay(sending: got), shouldEnd: shouldEnd) {
                ended = true
                return nil
            }
            sent += Int64(got)
            onBytesSent?(sent)
            return got
        }
        sent += Int64(count)
        onBytesSent?(sent)
        return count
    }
}

private let curlWrite: ccurl_data_callback = { pointer, size, count, userData in
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    let length = size * count
    if context.response.count + length <= context.maximumResponseBytes, let pointer {
        context.response.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: length))
    }
    return length
}

private let curlHeader: ccurl_data_callback = { pointer, size, count, userData in
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    let length = size * count
    guard let pointer else { return length }
    // Bytes, not Foundation's trimming: this runs for every header of every response, and the NSString
    // round trip cost a tenth of the client's CPU on small files.
    let line = UnsafeRawBufferPointer(start: pointer, count: length)
    if line.starts(with: "HTTP/".utf8) {
        context.headers.removeAll()  // a new status line (after 100 Continue or a redirect) starts over
    } else if let colon = line.firstIndex(of: UInt8(ascii: ":")) {
        let name = line[..<colon].trimmingHTTPWhitespace().map { $0 | ($0 &- 65 < 26 ? 0x20 : 0) }
        let value = line[(colon + 1)...].trimmingHTTPWhitespace()
        context.headers.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
    }
    return length
}

extension Slice<UnsafeRawBufferPointer> {
    /// Without leading and trailing spaces, tabs, CR and LF.
    fileprivate func trimmingHTTPWhitespace() -> Self {
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return self[startIndex..<startIndex]
        }
        return self[first...last]
    }
}

private let curlSeek: ccurl_seek_callback = { userData, offset, origin in
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    guard origin == SEEK_SET, offset >= 0, Int64(offset) <= context.body.length else {
        return Int32(CURL_SEEKFUNC_CANTSEEK)
    }
    context.sent = Int64(offset)
    return Int32(CURL_SEEKFUNC_OK)
}

private let curlRead: ccurl_data_callback = { pointer, size, count, userData in
    let context = Unmanaged<TransferContext>.fromOpaque(userData!).takeUnretainedValue()
    guard let pointer else { return 0 }
    guard let got = context.read(into: UnsafeMutableRawBufferPointer(start: pointer, count: size * count)) else {
        return Int(CURL_READFUNC_ABORT)
    }
    return got
}

extension HTTPError {
    init(code: CURLcode, detail: String) {
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let kind: Kind
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: kind = .dns
        case CURLE_COULDNT_CONNECT: kind = .connect
        case CURLE_OPERATION_TIMEDOUT: kind = text.contains("too slow") ? .stalled : .timeout
        case CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2,
            CURLE_HTTP2_STREAM:
            kind = .network
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE:
            kind = .tls
        case CURLE_READ_ERROR, CURLE_ABORTED_BY_CALLBACK: kind = .bodyRead
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL, CURLE_BAD_FUNCTION_ARGUMENT, CURLE_UNKNOWN_OPTION,
            CURLE_NOT_BUILT_IN, CURLE_OUT_OF_MEMORY:
            kind = .invalidRequest
        // Anything else went wrong on the wire (a reply the server cut short, a rewind that failed): try again.
        default: kind = .network
        }
        self.init(kind: kind, message: text, curlCode: Int(code.rawValue))
    }
}
