/// A configuration that cannot be used, named down to the key.
///
/// `description` reads `session.json: upload.workers (from FLEET_UPLOAD_WORKERS): must be auto or 1…1024, got 0`.
package struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file the configuration came from, if any.
    package var file: String?
    /// The dotted key path, `sources[1].path`; `nil` when the whole file is at fault.
    package var keyPath: String?
    /// The environment variable or flag that supplied the value, when it did not come from the file.
    package var origin: String?
    package var message: String

    package init(file: String? = nil, keyPath: String?, origin: String? = nil, _ message: String) {
        self.file = file
        self.keyPath = keyPath
        self.origin = origin
        self.message = message
    }

    package var description: String {
        var text = file.map { "\($0): " } ?? ""
        if let keyPath {
            text += keyPath.isEmpty ? "top level" : keyPath
            if let origin { text += " (from \(origin))" }
            text += ": "
        }
        return text + message
    }
}
