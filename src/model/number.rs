//! `Number`: DynamoDB's exact decimal, and its order-preserving byte encoding.
//!
//! Invariants of every `Number` (parsing, decoding and deserializing all enforce them):
//! - zero is exactly `{ negative: false, digits: [], exponent: 0 }`, whatever sign or exponent
//!   it was written with;
//! - otherwise `digits` holds 1 to 38 values in `0..=9`, the first and last non-zero, and
//!   `exponent` lies in `-130..=125` (DynamoDB's range: 1E-130 to 9.99…E+125).
//!
//! So every value has exactly one representation, and the derived `Eq`/`Hash` are numeric.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// DynamoDB keeps at most this many significant digits.
const MAX_DIGITS: usize = 38;
/// Smallest exponent of a non-zero number (1E-130).
const MIN_EXPONENT: i16 = -130;
/// Largest exponent of a non-zero number (9.99…E+125).
const MAX_EXPONENT: i16 = 125;
/// Any exponent beyond this is out of range whatever the mantissa; clamping to it keeps the
/// arithmetic on absurd inputs like `1e999999999999999999` from overflowing.
const EXPONENT_CLAMP: i64 = 1 << 40;

/// Tag bytes of the ordered encoding, in numeric order.
const TAG_NEGATIVE: u8 = 0x01;
const TAG_ZERO: u8 = 0x02;
const TAG_POSITIVE: u8 = 0x03;
/// Ends the digit bytes; every digit-pair byte is above it.
const TERMINATOR: u8 = 0x00;

/// An exact decimal with at most 38 significant digits, as DynamoDB stores numbers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "NumberParts")]
pub struct Number {
    negative: bool,
    /// Significant digits, most significant first.
    digits: Vec<u8>,
    /// Power of ten of the first digit: the value is `d0.d1d2… × 10^exponent`.
    exponent: i16,
}

/// `Number`'s fields as stored, checked against the invariants before they become a `Number`.
#[derive(Deserialize)]
struct NumberParts {
    negative: bool,
    digits: Vec<u8>,
    exponent: i16,
}

impl TryFrom<NumberParts> for Number {
    type Error = Error;

    fn try_from(parts: NumberParts) -> Result<Number> {
        let n = Number {
            negative: parts.negative,
            digits: parts.digits,
            exponent: parts.exponent,
        };
        if n.is_canonical() {
            Ok(n)
        } else {
            Err(Error::internal("stored number is not canonical"))
        }
    }
}

impl Number {
    /// Parses DynamoDB's number syntax (`[+-]digits[.digits][e[+-]digits]`, no whitespace),
    /// enforcing its precision and range limits.
    pub fn parse(s: &str) -> Result<Number> {
        let not_numeric = || {
            // DynamoDB drops the `: value` suffix when the value is empty.
            let msg = "The parameter cannot be converted to a numeric value";
            // A value longer than any number is cut short: the answer stays small.
            const ECHO_CHARS: usize = 64;
            Error::Validation(if s.is_empty() {
                msg.to_string()
            } else if s.chars().nth(ECHO_CHARS).is_some() {
                let head: String = s.chars().take(ECHO_CHARS).collect();
                format!("{msg}: {head}…")
            } else {
                format!("{msg}: {s}")
            })
        };
        let (negative, rest) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (mantissa, exponent_text) = match rest.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, Some(exponent)),
            None => (rest, None),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let is_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !is_digits(int_part)
            || !is_digits(frac_part)
        {
            return Err(not_numeric());
        }
        let written_exponent = match exponent_text {
            Some(text) => parse_exponent(text).ok_or_else(not_numeric)?,
            None => 0,
        };

        let all: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        let (Some(first), Some(last)) = (
            all.iter().position(|&d| d != 0),
            all.iter().rposition(|&d| d != 0),
        ) else {
            return Ok(Number::zero());
        };
        // The first significant digit sits `int_len - 1 - first` places left of the point.
        // The written exponent is clamped and lengths are bounded by the request size, so this
        // i64 arithmetic cannot overflow, and a clamped exponent stays out of range.
        let exponent = written_exponent + int_part.len() as i64 - 1 - first as i64;
        if exponent > i64::from(MAX_EXPONENT) {
            return Err(Error::validation(
                "Number overflow. Attempting to store a number with magnitude larger than supported range",
            ));
        }
        if exponent < i64::from(MIN_EXPONENT) {
            return Err(Error::validation(
                "Number underflow. Attempting to store a number with magnitude smaller than supported range",
            ));
        }
        let digits = all[first..=last].to_vec();
        if digits.len() > MAX_DIGITS {
            return Err(Error::validation(
                "Attempting to store more than 38 significant digits in a Number",
            ));
        }
        Ok(Number {
            negative,
            digits,
            // In range of i16: checked against MIN_EXPONENT..=MAX_EXPONENT just above.
            exponent: exponent as i16,
        })
    }

    /// The number zero.
    pub fn zero() -> Number {
        Number {
            negative: false,
            digits: Vec::new(),
            exponent: 0,
        }
    }

    /// `self + other`, exactly. A sum DynamoDB cannot store (more than 38 significant digits,
    /// or out of range) is the `ValidationException` DynamoDB gives for it.
    ///
    /// # Errors
    /// As [`Number::parse`] for the exact result.
    pub fn add(&self, other: &Number) -> Result<Number> {
        if self.is_zero() {
            return Ok(other.clone());
        }
        if other.is_zero() {
            return Ok(self.clone());
        }
        // Each value is its digits, read as an integer, times 10^scale.
        let scale = |n: &Number| i64::from(n.exponent) - (n.digits.len() as i64 - 1);
        let low = scale(self).min(scale(other));
        // Exponents lie in -130..=125, so padding is at most a few hundred digits.
        let widened = |n: &Number| {
            let mut d = n.digits.clone();
            d.resize(n.digits.len() + (scale(n) - low) as usize, 0);
            d
        };
        let (a, b) = (widened(self), widened(other));
        let (negative, magnitude) = if self.negative == other.negative {
            (self.negative, add_magnitudes(&a, &b))
        } else {
            match compare_magnitudes(&a, &b) {
                Ordering::Greater => (self.negative, sub_magnitudes(&a, &b)),
                Ordering::Less => (other.negative, sub_magnitudes(&b, &a)),
                Ordering::Equal => return Ok(Number::zero()),
            }
        };
        let digits: String = magnitude.iter().map(|d| char::from(b'0' + d)).collect();
        let sign = if negative { "-" } else { "" };
        Number::parse(&format!("{sign}{digits}E{low}"))
    }

    /// `self - other`, exactly.
    ///
    /// # Errors
    /// As [`Number::add`].
    pub fn sub(&self, other: &Number) -> Result<Number> {
        let mut negated = other.clone();
        if !negated.is_zero() {
            negated.negative = !negated.negative;
        }
        self.add(&negated)
    }

    /// True for zero (of any written sign or exponent).
    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// The exact value of an `i64` (at most 19 digits, always in range).
    pub fn from_i64(v: i64) -> Number {
        let mut magnitude = v.unsigned_abs();
        let mut digits = Vec::new();
        while magnitude > 0 {
            digits.push((magnitude % 10) as u8);
            magnitude /= 10;
        }
        digits.reverse();
        // At most 19 digits, so the exponent fits and is within range.
        let exponent = digits.len().saturating_sub(1) as i16;
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            return Number::zero();
        }
        Number {
            negative: v < 0,
            digits,
            exponent,
        }
    }

    /// Bytes this number counts for in DynamoDB's item size: one per two significant digits,
    /// plus one. Zero is counted as the single digit `0`, so it is 2 bytes.
    pub fn dynamo_size(&self) -> usize {
        self.digits.len().max(1).div_ceil(2) + 1
    }

    /// Appends a self-delimiting encoding whose byte order is the numeric order.
    ///
    /// Layout: a tag (negative < zero < positive); zero ends there. Otherwise the body:
    /// the exponent biased by 130 into one byte, the digits in pairs as `1 + 10a + b` (an odd
    /// tail padded with a 0, which changes no value) and a `0x00` terminator, which sorts
    /// below every pair so a shorter digit string sorts first. Negative bodies are inverted
    /// bitwise: bodies are prefix-free, so inversion exactly reverses their order.
    pub fn encode_ordered(&self, out: &mut Vec<u8>) {
        if self.is_zero() {
            out.push(TAG_ZERO);
            return;
        }
        let (tag, flip) = if self.negative {
            (TAG_NEGATIVE, 0xFF)
        } else {
            (TAG_POSITIVE, 0x00)
        };
        out.push(tag);
        // The invariant keeps the exponent within -130..=125, so the biased value is 0..=255.
        out.push((self.exponent - MIN_EXPONENT) as u8 ^ flip);
        for pair in self.digits.chunks(2) {
            let high = pair.first().copied().unwrap_or(0);
            let low = pair.get(1).copied().unwrap_or(0);
            out.push((1 + 10 * high + low) ^ flip);
        }
        out.push(TERMINATOR ^ flip);
    }

    /// Reads one number written by [`Number::encode_ordered`] from the front of `input` and
    /// advances `input` past it. Bytes that no `Number` encodes to are `Error::Internal`.
    pub fn decode_ordered(input: &mut &[u8]) -> Result<Number> {
        let corrupt = || Error::internal("corrupt number encoding");
        let (&tag, mut rest) = input.split_first().ok_or_else(corrupt)?;
        let flip = match tag {
            TAG_ZERO => {
                *input = rest;
                return Ok(Number::zero());
            }
            TAG_NEGATIVE => 0xFF,
            TAG_POSITIVE => 0x00,
            _ => return Err(corrupt()),
        };
        let (&biased, tail) = rest.split_first().ok_or_else(corrupt)?;
        rest = tail;
        let mut digits = Vec::new();
        loop {
            let (&byte, tail) = rest.split_first().ok_or_else(corrupt)?;
            rest = tail;
            match byte ^ flip {
                TERMINATOR => break,
                pair @ 1..=100 if digits.len() < MAX_DIGITS => {
                    digits.push((pair - 1) / 10);
                    digits.push((pair - 1) % 10);
                }
                _ => return Err(corrupt()),
            }
        }
        // Drop the padding of an odd digit count; a real trailing zero is never encoded.
        if digits.last() == Some(&0) {
            digits.pop();
        }
        let n = Number {
            negative: flip == 0xFF,
            digits,
            exponent: i16::from(biased ^ flip) + MIN_EXPONENT,
        };
        if n.is_zero() || !n.is_canonical() {
            return Err(corrupt());
        }
        *input = rest;
        Ok(n)
    }

    /// Whether the fields satisfy the module invariants.
    fn is_canonical(&self) -> bool {
        if self.digits.is_empty() {
            return !self.negative && self.exponent == 0;
        }
        self.digits.len() <= MAX_DIGITS
            && self.digits.iter().all(|&d| d <= 9)
            && self.digits.first() != Some(&0)
            && self.digits.last() != Some(&0)
            && (MIN_EXPONENT..=MAX_EXPONENT).contains(&self.exponent)
    }

    /// -1, 0 or 1.
    fn signum(&self) -> i8 {
        match (self.is_zero(), self.negative) {
            (true, _) => 0,
            (false, true) => -1,
            (false, false) => 1,
        }
    }
}

/// Parses the digits after `e`, clamping huge values (they are out of range anyway).
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |acc, b| {
        (acc * 10 + i64::from(b - b'0')).min(EXPONENT_CLAMP)
    });
    Some(if negative { -magnitude } else { magnitude })
}

impl FromStr for Number {
    type Err = Error;

    fn from_str(s: &str) -> Result<Number> {
        Number::parse(s)
    }
}

impl Ord for Number {
    fn cmp(&self, other: &Number) -> Ordering {
        self.signum().cmp(&other.signum()).then_with(|| {
            // No trailing zeros, so comparing digit slices compares the mantissas.
            let magnitude = self
                .exponent
                .cmp(&other.exponent)
                .then_with(|| self.digits.cmp(&other.digits));
            if self.negative {
                magnitude.reverse()
            } else {
                magnitude
            }
        })
    }
}

impl PartialOrd for Number {
    fn partial_cmp(&self, other: &Number) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Plain notation, never an exponent, as DynamoDB returns numbers: `-123.4`, `0.00001`.
/// Digit vectors (most significant first) compared as integers.
fn compare_magnitudes(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |d: &[u8]| {
        let first = d.iter().position(|&x| x != 0).unwrap_or(d.len());
        d[first..].to_vec()
    };
    let (a, b) = (strip(a), strip(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

/// `a + b` on digit vectors (most significant first).
fn add_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let (mut ia, mut ib, mut carry) = (a.iter().rev(), b.iter().rev(), 0u8);
    loop {
        let (x, y) = (ia.next(), ib.next());
        if x.is_none() && y.is_none() {
            break;
        }
        let sum = x.copied().unwrap_or(0) + y.copied().unwrap_or(0) + carry;
        out.push(sum % 10);
        carry = sum / 10;
    }
    if carry > 0 {
        out.push(carry);
    }
    out.reverse();
    out
}

/// `a - b` on digit vectors (most significant first), for `a >= b`.
fn sub_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let (mut ib, mut borrow) = (b.iter().rev(), 0i8);
    for &x in a.iter().rev() {
        let mut d = x as i8 - ib.next().copied().unwrap_or(0) as i8 - borrow;
        borrow = i8::from(d < 0);
        if d < 0 {
            d += 10;
        }
        out.push(d as u8);
    }
    out.reverse();
    out
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let digit = |d: u8| char::from(b'0' + d);
        let mut out =
            String::with_capacity(self.digits.len() + 2 + self.exponent.unsigned_abs() as usize);
        if self.negative {
            out.push('-');
        }
        if self.exponent < 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-self.exponent - 1) as usize));
            out.extend(self.digits.iter().map(|&d| digit(d)));
        } else {
            let int_len = self.exponent as usize + 1;
            for i in 0..int_len.max(self.digits.len()) {
                if i == int_len {
                    out.push('.');
                }
                out.push(self.digits.get(i).map_or('0', |&d| digit(d)));
            }
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    fn err(s: &str) -> String {
        match Number::parse(s) {
            Err(Error::Validation(msg)) => msg,
            other => panic!("{s}: expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn addition_and_subtraction_are_exact_to_38_digits() {
        let sum = |a: &str, b: &str| n(a).add(&n(b)).map(|x| x.to_string());
        let diff = |a: &str, b: &str| n(a).sub(&n(b)).map(|x| x.to_string());
        assert_eq!(sum("1", "2").as_deref(), Ok("3"));
        assert_eq!(sum("0.1", "0.2").as_deref(), Ok("0.3"));
        assert_eq!(sum("-5", "3").as_deref(), Ok("-2"));
        assert_eq!(sum("5", "-5").as_deref(), Ok("0"));
        assert_eq!(sum("999", "1").as_deref(), Ok("1000"));
        assert_eq!(
            sum("1e10", "1e-10").as_deref(),
            Ok("10000000000.0000000001")
        );
        assert_eq!(diff("1", "1.5").as_deref(), Ok("-0.5"));
        assert_eq!(diff("0", "7").as_deref(), Ok("-7"));
        assert_eq!(
            sum("99999999999999999999999999999999999999", "1").as_deref(),
            Ok("100000000000000000000000000000000000000")
        );
        // Exact results DynamoDB cannot store are refused, never rounded.
        assert!(sum("1e30", "1e-10").is_err(), "41 significant digits");
        assert!(sum("9.9999999999999999999999999999999999999e125", "1e125").is_err());
    }

    #[test]
    fn a_huge_non_number_is_echoed_cut_short() {
        let text = "x".repeat(1 << 20);
        let msg = err(&text);
        assert!(msg.len() < 200, "{} bytes", msg.len());
        assert!(msg.ends_with(&format!("{}…", "x".repeat(64))), "{msg}");
    }

    fn encoded(x: &Number) -> Vec<u8> {
        let mut out = Vec::new();
        x.encode_ordered(&mut out);
        out
    }

    const OVERFLOW: &str =
        "Number overflow. Attempting to store a number with magnitude larger than supported range";
    const UNDERFLOW: &str = "Number underflow. Attempting to store a number with magnitude smaller than supported range";
    const TOO_PRECISE: &str = "Attempting to store more than 38 significant digits in a Number";

    #[test]
    fn canonical_forms() {
        let cases = [
            ("1.0", "1"),
            ("007", "7"),
            ("-0", "0"),
            ("+0.000", "0"),
            ("0e999", "0"),
            ("-0e-99999999999999999999999", "0"),
            ("1e3", "1000"),
            ("1E+3", "1000"),
            ("1.50", "1.5"),
            ("0.001", "0.001"),
            ("1e-5", "0.00001"),
            ("-12.340e1", "-123.4"),
            (".5", "0.5"),
            ("5.", "5"),
            ("+5", "5"),
            ("0.000123", "0.000123"),
            ("000.000123000", "0.000123"),
            ("123.456", "123.456"),
            ("-1.5e-2", "-0.015"),
            ("120e-1", "12"),
            ("10203", "10203"),
        ];
        for (input, want) in cases {
            assert_eq!(n(input).to_string(), want, "{input}");
            assert_eq!(n(input), n(want), "{input}");
        }
        assert_eq!(n("1E+125").to_string(), format!("1{}", "0".repeat(125)));
        assert_eq!(n("1E-130").to_string(), format!("0.{}1", "0".repeat(129)));
        assert!(n("-0").is_zero());
        assert_eq!(n("-0"), Number::zero());
        assert_eq!("42".parse::<Number>().unwrap(), n("42"));
    }

    #[test]
    fn rejects_non_numbers() {
        for bad in [
            "abc",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e",
            "1e+",
            "--1",
            "+-1",
            "0x10",
            " 1",
            "1 ",
            ".",
            "-",
            "+",
            "e5",
            "1.2.3",
            "1e5.0",
            "1,5",
            "١",
        ] {
            assert_eq!(
                err(bad),
                format!("The parameter cannot be converted to a numeric value: {bad}")
            );
        }
        assert_eq!(
            err(""),
            "The parameter cannot be converted to a numeric value"
        );
    }

    #[test]
    fn limits() {
        let d38 = "12345678901234567890123456789012345678";
        assert_eq!(n(d38).to_string(), d38);
        assert_eq!(err(&format!("{d38}9")), TOO_PRECISE);
        assert_eq!(err(&format!("0.{d38}9")), TOO_PRECISE);
        // Zeros at either end are not significant.
        assert!(Number::parse(&format!("000{d38}000")).is_ok());
        assert!(Number::parse(&format!("0.000{d38}")).is_ok());

        assert!(Number::parse("1E-130").is_ok());
        assert!(Number::parse("-1E-130").is_ok());
        assert_eq!(err("1E-131"), UNDERFLOW);
        assert_eq!(err("0.99E-130"), UNDERFLOW);
        let max = "9.9999999999999999999999999999999999999E+125";
        assert!(Number::parse(max).is_ok());
        assert!(Number::parse(&format!("-{max}")).is_ok());
        assert_eq!(err("1E+126"), OVERFLOW);
        assert_eq!(err("10E+125"), OVERFLOW);
        assert_eq!(err("1e999999999999"), OVERFLOW);
        assert_eq!(err("1e99999999999999999999999999999"), OVERFLOW);
        assert_eq!(err("-1e-99999999999999999999999999999"), UNDERFLOW);
        assert!(Number::parse("0.1e-129").is_ok());
    }

    #[test]
    fn ordering_matches_a_reference() {
        let ascending = [
            "-9.9999999999999999999999999999999999999E+125",
            "-1e100",
            "-1000",
            "-999.5",
            "-10",
            "-9.99",
            "-1.5",
            "-1.05",
            "-1",
            "-0.15",
            "-0.1",
            "-0.0999",
            "-1e-130",
            "0",
            "1e-130",
            "0.0999",
            "0.1",
            "0.1005",
            "0.15",
            "1",
            "1.05",
            "1.5",
            "9.99",
            "10",
            "999.5",
            "1000",
            "1e100",
            "9.9999999999999999999999999999999999999E+125",
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(n(a).cmp(&n(b)), i.cmp(&j), "{a} vs {b}");
                assert_eq!(encoded(&n(a)).cmp(&encoded(&n(b))), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn from_i64_is_exact() {
        for v in [
            0,
            1,
            -1,
            10,
            -100,
            1230,
            i64::MAX,
            i64::MIN,
            1_000_000_000_000,
        ] {
            assert_eq!(Number::from_i64(v), n(&v.to_string()), "{v}");
        }
    }

    #[test]
    fn dynamo_sizes() {
        assert_eq!(Number::zero().dynamo_size(), 2);
        assert_eq!(n("7").dynamo_size(), 2);
        assert_eq!(n("12").dynamo_size(), 2);
        assert_eq!(n("123").dynamo_size(), 3);
        assert_eq!(n("1000000").dynamo_size(), 2);
        assert_eq!(n("-0.00012345").dynamo_size(), 4);
        assert_eq!(
            n("12345678901234567890123456789012345678").dynamo_size(),
            20
        );
    }

    #[test]
    fn decode_rejects_corrupt_bytes() {
        let bad: [&[u8]; 9] = [
            &[],
            &[0x07],
            &[TAG_POSITIVE],
            &[TAG_POSITIVE, 130],
            &[TAG_POSITIVE, 130, 11],
            &[TAG_POSITIVE, 130, 101, 0],
            &[TAG_POSITIVE, 130, 1, 0], // "00": leading zero
            &[TAG_POSITIVE, 130, 0],    // no digits
            &[TAG_NEGATIVE, !130, !11], // unterminated
        ];
        for bytes in bad {
            let mut input = bytes;
            assert!(
                matches!(Number::decode_ordered(&mut input), Err(Error::Internal(_))),
                "{bytes:?}"
            );
        }
        let too_long = [vec![TAG_POSITIVE, 130], vec![12; 20], vec![0]].concat();
        assert!(Number::decode_ordered(&mut too_long.as_slice()).is_err());
    }

    #[test]
    fn serde_roundtrips_and_validates() {
        let x = n("-123.45e-7");
        let bytes = postcard::to_stdvec(&x).unwrap();
        assert_eq!(postcard::from_bytes::<Number>(&bytes).unwrap(), x);
        let bad = Number {
            negative: true,
            digits: vec![1, 0],
            exponent: 0,
        };
        let bytes = postcard::to_stdvec(&bad).unwrap();
        assert!(postcard::from_bytes::<Number>(&bytes).is_err());
    }

    /// Numbers within DynamoDB's limits, written in assorted styles.
    fn number_text() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["", "-", "+"]),
            "[0-9]{1,38}",
            0usize..=38,
            -140i32..=130,
            prop::bool::ANY,
        )
            .prop_map(|(sign, digits, point, exp, zeros)| {
                let point = point.min(digits.len());
                let pad = if zeros { "00" } else { "" };
                format!(
                    "{sign}{pad}{}.{}{pad}e{exp}",
                    &digits[..point],
                    &digits[point..]
                )
            })
    }

    fn number() -> impl Strategy<Value = Number> {
        prop_oneof![
            number_text().prop_filter_map("out of range", |s| Number::parse(&s).ok()),
            any::<i64>().prop_map(Number::from_i64),
            (-3i64..=3).prop_map(Number::from_i64),
            // A small space, so that equal and nearly equal numbers are common.
            ("-?[015]{1,4}", -2i32..=2)
                .prop_map(|(m, e)| Number::parse(&format!("{m}e{e}")).unwrap()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn encoding_orders_like_numbers(a in number(), b in number()) {
            prop_assert_eq!(a.cmp(&b), encoded(&a).cmp(&encoded(&b)));
            prop_assert_eq!(a == b, encoded(&a) == encoded(&b));
        }

        #[test]
        fn decode_inverts_encode(a in number(), trailing in prop::collection::vec(any::<u8>(), 0..4)) {
            let mut bytes = encoded(&a);
            let len = bytes.len();
            bytes.extend_from_slice(&trailing);
            let mut input = bytes.as_slice();
            prop_assert_eq!(Number::decode_ordered(&mut input).unwrap(), a);
            prop_assert_eq!(input.len(), bytes.len() - len);
        }

        #[test]
        fn display_then_parse_roundtrips(a in number()) {
            prop_assert_eq!(Number::parse(&a.to_string()).unwrap(), a);
        }

        #[test]
        fn order_agrees_with_f64_when_far_apart(a in number(), b in number()) {
            let (x, y): (f64, f64) = (a.to_string().parse().unwrap(), b.to_string().parse().unwrap());
            if (x - y).abs() > 1e-9 * x.abs().max(y.abs()) {
                prop_assert_eq!(a.cmp(&b), x.partial_cmp(&y).unwrap());
            }
        }

        #[test]
        fn parse_never_panics(s in "[-+0-9.eE]{0,12}|\\PC{0,8}") {
            let _ = Number::parse(&s);
        }
    }
}
