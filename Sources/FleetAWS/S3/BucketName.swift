/// S3's bucket naming rules.
package enum BucketName {
    /// Why `name` cannot be a bucket, or `nil` if it can.
    package static func problem(with name: String) -> String? {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return "must be 3 to 63 characters long" }
        let allowed = bytes.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 46 || $0 == 45 }
        guard allowed else { return "only lowercase letters, digits, '.' and '-' are allowed" }
        let alphanumeric: (UInt8) -> Bool = { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
        guard alphanumeric(bytes.first!), alphanumeric(bytes.last!) else {
            return "must begin and end with a letter or digit"
        }
        guard !name.contains(".."), !name.contains(".-"), !name.contains("-.") else {
            return "'..', '.-' and '-.' are not allowed"
        }
        let parts = name.split(separator: ".")
        if parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) { return "must not look like an IP address" }
        return nil
    }
}
