import Foundation

/// Rounded to milliseconds (or thousandths), as the session objects write their duration.
func thousandths(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
