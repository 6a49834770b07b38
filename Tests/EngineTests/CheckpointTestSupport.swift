import Engine
import Foundation
import TestSupport
import Testing

// MARK: - Error expectations

func torchLoadFailure(_ path: String) -> WeightLoadError? {
    do throws(WeightLoadError) {
        _ = try PyTorchCheckpoint(path: path)
        return nil
    } catch {
        return error
    }
}

/// Expects `.malformed` naming `path`; returns the reason for further checks.
@discardableResult
func expectMalformed(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    let error = torchLoadFailure(path)
    guard case .malformed(let file, let reason) = error else {
        Issue.record("expected .malformed, got \(String(describing: error))", sourceLocation: sourceLocation)
        return ""
    }
    #expect(file == path, sourceLocation: sourceLocation)
    return reason
}

/// Expects `.forbiddenPickle` naming `path`; returns the reason for further checks.
func expectForbidden(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    let error = torchLoadFailure(path)
    guard case .forbiddenPickle(let file, let reason) = error else {
        Issue.record("expected .forbiddenPickle, got \(String(describing: error))", sourceLocation: sourceLocation)
        return ""
    }
    #expect(file == path, sourceLocation: sourceLocation)
    return reason
}

// MARK: - Fixtures and scratch files

/// The tiny model's checkpoints, as `torch.save` wrote them.
enum TorchTestFiles {
    static func path(_ name: String) -> String { RepositoryFixtures.tinyModel.appendingPathComponent(name).path }

    static func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: RepositoryFixtures.tinyModel.appendingPathComponent(name))) }
}

typealias TensorRecord = PyTorchWriter.TensorRecord

extension ScratchDirectory {
    /// A checkpoint laid out as `torch.save` lays it out, around a given pickle.
    func checkpoint(pickle: [UInt8], storages: [String: [UInt8]] = [:], byteOrder: String = "little",
                    zip64: Bool = false, comment: String = "", file: String = "checkpoint.pt") throws -> String {
        try write(PyTorchWriter.archive(pickle: pickle, storages: storages, byteOrder: byteOrder, zip64: zip64, comment: Array(comment.utf8)),
                  as: file)
    }

    /// A checkpoint of these tensor records, pickled as `torch.save` pickles a state dict.
    func checkpoint(tensors: [TensorRecord], storages: [String: [UInt8]], protocol version: UInt8 = 2, byteOrder: String = "little",
                    zip64: Bool = false, comment: String = "", file: String = "checkpoint.pt") throws -> String {
        try checkpoint(pickle: PyTorchWriter.statePickle(tensors, protocol: version), storages: storages,
                       byteOrder: byteOrder, zip64: zip64, comment: comment, file: file)
    }
}

/// An opcode or an operand byte of a hand-spelled pickle.
enum PickleByte: ExpressibleByIntegerLiteral {
    case opcode(PickleOpcode)
    case operand(UInt8)

    init(integerLiteral value: UInt8) { self = .operand(value) }

    static func op(_ opcode: PickleOpcode) -> PickleByte { .opcode(opcode) }
}

/// `pickle(.op(.proto), 2, .op(.emptyDict), .op(.stop))`: named opcodes with their operand bytes between them.
func pickle(_ items: PickleByte...) -> [UInt8] {
    items.map {
        switch $0 {
        case .opcode(let opcode): opcode.rawValue
        case .operand(let byte): byte
        }
    }
}

// MARK: - Independent safetensors reader

/// Just enough of safetensors to check the torch reader against: an 8-byte little-endian header
/// length, a JSON header of dtype, shape and data offsets, then the data.
struct SafetensorsReference {
    struct Tensor {
        let shape: [Int]
        let values: [Float]
    }

    let tensors: [String: Tensor]

    init(path: String) throws {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        let headerLength = Int(TorchBytes.get64(bytes, at: 0))
        let header = try #require(try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + headerLength)])) as? [String: Any])
        let dataStart = 8 + headerLength
        var tensors: [String: Tensor] = [:]
        for (name, value) in header where name != "__metadata__" {
            let entry = try #require(value as? [String: Any])
            #expect(entry["dtype"] as? String == "F32", "\(name)")
            let shape = try #require(entry["shape"] as? [Int])
            let offsets = try #require(entry["data_offsets"] as? [Int])
            let values = stride(from: dataStart + offsets[0], to: dataStart + offsets[1], by: 4).map {
                Float(bitPattern: TorchBytes.get32(bytes, at: $0))
            }
            tensors[name] = Tensor(shape: shape, values: values)
        }
        self.tensors = tensors
    }
}

// MARK: - Byte helpers

/// Reading and patching little-endian fields of checkpoint bytes.
enum TorchBytes {
    static func get64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { value, index in
            offset + index < bytes.count ? value | UInt64(bytes[offset + index]) << (8 * UInt64(index)) : value
        }
    }

    static func get32(_ bytes: [UInt8], at offset: Int) -> UInt32 { UInt32(get64(bytes, at: offset) & 0xFFFF_FFFF) }

    static func put32(_ bytes: inout [UInt8], at offset: Int, _ value: UInt32) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) }
    }

    static func put64(_ bytes: inout [UInt8], at offset: Int, _ value: UInt64) {
        for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
    }

    static func floats(_ values: [Float]) -> [UInt8] { values.flatMap { $0.bitPattern.littleEndianBytes } }
}

struct TorchFixtureLayoutError: Error {}

/// Where the records of a real torch.save zip are, for damaging them on purpose.
struct TorchZipLayout {
    let bytes: [UInt8]
    let endRecord: Int
    let zip64Record: Int

    init(_ bytes: [UInt8]) throws {
        self.bytes = bytes
        // torch.save writes no archive comment, so the classic record is the last 22 bytes,
        // right after the 20-byte ZIP64 locator.
        endRecord = bytes.count - 22
        try #require(TorchBytes.get32(bytes, at: endRecord) == 0x0605_4B50)
        try #require(TorchBytes.get32(bytes, at: endRecord - 20) == 0x0706_4B50)
        zip64Record = Int(TorchBytes.get64(bytes, at: endRecord - 20 + 8))
        try #require(TorchBytes.get32(bytes, at: zip64Record) == 0x0606_4B50)
    }

    /// The central directory header of the entry with this name.
    func centralHeader(of name: String) throws -> Int {
        var at = Int(TorchBytes.get32(bytes, at: endRecord + 16))
        while TorchBytes.get32(bytes, at: at) == 0x0201_4B50 {
            let nameLength = Int(TorchBytes.get64(bytes, at: at + 28) & 0xFFFF)
            let extraLength = Int(TorchBytes.get64(bytes, at: at + 30) & 0xFFFF)
            let commentLength = Int(TorchBytes.get64(bytes, at: at + 32) & 0xFFFF)
            if String(decoding: bytes[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self) == name { return at }
            at += 46 + nameLength + extraLength + commentLength
        }
        Issue.record("no central header for \(name)")
        throw TorchFixtureLayoutError()
    }
}


extension FixedWidthInteger {
    var littleEndianBytes: [UInt8] { (0..<(Self.bitWidth / 8)).map { UInt8(truncatingIfNeeded: self >> (8 * $0)) } }
}
