import ArgumentParser
import FleetCLI
import FleetCore
import FleetSystem
import Foundation

extension ConfigImport.Tool: ExpressibleByArgument {}

extension MasterCommand {
    struct ImportConfig: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "import-config",
            abstract: "Turn a predecessor's configuration into an equivalent fleet-upload configuration.",
            discussion: """
                --from tvm reads the TVM log daemon's config.yaml and prints an agent configuration (YAML, for
                master run); --from data-uploader reads the Data Uploader's JSON configuration and prints a session
                configuration (JSON, for upload); --from bash reads the bash S3 daemon's settings (an environment
                file, a systemd unit or the script that starts it, with its -i -d -r -p -s flags) and prints an
                agent configuration.

                The result keeps the old tool's keys in the bucket, its schedule and hours, and its deletion
                policies. Every key says which old key it came from: a # comment in YAML, a line on stderr for
                JSON. Each old key that is not carried over is listed on stderr with the reason. ${HOME}, ~ and
                other variables in paths are expanded from this shell's environment, and relative paths are taken
                from the current directory, as the old tools took them.

                The project is the Data Uploader's project_name, else --project, else the bucket's name (TVM,
                Data Uploader) or s3-upload-daemon (bash). The configuration is checked as master run and upload
                check it before it is written (stdout, or --output FILE). See docs/migrating.md.

                Exit codes: 0 written, 2 the old file cannot be read or holds a value that cannot be carried over
                (the file and the old key are named), 3 the output could not be written.
                """
        )

        @Option(help: ArgumentHelp("The old tool: tvm, data-uploader or bash.", valueName: "tool"))
        var from: ConfigImport.Tool

        @Argument(help: ArgumentHelp("The old tool's configuration file.", valueName: "file"))
        var file: String

        @Option(help: ArgumentHelp("Write the configuration to this file instead of stdout.", valueName: "path"))
        var output: String?

        @Option(help: ArgumentHelp("The project's name (see above for the default).", valueName: "name"))
        var project: String?

        func run() throws {
            let contents = try ConfigLoader.read(file, what: "the old configuration")
            if let output, FleetConfig.realDirectory(output) == FleetConfig.realDirectory(file) {
                throw ValidationError("--output names the old configuration itself; write the new one elsewhere")
            }
            if let project, let reason = FleetConfig.nameProblem(project) {
                throw ConfigError(keyPath: "--project", reason)
            }
            let imported = try ConfigImport.run(from, file: file, contents: contents, options: .init(project: project))
            let text = imported.rendered()
            try check(text, format: imported.format)

            for notice in imported.notices { standardError("import-config: \(notice)") }
            if imported.format == .json {
                for line in imported.mappingLines() { standardError("import-config: \(line)") }
            }
            for left in imported.left {
                standardError("import-config: not carried over: \(left.key): \(left.reason)")
            }
            guard let output else {
                standardOutput(text.hasSuffix("\n") ? String(text.dropLast()) : text)
                return
            }
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
            } catch {
                let directory = URL(fileURLWithPath: output).deletingLastPathComponent().path
                let reason =
                    !FileManager.default.fileExists(atPath: directory)
                    ? "no such directory: \(directory)"
                    : !FileManager.default.isWritableFile(atPath: directory)
                        ? "permission denied" : error.localizedDescription
                standardError("master: cannot write \(output): \(reason)")
                throw ExitCode(ExitStatus.environment.rawValue)
            }
            standardError("import-config: wrote \(output)")
        }

        /// The configuration loads as `master run` and `upload` load it; a refusal here is a value the import
        /// could not carry over, named by its new key.
        private func check(_ text: String, format: ImportedConfig.Format) throws {
            do {
                let document =
                    format == .json ? try ConfigValue.parseJSON(Data(text.utf8)) : try ConfigValue.parseYAML(text)
                _ = try ConfigLoader.decode(document)
            } catch {
                throw ConfigError(
                    file: file,
                    keyPath: nil,
                    "the imported configuration is refused: \(error.description.collapsedToOneLine)"
                )
            }
        }
    }
}
