import FleetSystem
import Foundation

/// `master import-config`: a predecessor's configuration turned into fleet-upload's, keeping the keys its files
/// went to in the bucket, its schedule and hours, and its deletion policies.
package enum ConfigImport {
    /// The tools whose configurations can be imported.
    package enum Tool: String, CaseIterable, Sendable {
        /// The TVM log daemon's `config.yaml`: an agent configuration.
        case tvm
        /// The Data Uploader's JSON configuration: a session configuration.
        case dataUploader = "data-uploader"
        /// The bash S3 daemon's variables and flags (an environment file or the lines that start it): an agent
        /// configuration.
        case bash
    }

    /// What the import takes besides the old file.
    package struct Options: Sendable {
        /// `--project`: the project's name where the old file has none.
        package var project: String?
        /// Expands `${HOME}`, `~` and other variables in paths.
        package var environment: [String: String]
        /// Relative paths in the old configuration were relative to where the old tool was started; taken from
        /// here.
        package var currentDirectory: String

        package init(
            project: String? = nil,
            environment: [String: String] = ProcessInfo.processInfo.environment,
            currentDirectory: String = FileManager.default.currentDirectoryPath
        ) {
            self.project = project
            self.environment = environment
            self.currentDirectory = currentDirectory
        }
    }

    /// Imports the old configuration `contents`, read from `file`.
    ///
    /// - Throws: `ConfigError` naming the file and the old key for a file that cannot be read as the old tool's
    ///   configuration, or a value no configuration of ours can hold.
    package static func run(
        _ tool: Tool,
        file: String,
        contents: Data,
        options: Options = Options()
    ) throws(ConfigError) -> ImportedConfig {
        /// `body`'s error, naming the old file.
        func located<T>(_ body: () throws(ConfigError) -> T) throws(ConfigError) -> T {
            do {
                return try body()
            } catch {
                throw ConfigError(file: file, keyPath: error.keyPath, error.message)
            }
        }
        func text() throws(ConfigError) -> String {
            guard let text = String(data: contents, encoding: .utf8) else {
                throw ConfigError(file: file, keyPath: nil, "the file is not UTF-8 text")
            }
            return text
        }
        switch tool {
        case .tvm:
            let document = try located { () throws(ConfigError) in try ConfigValue.parseYAML(try text()) }
            var importer = TVMConfigImport(file: file, options: options)
            return try importer.run(document)
        case .dataUploader:
            let document = try located { () throws(ConfigError) in try ConfigValue.parseJSON(contents) }
            var importer = DataUploaderConfigImport(file: file, options: options)
            return try importer.run(document)
        case .bash:
            var importer = BashDaemonConfigImport(file: file, options: options)
            return try importer.run(try text())
        }
    }

    /// `path` made absolute against `directory`, as the old tool, started there, read it.
    static func absolute(_ path: String, from directory: String) -> String {
        path.hasPrefix("/")
            ? path : URL(fileURLWithPath: directory).appendingPathComponent(path).standardizedFileURL.path
    }

    /// `days` days of age as the new configuration writes "no limit" (its largest accepted value).
    static let noAgeLimitDays: Double = 36_500
}
