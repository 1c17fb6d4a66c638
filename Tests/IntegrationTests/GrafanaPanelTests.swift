import FleetCore
import FleetLedger
import FleetSystem
import FleetTestSupport
import Foundation
import Testing

/// The Grafana dashboards in `grafana/dashboards/`: their JSON model as Grafana imports it, and every panel's SQL
/// run the way Grafana runs it (macros and template variables expanded) against the migrated ledger filled with a
/// generated fleet.
struct GrafanaPanelTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let dataSourceUID = "fleet-ledger"
    /// A panel query slower than this on the generated fleet fails the test.
    static let slowQueryMilliseconds = 2000.0

    @Test func everyDashboardIsAValidGrafanaModel() throws {
        let dashboards = try GrafanaDashboard.loadAll(from: Self.repository)
        #expect(
            Set(dashboards.map(\.fileName))
                == ["fleet-overview.json", "session-history.json", "session-detail.json", "throughput-errors.json"]
        )
        #expect(Set(dashboards.map(\.uid)).count == dashboards.count, "dashboard uids must be unique")
        let uids = Set(dashboards.map(\.uid))
        for dashboard in dashboards {
            let name = dashboard.fileName
            #expect(!dashboard.title.isEmpty, "\(name): no title")
            #expect((36...41).contains(dashboard.schemaVersion), "\(name): schemaVersion \(dashboard.schemaVersion)")
            #expect(!dashboard.panels.isEmpty, "\(name): no panels")
            #expect(
                Set(dashboard.panels.map(\.id)).count == dashboard.panels.count,
                "\(name): panel ids are not unique"
            )
            for panel in dashboard.panels {
                let place = "\(name), panel \(panel.id) \"\(panel.title)\""
                #expect(panel.id > 0, "\(place): no id")
                #expect(!panel.title.isEmpty, "\(place): no title")
                let grid = try #require(panel.gridPos, "\(place): no gridPos")
                #expect(grid.w > 0 && grid.h > 0 && grid.x >= 0 && grid.y >= 0, "\(place): gridPos \(grid)")
                #expect(grid.x + grid.w <= 24, "\(place): wider than the 24-column grid")
                #expect(
                    panel.dataSourceUID == Self.dataSourceUID,
                    "\(place): data source \(panel.dataSourceUID ?? "-")"
                )
                #expect(!panel.targets.isEmpty, "\(place): no query")
                for target in panel.targets {
                    #expect(target.dataSourceUID == Self.dataSourceUID, "\(place): target data source")
                    #expect(!target.rawSQL.isEmpty && target.rawQuery, "\(place): no raw SQL")
                }
            }
            for variable in dashboard.variables {
                #expect(variable.dataSourceUID == Self.dataSourceUID, "\(name), variable \(variable.name): data source")
                #expect(!variable.query.isEmpty, "\(name), variable \(variable.name): no query")
            }
            for linked in dashboard.linkedDashboardUIDs {
                #expect(uids.contains(linked), "\(name) links to /d/\(linked), which is not one of the dashboards")
            }
        }
    }

    @Test func provisioningNamesTheLedgerDataSourceAndTheDashboardsFolder() throws {
        let provisioning = Self.repository.appendingPathComponent("grafana/provisioning")
        let dataSource = try String(
            contentsOf: provisioning.appendingPathComponent("datasources/fleet.yaml"),
            encoding: .utf8
        )
        #expect(dataSource.contains("uid: \(Self.dataSourceUID)"))
        #expect(dataSource.contains("type: grafana-postgresql-datasource"))
        for variable in ["FLEET_DB_HOST", "FLEET_DB_NAME", "FLEET_DB_USER", "FLEET_DB_PASSWORD", "FLEET_DB_SSLMODE"] {
            #expect(dataSource.contains("${\(variable)}"), "the data source does not read \(variable)")
        }
        let provider = try String(
            contentsOf: provisioning.appendingPathComponent("dashboards/fleet.yaml"),
            encoding: .utf8
        )
        #expect(provider.contains("type: file"))
        #expect(provider.contains("path: /var/lib/grafana/dashboards/fleet-upload"))
    }

    @Test func macrosExpandAsGrafanaExpandsThem() throws {
        let to = Date(timeIntervalSince1970: 1_700_000_000)
        let macros = GrafanaMacros(from: to.addingTimeInterval(-3600), to: to)
        let sql = try macros.expand(
            """
            SELECT $__timeGroupAlias(f.finished_at, $__interval), count(*) / ($__interval_ms / 1000.0)
            FROM f WHERE $__timeFilter(f.finished_at) AND f.id IN ($device) AND s = $session
              AND t > $__timeFrom() AND t < $__timeTo() AND $__unixEpochFilter(e)
            """,
            interval: "5m",
            variables: ["device": "'1','2'", "session": "42"]
        )
        #expect(
            sql == """
                SELECT floor(extract(epoch from f.finished_at)/300)*300 AS "time", count(*) / (300000 / 1000.0)
                FROM f WHERE f.finished_at BETWEEN '2023-11-14T21:13:20Z' AND '2023-11-14T22:13:20Z' \
                AND f.id IN ('1','2') AND s = 42
                  AND t > '2023-11-14T21:13:20Z' AND t < '2023-11-14T22:13:20Z' AND e >= 1699996400 AND e <= 1700000000
                """
        )
        #expect(throws: GrafanaMacros.ExpansionError.self) {
            try macros.expand("SELECT $__timeGroup(at)", interval: "1m", variables: [:])
        }
        #expect(throws: GrafanaMacros.ExpansionError.self) {
            try macros.expand("SELECT 1 WHERE x IN ($unknown)", interval: "1m", variables: [:])
        }
    }

    @Test func everyPanelQueryReturnsRowsQuicklyOnAGeneratedFleet() throws {
        let dashboards = try GrafanaDashboard.loadAll(from: Self.repository)
        let database = try TestDatabase()
        defer { database.drop() }
        let fleet = try GeneratedFleet.build(in: database)
        // Sessions imported from the Data Uploader (no device, no file mtimes) are part of what the panels read.
        let old = try TestDatabase()
        defer { old.drop() }
        let files = (0..<40).map { index in
            DataUploaderFixture.File(
                path: "/data/set/f\(index).wav",
                key: "set/f\(index).wav",
                size: 1000 + index,
                status: index % 10 == 0 ? "failed" : index % 15 == 0 ? "pending" : "uploaded",
                retryCount: index % 10 == 0 ? 3 : 0,
                error: index % 10 == 0 ? "Read timeout on endpoint URL" : nil
            )
        }
        try DataUploaderFixture.create(
            in: old,
            project: "imported-lab",
            bucket: "old-bucket",
            region: "us-east-1",
            sessions: [
                .init(
                    directory: "/data/set",
                    prefix: "set",
                    status: "completed_with_errors",
                    files: files,
                    startedHoursAgo: 6
                ),
                .init(directory: "/data/set", prefix: "set", status: "in_progress", files: [], startedHoursAgo: 2),
            ]
        )
        let imported = try database.ledger().importDataUploader(from: DataUploaderDatabase(url: old.url))
        #expect(imported.sessionsImported == 2)
        print(
            "GrafanaPanelTests: generated fleet: \(fleet.devices) devices, \(fleet.sessions) sessions, "
                + "\(fleet.files) file_uploads rows, \(fleet.heartbeats) heartbeats in "
                + String(format: "%.1f s", fleet.seconds)
        )
        let connection = try database.connect()
        let filledPartitions = try GeneratedFleet.filledFileUploadPartitions(connection)
        #expect(!filledPartitions.isEmpty)

        // Grafana's default range for these dashboards ends now; a day covers a few per cent of the files.
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let macros = GrafanaMacros(from: now.addingTimeInterval(-86_400), to: now)
        var runs: [PanelRun] = []
        for dashboard in dashboards {
            runs += try run(dashboard, macros: macros, on: connection)
        }
        for run in runs {
            let panel = "\(run.dashboard) / \(run.panel)"
            #expect(run.rows > 0, "\(panel) returned no rows")
            #expect(
                run.milliseconds <= Self.slowQueryMilliseconds,
                "\(panel) took \(run.milliseconds) ms (limit \(Self.slowQueryMilliseconds) ms)"
            )
            let scanned = run.sequentialScans.filter(filledPartitions.contains)
            #expect(scanned.isEmpty, "\(panel) reads \(scanned.joined(separator: ", ")) sequentially:\n\(run.sql)")
        }
        let slowest = try #require(runs.max { $0.milliseconds < $1.milliseconds })
        print(
            "GrafanaPanelTests: \(runs.count) panel queries; slowest: \(slowest.dashboard) / \(slowest.panel), "
                + String(format: "%.1f ms", slowest.milliseconds) + " (EXPLAIN ANALYZE):"
        )
        let plan = try connection.execute(PGQuery(unsafeSQL: "EXPLAIN (ANALYZE, COSTS OFF) " + slowest.sql))
        for row in 0..<plan.rowCount { print("    " + (plan.string(row, 0) ?? "")) }
    }

    /// One panel query's outcome under `EXPLAIN ANALYZE`.
    struct PanelRun {
        var dashboard: String
        var panel: String
        var sql: String
        var rows: Int
        var milliseconds: Double
        /// The tables read by a Seq Scan node.
        var sequentialScans: [String]
    }

    /// Resolves the dashboard's variables from their own queries, as Grafana does on load, and runs every panel.
    ///
    /// A multi-value variable takes "All" (every value, as a quoted list); a single-value one (the session) takes
    /// the first of its values for which every panel has something to show, as a user picking a session with
    /// failures, retry rounds and trigger calls would.
    private func run(
        _ dashboard: GrafanaDashboard,
        macros: GrafanaMacros,
        on connection: PGConnection
    ) throws
        -> [PanelRun]
    {
        var values: [String: String] = [:]
        var candidates: [String] = []
        var singleName: String?
        for variable in dashboard.variables {
            let sql = try macros.expand(variable.query, interval: "1m", variables: values)
            let selected = sql.contains("__value") ? "SELECT __value FROM (\(sql)) AS variable" : sql
            let result = try connection.execute(PGQuery(unsafeSQL: selected))
            let options = (0..<result.rowCount).compactMap { result.string($0, 0) }
            try #require(!options.isEmpty, "\(dashboard.fileName): variable \(variable.name) has no values")
            if variable.multi {
                values[variable.name] = options.map { "'" + $0.replacingOccurrences(of: "'", with: "''") + "'" }
                    .joined(separator: ",")
            } else {
                values[variable.name] = options[0]
                singleName = variable.name
                candidates = Array(options.prefix(50))
            }
        }
        var runs = try runPanels(of: dashboard, macros: macros, variables: values, on: connection)
        if let singleName {
            for candidate in candidates where runs.contains(where: { $0.rows == 0 }) {
                values[singleName] = candidate
                runs = try runPanels(of: dashboard, macros: macros, variables: values, on: connection)
            }
        }
        return runs
    }

    private func runPanels(
        of dashboard: GrafanaDashboard,
        macros: GrafanaMacros,
        variables: [String: String],
        on connection: PGConnection
    ) throws -> [PanelRun] {
        try dashboard.panels.flatMap { panel in
            try panel.targets.map { target in
                let sql = try macros.expand(target.rawSQL, interval: panel.interval ?? "5m", variables: variables)
                let explained: PGResult
                do {
                    explained = try connection.execute(PGQuery(unsafeSQL: "EXPLAIN (ANALYZE, FORMAT JSON) " + sql))
                } catch {
                    Issue.record("\(dashboard.fileName) / \(panel.title) failed: \(error)\n\(sql)")
                    return PanelRun(
                        dashboard: dashboard.fileName,
                        panel: panel.title,
                        sql: sql,
                        rows: 0,
                        milliseconds: 0,
                        sequentialScans: []
                    )
                }
                let json = try JSONSerialization.jsonObject(with: Data((explained.string(0, 0) ?? "").utf8))
                let top = try #require((json as? [[String: Any]])?.first)
                let plan = try #require(top["Plan"] as? [String: Any])
                return PanelRun(
                    dashboard: dashboard.fileName,
                    panel: panel.title,
                    sql: sql,
                    rows: (plan["Actual Rows"] as? NSNumber)?.intValue ?? 0,
                    milliseconds: (top["Execution Time"] as? NSNumber)?.doubleValue ?? 0,
                    sequentialScans: Self.sequentialScans(in: plan)
                )
            }
        }
    }

    private static func sequentialScans(in node: [String: Any]) -> [String] {
        var tables: [String] = []
        if node["Node Type"] as? String == "Seq Scan", let table = node["Relation Name"] as? String {
            tables.append(table)
        }
        for child in node["Plans"] as? [[String: Any]] ?? [] { tables += sequentialScans(in: child) }
        return tables
    }
}

/// One dashboard's JSON model, reduced to what the tests check.
struct GrafanaDashboard {
    struct GridPos: CustomStringConvertible {
        var x: Int
        var y: Int
        var w: Int
        var h: Int
        var description: String { "x \(x) y \(y) w \(w) h \(h)" }
    }

    struct Target {
        var rawSQL: String
        var rawQuery: Bool
        var dataSourceUID: String?
    }

    struct Panel {
        var id: Int
        var title: String
        var gridPos: GridPos?
        var dataSourceUID: String?
        var interval: String?
        var targets: [Target]
    }

    struct Variable {
        var name: String
        var query: String
        var multi: Bool
        var dataSourceUID: String?
    }

    var fileName: String
    var uid: String
    var title: String
    var schemaVersion: Int
    var panels: [Panel]
    var variables: [Variable]
    /// Dashboards named by links (`/d/<uid>/…`) in panels and the dashboard's own links.
    var linkedDashboardUIDs: Set<String>

    struct ModelError: Error, CustomStringConvertible {
        var description: String
    }

    static func loadAll(from repository: URL) throws -> [GrafanaDashboard] {
        let directory = repository.appendingPathComponent("grafana/dashboards")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".json") }.sorted()
        return try names.map {
            try GrafanaDashboard(fileName: $0, data: Data(contentsOf: directory.appendingPathComponent($0)))
        }
    }

    init(fileName: String, data: Data) throws {
        guard let model = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ModelError(description: "\(fileName): not a JSON object")
        }
        self.fileName = fileName
        uid = model["uid"] as? String ?? ""
        title = model["title"] as? String ?? ""
        schemaVersion = model["schemaVersion"] as? Int ?? 0
        panels = (model["panels"] as? [[String: Any]] ?? []).map { panel in
            let grid = panel["gridPos"] as? [String: Any]
            return Panel(
                id: panel["id"] as? Int ?? 0,
                title: panel["title"] as? String ?? "",
                gridPos: grid.flatMap { grid in
                    guard let x = grid["x"] as? Int, let y = grid["y"] as? Int, let w = grid["w"] as? Int,
                        let h = grid["h"] as? Int
                    else { return nil }
                    return GridPos(x: x, y: y, w: w, h: h)
                },
                dataSourceUID: (panel["datasource"] as? [String: Any])?["uid"] as? String,
                interval: panel["interval"] as? String,
                targets: (panel["targets"] as? [[String: Any]] ?? []).map { target in
                    Target(
                        rawSQL: target["rawSql"] as? String ?? "",
                        rawQuery: target["rawQuery"] as? Bool ?? false,
                        dataSourceUID: (target["datasource"] as? [String: Any])?["uid"] as? String
                    )
                }
            )
        }
        let templating = (model["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        variables = templating.map { variable in
            Variable(
                name: variable["name"] as? String ?? "",
                query: variable["query"] as? String ?? "",
                multi: variable["multi"] as? Bool ?? false,
                dataSourceUID: (variable["datasource"] as? [String: Any])?["uid"] as? String
            )
        }
        let text = String(decoding: data, as: UTF8.self)
        let link = /\/d\/([A-Za-z0-9_-]+)/
        linkedDashboardUIDs = Set(text.matches(of: link).map { String($0.output.1) })
    }
}

/// Grafana's PostgreSQL macros and template variables, expanded the way Grafana expands them before a query
/// reaches the database (pkg/tsdb/grafana-postgresql-datasource/macros.go; variables by the frontend, multi-value
/// ones as a quoted, comma-separated list).
struct GrafanaMacros {
    var from: Date
    var to: Date

    struct ExpansionError: Error, CustomStringConvertible {
        var description: String
    }

    /// Expands `$__interval_ms`, `$__interval`, the variables (`$name`, `${name}`) and the macros in `sql`.
    ///
    /// - Throws: `ExpansionError` for an unknown macro, a malformed one, or a `$` left unexpanded.
    func expand(_ sql: String, interval: String, variables: [String: String]) throws -> String {
        let intervalSeconds = try Self.seconds(interval)
        var text = sql.replacingOccurrences(of: "$__interval_ms", with: String(intervalSeconds * 1000))
            .replacingOccurrences(of: "$__interval", with: interval)
        for (name, value) in variables.sorted(by: { $0.key.count > $1.key.count }) {
            text = text.replacingOccurrences(of: "${\(name)}", with: value)
            text = text.replacing(try Regex("\\$\(name)\\b"), with: value)
        }
        var output = ""
        var rest = Substring(text)
        while let start = rest.range(of: "$__") {
            output += rest[..<start.lowerBound]
            let nameEnd = rest[start.upperBound...].firstIndex { !($0.isLetter || $0.isNumber || $0 == "_") }
            guard let nameEnd, rest[nameEnd] == "(" else {
                throw ExpansionError(description: "macro without arguments: \(rest.prefix(40))")
            }
            let name = String(rest[start.upperBound..<nameEnd])
            var depth = 0
            var arguments: [String] = []
            var current = ""
            var index = nameEnd
            repeat {
                let character = rest[index]
                switch character {
                case "(":
                    depth += 1
                    if depth > 1 { current.append(character) }
                case ")":
                    depth -= 1
                    if depth > 0 { current.append(character) }
                case "," where depth == 1:
                    arguments.append(current.trimmingCharacters(in: .whitespaces))
                    current = ""
                default: current.append(character)
                }
                index = rest.index(after: index)
            } while depth > 0 && index < rest.endIndex
            guard depth == 0 else { throw ExpansionError(description: "unbalanced $__\(name)(") }
            let last = current.trimmingCharacters(in: .whitespaces)
            if !last.isEmpty { arguments.append(last) }
            output += try macro(name, arguments)
            rest = rest[index...]
        }
        output += rest
        if let leftover = output.firstMatch(of: /\$[A-Za-z_{]\w*/) {
            throw ExpansionError(description: "\(leftover.output) is not expanded in: \(output)")
        }
        return output
    }

    private func macro(_ name: String, _ arguments: [String]) throws -> String {
        func argument(_ index: Int) throws -> String {
            guard index < arguments.count else {
                throw ExpansionError(description: "$__\(name) needs \(index + 1) arguments, got \(arguments.count)")
            }
            return arguments[index]
        }
        switch name {
        case "timeFilter": return "\(try argument(0)) BETWEEN \(Self.literal(from)) AND \(Self.literal(to))"
        case "timeFrom": return Self.literal(from)
        case "timeTo": return Self.literal(to)
        case "timeGroup", "timeGroupAlias":
            let seconds = try Self.seconds(try argument(1))
            let group = "floor(extract(epoch from \(try argument(0)))/\(seconds))*\(seconds)"
            return name == "timeGroup" ? group : group + " AS \"time\""
        case "unixEpochFilter":
            let column = try argument(0)
            return "\(column) >= \(Int(from.timeIntervalSince1970)) AND \(column) <= \(Int(to.timeIntervalSince1970))"
        case "unixEpochFrom": return String(Int(from.timeIntervalSince1970))
        case "unixEpochTo": return String(Int(to.timeIntervalSince1970))
        default: throw ExpansionError(description: "unknown macro $__\(name)")
        }
    }

    private static func literal(_ date: Date) -> String { "'" + date.formatted(.iso8601) + "'" }

    /// `5m`, `'1h'`, `30s`, `1d` in seconds.
    static func seconds(_ interval: String) throws -> Int {
        let trimmed = interval.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        let units: [Character: Int] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        guard let unit = trimmed.last, let scale = units[unit], let count = Int(trimmed.dropLast()), count > 0 else {
            throw ExpansionError(description: "not an interval: \(interval)")
        }
        return count * scale
    }
}

/// A realistic fleet in a migrated ledger, generated in SQL: 20 devices × 30 days, four sessions per device per day
/// (startup, two scheduled, one immediate), 420 files per session (about 1M file_uploads rows: mostly uploaded,
/// some skipped, transient and permanent failures by class, the newest sessions still running), heartbeats every
/// 10 minutes, retry rounds, trigger calls and local deletions.
enum GeneratedFleet {
    struct Summary {
        var devices: Int
        var sessions: Int
        var files: Int
        var heartbeats: Int
        var seconds: Double
    }

    static func build(in database: TestDatabase) throws -> Summary {
        let started = ContinuousClock.now
        _ = try database.ledger()  // migrates
        let connection = try database.connect()
        // Bulk loading: the generated rows satisfy the foreign keys by construction, so their per-row checks are
        // switched off, and file_uploads' secondary indexes are built once after the load (a sort each) instead of
        // being updated row by row. The indexes come back with the migration's own definitions.
        try connection.executeScript("SET session_replication_role = replica; SET maintenance_work_mem = '256MB'")
        let indexes = try connection.execute(
            """
            SELECT indexrelid::regclass::text, replace(pg_get_indexdef(indexrelid), ' ON ONLY ', ' ON ')
            FROM pg_index WHERE indrelid = 'file_uploads'::regclass AND NOT indisprimary ORDER BY 1
            """
        )
        let definitions = (0..<indexes.rowCount).map { (indexes.string($0, 0) ?? "", indexes.string($0, 1) ?? "") }
        for (name, _) in definitions { try connection.executeScript("DROP INDEX \(name)") }
        try connection.executeScript(generation)
        for (_, definition) in definitions { try connection.executeScript(definition) }
        try connection.executeScript("ANALYZE")
        let restored = try connection.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'file_uploads'::regclass AND NOT indisprimary"
        )
        guard restored.int(0, 0) == definitions.count else {
            throw TestEnvironmentError(description: "file_uploads' indexes were not all rebuilt")
        }
        let counts = try connection.execute(
            """
            SELECT (SELECT count(*) FROM devices), (SELECT count(*) FROM sync_sessions),
                   (SELECT count(*) FROM file_uploads), (SELECT count(*) FROM device_heartbeats)
            """
        )
        let elapsed = ContinuousClock.now - started
        return Summary(
            devices: counts.int(0, 0) ?? 0,
            sessions: counts.int(0, 1) ?? 0,
            files: counts.int(0, 2) ?? 0,
            heartbeats: counts.int(0, 3) ?? 0,
            seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        )
    }

    /// The file_uploads partitions that hold rows; a sequential scan of an empty one costs nothing.
    static func filledFileUploadPartitions(_ connection: PGConnection) throws -> Set<String> {
        let result = try connection.execute(
            """
            SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'file_uploads'::regclass AND c.relpages > 0
            """
        )
        return Set((0..<result.rowCount).compactMap { result.string($0, 0) })
    }

    static let generation = """
        SELECT setseed(0.42);
        SELECT fleet_ensure_file_upload_partitions(now() - interval '31 days', 3);

        INSERT INTO projects (name, bucket, prefix, region, endpoint, key_template)
        VALUES ('drive-logs', 'fleet-drive-logs', 'logs/', 'cn-north-1', NULL, '{device}/{date}/{relpath}'),
               ('lidar-bags', 'fleet-lidar', 'bags/', 'cn-northwest-1', NULL, '{device}/{relpath}'),
               ('lab-rigs', 'fleet-lab', '', 'us-east-1', 'http://minio:9000', '{hostname}/{relpath}');

        INSERT INTO config_history (project_id, config_hash, config, source_path, first_used_at, last_used_at)
        SELECT p.id, encode(sha256(convert_to(p.name, 'UTF8')), 'hex'), jsonb_build_object('project', p.name),
               '/etc/fleet-upload/agent.yaml', now() - interval '30 days', now()
        FROM projects p;

        -- Three devices have gone quiet: their last heartbeat is hours old.
        INSERT INTO devices (name, hostname, agent_version, first_seen_at, last_heartbeat_at, disk_total_bytes,
                             disk_used_bytes, disk_used_percent, queue_files, queue_bytes, last_upload_at)
        SELECT format('vehicle-%s', lpad(i::text, 2, '0')), format('veh%s.fleet.local', lpad(i::text, 2, '0')),
               '1.4.2', now() - interval '30 days',
               CASE WHEN i > 17 THEN now() - (i - 17) * interval '3 hours'
                    ELSE now() - (i % 5) * interval '1 minute' END,
               2000000000000, (2000000000000 * (0.35 + i * 0.025))::bigint, round((35 + i * 2.5)::numeric, 2),
               i * 37, i * 37 * 50000000::bigint, now() - (i % 7) * interval '1 minute'
        FROM generate_series(1, 20) AS i;

        INSERT INTO device_heartbeats (device_id, at, disk_used_percent, queue_files, queue_bytes)
        SELECT d.id, t, round((30 + d.id * 2 + 10 * sin(extract(epoch FROM t) / 43200 + d.id))::numeric, 2),
               (50 + 40 * sin(extract(epoch FROM t) / 7200 + d.id))::bigint,
               (50 + 40 * sin(extract(epoch FROM t) / 7200 + d.id))::bigint * 40000000
        FROM devices d,
             generate_series(date_trunc('minute', now()) - interval '30 days', now(), interval '10 minutes') AS t
        WHERE t <= d.last_heartbeat_at;

        -- The newest session of each device that still heartbeats is running.
        INSERT INTO sync_sessions (project_id, device_id, config_id, kind, status, hostname, pid, local_directory,
                                   bucket, s3_prefix, started_at, heartbeat_at, finished_at)
        SELECT c.project_id, d.id, c.id, (ARRAY['startup', 'scheduled', 'scheduled', 'immediate'])[slot + 1],
               CASE WHEN t > now() - interval '5 hours' AND d.id <= 17 THEN 'running'
                    WHEN r < 0.03 THEN 'failed' WHEN r < 0.06 THEN 'interrupted'
                    WHEN r < 0.40 THEN 'completed_with_errors' ELSE 'completed' END,
               d.hostname, 1000 + slot, '/data/logs, /data/bags', p.bucket, p.prefix, t, t + interval '40 minutes',
               CASE WHEN t > now() - interval '5 hours' AND d.id <= 17 THEN NULL
                    ELSE t + (10 + r * 50) * interval '1 minute' END
        FROM devices d
        JOIN config_history c ON c.project_id = 1 + d.id % 3
        JOIN projects p ON p.id = c.project_id
        CROSS JOIN generate_series(0, 29) AS day
        CROSS JOIN generate_series(0, 3) AS slot
        CROSS JOIN LATERAL (SELECT random() AS r,
                                   date_trunc('day', now()) - interval '29 days' + day * interval '1 day'
                                   + slot * interval '6 hours' + d.id * interval '7 minutes' AS t) AS x
        WHERE t <= now();

        -- 420 files per session, one every 4 seconds as the session scans.
        INSERT INTO file_uploads (created_at, session_id, project_id, source, local_path, rel_path, bucket, s3_key,
                                  size_bytes, mtime, checksum_sha256, status, skip_reason, attempts, error_class,
                                  error_message, http_status, etag, claimed_by, claimed_at, started_at, finished_at,
                                  local_deleted_at, updated_at)
        SELECT f.created, f.session_id, f.project_id, f.source, '/data/' || f.rel, f.rel, f.bucket,
               f.s3_prefix || f.rel, f.size, f.created - interval '1 hour', f.digest || lpad(to_hex(f.g), 32, '0'),
               f.status, CASE WHEN f.status = 'skipped' THEN (CASE WHEN f.g % 16 = 0 THEN 'bucket' ELSE 'ledger' END) END,
               CASE WHEN f.status IN ('uploaded', 'skipped') THEN 1 + (f.g % 9 = 0)::int
                    WHEN f.status IN ('failed', 'permanent_failure') THEN 1 + f.g % 5
                    WHEN f.status = 'uploading' THEN 1 ELSE 0 END,
               f.error_class,
               CASE WHEN f.error_class IS NOT NULL
                    THEN f.error_class || ': ' || (ARRAY['connection reset by peer', 'timed out after 30000 ms',
                         'HTTP 503 SlowDown', 'HTTP 500 InternalError', 'HTTP 403 AccessDenied',
                         'file vanished during upload'])[1 + f.g % 6] END,
               CASE f.error_class WHEN 'throttled' THEN 503 WHEN 'server' THEN 500 WHEN 'access_denied' THEN 403 END,
               CASE WHEN f.status = 'uploaded' THEN f.digest END,
               CASE WHEN f.status = 'uploading' THEN f.claimer END,
               CASE WHEN f.status = 'uploading' THEN f.created END,
               CASE WHEN f.status NOT IN ('pending', 'skipped') THEN f.created END,
               CASE WHEN f.status NOT IN ('pending', 'uploading') THEN f.created + f.g % 20 * interval '1 second' END,
               CASE WHEN f.status = 'uploaded' AND f.created < now() - interval '7 days' AND f.g % 2 = 0
                    THEN f.created + interval '3 days' END,
               f.created + f.g % 20 * interval '1 second'
        FROM (
            SELECT s.id AS session_id, s.project_id, s.bucket, s.s3_prefix, s.g, s.created,
                   (ARRAY['terminal', 'ros', 'camera'])[1 + s.g % 3] AS source,
                   s.stem || s.g || '.log' AS rel, s.digest, s.claimer, 1000 + (s.g * 7919) % 50000000 AS size,
                   CASE WHEN s.status = 'running' AND s.g > 300
                            THEN (CASE WHEN s.g % 5 = 0 THEN 'uploading' ELSE 'pending' END)
                        WHEN s.r < 0.04 AND s.status <> 'completed' THEN 'failed'
                        WHEN s.r < 0.055 AND s.status <> 'completed' THEN 'permanent_failure'
                        WHEN s.r < 0.10 THEN 'skipped'
                        ELSE 'uploaded' END AS status,
                   CASE WHEN s.status = 'running' AND s.g > 300 THEN NULL
                        WHEN s.r < 0.04 AND s.status <> 'completed'
                            THEN (ARRAY['network', 'timeout', 'throttled', 'server', 'file_changed'])[1 + s.g % 5]
                        WHEN s.r < 0.055 AND s.status <> 'completed'
                            THEN (ARRAY['access_denied', 'file_missing', 'file_unreadable', 'invalid_key'])[1 + s.g % 4]
                   END AS error_class
            FROM (SELECT s.id, s.project_id, s.bucket, s.s3_prefix, s.status, g,
                         s.started_at + g * interval '4 seconds' AS created, random() AS r,
                         s.hostname || '/' || to_char(s.started_at, 'YYYY-MM-DD') || '/' || s.id || '_' AS stem,
                         md5(s.id::text) AS digest, s.hostname || ':' || s.pid AS claimer
                  FROM sync_sessions AS s CROSS JOIN generate_series(1, 420) AS g
                  WHERE s.started_at + g * interval '4 seconds' <= now()) AS s
        ) AS f;

        UPDATE sync_sessions s
        SET total_files = t.files, total_bytes = t.bytes, files_uploaded = t.uploaded,
            bytes_uploaded = t.bytes_uploaded, files_skipped = t.skipped, bytes_skipped = t.bytes_skipped,
            files_failed = t.failed,
            error_message = CASE WHEN s.status = 'failed' THEN 'S3 access_denied (HTTP 403): AccessDenied' END
        FROM (SELECT session_id, count(*) AS files, sum(size_bytes) AS bytes,
                     count(*) FILTER (WHERE status = 'uploaded') AS uploaded,
                     coalesce(sum(size_bytes) FILTER (WHERE status = 'uploaded'), 0) AS bytes_uploaded,
                     count(*) FILTER (WHERE status = 'skipped') AS skipped,
                     coalesce(sum(size_bytes) FILTER (WHERE status = 'skipped'), 0) AS bytes_skipped,
                     count(*) FILTER (WHERE status IN ('failed', 'permanent_failure')) AS failed
              FROM file_uploads GROUP BY session_id) AS t
        WHERE t.session_id = s.id;

        INSERT INTO retry_rounds (session_id, round, started_at, finished_at, files_attempted, files_uploaded,
                                  files_failed)
        SELECT s.id, n, s.finished_at + n * interval '5 minutes',
               s.finished_at + n * interval '5 minutes' + interval '30 seconds',
               s.files_failed, s.files_failed / (n + 1), s.files_failed - s.files_failed / (n + 1)
        FROM sync_sessions s CROSS JOIN generate_series(1, 2) AS n
        WHERE s.status IN ('completed_with_errors', 'failed') AND (n = 1 OR s.id % 3 = 0);

        -- One trigger call per finished session; one in eight needs a second attempt.
        INSERT INTO trigger_events (session_id, url, delivery, attempt, http_status, latency_ms, succeeded,
                                    error_message, response_excerpt, created_at)
        SELECT s.id, 'https://pipeline.example.com/hooks/upload', 1, a,
               CASE WHEN a = 1 AND s.id % 8 = 0 THEN 502 ELSE 200 END, 40 + (s.id * 13) % 400,
               NOT (a = 1 AND s.id % 8 = 0), CASE WHEN a = 1 AND s.id % 8 = 0 THEN 'HTTP 502 Bad Gateway' END,
               '{"ok":true}', s.finished_at + a * interval '2 seconds'
        FROM sync_sessions s CROSS JOIN generate_series(1, 2) AS a
        WHERE s.finished_at IS NOT NULL AND (a = 1 OR s.id % 8 = 0);

        INSERT INTO local_deletions (device_id, session_id, local_path, size_bytes, mtime, reason, was_uploaded,
                                     deleted_at)
        SELECT s.device_id, s.id, format('/data/terminal/%s/%s.log', s.hostname, n), 1000 + n * 4096,
               s.started_at - interval '1 day',
               CASE WHEN n % 20 = 0 THEN 'emergency' WHEN n % 4 = 0 THEN 'age' ELSE 'after_upload' END,
               n % 20 <> 0, s.started_at + n * interval '10 seconds'
        FROM sync_sessions s CROSS JOIN generate_series(1, 10) AS n
        WHERE s.started_at + n * interval '10 seconds' <= now();
        """
}
