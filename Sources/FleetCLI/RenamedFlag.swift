/// A flag of the tools fleet-upload replaces (the Data Uploader's CLIs, the vehicle daemon), still taken under its
/// old name so their scripts and units keep working.
///
/// Old names are not declared as options: before parsing, each one on the command line is replaced by its new
/// name, so it does exactly what the new name does (values, validation, errors) and `--help` never lists it.
/// The first use of each prints `note: OLD is now NEW` on stderr.
package struct RenamedFlag: Sendable, Equatable {
    /// `--session-id`, or a short name such as `-d`.
    package var old: String
    /// `--session`.
    package var new: String

    package init(_ old: String, _ new: String) {
        self.old = old
        self.new = new
    }

    /// `arguments` (without the program name) with every old name of `table` replaced by its new one.
    ///
    /// `table[""]` applies to a command without subcommands; `table["once"]` to the arguments after the
    /// subcommand `once` (the first argument that is not an option). Both `--old value` and `--old=value` are
    /// renamed; nothing after `--` is.
    ///
    /// - Parameter note: receives `note: OLD is now NEW`, once per old name used.
    package static func rewrite(
        _ arguments: [String],
        table: [String: [RenamedFlag]],
        note: (String) -> Void
    ) -> [String] {
        guard !table.isEmpty else { return arguments }
        let subcommandIndex = table[""] == nil ? arguments.firstIndex { !$0.hasPrefix("-") } : nil
        let flags = table[subcommandIndex.map { arguments[$0] } ?? ""] ?? []
        guard !flags.isEmpty else { return arguments }
        var noted: Set<String> = []
        var rewritten: [String] = []
        for (index, argument) in arguments.enumerated() {
            if argument == "--" {
                rewritten += arguments[index...]
                break
            }
            guard index > (subcommandIndex ?? -1),
                let flag = flags.first(where: { argument == $0.old || argument.hasPrefix($0.old + "=") })
            else {
                rewritten.append(argument)
                continue
            }
            if noted.insert(flag.old).inserted { note("note: \(flag.old) is now \(flag.new)") }
            rewritten.append(flag.new + argument.dropFirst(flag.old.count))
        }
        return rewritten
    }
}
