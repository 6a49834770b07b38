import Engine
import Foundation
import Metrics
import Prometheus
import Scheduling

/// Prometheus metrics under `bgem3_` (SPEC §6), recorded through swift-metrics and served as text
/// at `/metrics`.
public enum ServerMetrics {
    /// The registry `/metrics` reads; installed as the swift-metrics backend by ``bootstrap()``.
    public static let registry = PrometheusCollectorRegistry()

    /// Makes swift-metrics record into ``registry``. Call once per process, before serving.
    public static func bootstrap() {
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
    }

    /// One answered request, labelled by the route that matched (`other` for none).
    static func request(route: String, status: Int, seconds: Double) {
        Counter(label: "bgem3_requests_total", dimensions: [("route", route), ("status", String(status))]).increment()
        Timer(label: "bgem3_request_duration_seconds", dimensions: [("route", route)]).recordNanoseconds(Int64(seconds * 1e9))
    }

    static func inference(sequences: Int, tokens: Int, truncated: Int, seconds: Double, queueSeconds: Double) {
        Timer(label: "bgem3_queue_duration_seconds").recordNanoseconds(Int64(queueSeconds * 1e9))
        Counter(label: "bgem3_tokens_total").increment(by: tokens)
        Counter(label: "bgem3_truncated_inputs_total").increment(by: truncated)
        Timer(label: "bgem3_inference_duration_seconds").recordNanoseconds(Int64(seconds * 1e9))
    }

    /// The memory model in use: limit, budget, cost coefficients, probe status (one series per
    /// status, 1 for the current one), and the probe's predicted and measured workspace per shape.
    static func memoryPlan(_ plan: MemoryPlan) {
        Gauge(label: "bgem3_memory_limit_bytes").record(plan.limit.bytes)
        Gauge(label: "bgem3_memory_budget_bytes").record(plan.budgetBytes)
        Gauge(label: "bgem3_cost_a_bytes").record(plan.cost.a)
        Gauge(label: "bgem3_cost_b_bytes").record(plan.cost.b)
        for status in [ProbeStatus.running, .complete, .cached, .overridden, .off, .failed] {
            Gauge(label: "bgem3_probe_status", dimensions: [("status", status.rawValue)]).record(status == plan.status ? 1 : 0)
        }
        for shape in plan.predictions {
            let labels = [("batch", String(shape.batch)), ("length", String(shape.length))]
            Gauge(label: "bgem3_probe_predicted_bytes", dimensions: labels).record(shape.predicted)
            Gauge(label: "bgem3_probe_measured_bytes", dimensions: labels).record(shape.measured)
        }
    }

    /// The text exposition, with the process's resident memory sampled now.
    static func exposition() -> String {
        if let rss = ProcessMemory.residentBytes { Gauge(label: "bgem3_memory_rss_bytes").record(rss) }
        return registry.emitToString()
    }
}
