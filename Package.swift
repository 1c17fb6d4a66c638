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
/// The library layers, bottom to top.
let layers: [Target.Dependency] = ["FleetSystem", "FleetAWS", "FleetLedger", "FleetCore"]
let commandDependencies: [Target.Dependency] = layers + ["FleetCLI", argumentParser]

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
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),

        // The layers, each a target so the compiler keeps them apart; dependencies run one way, top to bottom
        // (docs/architecture.md). Only FleetSystem imports the C bridges; only FleetLedger holds SQL.
        .target(
            name: "FleetSystem",
            dependencies: ["CLibPQ", "CCurl", "COpenSSL", "CZstd", logging],
            swiftSettings: strict
        ),
        .target(name: "FleetAWS", dependencies: ["FleetSystem", logging], swiftSettings: strict),
        .target(
            name: "FleetLedger",
            dependencies: ["FleetSystem", logging],
            // sql/ at the package root is linked in as Migrations and compiled into the binary, so a deployed
            // executable carries its own schema.
            resources: [.embedInCode("Migrations")],
            swiftSettings: strict
        ),
        .target(
            name: "FleetCore",
            dependencies: ["FleetSystem", "FleetAWS", "FleetLedger", yams, logging],
            swiftSettings: strict
        ),
        .target(name: "FleetCLI", dependencies: layers + [argumentParser, logging], swiftSettings: strict),
        .executableTarget(name: "upload", dependencies: commandDependencies, swiftSettings: strict),
        .executableTarget(name: "retry", dependencies: commandDependencies, swiftSettings: strict),
        .executableTarget(name: "trigger", dependencies: commandDependencies, swiftSettings: strict),
        .executableTarget(name: "master", dependencies: commandDependencies, swiftSettings: strict),
        // Drives single core operations for bench/run.py, each in a process of its own.
        .executableTarget(name: "fleet-bench", dependencies: commandDependencies, swiftSettings: strict),

        // Unit tests, one target per layer; they need no server.
        .testTarget(name: "FleetSystemTests", dependencies: ["FleetSystem", inMemoryLogging], swiftSettings: strict),
        // The SigV4 vectors in Fixtures/ are read from the source tree.
        .testTarget(
            name: "FleetAWSTests",
            dependencies: ["FleetAWS"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(name: "FleetLedgerTests", dependencies: ["FleetLedger"], swiftSettings: strict),
        .testTarget(name: "FleetCoreTests", dependencies: layers + [inMemoryLogging], swiftSettings: strict),
        // Integration and CLI tests run against a real PostgreSQL (scripts/pg.sh) and, with the S3 layer, a real
        // S3-compatible server; FleetTestSupport gives each test its own database.
        .target(
            name: "FleetTestSupport",
            dependencies: layers + [logging],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: layers + ["FleetTestSupport", logging],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CLITests",
            dependencies: layers + ["FleetTestSupport", "upload", "retry", "trigger", "master"],
            swiftSettings: strict
        ),
    ]
)
