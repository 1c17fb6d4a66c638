import FleetSystem
import Foundation

/// What the ledger says about a planned upload: how many placements collide and how many it already stores.
package struct PlanComparison: Sendable, Equatable {
    /// Keys that more than one planned file maps to.
    package var duplicateKeys = 0
    /// Planned files whose key the project already stores with the same size and mtime.
    package var storedFiles = 0
    package var storedBytes: Int64 = 0
    /// Of those, the ones at or above the multipart threshold.
    package var storedMultipartFiles = 0

    package init() {}
}

/// Takes the placements of a planned upload, one row each.
package struct PlanRowWriter {
    fileprivate let writer: PGCopyWriter

    /// Adds one planned file.
    package func add(bucket: String, key: String, size: Int64, mtime: Timestamp) throws {
        try writer.row([.text(bucket), .text(key), .text(String(size)), .text(mtime.iso8601)])
    }
}

extension Ledger {
    /// Compares a planned upload with what the ledger stores, without recording anything.
    ///
    /// The placements `write` adds stream through COPY into a temporary table dropped at the end of the
    /// transaction, so memory stays flat however many files there are and nothing outlives the call.
    ///
    /// - Parameters:
    ///   - projectName: The project whose stored objects count; an unknown project stores nothing.
    ///   - multipartThreshold: Files at or above this size are counted as multipart.
    ///   - write: Adds every planned file.
    package func comparePlan(
        projectName: String,
        multipartThreshold: Int64,
        _ write: (PlanRowWriter) throws -> Void
    ) throws -> PlanComparison {
        try connection.transaction {
            try connection.execute(
                """
                CREATE TEMPORARY TABLE plan_files (bucket text, s3_key text, size_bytes bigint, mtime timestamptz)
                ON COMMIT DROP
                """
            )
            try connection.copyIn("COPY plan_files (bucket, s3_key, size_bytes, mtime) FROM STDIN") { rows in
                try write(PlanRowWriter(writer: rows))
            }
            var comparison = PlanComparison()
            let duplicates = try connection.execute(
                "SELECT count(*) FROM (SELECT 1 FROM plan_files GROUP BY bucket, s3_key HAVING count(*) > 1) AS d"
            )
            comparison.duplicateKeys = try duplicates.decode(Int.self, 0, 0, in: "plan_files")
            let stored = try connection.execute(
                """
                SELECT count(*), coalesce(sum(p.size_bytes), 0),
                       count(*) FILTER (WHERE p.size_bytes >= \(multipartThreshold))
                FROM plan_files AS p
                JOIN projects AS j ON j.name = \(projectName)
                JOIN stored_objects AS o
                  ON o.project_id = j.id AND o.bucket = p.bucket AND o.s3_key = p.s3_key
                 AND o.size_bytes = p.size_bytes AND o.mtime = p.mtime
                """
            )
            comparison.storedFiles = try stored.decode(Int.self, 0, 0, in: "plan_files")
            comparison.storedBytes = try stored.decode(Int64.self, 0, 1, in: "plan_files")
            comparison.storedMultipartFiles = try stored.decode(Int.self, 0, 2, in: "plan_files")
            return comparison
        }
    }
}
