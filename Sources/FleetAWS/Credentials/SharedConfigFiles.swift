import Foundation

/// The AWS CLI's two shared files, `credentials` and `config`, read into profiles.
///
/// The files are INI as botocore's `RawConfigParser` reads them: `[section]` headers, `key = value` (or
/// `key: value`) lines, whole-line comments starting with `#` or `;`, whitespace trimmed, key names
/// case-insensitive (stored lowercased) and profile names case-sensitive. No inline comments: a `#` inside a value
/// is part of it. Lines indented deeper than the key above them continue that key; they carry nested settings
/// such as `s3 =` followed by `  max_concurrent_requests = 20`, which are skipped.
///
/// In the credentials file every section is a profile named by its header. In the config file a profile is
/// `[default]` or `[profile name]`; other sections (`[sso-session x]`, `[services x]`, a bare `[name]`) are not.
package struct SharedConfigFiles: Sendable, Equatable {
    /// Which of the two files, which decides how section headers name profiles.
    package enum Format: Sendable, Equatable {
        /// `~/.aws/credentials`: `[name]`.
        case credentials
        /// `~/.aws/config`: `[default]` or `[profile name]`.
        case config
    }

    /// One parsed file.
    package struct File: Sendable, Equatable {
        package var path: String
        package var format: Format
        /// `false` when nothing exists at `path`; `profiles` is then empty.
        package var exists: Bool
        /// Profile name → settings, keys lowercased.
        package var profiles: [String: [String: String]]
        /// Config-file sections that are not profiles, by their header text (`sso-session corp`, `china`).
        package var otherSections: Set<String>

        package init(
            path: String,
            format: Format,
            exists: Bool = true,
            profiles: [String: [String: String]] = [:],
            otherSections: Set<String> = []
        ) {
            self.path = path
            self.format = format
            self.exists = exists
            self.profiles = profiles
            self.otherSections = otherSections
        }

        /// The header that holds `profile` in this file: `[default]`, `[profile china]`, or `[china]`.
        package func header(for profile: String) -> String {
            format == .config && profile != "default" ? "[profile \(profile)]" : "[\(profile)]"
        }
    }

    /// The credentials file (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`).
    package var credentials: File
    /// The config file (`AWS_CONFIG_FILE`, default `~/.aws/config`).
    package var config: File

    package init(credentials: File, config: File) {
        self.credentials = credentials
        self.config = config
    }

    /// Reads both files from where the AWS CLI looks for them.
    ///
    /// - Parameters:
    ///   - environment: Supplies `AWS_SHARED_CREDENTIALS_FILE` and `AWS_CONFIG_FILE`; a leading `~` in either
    ///     is the home directory.
    ///   - homeDirectory: Where `~/.aws` is.
    /// - Throws: `CredentialsError` when a file exists but cannot be read or parsed. A missing file is empty.
    package init(environment: [String: String], homeDirectory: String) throws {
        try self.init(
            credentials: File.load(
                path: Self.credentialsPath(environment: environment, homeDirectory: homeDirectory),
                format: .credentials
            ),
            config: File.load(
                path: Self.configPath(environment: environment, homeDirectory: homeDirectory),
                format: .config
            )
        )
    }

    /// `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    package static func credentialsPath(environment: [String: String], homeDirectory: String) -> String {
        path(environment["AWS_SHARED_CREDENTIALS_FILE"], default: ".aws/credentials", homeDirectory: homeDirectory)
    }

    /// `AWS_CONFIG_FILE`, else `~/.aws/config`.
    package static func configPath(environment: [String: String], homeDirectory: String) -> String {
        path(environment["AWS_CONFIG_FILE"], default: ".aws/config", homeDirectory: homeDirectory)
    }

    private static func path(_ override: String?, default relative: String, homeDirectory: String) -> String {
        let home = homeDirectory.hasSuffix("/") ? String(homeDirectory.dropLast()) : homeDirectory
        guard let override, !override.isEmpty else { return home + "/" + relative }
        if override == "~" { return home }
        if override.hasPrefix("~/") { return home + override.dropFirst() }
        return override
    }

    // MARK: - Profiles

    /// Whether either file has `profile`.
    package func hasProfile(_ profile: String) -> Bool {
        credentials.profiles[profile] != nil || config.profiles[profile] != nil
    }

    /// The keys of `profile`: the credentials file's if it has an `aws_access_key_id` there, else the config
    /// file's, as the CLI's shared-credentials provider comes before its config-file provider.
    ///
    /// - Returns: The credentials, with `source` naming the file and profile; `nil` when neither file gives the
    ///   profile a key pair.
    /// - Throws: `CredentialsError` (`.incomplete`) when a file gives the profile one half of the pair.
    package func credentials(forProfile profile: String) throws -> AWSCredentials? {
        for (file, label) in [(credentials, "shared credentials file"), (config, "shared config file")] {
            guard let settings = file.profiles[profile] else { continue }
            let keyID = settings["aws_access_key_id"].flatMap(Self.nonEmpty)
            let secret = settings["aws_secret_access_key"].flatMap(Self.nonEmpty)
            switch (keyID, secret) {
            case (let keyID?, let secret?):
                let token = (settings["aws_session_token"] ?? settings["aws_security_token"]).flatMap(Self.nonEmpty)
                return AWSCredentials(
                    accessKeyID: keyID,
                    secretAccessKey: secret,
                    sessionToken: token,
                    source: "\(label) \(file.path) [\(profile)]"
                )
            case (nil, nil):
                continue
            case (_?, nil), (nil, _?):
                let missing = keyID == nil ? "aws_access_key_id" : "aws_secret_access_key"
                let present = keyID == nil ? "aws_secret_access_key" : "aws_access_key_id"
                throw CredentialsError(
                    .incomplete,
                    "\(file.path) \(file.header(for: profile)) has \(present) but no \(missing)",
                    hint: "add \(missing) to that section or run `aws configure\(Self.profileFlag(profile))`"
                )
            }
        }
        return nil
    }

    /// Settings that make `profile` get its credentials some way other than a key pair (`role_arn`,
    /// `credential_process`, `sso_session`…), which the CLI supports and fleet-upload does not.
    ///
    /// - Returns: The first such key and the file it is in, or `nil`.
    package func unsupportedSetting(forProfile profile: String) -> (key: String, file: File)? {
        let keys = ["role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file"]
        for file in [credentials, config] {
            if let key = keys.first(where: { file.profiles[profile]?[$0] != nil }) { return (key, file) }
        }
        return nil
    }

    static func profileFlag(_ profile: String) -> String { profile == "default" ? "" : " --profile \(profile)" }

    private static func nonEmpty(_ value: String) -> String? {
        let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }
}

// MARK: - Reading and parsing

extension SharedConfigFiles.File {
    /// Reads and parses the file at `path`.
    ///
    /// - Returns: The parsed file; one with `exists == false` and no profiles when there is nothing at `path`.
    /// - Throws: `CredentialsError` (`.unreadableFile`, `.malformedFile`).
    package static func load(path: String, format: SharedConfigFiles.Format) throws -> Self {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return Self(path: path, format: format, exists: false)
        }
        let variable = format == .config ? "AWS_CONFIG_FILE" : "AWS_SHARED_CREDENTIALS_FILE"
        guard !isDirectory.boolValue else {
            throw CredentialsError(
                .unreadableFile,
                "\(path) is a directory",
                hint: "point \(variable) at a file or remove the directory"
            )
        }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CredentialsError(
                .unreadableFile,
                "cannot read \(path): \(error.localizedDescription)",
                hint: "check the file's permissions or point \(variable) elsewhere"
            )
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw CredentialsError(.malformedFile, "\(path) is not UTF-8 text", hint: "save it as UTF-8")
        }
        return try parse(text, path: path, format: format)
    }

    /// Parses the text of a credentials or config file.
    ///
    /// - Parameters:
    ///   - text: The file's contents.
    ///   - path: Where it came from, for `path` and error messages.
    ///   - format: Which file it is.
    /// - Throws: `CredentialsError` (`.malformedFile`) naming the line, never its content (it may hold a secret):
    ///   a setting before the first section, a line with neither `=` nor `:`, or a `[` with no `]`.
    package static func parse(_ text: String, path: String, format: SharedConfigFiles.Format) throws -> Self {
        var file = Self(path: path, format: format)
        var section: String?  // the current section's profile name, nil outside a profile
        var inSection = false
        var keyIndent: Int?  // indentation of the last key line in this section; deeper lines continue it
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        for (index, rawLine) in lines.enumerated() {
            var line = Substring(rawLine)
            if index == 0, line.first == "\u{FEFF}" { line = line.dropFirst() }
            let indent = line.prefix(while: { $0 == " " || $0 == "\t" }).count
            let content = line.trimmingCharacters(in: .whitespaces)
            func malformed(_ problem: String) -> CredentialsError {
                CredentialsError(
                    .malformedFile,
                    "\(path) line \(index + 1): \(problem)",
                    hint: "fix that line; the AWS CLI cannot read this file either"
                )
            }

            if content.isEmpty || content.hasPrefix("#") || content.hasPrefix(";") { continue }
            if let keyIndent, indent > keyIndent { continue }  // a continuation or nested sub-section
            if content.hasPrefix("[") {
                guard let close = content.lastIndex(of: "]") else { throw malformed("`[` without a closing `]`") }
                let header = content[content.index(after: content.startIndex)..<close]
                    .trimmingCharacters(in: .whitespaces)
                section = profileName(header: header, format: format)
                if section == nil, format == .config, !header.isEmpty { file.otherSections.insert(header) }
                if let section, file.profiles[section] == nil { file.profiles[section] = [:] }
                inSection = true
                keyIndent = nil
                continue
            }
            guard let delimiter = content.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
                throw malformed("expected `key = value`")
            }
            let key = content[..<delimiter].trimmingCharacters(in: .whitespaces).lowercased()
            let value = content[content.index(after: delimiter)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { throw malformed("a setting with no name") }
            guard inSection else { throw malformed("a setting before the first [section]") }
            keyIndent = indent
            if let section { file.profiles[section, default: [:]][key] = value }
        }
        return file
    }

    /// The profile a section header names, or `nil` when the section is not a profile.
    private static func profileName(header: String, format: SharedConfigFiles.Format) -> String? {
        guard format == .config else { return header.isEmpty ? nil : header }
        if header == "default" { return header }
        let words = header.split(maxSplits: 1, whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count == 2, words[0] == "profile" else { return nil }
        var name = words[1].trimmingCharacters(in: .whitespaces)
        if name.count >= 2, let quote = name.first, quote == "\"" || quote == "'", name.last == quote {
            name = String(name.dropFirst().dropLast())
        }
        return name.isEmpty ? nil : name
    }
}
