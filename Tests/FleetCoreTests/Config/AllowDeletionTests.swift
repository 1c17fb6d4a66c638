import Foundation
import Testing

@testable import FleetCore

/// `allow_deletion`: which sources' files a deletion may touch, as resolved from the configuration.
struct AllowDeletionTests {
    private static func resolved(_ sources: String, extra: String = "") throws -> ResolvedConfig {
        let yaml = "project: { name: p }\ns3: { bucket: fleet-data }\n" + sources + extra
        return try ConfigLoader.decode(ConfigValue.parseYAML(yaml)).resolved
    }

    /// The first problem's one-line description, or nil when the document is valid.
    private static func firstError(_ yaml: String) -> String? {
        do {
            _ = try ConfigLoader.decode(
                ConfigValue.parseYAML("project: { name: p }\ns3: { bucket: fleet-data }\n" + yaml)
            )
            return nil
        } catch {
            return "\(error)"
        }
    }

    private static let defaults: [(String, Bool)] = [
        ("/var/log", false), ("/var", false), ("/var/", false), ("/var/log/nginx", false), ("/etc", false),
        ("/etc/app/logs", false), ("/usr/local/data", false), ("/boot", false), ("/proc/1", false),
        ("/sys/kernel", false), ("/", false), ("/home/../var/log", false), ("/variable", true),
        ("/home/autoware/.ros/log", true), ("/data/var/log", true), ("/tmp/x", true), ("/srv/etc", true),
        ("/usrdata", true),
    ]

    @Test(arguments: defaults)
    func sourcesBelowTheSystemsDirectoriesKeepTheirFilesByDefault(path: String, allowed: Bool) throws {
        let config = try Self.resolved("source: { path: '\(path)' }\n")
        #expect(config.sources.first?.allowDeletion == allowed, "\(path)")
        #expect(config.deletableSourceRoots.isEmpty == !allowed)
    }

    @Test func anExplicitValueWinsEitherWay() throws {
        let config = try Self.resolved(
            """
            sources:
              - { name: syslog, path: /var/log, allow_deletion: true }
              - { name: data, path: /data/set, allow_deletion: false }
              - { name: ros, path: /home/autoware/.ros/log }
              - { name: etc, path: /etc/app }

            """
        )
        #expect(config.sources.map(\.allowDeletion) == [true, false, true, false])
        #expect(config.deletableSourceRoots == [Array("/var/log".utf8), Array("/home/autoware/.ros/log".utf8)])
    }

    /// A link elsewhere that leads below `/var` protects the source as its target would.
    @Test func aLinkIntoAProtectedDirectoryCountsAsThatDirectory() throws {
        let link = FileManager.default.temporaryDirectory.appendingPathComponent("allow-deletion-\(UUID().uuidString)")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "/var/tmp")
        defer { try? FileManager.default.removeItem(at: link) }
        #expect(try Self.resolved("source: { path: '\(link.path)' }\n").sources.first?.allowDeletion == false)
        #expect(ResolvedConfig.protectedPrefix(of: link.path) == "/var")
    }

    private static let refusals: [(String, String)] = [
        (
            "source: { path: /var/data }\nupload: { delete_after_upload: true }\n",
            "upload.delete_after_upload: no source allows deletion ('/var/data' lies under /var); set"
                + " source.allow_deletion: true to delete there"
        ),
        (
            "source: { path: /data, allow_deletion: false }\nupload: { delete_after_upload: true }\n",
            "upload.delete_after_upload: no source allows deletion ('/data' has allow_deletion: false); set"
                + " source.allow_deletion: true to delete there"
        ),
        (
            "source: { path: / }\nupload: { delete_after_upload: true }\n",
            "upload.delete_after_upload: no source allows deletion ('/' holds the system's directories); set"
                + " source.allow_deletion: true to delete there"
        ),
        (
            """
            sources: [{ name: a, path: /etc/a }, { name: b, path: /var/b }]
            keys: { template: '{source}/{relpath}' }
            upload: { delete_after_upload: true }

            """,
            "upload.delete_after_upload: no source allows deletion ('/etc/a' lies under /etc); set"
                + " sources[0].allow_deletion: true to delete there"
        ),
        (
            "source: { path: /data, allow_deletion: maybe }\n",
            "source.allow_deletion: expected true or false, got \"maybe\""
        ),
    ]

    @Test(arguments: refusals)
    func deleteAfterUploadWithNoSourceAllowingDeletionIsRefused(yaml: String, expected: String) {
        #expect(Self.firstError(yaml) == expected)
    }

    @Test func deleteAfterUploadIsAcceptedWhenOneSourceAllowsDeletion() {
        #expect(
            Self.firstError(
                "source: { path: /var/data, allow_deletion: true }\nupload: { delete_after_upload: true }\n"
            ) == nil
        )
        #expect(
            Self.firstError(
                """
                sources: [{ name: a, path: /etc/a }, { name: b, path: /data/b }]
                keys: { template: '{source}/{relpath}' }
                upload: { delete_after_upload: true }

                """
            ) == nil
        )
        #expect(Self.firstError("source: { path: /var/data }\n") == nil, "a protected source alone is fine")
    }
}
