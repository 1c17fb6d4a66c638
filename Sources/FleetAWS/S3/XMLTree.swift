import Foundation
import FoundationXML

/// A parsed XML document, small enough to hold whole (S3 error bodies, listings of 1,000 keys).
///
/// Namespaces are dropped: S3 documents use one default namespace, and code asks for `Contents/Key`.
package final class XMLTree {
    package let name: String
    package fileprivate(set) var text = ""
    package fileprivate(set) var children: [XMLTree] = []

    init(name: String) { self.name = name }

    /// Parses `data`; `nil` when it is not well-formed XML.
    package static func parse(_ data: [UInt8]) -> XMLTree? {
        let builder = TreeBuilder()
        let parser = XMLParser(data: Data(data))
        parser.delegate = builder
        // On Linux parse() can return true after a fatal error (a truncated document, content after the root):
        // check the error and that every element was closed, or a cut-off listing would read as complete.
        guard parser.parse(), parser.parserError == nil, !builder.failed, builder.stack.isEmpty, let root = builder.root
        else { return nil }
        return root
    }

    /// The first child with this name.
    package func child(_ name: String) -> XMLTree? { children.first { $0.name == name } }

    /// Every child with this name.
    package func all(_ name: String) -> [XMLTree] { children.filter { $0.name == name } }

    /// The text of the first child with this name.
    package subscript(_ name: String) -> String? { child(name)?.text }
}

private final class TreeBuilder: NSObject, XMLParserDelegate {
    var root: XMLTree?
    var stack: [XMLTree] = []
    var failed = false

    func parser(
        _ parser: XMLParser,
        didStartElement elementName: String,
        namespaceURI: String?,
        qualifiedName: String?,
        attributes: [String: String] = [:]
    ) {
        let local = elementName.split(separator: ":").last.map(String.init) ?? elementName
        let element = XMLTree(name: local)
        if root != nil && stack.isEmpty { failed = true }  // a second root element
        stack.last?.children.append(element)
        if root == nil { root = element }
        stack.append(element)
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { stack.last?.text += string }

    func parser(_ parser: XMLParser, foundCDATA block: Data) {
        stack.last?.text += String(decoding: block, as: UTF8.self)
    }

    func parser(_ parser: XMLParser, parseErrorOccurred error: any Error) { failed = true }

    func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
        _ = stack.popLast()
    }
}

/// Text for an XML element's content.
func xmlEscaped(_ text: String) -> String {
    var out = ""
    for character in text {
        switch character {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(character)
        }
    }
    return out
}
