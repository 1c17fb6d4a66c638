/// A trigger that could not even be attempted: the session is unknown or the payload could not be written.
///
/// What the endpoint answers is never an error: it is recorded in `trigger_events` and reported in the
/// `TriggerResult`.
package struct TriggerError: Error, CustomStringConvertible, Sendable {
    package enum Kind: String, Sendable {
        /// No session has the id asked for.
        case unknownSession
        /// The temporary file that holds the request body could not be created or written.
        case payload
    }

    package var kind: Kind
    package var message: String

    package init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    package var description: String { message }
}
