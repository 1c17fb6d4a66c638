import Foundation
import Testing

/// The layering docs/architecture.md describes, checked against the sources: each target imports only what
/// the table allows, the C bridges only in FleetSystem, and SQL only in FleetLedger.
struct ArchitectureTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let sources = repository.appendingPathComponent("Sources")
    static let cBridges: Set<String> = ["CLibPQ", "CCurl", "COpenSSL", "CZstd"]

    /// `| `FleetAWS` | `FleetSystem` |` rows of the "may depend on" table.
    static func allowedDependencies() throws -> [String: Set<String>] {
        let text = try String(
            contentsOf: repository.appendingPathComponent("docs/architecture.md"),
            encoding: .utf8
        )
        var table: [String: Set<String>] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 2 else { continue }
            let names = cells[1].split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            }
            table[cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))] = Set(names)
        }
        return table
    }

    /// Our own targets: every folder under Sources/.
    static func targets() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: sources.path).sorted()
    }

    /// The Swift files of a target with their text.
    static func swiftFiles(of target: String) throws -> [(path: String, text: String)] {
        let root = sources.appendingPathComponent(target)
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { return [] }
        var files: [(String, String)] = []
        while let relative = walker.nextObject() as? String {
            guard relative.hasSuffix(".swift") else { continue }
            let url = root.appendingPathComponent(relative)
            files.append(("Sources/\(target)/\(relative)", try String(contentsOf: url, encoding: .utf8)))
        }
        return files
    }

    static let importModifiers: Set<String> = ["internal", "package", "public", "@testable", "@_exported"]

    /// The modules a file imports, with any access level or attribute before `import`.
    static func imports(in text: String) -> [String] {
        text.split(separator: "\n").compactMap { line in
            let words = line.split(separator: " ")
            guard let index = words.firstIndex(of: "import"), index + 1 < words.count,
                words[..<index].allSatisfy({ Self.importModifiers.contains(String($0)) })
            else { return nil }
            return String(words[index + 1])
        }
    }

    @Test func everyTargetImportsOnlyWhatTheArchitectureAllows() throws {
        let allowed = try Self.allowedDependencies()
        let ours = Set(try Self.targets())
        var violations: [String] = []
        for target in ours.sorted() where !Self.cBridges.contains(target) {
            guard let permitted = allowed[target] else {
                violations.append("\(target) is missing from the table in docs/architecture.md")
                continue
            }
            for file in try Self.swiftFiles(of: target) {
                for module in Self.imports(in: file.text) where ours.contains(module) && !permitted.contains(module) {
                    violations.append("\(file.path) imports \(module)")
                }
            }
        }
        #expect(violations.isEmpty, "\(violations.joined(separator: "\n"))")
        #expect(!allowed.isEmpty, "no dependency table found in docs/architecture.md")
    }

    @Test func onlyTheSystemLayerImportsTheCBridges() throws {
        var importers: [String] = []
        for target in try Self.targets() where target != "FleetSystem" && !Self.cBridges.contains(target) {
            for file in try Self.swiftFiles(of: target)
            where !Set(Self.imports(in: file.text)).isDisjoint(with: Self.cBridges) {
                importers.append(file.path)
            }
        }
        #expect(importers.isEmpty, "C bridges imported outside FleetSystem: \(importers)")
    }

    /// A statement, not prose: SQL keywords in capitals, in a line that is not a comment.
    static var statement: Regex<AnyRegexOutput> {
        let forms = [
            #"SELECT\b.*\bFROM"#, "INSERT INTO", #"UPDATE\s+\w+\s+SET"#, "DELETE FROM",
            #"CREATE\s+(TEMPORARY\s+|TEMP\s+|UNIQUE\s+)?(TABLE|INDEX|VIEW|FUNCTION|ROLE|POLICY)"#,
            #"DROP\s+(TABLE|INDEX|VIEW|FUNCTION|ROLE)"#, #"ALTER\s+(TABLE|ROLE)"#, #"COPY\s+\w+\s*\("#, #"TRUNCATE\s"#,
        ]
        return try! Regex("\\b(" + forms.joined(separator: "|") + ")")
    }

    @Test func noSQLOutsideTheLedger() throws {
        var found: [String] = []
        for target in try Self.targets() where target != "FleetLedger" && !Self.cBridges.contains(target) {
            for file in try Self.swiftFiles(of: target) {
                for (number, line) in file.text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                    let code = line.trimmingCharacters(in: .whitespaces)
                    guard !code.hasPrefix("//"), code.contains(Self.statement) else { continue }
                    found.append("\(file.path):\(number + 1): \(code)")
                }
            }
        }
        #expect(found.isEmpty, "SQL outside FleetLedger:\n\(found.joined(separator: "\n"))")
    }

    @Test func theStatementPatternCatchesSQLAndLetsProseBe() {
        #expect("SELECT id FROM sync_sessions".contains(Self.statement))
        #expect("try connection.execute(\"DELETE FROM file_uploads\")".contains(Self.statement))
        #expect("INSERT INTO projects (name)".contains(Self.statement))
        #expect(!"select the files from the ledger".contains(Self.statement))
        #expect(!"COPY in batches".contains(Self.statement))
    }
}
