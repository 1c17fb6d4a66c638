import FleetLedger
import FleetTestSupport
import Foundation
import Synchronization
import Testing

@testable import FleetCore

struct MasterCLITests {
    @Test func migratePrintsTheSchemaVersion() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let first = try CLI.run("master", ["migrate", "--database", database.url])
        let second = try CLI.run("master", ["migrate"], environment: ["DATABASE_URL": database.url])

        #expect(first.status == 0, "\(first.stderr)")
        let latest = Migration.all.count
        let applied = Migration.all.map(\.fileName).joined(separator: ", ")
        #expect(first.stdout.contains("schema version \(latest) (applied \(applied))"))
        #expect(second.status == 0, "\(second.stderr)")
        #expect(second.stdout.contains("schema version \(latest) (already up to date)"))
    }

    @Test func twoMigratesStartedTogetherBothSucceedWithOneSchema() throws {
        let database = try TestDatabase()
        defer { database.drop() }

        let results = Mutex<[CLIResult]>([])
        let group = DispatchGroup()
        let url = database.url
        for index in 0..<2 {
            DispatchQueue(label: "master-\(index)").async(group: group) {
                let result =
                    (try? CLI.run("master", ["migrate", "--database", url]))
                    ?? CLIResult(status: -1, stdout: "", stderr: "could not start")
                results.withLock { $0.append(result) }
            }
        }
        group.wait()

        for result in results.withLock({ $0 }) { #expect(result.status == 0, "\(result.stderr)") }
        let rows = try database.connect().execute(
            "SELECT (SELECT count(*) FROM schema_migrations), (SELECT count(*) FROM pg_tables WHERE tablename = 'projects')"
        )
        #expect(rows.int(0, 0) == Migration.all.count)
        #expect(rows.int(0, 1) == 1)
    }

    @Test func versionNamesTheLibraries() throws {
        let result = try CLI.run("master", ["--version"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("libpq 1"))
        #expect(result.stdout.contains("libcurl"))
        #expect(result.stdout.contains("OpenSSL"))
    }
}
