// swift-tools-version:6.0
import PackageDescription

// Release kernels are built for the CPU that builds them: without a CPU target, SIMD fused
// multiply-add becomes a library call (~140x slower, see DEVELOPERS.md / ARCHITECTURE.md).
let native: [SwiftSetting] = [
    .unsafeFlags(["-Xcc", "-march=native", "-enable-testing"]),
]

let package = Package(
    name: "Convolve",
    products: [
        .library(name: "Convolve", targets: ["Convolve"]),
        .library(name: "ConvolveNN", targets: ["ConvolveNN"]),
        .library(name: "ConvolveIO", targets: ["ConvolveIO"]),
        .library(name: "ConvolveData", targets: ["ConvolveData"]),
        .library(name: "ConvolveTraining", targets: ["ConvolveTraining"]),
        .executable(name: "convolve", targets: ["convolve"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.0.0"),
        // `swift package generate-documentation` (the DocC catalogs in each library target)
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        .target(name: "CConvolveSupport"),
        .target(name: "Convolve",
                dependencies: ["CConvolveSupport", .product(name: "Numerics", package: "swift-numerics")],
                swiftSettings: native),
        .target(name: "ConvolveNN", dependencies: ["Convolve"], swiftSettings: native),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Files: atomic writes, checksums, safetensors, CSV (used by the data and training targets).
        .target(name: "ConvolveIO", dependencies: ["Convolve"], swiftSettings: native),
        .target(name: "ConvolveData", dependencies: ["Convolve", "ConvolveIO", "CZlib", "CConvolveSupport"], swiftSettings: native),
        .target(name: "ConvolveTraining", dependencies: ["Convolve", "ConvolveNN", "ConvolveIO", "ConvolveData", "CConvolveSupport"],
                swiftSettings: native),
        .executableTarget(name: "convolve",
                          dependencies: ["Convolve", "ConvolveNN", "ConvolveData", "ConvolveTraining",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: native),
        .executableTarget(name: "convolve-bench",
                          dependencies: ["Convolve", "ConvolveNN", "ConvolveData", "ConvolveTraining"],
                          swiftSettings: native),
        // Fuzz targets for the readers of untrusted bytes (RELIABILITY.md); a corpus runner when built normally.
        .executableTarget(name: "convolve-fuzz", dependencies: ["Convolve", "ConvolveData", "ConvolveTraining"],
                          swiftSettings: native),
        .executableTarget(name: "torch-tutorial", dependencies: ["ConvolveTraining"], path: "Examples/TorchTutorial",
                          swiftSettings: native),
        .executableTarget(name: "keras-tutorial", dependencies: ["ConvolveTraining"], path: "Examples/KerasTutorial",
                          swiftSettings: native),
        .testTarget(name: "ConvolveTests",
                    dependencies: ["Convolve", "ConvolveNN", "ConvolveIO", "ConvolveData", "ConvolveTraining"],
                    resources: [.copy("Fixtures")],
                    swiftSettings: native),
    ],
    swiftLanguageModes: [.v5]
)
