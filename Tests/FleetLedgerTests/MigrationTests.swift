import Foundation
import Testing

@testable import FleetLedger

struct MigrationTests {
    /// `sql/` at the package root, found from this file's place in `Tests/FleetCoreTests/Ledger/`.
    private static let sqlDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("sql")

    private struct MigrationFile {
        var version: Int
        var name: String
        var fileName: String
        var sql: String
    }

    private static func migrationFiles() throws -> [MigrationFile] {
        let names = try FileManager.default.contentsOfDirectory(atPath: sqlDirectory.path).filter {
            $0.hasSuffix(".sql")
        }
        return try names.sorted().map { fileName in
            let stem = fileName.dropLast(4)
            let digits = stem.prefix(while: \.isNumber)
            let version = try #require(Int(digits), "\(fileName) does not start with its version number")
            try #require(
                digits.count == 4,
                "\(fileName): the version has \(digits.count) digits, want 4 (NNNN_name.sql)"
            )
            try #require(stem.dropFirst(4).first == "_", "\(fileName): want NNNN_name.sql")
            let name = String(stem.dropFirst(5))
            try #require(!name.isEmpty, "\(fileName) has no name after the version")
            let data = try Data(contentsOf: sqlDirectory.appendingPathComponent(fileName))
            return MigrationFile(
                version: version,
                name: name,
                fileName: fileName,
                sql: String(decoding: data, as: UTF8.self)
            )
        }
    }

    @Test func sqlDirectoryHoldsMigrations() throws {
        #expect(try !Self.migrationFiles().isEmpty, "no .sql files in \(Self.sqlDirectory.path)")
    }

    @Test func everySQLFileIsCompiledInWithTheSameVersionNameAndText() throws {
        let files = try Self.migrationFiles()
        for file in files {
            let migration = try #require(
                Migration.all.first { $0.version == file.version },
                "\(file.fileName) is not listed in Migration.all"
            )
            #expect(migration.name == file.name, "\(file.fileName)")
            #expect(migration.fileName == file.fileName)
            #expect(migration.sql == file.sql, "\(file.fileName): the compiled-in text differs from the file")
        }
        #expect(Migration.all.count == files.count, "Migration.all lists a migration with no file in sql/")
    }

    @Test func versionsRunFromOneWithoutGapsOrRepeats() {
        #expect(Migration.all.map(\.version) == Array(1...Migration.all.count))
    }

    @Test func checksumIsTheSHA256OfTheText() {
        let migration = Migration(version: 7, name: "x", sql: "abc")
        #expect(migration.checksum == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(migration.fileName == "0007_x.sql")
    }
}
