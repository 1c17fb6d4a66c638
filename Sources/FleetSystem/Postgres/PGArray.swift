/// A one-dimensional array parameter in PostgreSQL's binary form, as `array_send` writes it: the server reads each
/// element's bytes as they are, with no text to parse.
///
/// For the batches the hot path sends (a scan batch, a batch of outcomes: thousands of elements per column) the
/// text form costs the server more than a microsecond per row in `array_in` and the elements' input functions,
/// timestamps most of all. The statement casts the parameter to the array type it carries (`$1::bigint[]`): the
/// server takes that as the parameter's type, and refuses an array whose element type is another.
///
/// Layout: the number of dimensions (1, or 0 when empty), whether any element is NULL, the element type's OID,
/// the length and lower bound (1) of the dimension, then each element as a 4-byte length (-1 for NULL) and its
/// bytes. Integers are big-endian; a `timestamptz` is microseconds since 2000-01-01 00:00:00 UTC.
package struct PGArray: PGEncodable {
    private let elementType: UInt32
    private var count = 0
    private var hasNull = false
    private var elements: [UInt8] = []

    private init(elementType: UInt32, capacity: Int) {
        self.elementType = elementType
        elements.reserveCapacity(capacity)
    }

    package var pgBind: PGBind {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(20 + elements.count)
        bytes.appendBigEndian(UInt32(count == 0 ? 0 : 1))
        bytes.appendBigEndian(UInt32(hasNull ? 1 : 0))
        bytes.appendBigEndian(elementType)
        if count > 0 {
            bytes.appendBigEndian(UInt32(count))
            bytes.appendBigEndian(UInt32(1))
        }
        bytes.append(contentsOf: elements)
        return .bytes(bytes)
    }

    private mutating func append(_ element: (inout [UInt8]) -> Void) {
        count += 1
        let lengthAt = elements.count
        elements.appendBigEndian(UInt32(0))
        element(&elements)
        let length = UInt32(elements.count - lengthAt - 4)
        for shift in 0..<4 { elements[lengthAt + shift] = UInt8(truncatingIfNeeded: length >> (24 - 8 * shift)) }
    }

    private mutating func appendNull() {
        count += 1
        hasNull = true
        elements.appendBigEndian(UInt32.max)
    }

    private static func build<Value>(
        _ values: [Value?],
        type: UInt32,
        width: Int,
        _ write: (Value, inout [UInt8]) -> Void
    ) -> PGArray {
        var array = PGArray(elementType: type, capacity: values.count * (4 + width))
        for value in values {
            guard let value else {
                array.appendNull()
                continue
            }
            array.append { write(value, &$0) }
        }
        return array
    }

    /// `bigint[]` (element type `int8`, OID 20).
    package static func bigint(_ values: [Int64?]) -> PGArray {
        build(values, type: 20, width: 8) { $1.appendBigEndian(UInt64(bitPattern: $0)) }
    }

    /// `integer[]` (element type `int4`, OID 23); each value must fit in 32 bits.
    package static func integer(_ values: [Int?]) -> PGArray {
        build(values, type: 23, width: 4) { $1.appendBigEndian(UInt32(bitPattern: Int32($0))) }
    }

    /// `boolean[]` (element type `bool`, OID 16).
    package static func boolean(_ values: [Bool?]) -> PGArray {
        build(values, type: 16, width: 1) { $1.append($0 ? 1 : 0) }
    }

    /// `text[]` (element type `text`, OID 25), each element its UTF-8 bytes.
    package static func text(_ values: [String?]) -> PGArray {
        build(values, type: 25, width: 32) { value, bytes in bytes.append(contentsOf: value.utf8) }
    }

    /// `bytea[]` (element type `bytea`, OID 17), each element the bytes themselves.
    package static func bytea(_ values: [[UInt8]?]) -> PGArray {
        build(values, type: 17, width: 64) { $1.append(contentsOf: $0) }
    }

    /// `timestamptz[]` (element type `timestamptz`, OID 1184).
    package static func timestamptz(_ values: [Timestamp?]) -> PGArray {
        build(values, type: 1184, width: 8) {
            $1.appendBigEndian(UInt64(bitPattern: $0.microseconds - Timestamp.postgresEpochMicroseconds))
        }
    }
}

extension Timestamp {
    /// 2000-01-01 00:00:00 UTC, PostgreSQL's epoch for binary timestamps, in microseconds since 1970.
    static let postgresEpochMicroseconds: Int64 = 946_684_800_000_000
}

extension [UInt8] {
    fileprivate mutating func appendBigEndian(_ value: UInt32) {
        for shift in stride(from: 24, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    fileprivate mutating func appendBigEndian(_ value: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }
}
