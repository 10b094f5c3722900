// Exact decimal numbers for JSON Schema's numeric keywords. A JSON number's
// value is taken to be the decimal it was written as: integers exactly (int64
// and uint64), and a double by its shortest round-trip decimal (what
// std::to_chars prints, so 0.07 is 7e-2, not the binary fraction nearest it).
// Schema limits keep their literal text, so `2^53 + 1 > 2^53` and
// `0.07 is a multiple of 0.01` hold exactly. Numbers with more than
// kMaxDecimalDigits significant digits are refused when parsed.
// No allocation; every operation is O(digits + |exponent difference|), the
// exponent difference bounded by kMaxDecimalExponent. Tested by
// tests/schema_test.cc (SchemaNumber.*).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace vakt::bytecode {

inline constexpr int kMaxDecimalDigits = 64;
inline constexpr int kMaxDecimalExponent = 100000;
// multipleOf divisors are bounded tighter so the exact test is cheap: at most
// ~|exponent| + digits steps per instance number.
inline constexpr int kMaxMultipleOfDigits = 36;
inline constexpr int kMaxMultipleOfExponent = 400;

// value = (neg ? -1 : 1) * digits * 10^exp; digits has no leading or trailing
// zeros; zero has n == 0 and neg == false.
struct Decimal {
  bool neg = false;
  uint8_t n = 0;
  int32_t exp = 0;
  char digits[kMaxDecimalDigits];

  bool IsZero() const { return n == 0; }
  bool IsInteger() const { return n == 0 || exp >= 0; }
  std::string ToString() const;
};

// Parses JSON number text (strict grammar). False if not a JSON number, too
// many significant digits or an exponent out of range.
bool ParseDecimal(std::string_view text, Decimal* out);
Decimal DecimalFromInt64(int64_t v);
Decimal DecimalFromUint64(uint64_t v);
// REQUIRES: std::isfinite(v)
Decimal DecimalFromDouble(double v);

// -1, 0, 1.
int CompareDecimal(const Decimal& a, const Decimal& b);

// Whether x is an integer multiple of m (m > 0). Exact when m has at most 36
// significant digits (always, for schemas the compiler accepts); otherwise
// *exact is set false and the answer is approximate.
bool IsMultipleOf(const Decimal& x, const Decimal& m, bool* exact);

}  // namespace vakt::bytecode
