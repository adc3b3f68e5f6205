import Foundation

/// 1234567 → "1,234,567".
func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (index, digit) in digits.enumerated() {
        if index > 0, (digits.count - index) % 3 == 0 { out.append(",") }
        out.append(digit)
    }
    return value < 0 ? "-" + out : out
}

func oneDecimal(_ value: Double) -> String {
    String(format: "%.1f", value)
}

/// Counts by reason, largest first: `HTTP 429 ×12, connect timed out ×3`.
func describe(_ counts: [String: Int]?) -> String {
    (counts ?? [:]).sorted { $0.value > $1.value }.map { "\($0.key) ×\(grouped($0.value))" }.joined(separator: ", ")
}

/// Microseconds (as histograms record) to milliseconds.
func milliseconds(_ micros: UInt64) -> Double {
    Double(micros) / 1000
}

/// Rounded to `places` decimals; 0 for a value that is not finite (JSON has no NaN).
func rounded(_ value: Double, places: Int = 3) -> Double {
    guard value.isFinite else { return 0 }
    let scale = pow(10, Double(places))
    return (value * scale).rounded() / scale
}

func nonEmpty(_ counts: [String: Int]) -> [String: Int]? {
    counts.isEmpty ? nil : counts
}
