// swift-tools-version:6.2
import PackageDescription

// Every target of ours builds in Swift 6 mode with strict concurrency, `any` required for existentials,
// and warnings treated as errors.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .treatAllWarnings(as: .error),
]

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let inMemoryLogging = Target.Dependency.product(name: "InMemoryLogging", package: "swift-log")
let yams = Target.Dependency.product(name: "Yams", package: "Yams")

let package = Package(
    name: "fleet-upload",
    products: [
        .executable(name: "upload", targets: ["upload"]),
        .executable(name: "retry", targets: ["retry"]),
        .executable(name: "trigger", targets: ["trigger"]),
        .executable(name: "master", targets: ["master"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // Thin system-library bridges: a modulemap and a header each, found through pkg-config.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        .target(
            name: "FleetCore",
            dependencies: ["CLibPQ", "CCurl", "COpenSSL", yams, logging],
            // sql/ at the package root is linked in as Ledger/Migrations and compiled into the binary, so a
            // deployed executable carries its own schema.
            resources: [.embedInCode("Ledger/Migrations")],
            swiftSettings: strict
        ),
        .target(name: "FleetCLI", dependencies: ["FleetCore", argumentParser, logging], swiftSettings: strict),
        .executableTarget(
            name: "upload",
            dependencies: ["FleetCLI", "FleetCore", argumentParser],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "retry",
            dependencies: ["FleetCLI", "FleetCore", argumentParser],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "trigger",
            dependencies: ["FleetCLI", "FleetCore", argumentParser],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "master",
            dependencies: ["FleetCLI", "FleetCore", argumentParser],
            swiftSettings: strict
        ),
        // Drives single core operations for bench/run.py, each in a process of its own.
        .executableTarget(
            name: "fleet-bench",
            dependencies: ["FleetCLI", "FleetCore", argumentParser],
            swiftSettings: strict
        ),

        .testTarget(name: "FleetCoreTests", dependencies: ["FleetCore", inMemoryLogging], swiftSettings: strict),
        // Integration and CLI tests run against a real PostgreSQL (scripts/pg.sh) and, with the S3 layer, a real
        // S3-compatible server; FleetTestSupport gives each test its own database.
        .target(
            name: "FleetTestSupport",
            dependencies: ["FleetCore", logging],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["FleetCore", "FleetTestSupport", logging],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["FleetCore", "FleetTestSupport", "upload", "retry", "trigger", "master"],
            swiftSettings: strict
        ),
    ]
)
