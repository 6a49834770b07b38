/// The pickle opcodes a PyTorch checkpoint may use: what `torch.save` writes at protocols 2 to 5,
/// and the older forms other writers of state dicts emit. ``PickleMachine`` refuses every other
/// byte (among them `INST`, `OBJ`, `NEWOBJ` and `POP`, which no state dict needs); ``PickleWriter``
/// emits only these.
public enum PickleOpcode: UInt8, Sendable, CaseIterable {
    // Framing
    case proto = 0x80
    case frame = 0x95
    case stop = 0x2E
    case mark = 0x28
    // Containers
    case emptyDict = 0x7D
    case emptyList = 0x5D
    case emptyTuple = 0x29
    case tuple = 0x74
    case tuple1 = 0x85
    case tuple2 = 0x86
    case tuple3 = 0x87
    case dict = 0x64
    case list = 0x6C
    case setItem = 0x73
    case setItems = 0x75
    case append = 0x61
    case appends = 0x65
    // Scalars
    case binUnicode = 0x58
    case shortBinUnicode = 0x8C
    case binUnicode8 = 0x8D
    /// A Python 2 `str`, decoded as UTF-8 as `torch.load` does.
    case binString = 0x54
    case shortBinString = 0x55
    case binInt = 0x4A
    case binInt1 = 0x4B
    case binInt2 = 0x4D
    case long1 = 0x8A
    case none = 0x4E
    case newTrue = 0x88
    case newFalse = 0x89
    /// Big-endian, unlike everything else in a pickle.
    case binFloat = 0x47
    // Memo
    case binPut = 0x71
    case longBinPut = 0x72
    case memoize = 0x94
    case binGet = 0x68
    case longBinGet = 0x6A
    // Calls: resolved against ``PickleGlobal``'s short list before anything is called.
    case global = 0x63
    case stackGlobal = 0x93
    case binPersistentID = 0x51
    case reduce = 0x52
    case build = 0x62
}
