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
    /// Planned files whose key another project stores: the session would refuse them
    /// (`key_owned_by_other_project`).
    package var otherProjectFiles = 0
    package var otherProjectBytes: Int64 = 0
    package var otherProjectMultipartFiles = 0
    /// The first few of them, by bucket and key.
    package var otherProjectKeys: [OtherProjectKey] = []

    package init() {}
}

/// A planned key another project stores.
package struct OtherProjectKey: Sendable, Equatable, Codable {
    package var bucket: String
    package var key: String
    /// The project whose object the key holds.
    package var project: String
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
    /// A planned key another project stores (same bucket and endpoint) is counted apart, as `recordFiles` would
    /// refuse it, unless this project and that one both share their prefix: one `UPDATE` over the whole plan
    /// finds them through the `(bucket, s3_key)` index (by `fleet_key_owners`, as a device role may run it).
    ///
    /// - Parameters:
    ///   - projectName: The project whose stored objects count; an unknown project stores nothing.
    ///   - endpoint: The project's custom endpoint (`nil` for AWS): the same bucket name elsewhere is another bucket.
    ///   - sharedPrefix: Whether this project shares its keys with projects that share too.
    ///   - multipartThreshold: Files at or above this size are counted as multipart.
    ///   - write: Adds every planned file.
    package func comparePlan(
        projectName: String,
        endpoint: String? = nil,
        sharedPrefix: Bool = false,
        multipartThreshold: Int64,
        _ write: (PlanRowWriter) throws -> Void
    ) throws -> PlanComparison {
        try connection.transaction {
            try connection.execute(
                """
                CREATE TEMPORARY TABLE plan_files (bucket text, s3_key text, size_bytes bigint, mtime timestamptz,
                                                   owner text)
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
            try connection.execute(
                """
                UPDATE plan_files AS p SET owner = w.owner
                FROM fleet_key_owners(\(projectName), \(endpoint)::text, \(sharedPrefix)::boolean,
                                      (SELECT array_agg(bucket) FROM plan_files),
                                      (SELECT array_agg(s3_key) FROM plan_files)) AS w
                WHERE w.bucket = p.bucket AND w.s3_key = p.s3_key
                """
            )
            let owned = try connection.execute(
                """
                SELECT count(*) OVER (), sum(size_bytes) OVER (),
                       count(*) FILTER (WHERE size_bytes >= \(multipartThreshold)) OVER (), bucket, s3_key, owner
                FROM plan_files WHERE owner IS NOT NULL
                ORDER BY bucket, s3_key LIMIT 10
                """
            )
            if owned.rowCount > 0 {
                comparison.otherProjectFiles = try owned.decode(Int.self, 0, 0, in: "plan_files")
                comparison.otherProjectBytes = try owned.decode(Int64.self, 0, 1, in: "plan_files")
                comparison.otherProjectMultipartFiles = try owned.decode(Int.self, 0, 2, in: "plan_files")
                comparison.otherProjectKeys = try (0..<owned.rowCount).map { row in
                    OtherProjectKey(
                        bucket: try owned.decode(String.self, row, 3, in: "plan_files"),
                        key: try owned.decode(String.self, row, 4, in: "plan_files"),
                        project: try owned.decode(String.self, row, 5, in: "plan_files")
                    )
                }
            }
            let stored = try connection.execute(
                """
                SELECT count(*), coalesce(sum(p.size_bytes), 0),
                       count(*) FILTER (WHERE p.size_bytes >= \(multipartThreshold))
                FROM plan_files AS p
                JOIN projects AS j ON j.name = \(projectName)
                JOIN LATERAL fleet_latest_object(j.id, p.bucket, p.s3_key) AS o
                  ON fleet_file_is_object(p.size_bytes, p.mtime, o.size_bytes, o.mtime, o.uploaded_at)
                WHERE p.owner IS NULL
                """
            )
            comparison.storedFiles = try stored.decode(Int.self, 0, 0, in: "plan_files")
            comparison.storedBytes = try stored.decode(Int64.self, 0, 1, in: "plan_files")
            comparison.storedMultipartFiles = try stored.decode(Int.self, 0, 2, in: "plan_files")
            return comparison
        }
    }
}
