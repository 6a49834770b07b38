/// What the post-processor adds around a single text: `<s> A </s>` for XLM-R.
///
/// Built from `TemplateProcessing` (its `single` template) or `RobertaProcessing`/`BertProcessing`
/// (`cls A sep`). Their offset trimming only touches tokens that start or end with white space,
/// which Metaspace tokens never do, so it is not needed here.
struct SpecialTokenTemplate: Sendable, Equatable {
    var prefix: [(id: Int32, token: String)]
    var suffix: [(id: Int32, token: String)]

    static let none = SpecialTokenTemplate(prefix: [], suffix: [])

    var addedCount: Int { prefix.count + suffix.count }

    static func == (a: SpecialTokenTemplate, b: SpecialTokenTemplate) -> Bool {
        a.prefix.map(\.id) == b.prefix.map(\.id) && a.suffix.map(\.id) == b.suffix.map(\.id)
    }
}
