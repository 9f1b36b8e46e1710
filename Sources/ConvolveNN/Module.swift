import Foundation
@_exported import Convolve

/// Base class of every neural-network building block, like `torch.nn.Module`.
///
/// Parameters, buffers and child modules are discovered automatically from stored properties
/// (via reflection, in declaration order): a `Tensor` property is a parameter, a `Module` property
/// (or an array of modules) is a child. Keys are the property names in snake_case, so
/// `cnnLayers` becomes `cnn_layers` and `stateDict()` matches PyTorch's keys for the same model.
/// Layers with buffers (BatchNorm's running statistics) list them in `bufferNames`.
open class Module: CustomStringConvertible {
    /// Training mode flag (`train()` / `eval()`); BatchNorm and Dropout read it.
    public private(set) var training = true

    public init() {}

    /// Property names (snake_case keys) of tensors that are buffers, not parameters.
    open var bufferNames: Set<String> { [] }

    /// Maps a Swift property name to its state-dict key. Override to declare a custom key.
    ///
    /// - Parameter name: a Swift property name.
    open func stateKey(forProperty name: String) -> String { snakeCase(name) }

    /// Direct tensor members as (key, tensor), parameters and buffers together, in declaration order.
    open var localTensors: [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        forEachProperty { name, value in
            if let t = value as? Tensor { out.append((stateKey(forProperty: name), t)) }
        }
        return out
    }

    /// Direct child modules as (key, module), in declaration order.
    open var children: [(String, Module)] {
        var out: [(String, Module)] = []
        forEachProperty { name, value in
            let key = stateKey(forProperty: name)
            if let m = value as? Module { out.append((key, m)) }
            else if let ms = value as? [Module] {
                for (i, m) in ms.enumerated() { out.append(("\(key).\(i)", m)) }
            }
        }
        return out
    }

    private func forEachProperty(_ body: (String, Any) -> Void) {
        var mirror: Mirror? = Mirror(reflecting: self)
        var levels: [Mirror] = []
        while let m = mirror, m.subjectType != Module.self { levels.append(m); mirror = m.superclassMirror }
        for m in levels.reversed() {
            for child in m.children {
                guard var name = child.label else { continue }
                if name.hasPrefix("$__lazy_storage_$_") { name.removeFirst("$__lazy_storage_$_".count) }
                if name.hasPrefix("_") { name.removeFirst() }
                body(name, child.value)
            }
        }
    }

    /// The type name shown by `description` (PyTorch's class name).
    open var typeName: String { String(describing: type(of: self)) }
    /// Extra text inside the parentheses of `description`, like PyTorch's `extra_repr`.
    open var extraDescription: String { "" }

    /// A PyTorch-style module tree.
    public var description: String {
        var lines = extraDescription.isEmpty ? [] : extraDescription.components(separatedBy: "\n")
        let kids = children
        if lines.count == 1 && kids.isEmpty { return "\(typeName)(\(lines[0]))" }
        for (key, child) in kids {
            let text = child.description.replacingOccurrences(of: "\n", with: "\n  ")
            lines.append("(\(key)): \(text)")
        }
        if lines.isEmpty { return "\(typeName)()" }
        return "\(typeName)(\n  " + lines.joined(separator: "\n  ") + "\n)"
    }

    /// Sets training mode on this module and all descendants; a frozen module and everything below it
    /// stay in inference mode (batch norm on its running statistics, no dropout), as Keras runs a
    /// layer whose `trainable` is false.
    ///
    /// - Parameter mode: training (true) or eval (false), for this module and its children.
    open func train(_ mode: Bool = true) {
        training = mode && !isFrozen
        for (_, c) in children { c.train(training) }
    }

    /// Whether ``freeze()`` froze this module (its descendants are frozen with it).
    public private(set) var isFrozen = false

    /// Freezes the module (fastai's `freeze`, Keras' `trainable = False`, PyTorch's
    /// `requires_grad_(False)`): every parameter below it stops requiring a gradient — so backward
    /// computes none for it, the optimizer keeps no state for it and never moves it — and the module
    /// runs in inference mode from the next ``train(_:)`` on, its batch norm's running statistics fixed.
    public func freeze() {
        for p in parameters() { p.requiresGrad = false }
        isFrozen = true
        train(false)
    }

    /// Undoes ``freeze()`` (on this module and every module below it): every parameter below it
    /// requires a gradient again; training mode returns with the next ``train(_:)``.
    public func unfreeze() {
        for p in parameters() { p.requiresGrad = true }
        for (_, m) in namedModules() { m.isFrozen = false }
    }
    /// Sets evaluation mode (`train(false)`).
    public func eval() { train(false) }

    /// Every (key, module) in the tree, this one first with key "".
    ///
    /// - Parameter prefix: prepended to every name (`prefix.child`).
    public func namedModules(prefix: String = "") -> [(String, Module)] {
        var out = [(prefix, self)]
        for (k, c) in children { out += c.namedModules(prefix: prefix.isEmpty ? k : "\(prefix).\(k)") }
        return out
    }

    /// Trainable parameters with their full keys (e.g. `cnn_layers.0.weight`).
    public func namedParameters() -> [(String, Tensor)] {
        namedTensors().filter { !$0.isBuffer }.map { ($0.key, $0.tensor) }
    }
    /// Buffers (e.g. `cnn_layers.1.running_mean`) with their full keys.
    public func namedBuffers() -> [(String, Tensor)] {
        namedTensors().filter { $0.isBuffer }.map { ($0.key, $0.tensor) }
    }
    /// Trainable parameters in PyTorch's order.
    public func parameters() -> [Tensor] { namedParameters().map(\.1) }

    private func namedTensors() -> [(key: String, tensor: Tensor, isBuffer: Bool)] {
        var out: [(String, Tensor, Bool)] = []
        var seen = Set<ObjectIdentifier>()
        for (prefix, m) in namedModules() {
            let buffers = m.bufferNames
            for (k, t) in m.localTensors where seen.insert(ObjectIdentifier(t)).inserted {
                out.append((prefix.isEmpty ? k : "\(prefix).\(k)", t, buffers.contains(k)))
            }
        }
        return out
    }

    /// Parameters and buffers in PyTorch's `state_dict()` order (per module: parameters, then buffers).
    public func stateDict() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for (prefix, m) in namedModules() {
            let buffers = m.bufferNames
            let local = m.localTensors
            for (k, t) in local where !buffers.contains(k) { out.append((prefix.isEmpty ? k : "\(prefix).\(k)", t)) }
            for (k, t) in local where buffers.contains(k) { out.append((prefix.isEmpty ? k : "\(prefix).\(k)", t)) }
        }
        return out
    }

    /// Copies values from `state` into this module's parameters and buffers. With `strict`, a missing
    /// or unexpected key is an error; a shape mismatch is always an error. Errors name the full key.
    ///
    /// - Parameters:
    ///   - state: tensors by key, as `stateDict()` names them.
    ///   - strict: refuse missing and unexpected keys (PyTorch's default).
    ///   - skipping: keys left alone on both sides (fine-tuning's new head: the file's top is not
    ///     loaded, the model's keeps its values).
    public func loadStateDict(_ state: [String: Tensor], strict: Bool = true, skipping: (String) -> Bool = { _ in false }) throws {
        let state = state.filter { !skipping($0.key) }
        let mine = stateDict().filter { !skipping($0.0) }
        let names = Set(mine.map(\.0))
        // Every problem at once, as `load_state_dict` lists them: missing and unexpected keys, then
        // each key whose shape differs.
        var problems: [StateDictError] = []
        if strict {
            let missing = mine.map(\.0).filter { state[$0] == nil }
            let unexpected = state.keys.filter { !names.contains($0) }.sorted()
            if !missing.isEmpty || !unexpected.isEmpty {
                problems.append(.keyMismatch(missing: missing, unexpected: unexpected))
            }
        }
        for (key, t) in mine {
            if let src = state[key], src.shape != t.shape {
                problems.append(.shapeMismatch(key: key, expected: t.shape, got: src.shape))
            }
        }
        if problems.count == 1 { throw problems[0] }
        if problems.count > 1 { throw StateDictError.several(problems) }
        for (key, t) in mine { if let src = state[key] { t.copy(from: src) } }
    }

    /// Number of elements over all trainable parameters.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }
}

/// Why `loadStateDict` refused a state dictionary.
public enum StateDictError: Error, CustomStringConvertible, Equatable {
    case keyMismatch(missing: [String], unexpected: [String])
    case shapeMismatch(key: String, expected: [Int], got: [Int])
    case badValue(key: String, reason: String)
    /// Several of the above, in `load_state_dict`'s order.
    indirect case several([StateDictError])

    public var description: String {
        switch self {
        case let .keyMismatch(missing, unexpected):
            var parts: [String] = []
            if !missing.isEmpty { parts.append("missing key(s): " + missing.map { "\"\($0)\"" }.joined(separator: ", ")) }
            if !unexpected.isEmpty { parts.append("unexpected key(s): " + unexpected.map { "\"\($0)\"" }.joined(separator: ", ")) }
            return "Error(s) in loading state dict: " + parts.joined(separator: "; ")
        case let .shapeMismatch(key, expected, got):
            return "size mismatch for \(key): copying a param with shape \(got) from checkpoint, the shape in current model is \(expected)"
        case let .badValue(key, reason):
            return "bad value for \(key): \(reason)"
        case let .several(problems):
            return problems.map(\.description).joined(separator: "; ")
        }
    }
}

/// `camelCase` → `camel_case` (already-snake names pass through).
///
/// - Parameter name: a camelCase identifier.
public func snakeCase(_ name: String) -> String {
    var out = ""
    for ch in name {
        if ch.isUppercase { if !out.isEmpty { out.append("_") }; out.append(Character(ch.lowercased())) }
        else { out.append(ch) }
    }
    return out
}

/// A module that maps one tensor to another: the single layer protocol shared by the
/// PyTorch-style and Keras-style APIs.
public protocol Layer: Module {
    /// The forward pass.
    /// - Parameter input: a batch (NCHW `[N, C, H, W]` for image layers, `[N, features]` for dense ones).
    /// - Returns: the layer's output for the batch.
    func callAsFunction(_ input: Tensor) -> Tensor
}

/// Builds a list of layers from a block (`Sequential { Conv2d(...); ReLU() }`).
@resultBuilder
public enum LayerBuilder {
    /// - Parameter layer: one layer of the block.
    public static func buildExpression(_ layer: any Layer) -> [any Layer] { [layer] }
    /// - Parameter layers: several layers (an array expression in the block).
    public static func buildExpression(_ layers: [any Layer]) -> [any Layer] { layers }
    /// - Parameter parts: the block's statements, in order.
    public static func buildBlock(_ parts: [any Layer]...) -> [any Layer] { parts.flatMap { $0 } }
    /// - Parameter part: an `if` without `else` (nil: not taken).
    public static func buildOptional(_ part: [any Layer]?) -> [any Layer] { part ?? [] }
    /// - Parameter first: the `if` branch taken.
    public static func buildEither(first: [any Layer]) -> [any Layer] { first }
    /// - Parameter second: the `else` branch taken.
    public static func buildEither(second: [any Layer]) -> [any Layer] { second }
    /// - Parameter parts: the iterations of a `for` loop.
    public static func buildArray(_ parts: [[any Layer]]) -> [any Layer] { parts.flatMap { $0 } }
}

/// Layers applied in order (`torch.nn.Sequential`); children are keyed "0", "1", ….
public final class Sequential: Module, Layer {
    /// The layers, in application order.
    public private(set) var layers: [any Layer]

    /// - Parameter build: the layers in order (`Sequential { Conv2d(…); ReLU() }`); children are named
    ///   `0`, `1`, … as in PyTorch.
    public init(@LayerBuilder _ build: () -> [any Layer]) { layers = build() }
    /// - Parameter layers: the layers in order.
    public init(_ layers: [any Layer]) { self.layers = layers }

    /// Adds a layer at the end.
    ///
    /// - Parameter layer: the layer added last.
    public func append(_ layer: any Layer) { layers.append(layer) }
    /// The layer at `index`.
    public subscript(index: Int) -> any Layer { layers[index] }
    /// Number of layers.
    public var count: Int { layers.count }

    public override var children: [(String, Module)] { layers.enumerated().map { ("\($0.offset)", $0.element) } }

    public func callAsFunction(_ input: Tensor) -> Tensor {
        var x = input
        var i = 0
        while i < layers.count {
            let layer = layers[i], index = i
            // (the name is built only while a trace records: not on every training step)
            func name() -> String { "\(index): \((layer as? Module)?.typeName ?? "\(type(of: layer))")" }
            // BatchNorm2d then ReLU: one fused op (the same values, one pass fewer each way)
            if let norm = layer as? BatchNorm2d, i + 1 < layers.count, layers[i + 1] is ReLU {
                x = OpTrace.inLayer(name()) { norm(x, fusedReLU: true) }
                i += 2
                continue
            }
            x = OpTrace.inLayer(name()) { layer(x) }
            i += 1
        }
        return x
    }
}

/// Python-style repr of a number (`1e-05`, `0.1`, `1.0`): Swift's shortest round-trip form agrees.
func pyRepr(_ x: Double) -> String { "\(x)" }
