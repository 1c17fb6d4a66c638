import Foundation

/// A set of AWS credentials and where they came from.
///
/// `description` names the source and a masked key id, never the secret or the token.
package struct AWSCredentials: Sendable, Equatable, CustomStringConvertible, CustomReflectable {
    package var accessKeyID: String
    package var secretAccessKey: String
    package var sessionToken: String?
    /// When temporary credentials stop working; `nil` for long-term keys.
    package var expiration: Date?
    /// Where they came from, for `upload --check` and logs: `environment`, `shared credentials file
    /// (profile china)`, `EC2 instance role web-uploader`.
    package var source: String

    package init(
        accessKeyID: String,
        secretAccessKey: String,
        sessionToken: String? = nil,
        expiration: Date? = nil,
        source: String
    ) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
        self.source = source
    }

    /// `AKIA…MPLE`: enough to tell keys apart, not enough to use one.
    package var maskedKeyID: String {
        accessKeyID.count > 8 ? accessKeyID.prefix(4) + "…" + accessKeyID.suffix(4) : "…"
    }

    package var description: String { "\(source) (\(maskedKeyID))" }

    /// `dump()` and debuggers see the source and the masked key id only.
    package var customMirror: Mirror {
        Mirror(self, children: ["source": source, "accessKeyID": maskedKeyID, "expiration": expiration as Any])
    }
}
