extension Duration {
    /// The duration in seconds, fractions included (for rates: files per second over an interval).
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
