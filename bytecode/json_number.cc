// Exact decimal arithmetic for schema numbers: see json_number.h. Tested by
// tests/schema_test.cc (SchemaNumber.*).
#include "bytecode/json_number.h"

#include <charconv>
#include <cmath>
#include <cstring>

namespace vakt::bytecode {
namespace {

// Strips leading and trailing zeros of raw digit text into out.
void Normalize(const char* raw, int len, int64_t exp, bool neg, Decimal* out, bool* ok) {
  int b = 0, e = len;
  while (b < e && raw[b] == '0') ++b;
  while (e > b && raw[e - 1] == '0') {
    --e;
    ++exp;
  }
  *out = Decimal{};
  if (b == e) {
    *ok = true;
    return;
  }
  if (e - b > kMaxDecimalDigits || exp > kMaxDecimalExponent || exp < -kMaxDecimalExponent) {
    *ok = false;
    return;
  }
  out->neg = neg;
  out->n = static_cast<uint8_t>(e - b);
  out->exp = static_cast<int32_t>(exp);
  std::memcpy(out->digits, raw + b, static_cast<size_t>(e - b));
  *ok = true;
}

}  // namespace

std::string Decimal::ToString() const {
  if (n == 0) return "0";
  std::string s = neg ? "-" : "";
  s.append(digits, n);
  if (exp != 0) s += "e" + std::to_string(exp);
  return s;
}

bool ParseDecimal(std::string_view t, Decimal* out) {
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && t[i] == '-') {
    neg = true;
    ++i;
  }
  if (i >= t.size() || t[i] < '0' || t[i] > '9') return false;
  if (t[i] == '0' && i + 1 < t.size() && t[i + 1] >= '0' && t[i + 1] <= '9') return false;
  char raw[kMaxDecimalDigits * 2 + 2];
  int len = 0;
  int64_t exp = 0;
  bool leading = true;  // still skipping leading zeros
  auto add = [&](char c, bool frac) -> bool {
    if (leading && c == '0') {
      if (frac) --exp;
      return true;
    }
    leading = false;
    if (len >= static_cast<int>(sizeof(raw))) {
      // Beyond the buffer only zeros may follow (they are trailing zeros).
      if (c != '0') return false;
      if (!frac) ++exp;
      return true;
    }
    raw[len++] = c;
    if (frac) --exp;
    return true;
  };
  for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) {
    if (!add(t[i], false)) return false;
  }
  if (i < t.size() && t[i] == '.') {
    ++i;
    if (i >= t.size() || t[i] < '0' || t[i] > '9') return false;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) {
      if (!add(t[i], true)) return false;
    }
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool eneg = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) eneg = t[i++] == '-';
    if (i >= t.size() || t[i] < '0' || t[i] > '9') return false;
    int64_t e = 0;
    for (; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) {
      e = e * 10 + (t[i] - '0');
      if (e > 10 * static_cast<int64_t>(kMaxDecimalExponent)) return false;
    }
    exp += eneg ? -e : e;
  }
  if (i != t.size()) return false;
  bool ok = false;
  Normalize(raw, len, exp, neg, out, &ok);
  return ok;
}

Decimal DecimalFromUint64(uint64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  Decimal d;
  bool ok;
  Normalize(buf, static_cast<int>(r.ptr - buf), 0, false, &d, &ok);
  return d;
}

Decimal DecimalFromInt64(int64_t v) {
  uint64_t m = v < 0 ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  Decimal d = DecimalFromUint64(m);
  d.neg = v < 0;
  return d;
}

Decimal DecimalFromDouble(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  // d.ddddde[+-]xx
  std::string_view s(buf, static_cast<size_t>(r.ptr - buf));
  bool neg = false;
  size_t i = 0;
  if (s[0] == '-') {
    neg = true;
    i = 1;
  }
  char raw[32];
  int len = 0;
  int64_t exp = 0;
  for (; i < s.size() && s[i] != 'e'; ++i) {
    if (s[i] == '.') continue;
    raw[len++] = s[i];
  }
  int frac = len - 1;
  int64_t e = 0;
  if (i < s.size()) {
    std::from_chars(s.data() + i + 1 + (s[i + 1] == '+'), s.data() + s.size(), e);
  }
  exp = e - frac;
  Decimal d;
  bool ok;
  Normalize(raw, len, exp, neg, &d, &ok);
  return d;
}

int CompareDecimal(const Decimal& a, const Decimal& b) {
  if (a.IsZero() && b.IsZero()) return 0;
  int sa = a.IsZero() ? 0 : (a.neg ? -1 : 1);
  int sb = b.IsZero() ? 0 : (b.neg ? -1 : 1);
  if (sa != sb) return sa < sb ? -1 : 1;
  // Same sign, both non-zero: compare magnitudes.
  int64_t ma = static_cast<int64_t>(a.exp) + a.n, mb = static_cast<int64_t>(b.exp) + b.n;
  int mag = 0;
  if (ma != mb) {
    mag = ma < mb ? -1 : 1;
  } else {
    int n = a.n > b.n ? a.n : b.n;
    for (int i = 0; i < n && mag == 0; ++i) {
      char ca = i < a.n ? a.digits[i] : '0', cb = i < b.n ? b.digits[i] : '0';
      if (ca != cb) mag = ca < cb ? -1 : 1;
    }
  }
  return sa > 0 ? mag : -mag;
}

bool IsMultipleOf(const Decimal& x, const Decimal& m, bool* exact) {
  *exact = true;
  if (x.IsZero()) return true;
  if (m.IsZero()) return false;
  // x = X*10^p, m = M*10^q. With e = min(p, q): X*10^(p-e) mod M*10^(q-e).
  int64_t p = x.exp, q = m.exp;
  if (q > p) {
    // Divisor M*10^(q-p): if it has more digits than X, X cannot be a multiple.
    int64_t dn = m.n + (q - p);
    if (dn > x.n) return false;
    if (dn > 36) {
      *exact = false;
      long double xv = std::strtold(x.ToString().c_str(), nullptr);
      long double mv = std::strtold(m.ToString().c_str(), nullptr);
      long double r = std::fmod(std::fabs(xv), mv);
      return r == 0;
    }
    unsigned __int128 d = 0;
    for (int i = 0; i < m.n; ++i) d = d * 10 + static_cast<unsigned>(m.digits[i] - '0');
    for (int64_t i = 0; i < q - p; ++i) d *= 10;
    unsigned __int128 r = 0;
    for (int i = 0; i < x.n; ++i) r = (r * 10 + static_cast<unsigned>(x.digits[i] - '0')) % d;
    return r == 0;
  }
  if (m.n > 36) {
    *exact = false;
    long double xv = std::strtold(x.ToString().c_str(), nullptr);
    long double mv = std::strtold(m.ToString().c_str(), nullptr);
    return std::fmod(std::fabs(xv), mv) == 0;
  }
  unsigned __int128 d = 0;
  for (int i = 0; i < m.n; ++i) d = d * 10 + static_cast<unsigned>(m.digits[i] - '0');
  unsigned __int128 r = 0;
  for (int i = 0; i < x.n; ++i) r = (r * 10 + static_cast<unsigned>(x.digits[i] - '0')) % d;
  for (int64_t i = 0; i < p - q && r != 0; ++i) r = (r * 10) % d;
  return r == 0;
}

}  // namespace vakt::bytecode
