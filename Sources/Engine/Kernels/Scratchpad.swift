import COneDNN

/// oneDNN scratchpads that the engine owns.
///
/// With the library-managed mode, oneDNN 2.6 keeps a primitive's temporary buffer in a
/// thread-local "global scratchpad" sized on the thread that *created* the primitive. A primitive
/// created on one thread (a probe, a warm-up, another OpenMP worker) and run on another then
/// reads that thread's buffer, which may be smaller or absent: under load the server crashed
/// with a null dereference inside oneDNN and with a corrupted heap. So every primitive here asks
/// for a user-managed scratchpad and gets one at each call.
enum Scratchpad {
    /// Sets the user-managed mode on `attributes` (before the primitive descriptor is made).
    static func request(on attributes: dnnl_primitive_attr_t) throws(OneDNNError) {
        try check(dnnl_primitive_attr_set_scratchpad_mode(attributes, dnnl_scratchpad_mode_user), "dnnl_primitive_attr_set_scratchpad_mode")
    }

    /// A memory object for `descriptor`'s scratchpad (its data handle set at each call), and its
    /// size; nil when the primitive needs none.
    static func memory(for descriptor: dnnl_primitive_desc_t, engine: dnnl_engine_t) throws(OneDNNError) -> (memory: dnnl_memory_t, bytes: Int)? {
        guard let queried = dnnl_primitive_desc_query_md(descriptor, dnnl_query_scratchpad_md, 0) else { return nil }
        var md = queried.pointee
        let bytes = dnnl_memory_desc_get_size(&md)
        guard bytes > 0 else { return nil }
        var memory: dnnl_memory_t?
        try check(dnnl_memory_create(&memory, &md, engine, nil), "dnnl_memory_create(scratchpad)")
        return (memory!, bytes)
    }
}
