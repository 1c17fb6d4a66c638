import FleetAWS
import FleetSystem

/// How a file goes up compressed: with zstd at `level`, as its source's `compress` decided when the file was
/// recorded (`file_uploads.codec`, `codec_level`).
///
/// The object holds the compressed bytes under the file's key with `.zst` appended, with Content-Type
/// `application/zstd` and no Content-Encoding (a client honouring it would hand out the decompressed bytes while
/// the key says `.zst`), and the original's size and SHA-256 as metadata (`x-amz-meta-original-size`,
/// `x-amz-meta-original-sha256`). The ledger keeps the original's size, mtime and SHA-256 as the file's identity.
package struct Compression: Sendable, Equatable {
    /// The codec's name in the configuration and the ledger.
    package static let zstd = "zstd"
    /// What a compressed object's key ends in.
    package static let keySuffix = ".zst"

    package var level: Int

    package init(level: Int) { self.level = level }

    /// The compression a ledger row records, or nil for a file sent as it is.
    init?(recorded codec: (name: String, level: Int)?) {
        guard let codec else { return nil }
        self.init(level: codec.level)
    }

    /// What the ledger records.
    var recorded: (name: String, level: Int) { (Self.zstd, level) }

    static func attributes(of copy: CompressedCopy) -> ObjectAttributes {
        ObjectAttributes(
            contentType: "application/zstd",
            metadata: ["original-size": String(copy.original.size), "original-sha256": copy.originalSHA256.hexString]
        )
    }
}

/// Which files of one source go up compressed: those its `compress.include` admits (every file of the source
/// when it lists none); the others go up as they are.
package struct CompressionRule: Sendable {
    var filter: GlobFilter
    var compression: Compression

    /// The rule of `source`, or nil when it compresses nothing.
    package init?(_ source: SourceSettings) {
        guard let settings = source.compress else { return nil }
        filter = GlobFilter(include: (settings.include ?? []).compactMap { try? GlobPattern($0) })
        compression = Compression(level: settings.level ?? Zstd.defaultLevel)
    }

    func compression(for relativePath: [UInt8]) -> Compression? {
        filter.admits(relativePath) ? compression : nil
    }
}

extension CompressionRule {
    /// Where a file of a source with `rule` goes, `placement` being where it would go as it is: under the key with
    /// `.zst` appended when the rule takes the file. Scans, the agent's look-up of stored files and its deletion
    /// policies all ask here, so they name the same object.
    ///
    /// - Throws: `KeyError` when `.zst` makes the key longer than S3 allows (an `invalid_key`, as any other).
    static func placing(
        _ placement: Placement,
        by rule: CompressionRule?,
        relativePath: [UInt8]
    ) throws(KeyError) -> Placement {
        guard rule?.compression(for: relativePath) != nil else { return placement }
        return try Compression.placing(placement)
    }
}

extension Compression {
    /// `placement` with `.zst` appended to its key.
    ///
    /// - Throws: `KeyError` when that makes the key longer than S3 allows.
    static func placing(_ placement: Placement) throws(KeyError) -> Placement {
        var placed = placement
        placed.key += keySuffix
        let length = placed.key.utf8.count
        guard length <= KeyMapper.maximumKeyBytes else {
            throw KeyError("the key would be \(length) bytes with .zst; S3 allows \(KeyMapper.maximumKeyBytes)")
        }
        return placed
    }
}

extension WalkedFile {
    /// Applies the source's rule: a file it takes goes up compressed, its key ending in `.zst`.
    mutating func compress(by rule: CompressionRule?) {
        guard let chosen = rule?.compression(for: file.relativePath) else { return }
        compression = chosen
        guard case .success(let placed) = placement else { return }
        do throws(KeyError) {
            placement = .success(try Compression.placing(placed))
        } catch {
            placement = .failure(error)
        }
    }
}
