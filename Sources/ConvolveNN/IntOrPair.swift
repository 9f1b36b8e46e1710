/// A size or step given as one number for both directions (`kernelSize: 3`) or as a pair
/// (`kernelSize: [3, 2]`: height, then width), as PyTorch's `int or tuple` arguments.
/// It remembers which form it was given in, so module trees print as PyTorch prints them.
public struct IntOrPair: ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral, Sendable, Equatable {
    /// Down (height) and across (width).
    public let first: Int, second: Int
    /// Whether one number was given.
    public let isSingle: Bool

    /// The same value in both directions.
    ///
    /// - Parameter value: the value down and across.
    public init(_ value: Int) { first = value; second = value; isSingle = true }
    /// - Parameters:
    ///   - first: the value down (height).
    ///   - second: the value across (width).
    public init(_ first: Int, _ second: Int) { self.first = first; self.second = second; isSingle = false }
    /// A `(height, width)` tuple.
    ///
    /// - Parameter pair: `(height, width)`.
    public init(_ pair: (Int, Int)) { self.init(pair.0, pair.1) }
    /// - Parameter value: the value down and across.
    public init(integerLiteral value: Int) { self.init(value) }
    /// - Parameter elements: `[height, width]`.
    public init(arrayLiteral elements: Int...) {
        precondition(elements.count == 2, "an IntOrPair literal has two elements, got \(elements)")
        self.init(elements[0], elements[1])
    }

    /// `(first, second)`.
    public var pair: (Int, Int) { (first, second) }
    /// PyTorch's repr: `3` or `(3, 2)`.
    public var pythonDescription: String { isSingle ? "\(first)" : "(\(first), \(second))" }
}
