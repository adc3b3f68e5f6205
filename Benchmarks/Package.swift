// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "switchboard-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "switchboard", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "SwitchboardBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "SwitchboardCore", package: "switchboard"),
                .product(name: "SwitchboardProtocol", package: "switchboard"),
                .product(name: "SwitchboardStore", package: "switchboard"),
                .product(name: "SwitchboardSQLite", package: "switchboard"),
                // For `Deflate` and `RequestHead`, reached through `@_spi(Benchmarks)`.
                .product(name: "SwitchboardServer", package: "switchboard"),
            ],
            path: "Benchmarks/SwitchboardBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ]
)
