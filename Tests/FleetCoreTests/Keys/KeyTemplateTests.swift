import Testing

@testable import FleetCore

struct KeyTemplateTests {
    private static func render(_ template: String, _ values: [KeyTemplate.Placeholder: String]) throws -> String {
        try KeyTemplate(template).render { values[$0] ?? "" }
    }

    @Test(arguments: [
        ("{prefix}/{relpath}", ["prefix": "", "relpath": "a/b.wav"], "a/b.wav"),
        ("{prefix}/{relpath}", ["prefix": "sets/2026", "relpath": "a/b.wav"], "sets/2026/a/b.wav"),
        ("{prefix}/{relpath}", ["prefix": "sets/", "relpath": "a/b.wav"], "sets/a/b.wav"),
        ("{prefix}/{relpath}", ["prefix": "/sets//x/", "relpath": "a//b.wav"], "sets/x/a/b.wav"),
        ("{prefix}/{relpath}", ["prefix": ".", "relpath": "./a/./b.wav"], "a/b.wav"),
        (
            "{device}/{date}/{source}/{relpath}",
            ["device": "car7", "date": "2026-11-23", "source": "ros", "relpath": "run1/a.bag"],
            "car7/2026-11-23/ros/run1/a.bag"
        ),
        ("{project}-{filename}", ["project": "p", "filename": "a.wav"], "p-a.wav"),
        ("/fixed/{relpath}/", ["relpath": "a"], "fixed/a"),
    ])
    func rendersNormalisedKey(template: String, values: [String: String], expected: String) throws {
        let typed = Dictionary(
            uniqueKeysWithValues: values.map { (KeyTemplate.Placeholder(rawValue: $0.key)!, $0.value) }
        )
        #expect(try Self.render(template, typed) == expected)
    }

    @Test(arguments: ["{prefix}/../{relpath}", "../{relpath}", "{device}/{relpath}/..", "a/./../{filename}"])
    func refusesADotDotSegment(template: String) {
        #expect(throws: KeyTemplateError("a '..' path segment is not allowed in a key")) { try KeyTemplate(template) }
    }

    @Test(arguments: ["{prefix}..{relpath}", "{device}/..{filename}", "v..1/{relpath}", "./{relpath}"])
    func acceptsDotsThatAreNotASegment(template: String) throws {
        _ = try KeyTemplate(template)
    }

    @Test func reportsWhichPlaceholdersItUses() throws {
        let template = try KeyTemplate("{device}/{date}/{source}/{relpath}")
        #expect(template.uses(.date))
        #expect(template.uses(.source))
        #expect(!template.uses(.prefix))
        #expect(template.description == "{device}/{date}/{source}/{relpath}")
    }

    @Test func unknownPlaceholderIsNamedWithTheKnownOnes() {
        #expect(
            throws: KeyTemplateError(
                "unknown placeholder {dat}; known: {prefix}, {relpath}, {filename}, {device}, {project}, {source}, {date}"
            )
        ) { try KeyTemplate("{dat}/{relpath}") }
    }

    @Test(arguments: ["{relpath", "a/{relpath}/{date"])
    func unclosedBraceIsRejected(template: String) {
        #expect(throws: KeyTemplateError("unclosed '{'")) { try KeyTemplate(template) }
    }

    @Test(arguments: ["{relpath}}", "a}/{relpath}", "{device}}/{relpath}", "x}"])
    func closingBraceWithoutOpeningIsRejected(template: String) {
        #expect(throws: KeyTemplateError("'}' without '{'")) { try KeyTemplate(template) }
    }

    @Test(arguments: ["{prefix}/{date}", "fixed-key", ""])
    func templateWithoutFilePathIsRejected(template: String) {
        #expect(throws: KeyTemplateError.self) { try KeyTemplate(template) }
    }

    @Test(arguments: ["{relpath}", "{filename}", "{date}/{filename}"])
    func templateNamingTheFileIsAccepted(template: String) throws {
        _ = try KeyTemplate(template)
    }
}
