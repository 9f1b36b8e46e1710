import Foundation
import Testing
@testable import Convolve
import ConvolveNN
import ConvolveTraining

/// Semantics against values produced by real PyTorch (Tools/make_fixtures.py).
@Suite struct ReferenceTests {
    /// "conv2d": direct, im2col and pointwise paths; "conv2d_wide": layers wide enough for the GEMM path
    /// that reads shifted image rows (with padding and groups), including the fused ReLU; "conv2d_paths":
    /// one layer per `ConvAlgorithm` path, among them non-3×3 layers with ≥ 16 channels.
    @Test(arguments: ["conv2d", "conv2d_wide", "conv2d_paths"])
    func conv2dMatchesPyTorch(_ file: String) throws {
        let cases = try fixture(file) as! [[String: Any]]
        for c in cases {
            let x = tensor(c["x"], requiresGrad: true), w = tensor(c["w"], requiresGrad: true)
            let b = c["b"].map { tensor($0, requiresGrad: true) }
            let y = conv2d(x, weight: w, bias: b, stride: pair(c["stride"]), padding: pair(c["padding"]),
                           dilation: pair(c["dilation"]), groups: (c["groups"] as! NSNumber).intValue)
            // Winograd layers (3×3, ≥ 16 channels) round relative to the size of the summed terms,
            // not of each result: an absolute allowance of 1e-5 × the tensor's largest value (F(4×4, 3×3)
            // reaches ~5e-6 of it; `WinogradPrecisionTests` bounds it on its own).
            func atol(_ t: Tensor) -> Float { 1e-5 + 1e-5 * (t.storage.map(abs).max() ?? 0) }
            let ry = tensor(c["y"]), rdx = tensor(c["dx"])
            expectClose(y, ry, atol: atol(ry), "conv y")
            y.backward(tensor(c["gy"]))
            expectClose(x.grad!, rdx, atol: atol(rdx), "conv dx")
            // dw sums up to 2,352 float32 products with heavy cancellation: allow summation-order noise.
            expectClose(w.grad!, tensor(c["dw"]), rtol: 1e-5, atol: 5e-5, "conv dw")
            if let b { expectClose(b.grad!, tensor(c["db"]), "conv db") }
            // relu(conv) fused into the GEMM's store: PyTorch's y with negatives clipped.
            let fused = withNoGrad {
                conv2d(x, weight: w, bias: b, stride: pair(c["stride"]), padding: pair(c["padding"]),
                       dilation: pair(c["dilation"]), groups: (c["groups"] as! NSNumber).intValue, fusedReLU: true)
            }
            expectClose(fused, ry.relu(), atol: atol(ry), "fused conv+relu y")
            if pair(c["stride"]) == (1, 1) && pair(c["dilation"]) == (1, 1) && ry.shape[2] >= 2 && ry.shape[3] >= 2 {
                let pooled = withNoGrad {
                    conv2dReLUMaxPool2x2(x, weight: w, bias: b, padding: pair(c["padding"]),
                                         groups: (c["groups"] as! NSNumber).intValue)
                }
                expectClose(pooled, maxPool2d(ry.relu(), kernelSize: (2, 2)), atol: atol(ry), "fused conv+relu+pool y")
            }
        }
    }

    @Test func poolingMatchesPyTorch() throws {
        let cases = try fixture("pool2d") as! [[String: Any]]
        for c in cases {
            let x = tensor(c["x"], requiresGrad: true)
            let ceil = (c["ceil"] as! NSNumber).boolValue
            let y: Tensor
            if (c["kind"] as! String) == "max" {
                y = maxPool2d(x, kernelSize: pair(c["k"]), stride: pair(c["stride"]), padding: pair(c["padding"]),
                              dilation: pair(c["dilation"]), ceilMode: ceil)
            } else {
                y = avgPool2d(x, kernelSize: pair(c["k"]), stride: pair(c["stride"]), padding: pair(c["padding"]),
                              ceilMode: ceil, countIncludePad: (c["include_pad"] as! NSNumber).boolValue)
            }
            expectClose(y, tensor(c["y"]), "\(c["kind"]!) pool y")
            y.backward(tensor(c["gy"]))
            expectClose(x.grad!, tensor(c["dx"]), "\(c["kind"]!) pool dx")
        }
    }

    @Test func globalAveragePoolingAndResidualBlocksMatchPyTorch() throws {
        let f = try fixture("resnet") as! [String: Any]
        let gap = f["gap"] as! [String: Any]
        let x = tensor(gap["x"], requiresGrad: true)
        let y = globalAvgPool2d(x)
        expectClose(y, tensor(gap["y"]), "adaptive_avg_pool2d y")
        y.backward(tensor(gap["gy"]))
        expectClose(x.grad!, tensor(gap["dx"]), "adaptive_avg_pool2d dx")
        for case let c as [String: Any] in f["blocks"] as! [Any] {
            let block = BasicBlock(c["cin"] as! Int, c["cout"] as! Int, stride: c["stride"] as! Int)
            let state0 = (c["state0"] as! [String: Any]).mapValues { tensor($0) }
            try block.loadStateDict(state0)
            block.train((c["training"] as! NSNumber).boolValue)
            let name = "BasicBlock(\(c["cin"]!), \(c["cout"]!), stride \(c["stride"]!)) \(block.training ? "train" : "eval")"
            let x = tensor(c["x"], requiresGrad: true)
            let y = block(x)
            expectClose(y, tensor(c["y"]), rtol: 1e-4, atol: 1e-4, "\(name) y")
            y.backward(tensor(c["gy"]))
            expectClose(x.grad!, tensor(c["dx"]), rtol: 1e-4, atol: 1e-4, "\(name) dx")
            let grads = (c["grads"] as! [String: Any]).mapValues { tensor($0) }
            for (key, p) in block.namedParameters() {
                expectClose(p.grad!, try #require(grads[key]), rtol: 1e-4, atol: 1e-4, "\(name) d\(key)")
            }
            let state1 = (c["state1"] as! [String: Any]).mapValues { tensor($0) }
            for (key, t) in block.stateDict() { expectClose(t, try #require(state1[key]), rtol: 1e-5, atol: 1e-5, "\(name) \(key) after") }
        }

        // The whole CIFAR ResNet (narrow), training mode: logits, input gradient, every parameter's gradient.
        let r = f["resnet"] as! [String: Any]
        let net = ResNet(channels: 3, classes: r["classes"] as! Int, width: r["width"] as! Int)
        try net.loadStateDict((r["state0"] as! [String: Any]).mapValues { tensor($0) })
        net.train()
        let input = tensor(r["x"], requiresGrad: true)
        let logits = net(input)
        expectClose(logits, tensor(r["y"]), rtol: 1e-4, atol: 1e-4, "ResNet logits")
        logits.backward(tensor(r["gy"]))
        expectClose(input.grad!, tensor(r["dx"]), rtol: 1e-3, atol: 1e-4, "ResNet dx")
        let grads = (r["grads"] as! [String: Any]).mapValues { tensor($0) }
        #expect(grads.count == net.namedParameters().count)
        for (key, p) in net.namedParameters() {
            expectClose(p.grad!, try #require(grads[key]), rtol: 1e-3, atol: 1e-4, "ResNet d\(key)")
        }
    }

    @Test func batchNormMatchesPyTorch() throws {
        let cases = try fixture("batchnorm") as! [[String: Any]]
        for c in cases {
            let training = (c["training"] as! NSNumber).boolValue
            let x = tensor(c["x"], requiresGrad: true)
            let bn = BatchNorm2d(x.shape[1])
            bn.weight!.storage = tensor(c["weight"]).storage
            bn.bias!.storage = tensor(c["bias"]).storage
            bn.runningMean!.storage = tensor(c["running_mean0"]).storage
            bn.runningVar!.storage = tensor(c["running_var0"]).storage
            bn.train(training)
            let y = bn(x)
            expectClose(y, tensor(c["y"]), rtol: 1e-5, atol: 2e-5, "bn y (training \(training))")
            y.backward(tensor(c["gy"]))
            expectClose(x.grad!, tensor(c["dx"]), rtol: 1e-4, atol: 2e-5, "bn dx")
            expectClose(bn.weight!.grad!, tensor(c["dweight"]), rtol: 1e-5, atol: 2e-5, "bn dweight")
            expectClose(bn.bias!.grad!, tensor(c["dbias"]), rtol: 1e-5, atol: 2e-5, "bn dbias")
            expectClose(bn.runningMean!, tensor(c["running_mean"]), "bn running mean")
            expectClose(bn.runningVar!, tensor(c["running_var"]), "bn running var")
            #expect(bn.numBatchesTracked!.item == (training ? 1 : 0))
        }
    }

    @Test func lossesAndSoftmaxMatchPyTorch() throws {
        let f = try fixture("losses") as! [String: Any]
        let targets = ints(f["targets"])
        let logits = tensor(f["logits"], requiresGrad: true)
        let loss = crossEntropy(logits, targets)
        #expect(abs(loss.item - (f["ce"] as! NSNumber).floatValue) < 1e-5)
        loss.backward()
        expectClose(logits.grad!, tensor(f["dlogits"]), "ce grad")

        let l2 = tensor(f["logits"], requiresGrad: true)
        let smooth = crossEntropy(l2, targets, labelSmoothing: 0.1)
        #expect(abs(smooth.item - (f["ce_smooth"] as! NSNumber).floatValue) < 1e-5)
        smooth.backward()
        expectClose(l2.grad!, tensor(f["dlogits_smooth"]), "smoothed ce grad")

        let sIn = tensor(f["softmax_in"], requiresGrad: true)
        let s = sIn.softmax(dim: 1)
        expectClose(s, tensor(f["softmax_dim1"]), "softmax")
        s.backward(tensor(f["gsoftmax"]))
        expectClose(sIn.grad!, tensor(f["dsoftmax"]), "softmax grad")

        let lIn = tensor(f["softmax_in"], requiresGrad: true)
        let ls = lIn.logSoftmax(dim: -1)
        expectClose(ls, tensor(f["log_softmax"]), "log_softmax")
        ls.backward(tensor(f["gsoftmax"]))
        expectClose(lIn.grad!, tensor(f["dlog_softmax"]), "log_softmax grad")
    }

    @Test func optimizersMatchPyTorch() throws {
        let cases = try fixture("optimizers") as! [[String: Any]]
        let makers: [String: ([Tensor]) -> Optimizer] = [
            "adam": { Adam($0, lr: 0.01) },
            "adam_wd": { Adam($0, lr: 0.01, eps: 1e-7, weightDecay: 0.1) },
            "adamw": { AdamW($0, lr: 0.01, weightDecay: 0.05) },
            "sgd_momentum": { SGD($0, lr: 0.1, momentum: 0.9) },
            "sgd_nesterov_wd": { SGD($0, lr: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true) },
            "sgd_dampening": { SGD($0, lr: 0.05, momentum: 0.5, dampening: 0.3) },
            "rmsprop": { RMSprop($0, lr: 0.01) },
            "rmsprop_centered_momentum": { RMSprop($0, lr: 0.01, momentum: 0.9, centered: true) },
            "adadelta": { Adadelta($0, lr: 1.0) },
        ]
        #expect(Set(makers.keys) == Set(cases.map { $0["name"] as! String }))
        for c in cases {
            let name = c["name"] as! String
            let p = tensor(c["p0"], requiresGrad: true)
            let opt = makers[name]!([p])
            let grads = (c["grads"] as! [Any]).map { tensor($0) }
            let after = (c["after"] as! [Any]).map { tensor($0) }
            for (g, expected) in zip(grads, after) {
                opt.zeroGrad()
                p.grad = g
                opt.step()
                expectClose(p, expected, rtol: 1e-5, atol: 1e-6, name)
            }
        }
    }

    @Test func seedNetForwardBackwardMatchesPyTorch() throws {
        let f = try fixture("seed_net") as! [String: Any]
        let net = SeedNet()
        #expect(net.stateDict().map(\.0) == (f["state_keys"] as! [String]))
        let state0 = (f["state0"] as! [String: Any]).mapValues { tensor($0) }
        try net.loadStateDict(state0)
        let x = tensor(f["x"])
        let labels = ints(f["labels"])
        let logits = net(x)
        expectClose(logits, tensor(f["logits"]), rtol: 1e-5, atol: 1e-5, "seed logits")
        let loss = crossEntropy(logits, labels)
        #expect(abs(loss.item - (f["loss"] as! NSNumber).floatValue) < 1e-5)
        loss.backward()
        let grads = (f["grads"] as! [String: Any]).mapValues { tensor($0) }
        for (key, p) in net.namedParameters() {
            expectClose(p.grad!, grads[key]!, rtol: 1e-4, atol: 1e-5, "grad \(key)")
        }
        let after = (f["state_after"] as! [String: Any]).mapValues { tensor($0) }
        for (key, t) in net.namedBuffers() { expectClose(t, after[key]!, rtol: 1e-5, atol: 1e-6, key) }
        net.eval()
        let evalLogits = withNoGrad { net(x) }
        expectClose(evalLogits, tensor(f["eval_logits"]), rtol: 1e-5, atol: 1e-5, "eval logits")
        #expect(net.parameterCount == (f["param_count"] as! NSNumber).intValue)
        #expect(net.description == (f["repr"] as! String))
    }
}

@Suite struct SchedulerTests {
    @Test func learningRateSchedulesMatchPyTorch() throws {
        let f = try fixture("schedulers") as! [String: [NSNumber]]
        func run(_ make: (Optimizer) -> LRScheduler, _ expected: [NSNumber], _ name: String) {
            let opt = SGD([Tensor.zeros([1], requiresGrad: true)], lr: 0.1)
            let sched = make(opt)
            for (i, e) in expected.enumerated() {
                sched.step()
                #expect(abs(opt.lr - e.doubleValue) < 1e-9, "\(name) step \(i + 1): \(opt.lr) vs \(e)")
            }
        }
        run({ StepLR($0, stepSize: 2, gamma: 0.5) }, f["step"]!, "StepLR")
        run({ CosineAnnealingLR($0, tMax: 5, etaMin: 0.001) }, f["cosine"]!, "CosineAnnealingLR")
        run({ OneCycleLR($0, maxLR: 0.1, totalSteps: 10) }, f["onecycle"]!, "OneCycleLR")
    }
}
