import Engine
import Foundation
import TestSupport
import Testing

/// Pickles that would run code or confuse the machine: refused before anything is called.
@Suite("PyTorchCheckpoint: hostile pickles")
struct HostilePickleTests {
    @Test("a pickle naming a foreign global is refused, naming it", arguments: [
        ("os", "system"), ("builtins", "eval"), ("posix", "system"), ("subprocess", "Popen"), ("torch", "load"),
    ])
    func foreignGlobal(module: String, name: String) throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var pickle = PickleWriter(protocol: 2)
        pickle.global(module, name)
        pickle.text("echo pwned > /tmp/pwned")
        pickle.op(.tuple1, .reduce, .stop)
        let reason = try expectForbidden(scratch.checkpoint(pickle: pickle.bytes))
        #expect(reason.contains("\(module).\(name)"), "\(reason)")
    }

    @Test("a foreign global reached through STACK_GLOBAL is refused")
    func foreignStackGlobal() throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var pickle = PickleWriter(protocol: 4)
        pickle.global("builtins", "exec")
        pickle.text("import os")
        pickle.op(.tuple1, .reduce, .stop)
        let reason = try expectForbidden(scratch.checkpoint(pickle: pickle.framed()))
        #expect(reason.contains("builtins.exec"), "\(reason)")
    }

    @Test("a foreign global in place of a storage type inside a valid state dict is refused", arguments: [UInt8(2), 4])
    func foreignGlobalInsideStateDict(protocol version: UInt8) throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var tensor = TensorRecord(name: "weight", storageKey: "0", storageElements: 4, shape: [4], strides: [1])
        tensor.storageType = "load"
        let path = try scratch.checkpoint(tensors: [tensor], storages: ["0": TorchBytes.floats([1, 2, 3, 4])], protocol: version)
        let reason = try expectForbidden(path)
        #expect(reason.contains("torch.load"), "\(reason)")
    }

    /// Bytes that are no opcode, and INST, NEWOBJ and POP, which no state dict needs.
    @Test("unknown opcodes are refused, naming the byte", arguments: [UInt8(0xFF), 0x69, 0x81, 0x30])
    func unknownOpcode(opcode: UInt8) throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        var pickle = PickleWriter(protocol: 2)
        pickle.op(.none)
        let reason = try expectForbidden(scratch.checkpoint(pickle: pickle.bytes + [opcode, PickleOpcode.stop.rawValue]))
        #expect(reason.contains("0x" + String(opcode, radix: 16)), "\(reason)")
    }

    /// Pickles spelled as named opcodes and their operand bytes.
    static let malformedPickles: [(String, [UInt8])] = [
        ("stack underflow", pickle(.op(.proto), 2, .op(.reduce), .op(.stop))),
        ("bad memo index", pickle(.op(.proto), 2, .op(.binGet), 9, .op(.stop))),
        ("truncated string", pickle(.op(.proto), 2, .op(.binUnicode), 0xE8, 0x03, 0x00, 0x00, 0x61, 0x62)),
        ("no STOP", pickle(.op(.proto), 2, .op(.emptyDict))),
        ("not a dict", pickle(.op(.proto), 2, .op(.none), .op(.stop))),
        ("SETITEMS without MARK", pickle(.op(.proto), 2, .op(.emptyDict), .op(.setItems), .op(.stop))),
        ("REDUCE on a string", pickle(.op(.proto), 2, .op(.binUnicode), 1, 0, 0, 0, 0x61, .op(.emptyTuple), .op(.reduce), .op(.stop))),
        ("invalid UTF-8", pickle(.op(.proto), 2, .op(.binUnicode), 1, 0, 0, 0, 0xFF, .op(.stop))),
        ("protocol 6", pickle(.op(.proto), 6, .op(.emptyDict), .op(.stop))),
        ("huge LONG1", pickle(.op(.proto), 2, .op(.long1), 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, .op(.stop))),
        ("frame longer than the pickle", pickle(.op(.proto), 4, .op(.frame), 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, .op(.emptyDict), .op(.stop))),
        ("MARK left open", pickle(.op(.proto), 2, .op(.emptyDict), .op(.mark), .op(.stop))),
    ]

    @Test("malformed pickles are refused as malformed", arguments: malformedPickles)
    func malformedPickle(label: String, pickle: [UInt8]) throws {
        let scratch = try ScratchDirectory("checkpoint")
        defer { scratch.remove() }
        let reason = try expectMalformed(scratch.checkpoint(pickle: pickle))
        #expect(reason.contains("archive/data.pkl"), "\(label): \(reason)")
    }
}
