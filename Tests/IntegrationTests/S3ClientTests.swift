import FleetAWS
import FleetSystem
import FleetTestSupport
import Foundation
import Synchronization
import Testing

@testable import FleetCore

/// Every S3 operation against a real server that checks signatures and checksums.
struct S3ClientTests {
    /// Small files go out from memory in the request's first write, larger ones stream from disk: both sides of
    /// the limit, and the empty file.
    @Test(arguments: [0, 100_000, Int(S3Client.inMemoryUploadLimit), Int(S3Client.inMemoryUploadLimit) + 1, 3 << 20])
    func uploadedFileReadsBackByteForByteWithItsChecksum(size: Int) throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("a.bin", size: size)
        let client = try s3.client()
        var reported: Int64 = 0

        let uploaded = try client.uploadFile(LocalFile(path: path.path), bucket: s3.bucket, key: s3.prefix + "a.bin") {
            reported = $0
        }

        let bytes = try Data(contentsOf: path)
        #expect(uploaded.sha256 == SHA256.hex(of: Array(bytes)))
        #expect(uploaded.size == Int64(size))
        #expect(reported == Int64(size))
        #expect(try client.getObject(bucket: s3.bucket, key: s3.prefix + "a.bin") == Array(bytes))
        let info = try #require(try client.headObject(bucket: s3.bucket, key: s3.prefix + "a.bin"))
        #expect(info.size == Int64(size))
        #expect(info.etag == uploaded.etag)
        if let checksum = info.checksumSHA256 { #expect(checksum == sha256(bytes).base64) }
    }

    @Test(arguments: [
        "with space.txt", "plus+sign.txt", "100%.txt", "hash#tag.txt", "question?.txt", "café/日本語/ファイル.txt",
        "a & b = c;d,e'f\"g.txt", "tilde~and!bang*(paren).txt",
        // With the test's 39-character prefix: a 1,000-character key.
        String(repeating: "deep/", count: 190) + "end.txt-456",
    ])
    func awkwardKeysRoundTrip(name: String) throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("f", size: 37)
        let client = try s3.client()
        let key = s3.prefix + name

        _ = try client.uploadFile(LocalFile(path: path.path), bucket: s3.bucket, key: key)

        #expect(try client.getObject(bucket: s3.bucket, key: key) == Array(try Data(contentsOf: path)))
        #expect(try client.headObject(bucket: s3.bucket, key: key)?.size == 37)
        let listed = try client.listObjects(bucket: s3.bucket, prefix: s3.prefix).objects.map(\.key)
        #expect(listed == [key])
    }

    @Test func parallelMultipartUploadReassemblesThePartsExactly() throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("big.bin", size: 12 * 1024 * 1024 + 123)
        let client = try s3.client()
        let key = s3.prefix + "big.bin"

        let uploaded = try ParallelMultipart(
            context: S3Context(config: s3.config(), environment: s3.environment, homeDirectory: "/nonexistent-home"),
            partSize: 5 << 20,
            concurrency: 2,
            timeouts: client.timeouts,
            logger: quietLogger
        ).upload(LocalFile(path: path.path), bucket: s3.bucket, key: key, client: client)

        let bytes = try Data(contentsOf: path)
        #expect(uploaded.partCount == 3)
        #expect(uploaded.sha256 == SHA256.hex(of: Array(bytes)))
        #expect(try client.headObject(bucket: s3.bucket, key: key)?.size == Int64(bytes.count))
        #expect(try client.getObject(bucket: s3.bucket, key: key) == Array(bytes))
    }

    /// A run sends a large file's parts as transfers on its lane's loop, several at once, with the small files'
    /// client: the object is the file, byte for byte, in the parts planned.
    @Test func partsSentOnATransferLoopReassembleTheFileExactly() throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("big.bin", size: 17 * 1024 * 1024 + 5)
        let key = s3.prefix + "looped.bin"
        let context = try S3Context(
            config: s3.config(),
            environment: s3.environment,
            homeDirectory: "/nonexistent-home"
        )
        let multipart = ParallelMultipart(
            context: context,
            partSize: 5 << 20,
            concurrency: 3,
            timeouts: HTTPTimeouts(),
            logger: quietLogger
        )
        let loop = try TransferLoop()
        let client = try s3.client()
        client.loop = loop
        let file = try LocalFile(path: path.path)
        let handed = LoopOwned((client, file))
        let outcome = Mutex<Result<UploadedObject, S3Error>?>(nil)
        loop.spawn {
            let (client, file) = handed.value
            do throws(S3Error) {
                let uploaded = try await multipart.upload(file, bucket: s3.bucket, key: key, client: client, loop: loop)
                outcome.withLock { $0 = .success(uploaded) }
            } catch {
                outcome.withLock { $0 = .failure(error) }
            }
        }
        loop.run()

        let uploaded = try #require(outcome.withLock { $0 }).get()
        let bytes = try Data(contentsOf: path)
        #expect(uploaded.partCount == 4)
        #expect(uploaded.sha256 == SHA256.hex(of: Array(bytes)))
        let reader = try s3.client()
        #expect(try reader.headObject(bucket: s3.bucket, key: key)?.isMultipart == true)
        #expect(try reader.getObject(bucket: s3.bucket, key: key) == Array(bytes))
    }

    @Test func listPartsShowsFinishedPartsAndAbortLeavesNothing() throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("parts.bin", size: 6 << 20)
        let client = try s3.client()
        let key = s3.prefix + "parts.bin"
        let file = try LocalFile(path: path.path)

        let uploadID = try client.createMultipartUpload(bucket: s3.bucket, key: key)
        let digest = try file.sha256(offset: 0, length: 5 << 20)
        let part = try client.uploadPart(
            bucket: s3.bucket,
            key: key,
            uploadID: uploadID,
            partNumber: 1,
            region: FileRegion(descriptor: file.descriptor, offset: 0, length: 5 << 20),
            sha256: digest
        )
        let listed = try client.listParts(bucket: s3.bucket, key: key, uploadID: uploadID)
        #expect(listed.map(\.partNumber) == [1])
        #expect(listed.first?.etag == part.etag)
        #expect(listed.first?.size == 5 << 20)

        try client.abortMultipartUpload(bucket: s3.bucket, key: key, uploadID: uploadID)

        #expect(try client.headObject(bucket: s3.bucket, key: key) == nil)
        #expect(throws: S3Error.self) { try client.listParts(bucket: s3.bucket, key: key, uploadID: uploadID) }
    }

    @Test func listingPagesThroughMoreThanAThousandKeys() throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("tiny", size: 1)
        let client = try s3.client()
        let file = try LocalFile(path: path.path)
        let keys = (0..<1005).map { s3.prefix + String(format: "k%04d", $0) }
        for key in keys { _ = try client.uploadFile(file, bucket: s3.bucket, key: key) }

        var pages = 0
        var seen: [String] = []
        try client.listAllObjects(bucket: s3.bucket, prefix: s3.prefix) { objects in
            pages += 1
            seen += objects.map(\.key)
        }

        #expect(pages == 2)
        #expect(seen == keys)
    }

    @Test func keyLongerThanS3AllowsIsRefusedPermanently() throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("f", size: 1)
        let key = s3.prefix + String(repeating: "x", count: 1025 - s3.prefix.utf8.count)

        let error = try #require(throws: S3Error.self) {
            try s3.client().uploadFile(LocalFile(path: path.path), bucket: s3.bucket, key: key)
        }
        #expect(error.kind == .invalidRequest)
        #expect(error.awsCode == "KeyTooLongError")
        #expect(!error.isTransient)
    }

    @Test func missingObjectIsNilAndMissingBucketIsNoSuchBucket() throws {
        let s3 = try TestS3()
        let client = try s3.client()

        #expect(try client.headObject(bucket: s3.bucket, key: s3.prefix + "absent") == nil)
        let error = try #require(throws: S3Error.self) { try client.headBucket("fleet-no-such-bucket") }
        #expect(error.kind == .noSuchBucket)
        #expect(!error.isTransient)
    }

    @Test func wrongSecretIsASignatureMismatchAndNothingIsStored() throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("x", size: 10)
        let wrong = try s3.client(secretAccessKey: "not-the-secret-key-at-all-0000000000000")

        let error = try #require(throws: S3Error.self) {
            try wrong.uploadFile(LocalFile(path: path.path), bucket: s3.bucket, key: s3.prefix + "x")
        }
        #expect(error.kind == .signatureMismatch)
        #expect(error.httpStatus == 403)
        #expect(!error.description.contains("not-the-secret"))
        #expect(try s3.client().headObject(bucket: s3.bucket, key: s3.prefix + "x") == nil)
    }

    @Test func unknownAccessKeyIsInvalidCredentials() throws {
        let s3 = try TestS3()
        let error = try #require(throws: S3Error.self) {
            try s3.client(accessKeyID: "AKIANOSUCHKEY0000000").headBucket(s3.bucket)
        }
        #expect(error.kind == .invalidCredentials || error.kind == .accessDenied)
        #expect(!error.isTransient)
    }

    @Test func closedPortIsATransientNetworkError() throws {
        let s3 = try TestS3()
        let port = try unusedPort()
        let error = try #require(throws: S3Error.self) {
            try s3.client(endpoint: "http://127.0.0.1:\(port)").headBucket(s3.bucket)
        }
        #expect(error.kind == .network)
        #expect(error.isTransient)
    }

    @Test func serverThatGoesSilentIsNoticedAsATransientTimeout() throws {
        let s3 = try TestS3()
        // Accepts connections and never answers: a link that died after connecting.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try withUnsafeMutablePointer(to: &address) { pointer in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw in
                try #require(bind(listener, raw, length) == 0 && listen(listener, 8) == 0)
                try #require(getsockname(listener, raw, &length) == 0)
            }
        }
        let port = Int(UInt16(bigEndian: address.sin_port))
        let client = try s3.client(endpoint: "http://127.0.0.1:\(port)")
        client.timeouts = HTTPTimeouts(connectSeconds: 2, stallBytesPerSecond: 1, stallSeconds: 1, totalSeconds: 30)

        let error = try #require(throws: S3Error.self) { try client.headBucket(s3.bucket) }

        #expect(error.kind == .timeout)
        #expect(error.isTransient)
    }

    @Test func fileThatGrowsWhileSentIsReportedChangedAndNotStored() throws {
        let s3 = try TestS3()
        let tree = try TemporaryTree()
        defer { tree.remove() }
        let path = try tree.file("growing.log", size: 3 << 20)
        let client = try s3.client()
        let key = s3.prefix + "growing.log"
        let appender = try FileHandle(forWritingTo: path)
        defer { try? appender.close() }
        var appended = false

        let error = try #require(throws: S3Error.self) {
            try client.uploadFile(LocalFile(path: path.path), bucket: s3.bucket, key: key) { sent in
                if sent > 1 << 20, !appended {
                    appended = true
                    appender.seekToEndOfFile()
                    appender.write(Data(repeating: 0x41, count: 4096))
                }
            }
        }
        #expect(error.kind == .fileChanged)
        #expect(error.isTransient)
        #expect(error.message.contains("ended before its last byte"), "\(error)")
        // The request was ended before its last byte: no object of the file as it was half-way is stored.
        #expect(try client.headObject(bucket: s3.bucket, key: key) == nil)
    }

    @Test func callerIdentityNamesTheAccountAndAWrongSecretIsRefused() throws {
        let s3 = try TestS3()
        let client = try s3.client()

        let identity = try client.getCallerIdentity(
            authority: client.endpoint.stsAuthority,
            scheme: client.endpoint.scheme
        )

        #expect(!identity.arn.isEmpty)
        #expect(!identity.account.isEmpty)
        let wrong = try s3.client(secretAccessKey: "wrong-secret-key-wrong-secret-key-wrong0")
        let error = try #require(throws: S3Error.self) {
            try wrong.getCallerIdentity(authority: wrong.endpoint.stsAuthority, scheme: wrong.endpoint.scheme)
        }
        #expect(error.kind == .signatureMismatch)
    }

    @Test(arguments: ["CompleteMultipartUploadResult", "CompleteMultipartUploadResponse"])
    func completeMultipartUploadAcceptsEitherRootName(root: String) throws {
        // Some S3-compatible stores answer CompleteMultipartUpload with a `…Response` root.
        let receiver = try HTTPReceiver(body: "<\(root)><Bucket>b</Bucket><ETag>\"abc-2\"</ETag></\(root)>")
        defer { receiver.stop() }
        let origin = try #require(URL(string: receiver.url)).deletingLastPathComponent().deletingLastPathComponent()
        let client = try TestS3().client(endpoint: origin.absoluteString)

        let etag = try client.completeMultipartUpload(
            bucket: "b",
            key: "k",
            uploadID: "u",
            parts: [UploadedPart(partNumber: 1, etag: "\"e1\"", checksumSHA256: nil, size: 5)]
        )

        #expect(etag == "\"abc-2\"")
    }

    @Test func vanishedFileIsAPermanentFileMissing() throws {
        let error = try #require(throws: S3Error.self) {
            try S3Error.reading { try LocalFile(path: "/nonexistent/fleet/file.bin") }
        }
        #expect(error.kind == .fileMissing)
        #expect(!error.isTransient)
    }
}

private func sha256(_ data: Data) -> [UInt8] {
    let hash = SHA256()
    hash.update(Array(data))
    return hash.finalize()
}

/// Values the test hands to its loop's one task, used there alone.
private struct LoopOwned<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
