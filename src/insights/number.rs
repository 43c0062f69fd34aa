//! Numbers as shields.io writes them (`1.2k`, `3.4M`), so our endpoint
//! badges read like the Docker pulls badge shields draws itself.
//!
//! A port of `metric()` in shields' `services/text-formatters.js`, with
//! JavaScript's rounding: `toFixed(1)` rounds the exact binary value half up
//! (`1.25` gives `1.3`, where Rust's `{:.1}` gives `1.2`), and `Math.round`
//! rounds half up.

const PREFIXES: [char; 8] = ['k', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];

/// `n` with an SI prefix: `999`, `1k`, `1.2k`, `12k`, `999k`, `1M`, `-3.4M`.
pub fn metric(n: i64) -> String {
    let negative = n < 0;
    let abs = (n as f64).abs();
    for i in (0..PREFIXES.len()).rev() {
        let limit = 1000f64.powi(i as i32 + 1);
        if abs < limit {
            continue;
        }
        let scaled = abs / limit;
        let sign = if negative { "-" } else { "" };
        if scaled < 10.0 {
            // One decimal digit, unless it is 0.
            let one_decimal = to_fixed_1(scaled);
            if !one_decimal.ends_with('0') {
                return format!("{sign}{one_decimal}{}", PREFIXES[i]);
            }
        }
        // Math.round: half up (scaled is positive, so away from zero is up).
        let rounded = scaled.round();
        return if rounded < 1000.0 {
            format!("{sign}{rounded}{}", PREFIXES[i])
        } else {
            // 999,950 is `1M`, not `1000k`. (Past `Y` shields would print
            // `1undefined`; an i64 never gets there.)
            let next = PREFIXES.get(i + 1).copied().unwrap_or('Y');
            format!("{sign}1{next}")
        };
    }
    n.to_string()
}

/// JavaScript's `x.toFixed(1)` for `0 <= x < 10`: the exact binary value of
/// `x`, rounded half up to one decimal. Integer arithmetic on the double's
/// mantissa and exponent: exact, and far cheaper than printing 60 digits.
fn to_fixed_1(x: f64) -> String {
    let bits = x.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32;
    let fraction = u128::from(bits & ((1u64 << 52) - 1));
    // x = mantissa × 2^-shift (a subnormal has no hidden bit).
    let (mantissa, shift) = if exponent == 0 {
        (fraction, 1074)
    } else {
        (fraction | (1 << 52), 1075 - exponent)
    };
    let tenths = if shift <= 0 {
        (mantissa << (-shift).min(60)) * 10
    } else if shift >= 120 {
        // Below 2^-67: far under half a tenth.
        0
    } else {
        let scaled = mantissa * 10;
        let whole = scaled >> shift;
        let rest = scaled & ((1u128 << shift) - 1);
        whole + u128::from(rest >= 1u128 << (shift - 1))
    };
    format!("{}.{}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_shields_writes_them() {
        // Each expectation is what shields' `metric()` returns for the same
        // number under Node.js (checked when this port was written).
        for (n, expected) in [
            (0, "0"),
            (999, "999"),
            (1000, "1k"),
            (1100, "1.1k"),
            (1249, "1.2k"),
            // A tie in binary too: half up, as JavaScript does.
            (1250, "1.3k"),
            (1951, "2k"),
            (9949, "9.9k"),
            (9950, "9.9k"), // 9.95 is 9.9499999999999993 in binary
            (9951, "10k"),
            (1050, "1.1k"),
            (1150, "1.1k"),
            (10_000, "10k"),
            (12_345, "12k"),
            (999_499, "999k"),
            (999_500, "1M"),
            (1_000_000, "1M"),
            (3_400_000, "3.4M"),
            (2_244_658_322, "2.2G"),
            (1_000_000_000_000, "1T"),
            (i64::MAX, "9.2E"),
            (-1000, "-1k"),
            (-1_250_000, "-1.3M"),
            (-5, "-5"),
        ] {
            assert_eq!(metric(n), expected, "{n}");
        }
    }

    #[test]
    fn to_fixed_rounds_the_exact_binary_value_half_up() {
        assert_eq!(to_fixed_1(1.25), "1.3");
        assert_eq!(to_fixed_1(1.05), "1.1"); // 1.05 is 1.0500000000000000444 in binary
        assert_eq!(to_fixed_1(1.15), "1.1"); // 1.1499999999999999112
        assert_eq!(to_fixed_1(9.96), "10.0");
        assert_eq!(to_fixed_1(0.0), "0.0");
        assert_eq!(to_fixed_1(0.05), "0.1"); // 0.05000000000000000277
        assert_eq!(to_fixed_1(0.25), "0.3");
        assert_eq!(to_fixed_1(1e-300), "0.0");
    }
}
