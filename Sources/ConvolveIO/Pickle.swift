import Foundation

/// A value rebuilt by `Unpickler`. Lists and dicts are references (a pickle fills them after they
/// are memoized); everything else is a value.
indirect enum PickleValue {
    case none, bool(Bool), int(Int), float(Double), string(String), bytes([UInt8])
    /// An integer wider than 64 bits, little-endian two's complement (the legacy format's magic number).
    case wideInt([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// An allowed global (`module.name`), called by REDUCE or named in a storage's persistent id.
    case global(String)
    /// A storage named by a persistent id: its element type, key and element count.
    case storageReference(PickleStorage)
    /// A tensor view of a storage (`torch._utils._rebuild_tensor_v2`).
    case tensor(PickleTensor)

    /// What a message calls it.
    var kind: String {
        switch self {
        case .none: "None"
        case .bool: "a bool"
        case .int, .wideInt: "an int"
        case .float: "a float"
        case .string: "a string"
        case .bytes: "bytes"
        case .tuple: "a tuple"
        case .list: "a list"
        case .dict: "a dict"
        case let .global(name): name
        case .storageReference: "a storage"
        case .tensor: "a tensor"
        }
    }
}

final class PickleList { var items: [PickleValue] = [] }
final class PickleDict { var items: [(key: PickleValue, value: PickleValue)] = [] }

/// Every list and dict one unpickler made: a pickle can put a list inside itself (through the memo),
/// so they are emptied when the unpickler goes away, breaking any cycle instead of leaking it.
final class PickleContainers {
    var lists: [PickleList] = [], dicts: [PickleDict] = []
    func list() -> PickleList { let l = PickleList(); lists.append(l); return l }
    func dict() -> PickleDict { let d = PickleDict(); dicts.append(d); return d }
    deinit {
        for l in lists { l.items = [] }
        for d in dicts { d.items = [] }
    }
}

struct PickleStorage {
    let type: ElementType
    let key: String
    let count: Int
}

struct PickleTensor {
    /// The storage it views.
    let source: PickleStorage
    let offset: Int
    let shape: [Int]
    let strides: [Int]
}

/// A restricted unpickler for PyTorch weight files (what `torch.load(weights_only=True)` allows, and
/// less): it rebuilds plain values, tuples, lists, dicts, `collections.OrderedDict` and tensors
/// (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`) over storages named by persistent ids,
/// and refuses any other global by name. Nothing is ever called or imported: a global is only
/// compared with the allow-list. Every length is checked against the bytes left before it is read.
struct Unpickler {
    struct Failure: Error { let reason: String }

    /// The globals a weight file may name: what they rebuild.
    static let allowedGlobals = Set<String>([
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state", "torch.Size", "_codecs.encode",
    ]).union(ElementType.storageClasses.keys.map { "torch." + $0 })

    let bytes: UnsafeRawBufferPointer
    private(set) var position: Int
    /// The lists and dicts made, emptied when the last copy of this unpickler goes away.
    let containers = PickleContainers()
    /// Resolves a persistent id `('storage', type, key, location, count, …)` to a storage.
    let loadStorage: (_ type: ElementType, _ key: String, _ count: Int, _ extra: [PickleValue]) throws -> PickleStorage

    init(_ bytes: UnsafeRawBufferPointer, from start: Int = 0,
         loadStorage: @escaping (ElementType, String, Int, [PickleValue]) throws -> PickleStorage) {
        self.bytes = bytes
        position = start
        self.loadStorage = loadStorage
    }

    private func fail(_ reason: String) -> Failure { Failure(reason: reason) }

    private mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - position else {
            throw fail("the pickle ends inside an opcode at byte \(position) (needs \(n) more bytes, \(bytes.count - position) left)")
        }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }
    private mutating func byte() throws -> UInt8 { try take(1)[0] }
    private mutating func uint(_ n: Int) throws -> UInt64 {
        let b = try take(n)
        var v: UInt64 = 0
        for i in (0..<n).reversed() { v = v << 8 | UInt64(b[i]) }
        return v
    }
    private mutating func length(_ n: Int) throws -> Int {
        let v = try uint(n)
        guard v <= UInt64(bytes.count - position) else {
            throw fail("a length of \(v) bytes at byte \(position - n) exceeds the \(bytes.count - position) left")
        }
        return Int(v)
    }
    private mutating func line() throws -> String {
        guard let end = bytes[position...].firstIndex(of: UInt8(ascii: "\n")) else { throw fail("an unterminated text line at byte \(position)") }
        let s = String(decoding: try take(end - position), as: UTF8.self)
        position += 1
        return s
    }
    private mutating func utf8(_ n: Int) throws -> String {
        let raw = try take(n)
        guard let s = String(validating: raw, as: UTF8.self) else { throw fail("a string at byte \(position - n) is not UTF-8") }
        return s
    }

    /// Runs the pickle from the current position to its STOP and returns its value; `position` is
    /// then just after the STOP (where a legacy file's next pickle begins).
    mutating func load() throws -> PickleValue {
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]
        func pop() throws -> PickleValue {
            guard stack.count > (marks.last ?? 0), let v = stack.popLast() else { throw fail("the stack is empty at byte \(position - 1)") }
            return v
        }
        func popMark() throws -> [PickleValue] {
            guard let m = marks.popLast(), m <= stack.count else { throw fail("no mark to pop at byte \(position - 1)") }
            defer { stack.removeSubrange(m...) }
            return Array(stack[m...])
        }
        func top() throws -> PickleValue {
            guard let v = stack.last, stack.count > (marks.last ?? 0) else { throw fail("the stack is empty at byte \(position - 1)") }
            return v
        }
        func setItems(_ dict: PickleValue, _ pairs: [PickleValue]) throws {
            guard case let .dict(d) = dict else { throw fail("SETITEM(S) on \(dict.kind) at byte \(position - 1)") }
            guard pairs.count % 2 == 0 else { throw fail("SETITEMS with an odd number of values at byte \(position - 1)") }
            for i in stride(from: 0, to: pairs.count, by: 2) { d.items.append((pairs[i], pairs[i + 1])) }
        }
        func append(_ list: PickleValue, _ items: [PickleValue]) throws {
            guard case let .list(l) = list else { throw fail("APPEND(S) on \(list.kind) at byte \(position - 1)") }
            l.items += items
        }
        func memoGet(_ i: Int) throws -> PickleValue {
            guard let v = memo[i] else { throw fail("memo entry \(i) read before it was written at byte \(position - 1)") }
            return v
        }
        func global(_ module: String, _ name: String) throws -> PickleValue {
            let full = module + "." + name
            guard Self.allowedGlobals.contains(full) else {
                throw fail("it asks for the global \(full); a weights file may only rebuild tensors and containers")
            }
            return .global(full)
        }
        while true {
            let opAt = position
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                   // PROTO
            case 0x95: _ = try take(8)                                  // FRAME
            case UInt8(ascii: "."):                                     // STOP
                guard stack.count == 1, marks.isEmpty else { throw fail("STOP with \(stack.count) values on the stack at byte \(opAt)") }
                return stack[0]
            case UInt8(ascii: "("): marks.append(stack.count)           // MARK
            case UInt8(ascii: "N"): stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case UInt8(ascii: "J"): stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))
            case UInt8(ascii: "K"): stack.append(.int(Int(try uint(1))))
            case UInt8(ascii: "M"): stack.append(.int(Int(try uint(2))))
            case 0x8a:                                                  // LONG1
                let n = Int(try byte())
                let raw = Array(try take(n))
                if n <= 8 {
                    var v: UInt64 = 0
                    for (i, b) in raw.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
                    if n > 0 && n < 8 && raw[n - 1] & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }   // sign-extend
                    stack.append(.int(Int(Int64(bitPattern: v))))
                } else {
                    stack.append(.wideInt(raw))
                }
            case UInt8(ascii: "G"): stack.append(.float(Double(bitPattern: try uint(8).byteSwapped)))
            case UInt8(ascii: "X"): let n = try length(4); stack.append(.string(try utf8(n)))   // BINUNICODE
            case 0x8c: let n = try length(1); stack.append(.string(try utf8(n)))                 // SHORT_BINUNICODE
            case 0x8d: let n = try length(8); stack.append(.string(try utf8(n)))                 // BINUNICODE8
            case UInt8(ascii: "T"): let n = try length(4); stack.append(.string(String(decoding: try take(n), as: UTF8.self)))  // BINSTRING
            case UInt8(ascii: "U"): let n = try length(1); stack.append(.string(String(decoding: try take(n), as: UTF8.self)))  // SHORT_BINSTRING
            case UInt8(ascii: "B"): let n = try length(4); stack.append(.bytes(Array(try take(n))))   // BINBYTES
            case UInt8(ascii: "C"): let n = try length(1); stack.append(.bytes(Array(try take(n))))   // SHORT_BINBYTES
            case 0x8e: let n = try length(8); stack.append(.bytes(Array(try take(n))))                // BINBYTES8
            case UInt8(ascii: "}"): stack.append(.dict(containers.dict()))
            case UInt8(ascii: "]"): stack.append(.list(containers.list()))
            case UInt8(ascii: ")"): stack.append(.tuple([]))
            case UInt8(ascii: "t"): stack.append(.tuple(try popMark()))
            case 0x85: stack.append(.tuple([try pop()]))
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))
            case UInt8(ascii: "l"): let items = try popMark(); let l = containers.list(); l.items = items; stack.append(.list(l))
            case UInt8(ascii: "d"): let items = try popMark(); let d = PickleValue.dict(containers.dict()); try setItems(d, items); stack.append(d)
            case UInt8(ascii: "a"): let v = try pop(); try append(try top(), [v])
            case UInt8(ascii: "e"): let items = try popMark(); try append(try top(), items)
            case UInt8(ascii: "s"): let v = try pop(), k = try pop(); try setItems(try top(), [k, v])
            case UInt8(ascii: "u"): let items = try popMark(); try setItems(try top(), items)
            case UInt8(ascii: "q"): memo[Int(try uint(1))] = try top()                   // BINPUT
            case UInt8(ascii: "r"): memo[Int(try uint(4))] = try top()                   // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()                                       // MEMOIZE
            case UInt8(ascii: "h"): stack.append(try memoGet(Int(try uint(1))))          // BINGET
            case UInt8(ascii: "j"): stack.append(try memoGet(Int(try uint(4))))          // LONG_BINGET
            case UInt8(ascii: "c"): let module = try line(), name = try line(); stack.append(try global(module, name))   // GLOBAL
            case 0x93:                                                                    // STACK_GLOBAL
                guard case let .string(name) = try pop(), case let .string(module) = try pop() else {
                    throw fail("STACK_GLOBAL without two strings at byte \(opAt)")
                }
                stack.append(try global(module, name))
            case UInt8(ascii: "R"):                                                       // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try reduce(callable, args, at: opAt))
            case UInt8(ascii: "b"):                                                       // BUILD
                let state = try pop()
                // An OrderedDict's attributes (a state_dict's `_metadata`): not needed for tensors.
                guard case .dict = try top(), case .dict = state else {
                    throw fail("BUILD of \(try top().kind) with \(state.kind) at byte \(opAt)")
                }
            case UInt8(ascii: "Q"):                                                       // BINPERSID
                stack.append(try persistent(try pop(), at: opAt))
            default:
                throw fail("unsupported pickle opcode 0x\(String(op, radix: 16)) at byte \(opAt)")
            }
        }
    }

    private func reduce(_ callable: PickleValue, _ args: PickleValue, at offset: Int) throws -> PickleValue {
        guard case let .global(name) = callable else { throw fail("REDUCE of \(callable.kind) at byte \(offset)") }
        guard case let .tuple(a) = args else { throw fail("REDUCE of \(name) with \(args.kind) arguments at byte \(offset)") }
        switch name {
        case "collections.OrderedDict":
            guard a.isEmpty else { throw fail("OrderedDict with arguments at byte \(offset)") }
            return .dict(containers.dict())
        case "torch._utils._rebuild_tensor_v2":
            guard a.count >= 4, case let .storageReference(source) = a[0], case let .int(elementOffset) = a[1],
                  let shape = Self.ints(a[2]), let strides = Self.ints(a[3]) else {
                throw fail("_rebuild_tensor_v2 without (storage, offset, size, stride) at byte \(offset)")
            }
            return .tensor(try view(source, elementOffset, shape, strides, at: offset))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let first = a.first, case .tensor = first else { throw fail("\(name) without a tensor at byte \(offset)") }
            return first
        case "torch.Size":
            guard a.count == 1, let dims = Self.ints(a[0]) else { throw fail("torch.Size without a tuple of ints at byte \(offset)") }
            return .tuple(dims.map { .int($0) })
        case "_codecs.encode":
            guard a.count == 2, case let .string(text) = a[0] else { throw fail("_codecs.encode without a string at byte \(offset)") }
            return .bytes(text.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })   // latin-1, as protocol 2 writes bytes
        default:
            throw fail("\(name) cannot be called at byte \(offset)")
        }
    }

    /// A tensor's view, checked: dimensions and strides non-negative, every element inside its storage.
    private func view(_ source: PickleStorage, _ offset: Int, _ shape: [Int], _ strides: [Int], at: Int) throws -> PickleTensor {
        guard shape.count == strides.count, shape.count <= 16 else {
            throw fail("a tensor of \(shape.count) dimensions with \(strides.count) strides at byte \(at)")
        }
        guard offset >= 0, shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw fail("a tensor with a negative offset, size or stride (\(offset), \(shape), \(strides)) at byte \(at)")
        }
        if shape.contains(0) { return PickleTensor(source: source, offset: 0, shape: shape, strides: strides) }
        var last = offset   // the last element's position in the storage
        for (n, s) in zip(shape, strides) {
            let (step, o1) = (n - 1).multipliedReportingOverflow(by: s)
            let (sum, o2) = last.addingReportingOverflow(step)
            guard !o1, !o2 else { throw fail("a tensor of size \(shape) and stride \(strides) overflows at byte \(at)") }
            last = sum
        }
        guard last < source.count else {
            throw fail("a tensor of size \(shape), stride \(strides) at offset \(offset) reaches element \(last) of a \(source.count)-element storage (key \(source.key))")
        }
        return PickleTensor(source: source, offset: offset, shape: shape, strides: strides)
    }

    private func persistent(_ pid: PickleValue, at offset: Int) throws -> PickleValue {
        guard case let .tuple(p) = pid, p.count >= 5, case .string("storage") = p[0], case let .global(typeName) = p[1],
              case let .string(key) = p[2], case .string = p[3], case let .int(count) = p[4], count >= 0 else {
            throw fail("a persistent id that is not ('storage', type, key, location, count) at byte \(offset)")
        }
        guard let type = ElementType.storageClasses[String(typeName.dropFirst("torch.".count))], typeName.hasPrefix("torch.") else {
            throw fail("storage type \(typeName) is not a tensor storage at byte \(offset)")
        }
        return .storageReference(try loadStorage(type, key, count, Array(p.dropFirst(5))))
    }

    static func ints(_ v: PickleValue) -> [Int]? {
        guard case let .tuple(items) = v else { return nil }
        var out: [Int] = []
        for item in items {
            guard case let .int(i) = item else { return nil }
            out.append(i)
        }
        return out
    }
}
