internal import CZstd
import Foundation

/// What libzstd allows.
package enum Zstd {
    /// The compression levels libzstd accepts: negative levels are faster and compress less, 1–19 the usual
    /// range, 20–22 need much more memory.
    package static var levels: ClosedRange<Int> { Int(ZSTD_minCLevel())...Int(ZSTD_maxCLevel()) }

    /// The level `compress` uses when none is given.
    package static let defaultLevel = 3

    /// The whole of `bytes` decompressed (small objects: tests, checks).
    package static func decompress(_ bytes: [UInt8]) throws(ZstdError) -> [UInt8] {
        let decompressor = try ZstdDecompressor()
        var out: [UInt8] = []
        var failure: ZstdError?
        bytes.withUnsafeBytes { input in
            do throws(ZstdError) {
                try decompressor.decompress(input) { out.append(contentsOf: $0) }
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
        try decompressor.finish()
        return out
    }

    /// The whole of `bytes` compressed at `level` in one frame.
    package static func compress(_ bytes: [UInt8], level: Int) throws(ZstdError) -> [UInt8] {
        let compressor = try ZstdCompressor(level: level, pledgedSize: Int64(bytes.count))
        var out: [UInt8] = []
        do {
            try bytes.withUnsafeBytes { input in
                try compressor.compress(input, last: true) { out.append(contentsOf: $0) }
            }
        } catch let error as ZstdError {
            throw error
        } catch {
            throw ZstdError("\(error)")  // the sink above throws nothing
        }
        return out
    }

    /// The error a libzstd result code means, or nil when it is not one.
    static func check(_ code: Int, _ what: String) throws(ZstdError) {
        if ZSTD_isError(code) != 0 { throw ZstdError("\(what): \(String(cString: ZSTD_getErrorName(code)))") }
    }
}

/// A zstd stream that cannot be made or read: a bad level, corrupt or truncated input.
package struct ZstdError: Error, Sendable, Equatable, CustomStringConvertible {
    package var message: String
    package init(_ message: String) { self.message = message }
    package var description: String { message }
}

/// A streaming zstd compressor: input goes in piece by piece and compressed bytes come out as they are made, so
/// memory stays bounded by the level's window (a few MiB at the usual levels) whatever the input's length.
///
/// One thread and fixed parameters (level, checksum, pledged size), never libzstd's worker threads: the same
/// input at the same level makes the same bytes every time, which is what lets a resumed multipart upload reuse
/// the parts an earlier run sent. Owns its `ZSTD_CCtx`; `deinit` frees it. One frame per compressor.
package final class ZstdCompressor {
    private let context: OpaquePointer
    private let output: UnsafeMutableRawBufferPointer

    /// - Parameter pledgedSize: The input's length, when known: written in the frame header, and input of
    ///   another length is an error.
    package init(level: Int, pledgedSize: Int64? = nil) throws(ZstdError) {
        guard Zstd.levels.contains(level) else {
            throw ZstdError("zstd level \(level) is outside \(Zstd.levels.lowerBound)…\(Zstd.levels.upperBound)")
        }
        guard let context = ZSTD_createCCtx() else { throw ZstdError("zstd: cannot allocate a compression context") }
        self.context = context
        output = .allocate(byteCount: ZSTD_CStreamOutSize(), alignment: 16)
        try Zstd.check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)), "zstd level")
        try Zstd.check(ZSTD_CCtx_setParameter(context, ZSTD_c_nbWorkers, 0), "zstd workers")
        try Zstd.check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "zstd checksum")
        if let pledgedSize {
            try Zstd.check(ZSTD_CCtx_setPledgedSrcSize(context, UInt64(pledgedSize)), "zstd pledged size")
        }
    }

    deinit {
        ZSTD_freeCCtx(context)
        output.deallocate()
    }

    /// Compresses `input`, handing each piece of output to `sink` (valid only during the call); `last` ends the
    /// frame, after which the compressor takes no more input.
    ///
    /// - Throws: `ZstdError`, or what `sink` throws.
    package func compress(
        _ input: UnsafeRawBufferPointer,
        last: Bool,
        into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while true {
            var target = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
            let left = ZSTD_compressStream2(context, &target, &source, last ? ZSTD_e_end : ZSTD_e_continue)
            try Zstd.check(left, "zstd compression")
            if target.pos > 0 { try sink(UnsafeRawBufferPointer(rebasing: output[0..<target.pos])) }
            if last ? left == 0 : source.pos == source.size { return }
        }
    }
}

/// A streaming zstd decompressor, the counterpart of `ZstdCompressor`: output as it is made, memory bounded by
/// the frame's window. Owns its `ZSTD_DCtx`; `deinit` frees it.
package final class ZstdDecompressor {
    private let context: OpaquePointer
    private let output: UnsafeMutableRawBufferPointer
    /// Whether the input so far ends at the end of a frame.
    private var atFrameEnd = true

    package init() throws(ZstdError) {
        guard let context = ZSTD_createDCtx() else {
            throw ZstdError("zstd: cannot allocate a decompression context")
        }
        self.context = context
        output = .allocate(byteCount: ZSTD_DStreamOutSize(), alignment: 16)
    }

    deinit {
        ZSTD_freeDCtx(context)
        output.deallocate()
    }

    /// Decompresses `input`, handing each piece of output to `sink` (valid only during the call).
    package func decompress(
        _ input: UnsafeRawBufferPointer,
        into sink: (UnsafeRawBufferPointer) -> Void
    ) throws(ZstdError) {
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        while source.pos < source.size || !atFrameEnd {
            var target = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
            let hint = ZSTD_decompressStream(context, &target, &source)
            try Zstd.check(hint, "zstd decompression")
            atFrameEnd = hint == 0
            if target.pos > 0 { sink(UnsafeRawBufferPointer(rebasing: output[0..<target.pos])) }
            // Output not full and no input left: the rest of the frame is still to come.
            if target.pos < target.size, source.pos == source.size { return }
        }
    }

    /// Throws unless the input ended at the end of a frame (a truncated object is an error, not a shorter file).
    package func finish() throws(ZstdError) {
        guard atFrameEnd else { throw ZstdError("zstd: the input ends inside a frame (truncated)") }
    }
}
