import Foundation

/// The absolute path of a script in the repository's `scripts/` directory (`"pg.sh"`, `"testing/tcp-proxy.py"`).
package func repositoryScript(_ relativePath: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../scripts/" + relativePath).standardizedFileURL.path
}
