// swift-tools-version:6.0
import PackageDescription

// Swift's SIMD and scalar loops are built for Haswell (AVX2 + FMA): measured faster than the
// default x86-64 target, and it still runs on both CPUs of our machines (Zen 3 and Zen 4).
// oneDNN picks AVX-512 by itself at run time where the CPU has it.
let nativeCode: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell"]),
]

let package = Package(
    name: "bgem3",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "bgem3", targets: ["bgem3"]),
        .library(name: "Tokenizer", targets: ["Tokenizer"]),
        .library(name: "Engine", targets: ["Engine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
    ],
    targets: [
        .target(
            name: "Tokenizer",
            swiftSettings: nativeCode),
        .systemLibrary(
            name: "COneDNN",
            pkgConfig: nil,
            providers: [.apt(["libdnnl-dev"])]),
        // The engine's AVX-512 loops, in C: Swift has no per-function target, and the rest of the
        // binary must run on CPUs without AVX-512 (Zen 3).
        .target(
            name: "CEngineAVX512"),
        .target(
            name: "Engine",
            dependencies: ["Tokenizer", "COneDNN", "CEngineAVX512"],
            resources: [.embedInCode("Resources/eval-texts.json")],
            swiftSettings: nativeCode),
        .target(
            name: "Scheduling",
            dependencies: [
                "Engine",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: nativeCode),
        .target(
            name: "ModelHub",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: nativeCode),
        .target(
            name: "Server",
            dependencies: [
                "Tokenizer",
                "Engine",
                "Scheduling",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            resources: [.embedInCode("Resources/openapi.json")],
            swiftSettings: nativeCode),
        .executableTarget(
            name: "bgem3",
            dependencies: [
                "Tokenizer",
                "Engine",
                "Scheduling",
                "ModelHub",
                "Server",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.embedInCode("Resources/multilingual-lines.txt")],
            swiftSettings: nativeCode,
            // A build ID note (a SHA-1 of the linked output) tells builds apart for the probe
            // cache at no cost at start; see ExecutableBuild.
            linkerSettings: [.unsafeFlags(["-Xlinker", "--build-id=sha1"])]),
        // What the test suites share: the repository's fixtures, scratch directories, the real
        // binary and server processes.
        .target(
            name: "TestSupport",
            path: "Tests/TestSupport"),
        .testTarget(
            name: "TokenizerTests",
            dependencies: ["Tokenizer", "TestSupport"],
            swiftSettings: nativeCode),
        .testTarget(
            name: "EngineTests",
            dependencies: ["Engine", "TestSupport"],
            swiftSettings: nativeCode),
        .testTarget(
            name: "SchedulingTests",
            dependencies: ["Scheduling", "TestSupport"],
            swiftSettings: nativeCode),
        .testTarget(
            name: "ModelHubTests",
            dependencies: [
                "ModelHub", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: nativeCode),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server", "Engine", "Scheduling", "Tokenizer", "TestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: nativeCode),
        .testTarget(
            name: "CommandLineTests",
            dependencies: ["bgem3", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
