import Foundation

/// A status line rewritten in place on a terminal's stderr; silent when stderr is not a terminal (logs
/// carry progress there).
package final class ScanProgressLine {
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private var shown = false

    package init() {}

    package func update(_ text: String) {
        guard isTerminal else { return }
        StandardStreams.writeError("\r\u{1B}[2K" + text)
        shown = true
    }

    package func finish() {
        guard shown else { return }
        StandardStreams.writeError("\r\u{1B}[2K")
        shown = false
    }
}
