import FleetSystem
import Foundation
import Logging

/// An object as HeadObject describes it.
package struct ObjectInfo: Sendable, Equatable {
    package var size: Int64
    package var etag: String
    /// Base64 SHA-256 as S3 stores it (for multipart objects, the checksum of the part checksums with `-N`).
    package var checksumSHA256: String?
    /// The version HEAD found, in a versioned bucket.
    package var versionID: String?

    package init(size: Int64, etag: String, checksumSHA256: String?, versionID: String? = nil) {
        self.size = size
        self.etag = etag
        self.checksumSHA256 = checksumSHA256
        self.versionID = versionID
    }

    /// What a HeadObject answer says.
    init(head response: HTTPResponse) {
        self.init(
            size: Int64(response.header("content-length") ?? "") ?? 0,
            etag: response.header("etag") ?? "",
            checksumSHA256: response.header("x-amz-checksum-sha256"),
            versionID: response.header("x-amz-version-id")
        )
    }

    /// Whether S3 assembled the object from parts: its ETag or checksum ends in `-N`.
    package var isMultipart: Bool {
        etag.contains("-") || (checksumSHA256?.contains("-") ?? false)
    }
}

/// What an object says about itself besides its bytes: its Content-Type and user metadata (`x-amz-meta-*`).
package struct ObjectAttributes: Sendable, Equatable {
    package var contentType: String
    /// Names without the `x-amz-meta-` prefix, in lower case.
    package var metadata: [String: String]

    package init(contentType: String, metadata: [String: String] = [:]) {
        self.contentType = contentType
        self.metadata = metadata
    }

    /// Bytes as they are: `application/octet-stream`, no metadata.
    package static let plain = ObjectAttributes(contentType: "application/octet-stream")

    var headers: [(String, String)] {
        [("content-type", contentType)] + metadata.sorted { $0.key < $1.key }.map { ("x-amz-meta-\($0.key)", $0.value) }
    }
}

/// A finished upload, for the ledger.
package struct UploadedObject: Sendable, Equatable {
    package var bucket: String
    package var key: String
    package var etag: String
    /// Hex SHA-256 of the whole file as it was sent (S3 verified every byte against it or its parts).
    package var sha256: String
    package var versionID: String?
    /// The file's size and mtime when it was read; unchanged until the upload finished.
    package var size: Int64
    package var mtime: Timestamp
    package var partCount: Int
    /// The multipart upload that made the object, when it was sent in parts.
    package var multipartUploadID: String?
    /// The local file as it was read: size, mtime, device and inode.
    package var file: FileIdentity { FileIdentity(size: size, mtime: mtime, device: device, inode: inode) }
    package var device: UInt64?
    package var inode: UInt64?

    package init(
        bucket: String,
        key: String,
        etag: String,
        sha256: String,
        versionID: String?,
        size: Int64,
        mtime: Timestamp,
        partCount: Int,
        multipartUploadID: String? = nil,
        device: UInt64? = nil,
        inode: UInt64? = nil
    ) {
        self.bucket = bucket
        self.key = key
        self.etag = etag
        self.sha256 = sha256
        self.versionID = versionID
        self.size = size
        self.mtime = mtime
        self.partCount = partCount
        self.multipartUploadID = multipartUploadID
        self.device = device
        self.inode = inode
    }
}

/// One object of a listing.
package struct ListedObject: Sendable, Equatable {
    package var key: String
    package var size: Int64
    package var etag: String
}

/// One page of ListObjectsV2.
package struct ListPage: Sendable {
    package var objects: [ListedObject]
    package var nextContinuationToken: String?
}

/// A part S3 has stored.
package struct UploadedPart: Sendable, Equatable {
    package var partNumber: Int
    package var etag: String
    package var checksumSHA256: String?
    package var size: Int64

    package init(partNumber: Int, etag: String, checksumSHA256: String?, size: Int64) {
        self.partNumber = partNumber
        self.etag = etag
        self.checksumSHA256 = checksumSHA256
        self.size = size
    }
}

/// Who the credentials belong to, from STS GetCallerIdentity.
package struct CallerIdentity: Sendable, Equatable {
    package var account: String
    package var arn: String
    package var userID: String
}

/// The S3 REST API over one reused libcurl handle: one client per worker thread (not Sendable). The `async`
/// methods send on the client's `TransferLoop` instead, whose thread carries many requests at once.
///
/// Every request is signed with SigV4 and carries the real payload hash; uploads also carry a checksum S3
/// verifies (`Content-MD5` for small files, `x-amz-checksum-sha256` for larger ones and parts), so S3 checks every
/// byte. Files above 256 KiB are streamed from disk, never loaded whole.
package final class S3Client {
    package let endpoint: S3Endpoint
    package var timeouts: HTTPTimeouts
    /// False once the store answered a conditional PutObject 501 NotImplemented: it has no conditional writes,
    /// so this client's later writes go without their condition (a write sent again after a lost answer is then
    /// kept from landing twice only by the look before it).
    package private(set) var conditionalWrites = true
    /// Asked while a request body goes out: true ends the request (class `interrupted`, nothing stored). A run
    /// that is stopping sets it, so a large upload does not hold the stop up.
    package var shouldEnd: (@Sendable () -> Bool)?
    /// The process's cap on upload bandwidth (`upload.max_bandwidth`), shared with every other client.
    package var bandwidth: BandwidthLimiter?
    private let credentials: CredentialProvider
    /// The handle the blocking methods use, made on first use (a client of a `TransferLoop` may never need one).
    private var easy: CurlEasy?
    /// The event loop the `async` methods send on; `nil` until the worker that owns the client sets it.
    package var loop: TransferLoop?
    private var signingKeys = SigV4KeyCache()
    /// The signing time, corrected by the server's once S3 said the local clock is off; shared by the clients
    /// of one `S3Context`.
    package let clock: SigningClock
    private let logger: Logger

    package init(
        endpoint: S3Endpoint,
        credentials: CredentialProvider,
        timeouts: HTTPTimeouts = HTTPTimeouts(),
        clock: SigningClock = SigningClock(),
        logger: Logger
    )
        throws(S3Error)
    {
        self.endpoint = endpoint
        self.credentials = credentials
        self.clock = clock
        self.timeouts = timeouts
        self.logger = logger
    }

    private func curl() throws(S3Error) -> CurlEasy {
        if let easy { return easy }
        do {
            let made = try CurlEasy()
            made.caBundle = endpoint.caBundle
            easy = made
            return made
        } catch {
            throw S3Error(error)
        }
    }

    // MARK: - Buckets and objects

    /// Checks that the bucket exists and these credentials may use it. The S3 operation is HeadBucket.
    ///
    /// A refused HEAD carries no body to say why; then a one-key listing asks again, so a wrong secret reads as
    /// `signature_mismatch` rather than a bare 403.
    package func headBucket(_ bucket: String) throws(S3Error) {
        do {
            _ = try deliver(exchange("HEAD", bucket: bucket, resource: "bucket \(bucket)"))
        } catch  where error.httpStatus == 403 {
            _ = try listObjects(bucket: bucket, maxKeys: 1)
            throw error
        }
    }

    /// The object's size, ETag and stored checksum; `nil` when there is no such key. The S3 operation is
    /// HeadObject.
    package func headObject(bucket: String, key: String) throws(S3Error) -> ObjectInfo? {
        do {
            return ObjectInfo(head: try deliver(headExchange(bucket: bucket, key: key)))
        } catch  where Self.isMissingKey(error) {
            return nil
        }
    }

    /// `headObject` on the client's `TransferLoop`.
    package func headObject(bucket: String, key: String) async throws(S3Error) -> ObjectInfo? {
        do {
            return ObjectInfo(head: try await deliverOnLoop(headExchange(bucket: bucket, key: key)))
        } catch  where Self.isMissingKey(error) {
            return nil
        }
    }

    private func headExchange(bucket: String, key: String) -> Exchange {
        exchange(
            "HEAD",
            bucket: bucket,
            key: key,
            headers: [("x-amz-checksum-mode", "ENABLED")],
            resource: "s3://\(bucket)/\(key)"
        )
    }

    /// A 404 for the key, not for the bucket.
    private static func isMissingKey(_ error: S3Error) -> Bool {
        error.httpStatus == 404 && error.kind != .noSuchBucket
    }

    /// The object's bytes (for verification and small documents; the client caps a response at
    /// `CurlEasy.maximumResponseBytes`). The S3 operation is GetObject.
    package func getObject(bucket: String, key: String) throws(S3Error) -> [UInt8] {
        try deliver(exchange("GET", bucket: bucket, key: key, resource: "s3://\(bucket)/\(key)")).body
    }

    /// One page of keys under `prefix`. The S3 operation is ListObjectsV2 (with `encoding-type=url`, so any
    /// key survives the XML).
    package func listObjects(
        bucket: String,
        prefix: String = "",
        continuationToken: String? = nil,
        maxKeys: Int = 1000
    )
        throws(S3Error) -> ListPage
    {
        var query = [("list-type", "2"), ("encoding-type", "url"), ("max-keys", String(maxKeys))]
        if !prefix.isEmpty { query.append(("prefix", prefix)) }
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        let response = try deliver(exchange("GET", bucket: bucket, query: query, resource: "bucket \(bucket)"))
        let document = try parse(response, expecting: ["ListBucketResult"])
        let objects = document.all("Contents").map { item in
            ListedObject(
                key: S3Client.urlDecoded(item["Key"] ?? ""),
                size: Int64(item["Size"] ?? "") ?? 0,
                etag: item["ETag"] ?? ""
            )
        }
        let truncated = document["IsTruncated"] == "true"
        return ListPage(objects: objects, nextContinuationToken: truncated ? document["NextContinuationToken"] : nil)
    }

    /// Every key under `prefix`, page by page; `body` sees each page as it arrives.
    package func listAllObjects(bucket: String, prefix: String = "", _ body: ([ListedObject]) throws -> Void) throws {
        var token: String? = nil
        repeat {
            let page = try listObjects(bucket: bucket, prefix: prefix, continuationToken: token)
            try body(page.objects)
            token = page.nextContinuationToken
        } while token != nil
    }

    // MARK: - Uploads

    /// Files up to this size are read into memory once and sent from there; larger ones are streamed from
    /// disk, so memory stays bounded by the number of workers.
    package static let inMemoryUploadLimit: Int64 = 256 * 1024

    /// Uploads a file as one object in one request (PutObject; large files go through `ParallelMultipart`).
    ///
    /// The file's SHA-256 is computed first, then the bytes are sent with it in the signed
    /// `x-amz-content-sha256` and, for a file above `inMemoryUploadLimit`, in `x-amz-checksum-sha256`; a small
    /// file carries `Content-MD5` instead. Either way S3 refuses bytes that differ, and the ledger records the
    /// SHA-256. A file whose size or mtime changes meanwhile is reported as `.fileChanged`.
    ///
    /// - Parameter condition: What the key must hold for the write to happen (`PutCondition`); a key in
    ///   another state is answered `.preconditionFailed` and nothing is written.
    package func uploadFile(
        _ file: LocalFile,
        bucket: String,
        key: String,
        condition: PutCondition = .always,
        attributes: ObjectAttributes = .plain,
        onBytesSent: ((Int64) -> Void)? = nil
    ) throws(S3Error) -> UploadedObject {
        let put = try preparePut(file, attributes: attributes)
        var condition = conditionalWrites ? condition : .always
        while true {
            do {
                let exchange = putExchange(put, bucket: bucket, key: key, condition: condition, onBytesSent)
                return try uploaded(put, file, bucket: bucket, key: key, response: try deliver(exchange))
            } catch  where dropsCondition(after: error, &condition) {}
        }
    }

    /// `uploadFile` on the client's `TransferLoop`.
    package func uploadFile(
        _ file: LocalFile,
        bucket: String,
        key: String,
        condition: PutCondition = .always,
        attributes: ObjectAttributes = .plain
    ) async throws(S3Error) -> UploadedObject {
        let put = try preparePut(file, attributes: attributes)
        var condition = conditionalWrites ? condition : .always
        while true {
            do {
                let exchange = putExchange(put, bucket: bucket, key: key, condition: condition, nil)
                return try uploaded(put, file, bucket: bucket, key: key, response: try await deliverOnLoop(exchange))
            } catch  where dropsCondition(after: error, &condition) {}
        }
    }

    /// A file read (or, above `inMemoryUploadLimit`, hashed to be streamed) for one PutObject.
    private struct PreparedPut {
        var before: LocalFile.Status
        var digest: [UInt8]
        var body: HTTPBody
        var headers: [(String, String)]
    }

    @inline(never)  // as the other steps that do not wait: kept out of the frame an async upload waits in
    private func preparePut(_ file: LocalFile, attributes: ObjectAttributes) throws(S3Error) -> PreparedPut {
        let before = try S3Error.reading { try file.status() }
        let digest: [UInt8]
        let body: HTTPBody
        var headers = attributes.headers
        if before.size <= Self.inMemoryUploadLimit {
            // Read once, into the memory every transfer of it sends from: the bytes hashed are the bytes sent, so
            // the object is one consistent copy of the file.
            let bytes = try S3Error.reading {
                try BodyBytes(count: Int(before.size)) { buffer throws(LocalFileError) in try file.read(into: buffer) }
            }
            let hash = SHA256()
            let md5 = bytes.withUnsafeBytes { buffer in
                hash.update(buffer)
                return MD5.digest(buffer)
            }
            digest = hash.finalize()
            body = .memory(bytes)
            // Content-MD5 rather than x-amz-checksum-sha256 for small files: every server verifies it, and
            // SeaweedFS spent a third more CPU per small object verifying and storing the SHA-256 checksum.
            headers.append(("content-md5", md5.base64))
            try requireUnchanged(file, since: before, "while it was read")
        } else {
            digest = try S3Error.reading { try file.sha256(offset: 0, length: before.size) }
            body = .file(
                FileRegion(
                    descriptor: file.descriptor,
                    offset: 0,
                    length: before.size,
                    unchangedSince: (before.size, before.mtime)
                )
            )
            headers.append(("x-amz-checksum-sha256", digest.base64))
            try requireUnchanged(file, since: before, "while its checksum was computed")
        }
        return PreparedPut(before: before, digest: digest, body: body, headers: headers)
    }

    /// The PutObject request of `put`, written only on `condition`.
    @inline(never)
    private func putExchange(
        _ put: PreparedPut,
        bucket: String,
        key: String,
        condition: PutCondition,
        _ onBytesSent: ((Int64) -> Void)?
    ) -> Exchange {
        exchange(
            "PUT",
            bucket: bucket,
            key: key,
            headers: put.headers + condition.headers,
            body: put.body,
            payloadHash: put.digest.hexString,
            resource: "s3://\(bucket)/\(key)",
            onBytesSent: onBytesSent
        )
    }

    /// Whether a write that failed with `error` goes again without its condition: the store answered 501
    /// NotImplemented for the condition and stored nothing, so this client's writes go without one from now on.
    private func dropsCondition(after error: S3Error, _ condition: inout PutCondition) -> Bool {
        guard error.httpStatus == 501, condition != .always else { return false }
        condition = .always
        conditionalWrites = false
        logger.warning(
            "the store does not implement conditional writes (If-None-Match, If-Match); writing without them",
            metadata: ["error": "\(error.message)"]
        )
        return true
    }

    @inline(never)
    private func uploaded(
        _ put: PreparedPut,
        _ file: LocalFile,
        bucket: String,
        key: String,
        response: HTTPResponse
    ) throws(S3Error) -> UploadedObject {
        if case .file = put.body { try requireUnchanged(file, since: put.before, "while it was sent") }
        return UploadedObject(
            bucket: bucket,
            key: key,
            etag: response.header("etag") ?? "",
            sha256: put.digest.hexString,
            versionID: response.header("x-amz-version-id"),
            size: put.before.size,
            mtime: put.before.mtime,
            partCount: 0,
            device: put.before.device,
            inode: put.before.inode
        )
    }

    package func requireUnchanged(_ file: LocalFile, since before: LocalFile.Status, _ when: String) throws(S3Error) {
        let now = try S3Error.reading { try file.status() }
        guard now == before else {
            throw S3Error(
                .fileChanged,
                "\(file.displayPath) changed \(when) (size \(before.size) → \(now.size), mtime \(before.mtime) → \(now.mtime))"
            )
        }
    }

    // MARK: - Multipart operations

    /// Starts a multipart upload whose parts carry SHA-256 checksums. The S3 operation is
    /// CreateMultipartUpload.
    package func createMultipartUpload(
        bucket: String,
        key: String,
        attributes: ObjectAttributes = .plain
    ) throws(S3Error) -> String {
        let response = try deliver(
            exchange(
                "POST",
                bucket: bucket,
                key: key,
                query: [("uploads", "")],
                headers: attributes.headers + [("x-amz-checksum-algorithm", "SHA256")],
                resource: "s3://\(bucket)/\(key)"
            )
        )
        let document = try parse(response, expecting: ["InitiateMultipartUploadResult"])
        guard let uploadID = document["UploadId"], !uploadID.isEmpty else {
            throw S3Error(.other, "CreateMultipartUpload for s3://\(bucket)/\(key) returned no UploadId")
        }
        return uploadID
    }

    /// Sends one part, streamed from the file. The S3 operation is UploadPart.
    package func uploadPart(
        bucket: String,
        key: String,
        uploadID: String,
        partNumber: Int,
        region: FileRegion,
        sha256: [UInt8],
        onBytesSent: ((Int64) -> Void)? = nil
    ) throws(S3Error) -> UploadedPart {
        let exchange = partExchange(bucket, key, uploadID, partNumber, region, sha256, onBytesSent)
        return Self.part(partNumber, region, sha256, answer: try deliver(exchange))
    }

    /// `uploadPart` on the client's `TransferLoop`.
    package func uploadPart(
        bucket: String,
        key: String,
        uploadID: String,
        partNumber: Int,
        region: FileRegion,
        sha256: [UInt8]
    ) async throws(S3Error) -> UploadedPart {
        let exchange = partExchange(bucket, key, uploadID, partNumber, region, sha256, nil)
        return Self.part(partNumber, region, sha256, answer: try await deliverOnLoop(exchange))
    }

    private func partExchange(
        _ bucket: String,
        _ key: String,
        _ uploadID: String,
        _ partNumber: Int,
        _ region: FileRegion,
        _ sha256: [UInt8],
        _ onBytesSent: ((Int64) -> Void)?
    ) -> Exchange {
        exchange(
            "PUT",
            bucket: bucket,
            key: key,
            query: [("partNumber", String(partNumber)), ("uploadId", uploadID)],
            headers: [("x-amz-checksum-sha256", sha256.base64)],
            body: .file(region),
            payloadHash: sha256.hexString,
            resource: "part \(partNumber) of s3://\(bucket)/\(key)",
            onBytesSent: onBytesSent
        )
    }

    private static func part(
        _ partNumber: Int,
        _ region: FileRegion,
        _ sha256: [UInt8],
        answer response: HTTPResponse
    ) -> UploadedPart {
        UploadedPart(
            partNumber: partNumber,
            etag: response.header("etag") ?? "",
            checksumSHA256: sha256.base64,
            size: region.length
        )
    }

    /// The parts S3 holds for an upload, all pages. The S3 operation is ListParts.
    package func listParts(bucket: String, key: String, uploadID: String) throws(S3Error) -> [UploadedPart] {
        var parts: [UploadedPart] = []
        var marker: String? = nil
        repeat {
            var query = [("uploadId", uploadID)]
            if let marker { query.append(("part-number-marker", marker)) }
            let response = try deliver(
                exchange("GET", bucket: bucket, key: key, query: query, resource: "s3://\(bucket)/\(key)")
            )
            let document = try parse(response, expecting: ["ListPartsResult", "ListPartsResponse"])
            for part in document.all("Part") {
                parts.append(
                    UploadedPart(
                        partNumber: Int(part["PartNumber"] ?? "") ?? 0,
                        etag: part["ETag"] ?? "",
                        checksumSHA256: part["ChecksumSHA256"],
                        size: Int64(part["Size"] ?? "") ?? 0
                    )
                )
            }
            marker = document["IsTruncated"] == "true" ? document["NextPartNumberMarker"] : nil
        } while marker != nil
        return parts
    }

    /// The multipart uploads started under `prefix` and neither completed nor aborted, all pages, as
    /// (key, upload id, when S3 created it; `nil` when the listing does not say). The S3 operation is
    /// ListMultipartUploads.
    package func listMultipartUploads(
        bucket: String,
        prefix: String
    ) throws(S3Error) -> [(key: String, uploadID: String, initiated: Timestamp?)] {
        var uploads: [(key: String, uploadID: String, initiated: Timestamp?)] = []
        var markers: (key: String, uploadID: String)? = nil
        repeat {
            var query = [("prefix", prefix), ("uploads", "")]
            if let markers { query += [("key-marker", markers.key), ("upload-id-marker", markers.uploadID)] }
            let response = try deliver(
                exchange("GET", bucket: bucket, query: query, resource: "s3://\(bucket)/\(prefix)")
            )
            let document = try parse(response, expecting: ["ListMultipartUploadsResult"])
            for upload in document.all("Upload") {
                // `2026-11-23T14:05:09.000Z`: the ISO 8601 form Timestamp reads, once the `Z` is an offset.
                let initiated = upload["Initiated"].flatMap {
                    Timestamp(postgres: $0.hasSuffix("Z") ? $0.dropLast() + "+00" : $0)
                }
                uploads.append((upload["Key"] ?? "", upload["UploadId"] ?? "", initiated))
            }
            markers =
                document["IsTruncated"] == "true"
                ? (document["NextKeyMarker"] ?? "", document["NextUploadIdMarker"] ?? "") : nil
        } while markers != nil
        return uploads
    }

    /// Joins the parts into the object. The S3 operation is CompleteMultipartUpload.
    ///
    /// - Returns: the object's ETag.
    package func completeMultipartUpload(
        bucket: String,
        key: String,
        uploadID: String,
        parts: [UploadedPart]
    )
        throws(S3Error) -> String
    {
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for part in parts.sorted(by: { $0.partNumber < $1.partNumber }) {
            xml += "<Part><PartNumber>\(part.partNumber)</PartNumber><ETag>\(xmlEscaped(part.etag))</ETag>"
            if let checksum = part.checksumSHA256 { xml += "<ChecksumSHA256>\(checksum)</ChecksumSHA256>" }
            xml += "</Part>"
        }
        xml += "</CompleteMultipartUpload>"
        let body = Array(xml.utf8)
        let response = try deliver(
            exchange(
                "POST",
                bucket: bucket,
                key: key,
                query: [("uploadId", uploadID)],
                headers: [("content-type", "application/xml")],
                body: .bytes(body),
                payloadHash: SHA256.hex(of: body),
                resource: "s3://\(bucket)/\(key)"
            )
        )
        // S3 can answer 200 and still fail: the error then arrives in the body.
        // Some S3-compatible stores name the root `…Response`.
        let document = try parse(
            response,
            expecting: ["CompleteMultipartUploadResult", "CompleteMultipartUploadResponse"]
        )
        return document["ETag"] ?? response.header("etag") ?? ""
    }

    /// Discards an upload and its parts. The S3 operation is AbortMultipartUpload.
    package func abortMultipartUpload(bucket: String, key: String, uploadID: String) throws(S3Error) {
        do {
            _ = try deliver(
                exchange(
                    "DELETE",
                    bucket: bucket,
                    key: key,
                    query: [("uploadId", uploadID)],
                    resource: "s3://\(bucket)/\(key)"
                )
            )
        } catch  where error.kind == .noSuchUpload {
            return  // already gone
        }
    }

    // MARK: - STS

    /// The account and identity of the credentials. The STS operation is GetCallerIdentity; it exists on
    /// AWS's endpoints only (`endpoint.stsAuthority`).
    package func getCallerIdentity(authority: String, scheme: String = "https") throws(S3Error) -> CallerIdentity {
        let body = Array("Action=GetCallerIdentity&Version=2011-06-15".utf8)
        let response = try deliver(
            exchange(
                "POST",
                authority: authority,
                scheme: scheme,
                service: "sts",
                headers: [("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
                body: .bytes(body),
                payloadHash: SHA256.hex(of: body),
                resource: "STS at \(authority)"
            )
        )
        let document = try parse(response, expecting: ["GetCallerIdentityResponse"])
        let result = document.child("GetCallerIdentityResult")
        return CallerIdentity(
            account: result?["Account"] ?? "",
            arn: result?["Arn"] ?? "",
            userID: result?["UserId"] ?? ""
        )
    }

    // MARK: - Signing and sending

    /// One S3 request as `deliver` signs it, and what its answer means.
    private struct Exchange {
        var method: String
        var host: String
        var path: String
        var url: String
        var query: [(String, String)]
        var headers: [(String, String)]
        var body: HTTPBody
        var payloadHash: String
        var service: String
        var isObject: Bool
        var resource: String
        var onBytesSent: ((Int64) -> Void)?
        var refreshedCredentials = false
        var correctedClock = false
        var signedAt = Date()
        var credentialsSource = ""
    }

    /// What an answer to an `Exchange` means.
    private enum Verdict {
        case done(HTTPResponse)
        /// Sign and send again (credentials refreshed, clock corrected).
        case again
    }

    private func exchange(
        _ method: String,
        bucket: String? = nil,
        key: String? = nil,
        authority: String? = nil,
        scheme: String? = nil,
        service: String = "s3",
        query: [(String, String)] = [],
        headers: [(String, String)] = [],
        body: HTTPBody = .none,
        payloadHash: String? = nil,
        resource: String,
        onBytesSent: ((Int64) -> Void)? = nil
    ) -> Exchange {
        let (host, path) =
            bucket.map { endpoint.address(bucket: $0, key: key) } ?? (authority ?? endpoint.authority, "/")
        var url = "\(scheme ?? endpoint.scheme)://\(host)\(SigV4Signer.uriEncode(path, encodingSlash: false))"
        if !query.isEmpty {
            url +=
                "?"
                + query.map {
                    SigV4Signer.uriEncode($0.0, encodingSlash: true) + "="
                        + SigV4Signer.uriEncode($0.1, encodingSlash: true)
                }
                .joined(separator: "&")
        }
        return Exchange(
            method: method,
            host: host,
            path: path,
            url: url,
            query: query,
            headers: headers,
            body: body,
            payloadHash: payloadHash ?? SHA256.emptyHex,
            service: service,
            isObject: key != nil,
            resource: resource,
            onBytesSent: onBytesSent
        )
    }

    /// The request of `exchange`, signed now.
    private func signedRequest(_ exchange: inout Exchange) throws(S3Error) -> HTTPRequest {
        let current: AWSCredentials
        do {
            current = try credentials.credentials()
        } catch {
            throw S3Error(.invalidCredentials, "\(error)")
        }
        exchange.credentialsSource = "\(current.source)"
        let signer = SigV4Signer(credentials: current, region: endpoint.region, service: exchange.service)
        exchange.signedAt = clock.now
        var allHeaders = [(name: "host", value: exchange.host)] + exchange.headers.map { (name: $0.0, value: $0.1) }
        let signature = signer.sign(
            SigV4Request(
                method: exchange.method,
                host: exchange.host,
                path: exchange.path,
                query: exchange.query.map { (name: $0.0, value: $0.1) },
                headers: allHeaders,
                payloadHash: exchange.payloadHash
            ),
            at: exchange.signedAt,
            keys: &signingKeys
        )
        allHeaders += signature.headersToAdd
        return HTTPRequest(
            method: exchange.method,
            url: exchange.url,
            headers: allHeaders,
            body: exchange.body,
            timeouts: timeouts,
            onBytesSent: exchange.onBytesSent,
            shouldEnd: shouldEnd,
            bandwidth: bandwidth
        )
    }

    /// What the answer to `exchange` means: a success, a reason to sign and send again (expired credentials
    /// refreshed once, a skewed clock corrected once), or the error.
    private func judge(_ response: HTTPResponse, _ exchange: inout Exchange) throws(S3Error) -> Verdict {
        if (200..<300).contains(response.status) { return .done(response) }
        let document = XMLTree.parse(response.body)
        let serverTime = response.header("date").flatMap { HTTPDate.parse($0) }?.date
        let code =
            document?["Code"]
            ?? S3Client.codeWithoutBody(
                status: response.status,
                isObject: exchange.isObject,
                signedAt: exchange.signedAt,
                serverTime: serverTime
            )
        let skewed = code == "RequestTimeTooSkewed"
        var error = S3Error(
            status: response.status,
            code: code,
            message: document?["Message"] ?? (skewed ? "the request time is too far from the server's" : nil),
            requestID: document?["RequestId"] ?? response.header("x-amz-request-id"),
            resource: exchange.resource
        )
        if error.kind == .expiredToken, !exchange.refreshedCredentials {
            logger.notice(
                "credentials expired; refreshing",
                metadata: ["credentials.source": "\(exchange.credentialsSource)"]
            )
            credentials.invalidate()
            exchange.refreshedCredentials = true
            return .again
        }
        if error.kind == .clockSkewed {
            guard let serverTime else {
                error.message += " (the answer carried no Date header to learn the server's time from)"
                throw error
            }
            let localTime = clock.localNow
            let offset = serverTime.timeIntervalSince(localTime)
            error.message = "\(SigningClock.describe(offsetSeconds: offset)): \(error.message)"
            if !exchange.correctedClock {
                clock.adopt(serverTime: serverTime, at: localTime)
                exchange.correctedClock = true
                logger.warning(
                    "\(SigningClock.describe(offsetSeconds: offset)); signing with the server's time from now on",
                    metadata: ["clock.offset_seconds": "\(Int(offset.rounded()))"]
                )
                return .again
            }
        }
        throw error
    }

    /// Signs and sends `exchange` on the client's own handle, and again when `judge` says so; the answer when
    /// it is a success.
    private func deliver(_ exchange: Exchange) throws(S3Error) -> HTTPResponse {
        var exchange = exchange
        let curl = try curl()
        while true {
            let request = try signedRequest(&exchange)
            let response: HTTPResponse
            do {
                response = try curl.perform(request)
            } catch {
                throw S3Error(error)
            }
            if case .done(let response) = try judge(response, &exchange) { return response }
        }
    }

    /// `deliver` on the client's `TransferLoop` (on the client's own handle when it has none): the calling task waits,
    /// the loop's thread carries other transfers meanwhile.
    private func deliverOnLoop(_ exchange: Exchange) async throws(S3Error) -> HTTPResponse {
        guard let loop else { return try deliver(exchange) }
        var exchange = exchange
        while true {
            let request = try signedRequest(&exchange)
            let response: HTTPResponse
            do {
                response = try await loop.perform(request)
            } catch {
                throw S3Error(error)
            }
            if case .done(let response) = try judge(response, &exchange) { return response }
        }
    }

    /// S3 refuses a request signed further than this from its own time, in seconds.
    static let allowedSkewSeconds: TimeInterval = 15 * 60

    /// The error code of an answer without a body (HEAD responses have none): the status and what was asked
    /// for say which error it is. A 403 to a request signed further from the server's time (its `Date`
    /// header) than S3 allows is the clock skew refusal, not a denial.
    static func codeWithoutBody(status: Int, isObject: Bool, signedAt: Date, serverTime: Date?) -> String? {
        switch status {
        case 404:
            return isObject ? "NoSuchKey" : "NoSuchBucket"
        case 403:
            guard let serverTime, abs(serverTime.timeIntervalSince(signedAt)) > allowedSkewSeconds else { return nil }
            return "RequestTimeTooSkewed"
        default:
            return nil
        }
    }

    /// Parses a response document, turning an `<Error>` body (S3 sends some with status 200) into an error.
    private func parse(_ response: HTTPResponse, expecting roots: Set<String>) throws(S3Error) -> XMLTree {
        guard let document = XMLTree.parse(response.body) else {
            throw S3Error(.other, "unreadable response (HTTP \(response.status)): \(response.bodyText.prefix(200))")
        }
        if document.name == "Error" {
            throw S3Error(
                status: 500,
                code: document["Code"],
                message: document["Message"],
                requestID: document["RequestId"],
                resource: "request"
            )
        }
        guard roots.contains(document.name) else {
            let expected = roots.sorted().map { "<\($0)>" }.joined(separator: " or ")
            throw S3Error(.other, "expected \(expected) in the response, got <\(document.name)>")
        }
        return document
    }

    /// ListObjectsV2 with `encoding-type=url` encodes keys as forms do: `+` for space, `%XX` for the rest.
    static func urlDecoded(_ text: String) -> String {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? text
    }
}
