/// File paths are bytes; S3 keys, the ledger and log lines want text.
///
/// A path that is valid UTF-8 is kept as it is. In one that is not, each invalid byte becomes `%XX` and `%`
/// itself becomes `%25`, so the text is valid and still says which bytes the name held.
package enum PathText {
    /// A path's bytes as text: unchanged when valid UTF-8, escaped otherwise.
    package static func escaped(_ bytes: some Collection<UInt8>) -> String {
        if let text = String(validating: bytes, as: UTF8.self) { return text }
        var out = ""
        var rest = Array(bytes)[...]
        while !rest.isEmpty {
            let length = validSequenceLength(rest)
            if length > 0 {
                let scalarText = String(decoding: rest.prefix(length), as: UTF8.self)
                out += scalarText == "%" ? "%25" : scalarText
                rest = rest.dropFirst(length)
            } else {
                out += "%" + String(rest.first!, radix: 16, uppercase: true).leftPadded(to: 2)
                rest = rest.dropFirst()
            }
        }
        return out
    }

    /// The length of the valid UTF-8 sequence at the start, 0 if it is not valid.
    private static func validSequenceLength(_ bytes: ArraySlice<UInt8>) -> Int {
        guard let lead = bytes.first else { return 0 }
        let length: Int
        switch lead {
        case 0x00...0x7F: return 1
        case 0xC2...0xDF: length = 2
        case 0xE0...0xEF: length = 3
        case 0xF0...0xF4: length = 4
        default: return 0
        }
        guard bytes.count >= length else { return 0 }
        return String(validating: bytes.prefix(length), as: UTF8.self) == nil ? 0 : length
    }
}
