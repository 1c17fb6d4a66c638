/// What a key must hold for a PutObject to be written: the conditional write that makes sending a request
/// again safe when the answer to the first was lost.
///
/// S3 answers a write whose condition does not hold with 412 `PreconditionFailed` (409
/// `ConditionalRequestConflict` when another conditional write to the key is in progress) and writes nothing.
package enum PutCondition: Sendable, Equatable {
    /// No condition: the write replaces whatever the key holds.
    case always
    /// Only when the key holds no object (`If-None-Match: *`).
    case absent
    /// Only when the key still holds the object with this ETag (`If-Match`), the one a look just found.
    case replacing(etag: String)

    /// The request headers that carry the condition.
    var headers: [(String, String)] {
        switch self {
        case .always: []
        case .absent: [("if-none-match", "*")]
        case .replacing(let etag): [("if-match", etag.hasPrefix("\"") ? etag : "\"\(etag)\"")]
        }
    }
}
