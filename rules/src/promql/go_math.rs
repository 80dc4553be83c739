//! Ports of Go's `math.Log`, `math.Log2`, `math.Log10` (FreeBSD's
//! `e_log.c` algorithm) and `math.Atan2` (Cephes). promtool's unit tests
//! compare floats exactly, so these must round the way Go's do, not the way
//! the platform's libm does (they differ in the last bit for some inputs,
//! e.g. `log10(300)`).

// The constants are written digit for digit as in Go's source, so that
// they can be checked against it; Rust rounds them to the same doubles.
#![allow(clippy::excessive_precision)]

/// Go's `math.Frexp`: `value = fraction * 2^exponent`, fraction in [0.5, 1).
fn frexp(value: f64) -> (f64, i64) {
    if value == 0.0 || !value.is_finite() {
        return (value, 0);
    }
    let (mut value, mut exponent) = (value, 0_i64);
    if !value.is_normal() {
        value *= (1_u64 << 52) as f64;
        exponent = -52;
    }
    let bits = value.to_bits();
    exponent += ((bits >> 52) & 0x7ff) as i64 - 1022;
    let fraction = f64::from_bits((bits & !(0x7ff_u64 << 52)) | (1022_u64 << 52));
    (fraction, exponent)
}

/// Go's `math.Log`.
pub fn ln(x: f64) -> f64 {
    const LN2_HI: f64 = 6.93147180369123816490e-01;
    const LN2_LO: f64 = 1.90821492927058770002e-10;
    const L1: f64 = 6.666666666666735130e-01;
    const L2: f64 = 3.999999999940941908e-01;
    const L3: f64 = 2.857142874366239149e-01;
    const L4: f64 = 2.222219843214978396e-01;
    const L5: f64 = 1.818357216161805012e-01;
    const L6: f64 = 1.531383769920937332e-01;
    const L7: f64 = 1.479819860511658591e-01;
    if x.is_nan() || x == f64::INFINITY {
        return x;
    }
    if x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    let (mut f1, mut ki) = frexp(x);
    if f1 < std::f64::consts::SQRT_2 / 2.0 {
        f1 *= 2.0;
        ki -= 1;
    }
    let f = f1 - 1.0;
    let k = ki as f64;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let s4 = s2 * s2;
    let t1 = s2 * (L1 + s4 * (L3 + s4 * (L5 + s4 * L7)));
    let t2 = s4 * (L2 + s4 * (L4 + s4 * L6));
    let r = t1 + t2;
    let hfsq = 0.5 * f * f;
    k * LN2_HI - ((hfsq - (s * (hfsq + r) + k * LN2_LO)) - f)
}

/// Go's `math.Log10`.
pub fn log10(x: f64) -> f64 {
    // Go folds `1 / Ln10` at arbitrary precision: that is LOG10_E, not
    // `1.0 / LN_10` computed in f64 (one bit apart).
    ln(x) * std::f64::consts::LOG10_E
}

/// Go's `math.Log2`: exact for powers of two.
pub fn log2(x: f64) -> f64 {
    let (fraction, exponent) = frexp(x);
    if fraction == 0.5 {
        return (exponent - 1) as f64;
    }
    ln(fraction) * std::f64::consts::LOG2_E + exponent as f64
}

/// Go's `math.Atan2`.
pub fn atan2(y: f64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if y.is_nan() || x.is_nan() {
        return f64::NAN;
    }
    if y == 0.0 {
        return if x >= 0.0 && !x.is_sign_negative() {
            0.0_f64.copysign(y)
        } else {
            PI.copysign(y)
        };
    }
    if x == 0.0 {
        return (PI / 2.0).copysign(y);
    }
    if x.is_infinite() {
        return if x > 0.0 {
            if y.is_infinite() {
                (PI / 4.0).copysign(y)
            } else {
                0.0_f64.copysign(y)
            }
        } else if y.is_infinite() {
            (3.0 * PI / 4.0).copysign(y)
        } else {
            PI.copysign(y)
        };
    }
    if y.is_infinite() {
        return (PI / 2.0).copysign(y);
    }
    let q = go_atan(y / x);
    if x < 0.0 {
        if q <= 0.0 { q + PI } else { q - PI }
    } else {
        q
    }
}

fn go_atan(x: f64) -> f64 {
    if x == 0.0 {
        x
    } else if x > 0.0 {
        go_satan(x)
    } else {
        -go_satan(-x)
    }
}

fn go_satan(x: f64) -> f64 {
    const MORE_BITS: f64 = 6.123233995736765886130e-17;
    const TAN_3PI_8: f64 = 2.41421356237309504880;
    use std::f64::consts::PI;
    if x <= 0.66 {
        go_xatan(x)
    } else if x > TAN_3PI_8 {
        PI / 2.0 - go_xatan(1.0 / x) + MORE_BITS
    } else {
        PI / 4.0 + go_xatan((x - 1.0) / (x + 1.0)) + 0.5 * MORE_BITS
    }
}

fn go_xatan(x: f64) -> f64 {
    const P0: f64 = -8.750608600031904122785e-01;
    const P1: f64 = -1.615753718733365076637e+01;
    const P2: f64 = -7.500855792314704667340e+01;
    const P3: f64 = -1.228866684490136173410e+02;
    const P4: f64 = -6.485021904942025371773e+01;
    const Q0: f64 = 2.485846490142306297962e+01;
    const Q1: f64 = 1.650270098316988542046e+02;
    const Q2: f64 = 4.328810604912902668951e+02;
    const Q3: f64 = 4.853903996359136964868e+02;
    const Q4: f64 = 1.945506571482613964425e+02;
    let mut z = x * x;
    z = z * ((((P0 * z + P1) * z + P2) * z + P3) * z + P4)
        / (((((z + Q0) * z + Q1) * z + Q2) * z + Q3) * z + Q4);
    x * z + x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go_on_known_values() {
        // Values promtool (Go) prints for these inputs.
        assert_eq!(log10(1000.0), 3.0);
        assert_eq!(log10(300.0), 2.477121254719662);
        assert_eq!(log10(500.0), 2.6989700043360187);
        assert_eq!(log2(8.0), 3.0);
        assert_eq!(ln(1.0), 0.0);
        assert!(ln(-1.0).is_nan());
        assert_eq!(ln(0.0), f64::NEG_INFINITY);
    }
}
