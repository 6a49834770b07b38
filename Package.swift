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
    ],
    targets: [
        .target(
            name: "Tokenizer",
            swiftSettings: nativeCode),
        .systemLibrary(
            name: "COneDNN",
            pkgConfig: nil,
            providers: [.apt(["libdnnl-dev"])]),
        .target(
            name: "Engine",
            dependencies: ["Tokenizer", "COneDNN"],
            swiftSettings: nativeCode),
        .executableTarget(
            name: "bgem3",
            dependencies: [
                "Tokenizer",
                "Engine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            resources: [.embedInCode("Resources/multilingual-lines.txt")],
            swiftSettings: nativeCode),
        .testTarget(
            name: "TokenizerTests",
            dependencies: ["Tokenizer"],
            swiftSettings: nativeCode),
        .testTarget(
            name: "EngineTests",
            dependencies: ["Engine"],
            swiftSettings: nativeCode),
        .testTarget(
            name: "CommandLineTests",
            dependencies: ["bgem3"]),
    ],
    swiftLanguageModes: [.v6]
)
