import FleetSystem
import Foundation
import Testing

@testable import FleetCore

/// Sources that list one directory twice, or one inside another, are refused when the configuration loads
/// (each file below would be uploaded once per source); paths are compared with symbolic links resolved.
struct SourceOverlapValidationTests {
    /// A scratch directory with `data/ros`, `data/terminal` and `data2`, removed by `remove()`.
    private struct Tree {
        let root: String

        init() throws {
            root = NSTemporaryDirectory() + "fleet-overlap-" + UUID().uuidString.prefix(8)
            for directory in ["data/ros", "data/terminal", "data2"] {
                try FileManager.default.createDirectory(
                    atPath: root + "/" + directory,
                    withIntermediateDirectories: true
                )
            }
        }

        func remove() { try? FileManager.default.removeItem(atPath: root) }
    }

    /// The first problem of a two-source configuration, or nil when it loads.
    private static func firstError(_ first: String, _ second: String, extra: String = "") -> String? {
        let yaml = """
            project:
              name: p
            s3:
              bucket: fleet-data
            sources:
              - name: one
                path: '\(first)'
              - name: two
                path: '\(second)'
            \(extra)
            """
        do {
            _ = try ConfigLoader.decode(ConfigValue.parseYAML(yaml))
            return nil
        } catch {
            return error.description
        }
    }

    private static let twice = ": its files would be uploaded twice; list each directory once"

    @Test func theSameDirectoryTwiceIsRefusedNamingBothSources() throws {
        let tree = try Tree()
        defer { tree.remove() }
        let data = tree.root + "/data"
        #expect(
            Self.firstError(data, data)
                == "sources[1].path: '\(data)' is the same directory as sources[0] (one, '\(data)')" + Self.twice
        )
        // Written differently, the same directory.
        #expect(
            Self.firstError(data, data + "/./")
                == "sources[1].path: '\(data)/./', resolved to '\(data)', is the same directory as sources[0] "
                + "(one, '\(data)')" + Self.twice
        )
    }

    @Test func aDirectoryInsideAnotherIsRefusedEitherWayRound() throws {
        let tree = try Tree()
        defer { tree.remove() }
        let data = tree.root + "/data"
        #expect(
            Self.firstError(data, data + "/ros")
                == "sources[1].path: '\(data)/ros' lies inside sources[0] (one, '\(data)')" + Self.twice
        )
        #expect(
            Self.firstError(data + "/ros", data)
                == "sources[1].path: '\(data)' contains sources[0] (one, '\(data)/ros')" + Self.twice
        )
    }

    @Test func aLinkToAnotherSourceIsTheSameDirectory() throws {
        let tree = try Tree()
        defer { tree.remove() }
        let link = tree.root + "/rosbags"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: tree.root + "/data/ros")
        #expect(
            Self.firstError(tree.root + "/data", link)
                == "sources[1].path: '\(link)', resolved to '\(tree.root)/data/ros', lies inside sources[0] "
                + "(one, '\(tree.root)/data')" + Self.twice
        )
    }

    @Test func siblingsAndNamesThatOnlyShareAPrefixAreFine() throws {
        let tree = try Tree()
        defer { tree.remove() }
        #expect(Self.firstError(tree.root + "/data/ros", tree.root + "/data/terminal") == nil)
        #expect(Self.firstError(tree.root + "/data", tree.root + "/data2") == nil)
    }

    @Test func directoriesThatDoNotExistYetAreComparedAsWritten() {
        #expect(
            Self.firstError("/nonexistent/fleet", "/nonexistent/fleet/ros")
                == "sources[1].path: '/nonexistent/fleet/ros' lies inside sources[0] (one, '/nonexistent/fleet')"
                + Self.twice
        )
        #expect(Self.firstError("/nonexistent/fleet/a", "/nonexistent/fleet/b") == nil)
    }

    @Test func sharedPrefixTakesTrueOrFalseOnly() throws {
        let config = try ConfigLoader.decode(
            ConfigValue.parseYAML(
                "project:\n  name: p\ns3:\n  bucket: fleet-data\n  shared_prefix: true\nsource:\n  path: /d\n"
            )
        )
        #expect(config.resolved.s3.sharedPrefix == true)
        let unset = try ConfigLoader.decode(
            ConfigValue.parseYAML("project:\n  name: p\ns3:\n  bucket: fleet-data\nsource:\n  path: /d\n")
        )
        #expect(unset.resolved.s3.sharedPrefix == false)
        do {
            _ = try ConfigLoader.decode(
                ConfigValue.parseYAML(
                    "project:\n  name: p\ns3:\n  bucket: fleet-data\n  shared_prefix: sometimes\nsource:\n  path: /d\n"
                )
            )
            Issue.record("s3.shared_prefix: sometimes was accepted")
        } catch {
            #expect(error.description.hasPrefix("s3.shared_prefix: "), "\(error)")
        }
    }
}
