// Format assertions for JSON Schema (asked per schema; otherwise `format` is
// an annotation): date-time, date, time (RFC 3339), email (RFC 5321
// mailbox, dot-atom or quoted local part, domain or address literal), uuid
// (RFC 4122 text form), ipv4 (dotted quad, no leading zeros), ipv6
// (RFC 4291 text forms, embedded IPv4), uri (RFC 3986 absolute URI) and
// hostname (RFC 1123 labels). Each check is a single pass over the string,
// O(length). Tested by tests/schema_test.cc and the suite's optional/format.
#include <cstdint>
#include <string_view>

#include "bytecode/schema.h"

namespace vakt::bytecode {
namespace {

bool Digit(char c) { return c >= '0' && c <= '9'; }
bool Hex(char c) { return Digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool Alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool Num(std::string_view s, size_t pos, size_t len, int* out) {
  if (pos + len > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + len; ++i) {
    if (!Digit(s[i])) return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

bool Leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

bool Date(std::string_view s) {
  int y, m, d;
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  if (!Num(s, 0, 4, &y) || !Num(s, 5, 2, &m) || !Num(s, 8, 2, &d)) return false;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  int max = kDays[m - 1] + (m == 2 && Leap(y) ? 1 : 0);
  return d <= max;
}

bool Time(std::string_view s) {
  int h, mi, se;
  if (s.size() < 9 || s[2] != ':' || s[5] != ':') return false;
  if (!Num(s, 0, 2, &h) || !Num(s, 3, 2, &mi) || !Num(s, 6, 2, &se)) return false;
  size_t i = 8;
  if (i < s.size() && s[i] == '.') {
    ++i;
    size_t b = i;
    while (i < s.size() && Digit(s[i])) ++i;
    if (i == b) return false;
  }
  if (i >= s.size()) return false;
  int oh = 0, om = 0, sign = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    if (i + 1 != s.size()) return false;
  } else if (s[i] == '+' || s[i] == '-') {
    sign = s[i] == '+' ? 1 : -1;
    if (s.size() != i + 6 || s[i + 3] != ':') return false;
    if (!Num(s, i + 1, 2, &oh) || !Num(s, i + 4, 2, &om)) return false;
    if (oh > 23 || om > 59) return false;
  } else {
    return false;
  }
  if (h > 23 || mi > 59 || se > 60) return false;
  if (se == 60) {
    // A leap second is 23:59:60 in UTC.
    int utc = (h * 60 + mi - sign * (oh * 60 + om)) % 1440;
    if (utc < 0) utc += 1440;
    if (utc != 23 * 60 + 59) return false;
  }
  return true;
}

bool DateTime(std::string_view s) {
  if (s.size() < 20 || (s[10] != 'T' && s[10] != 't')) return false;
  return Date(s.substr(0, 10)) && Time(s.substr(11));
}

bool Ipv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    size_t b = i;
    int v = 0;
    while (i < s.size() && Digit(s[i]) && i - b < 3) v = v * 10 + (s[i++] - '0');
    if (i == b || v > 255) return false;
    if (i - b > 1 && s[b] == '0') return false;
    ++parts;
    if (i == s.size()) break;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
  return parts == 4;
}

bool Ipv6(std::string_view s) {
  if (s.empty() || s.size() > 45) return false;
  int groups = 0;
  bool compressed = false;
  size_t i = 0;
  if (s.substr(0, 2) == "::") {
    compressed = true;
    i = 2;
    if (i == s.size()) return true;
  } else if (s[0] == ':') {
    return false;
  }
  while (i < s.size()) {
    size_t b = i;
    while (i < s.size() && Hex(s[i])) ++i;
    if (i < s.size() && s[i] == '.') {
      // Embedded IPv4 as the last two groups.
      if (!Ipv4(s.substr(b))) return false;
      groups += 2;
      i = s.size();
      break;
    }
    if (i == b || i - b > 4) return false;
    ++groups;
    if (i == s.size()) break;
    if (s[i] != ':') return false;
    ++i;
    if (i < s.size() && s[i] == ':') {
      if (compressed) return false;
      compressed = true;
      ++i;
      if (i == s.size()) break;
    } else if (i == s.size()) {
      return false;
    }
  }
  return compressed ? groups < 8 : groups == 8;
}

bool HostLabel(std::string_view l) {
  if (l.empty() || l.size() > 63) return false;
  if (l.front() == '-' || l.back() == '-') return false;
  for (char c : l) {
    if (!Alpha(c) && !Digit(c) && c != '-') return false;
  }
  // "xn--" A-labels are checked for shape only; other "??--" labels are refused.
  if (l.size() >= 4 && l[2] == '-' && l[3] == '-' && !(l.substr(0, 2) == "xn" || l.substr(0, 2) == "XN")) {
    return false;
  }
  return true;
}

bool Hostname(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t b = 0;
  while (true) {
    size_t e = s.find('.', b);
    std::string_view l = s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
    if (!HostLabel(l)) return false;
    if (e == std::string_view::npos) return true;
    b = e + 1;
  }
}

bool Email(std::string_view s) {
  size_t at = s.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 >= s.size()) return false;
  std::string_view local = s.substr(0, at), domain = s.substr(at + 1);
  if (local.size() > 64) return false;
  if (local.front() == '"') {
    if (local.size() < 2 || local.back() != '"') return false;
    for (size_t i = 1; i + 1 < local.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(local[i]);
      if (c == '\\') {
        ++i;
        continue;
      }
      if (c == '"' || c < 0x20) return false;
    }
  } else {
    if (local.front() == '.' || local.back() == '.') return false;
    static const std::string_view kSpecial = "!#$%&'*+-/=?^_`{|}~.";
    char prev = 0;
    for (char c : local) {
      if (c == '.' && prev == '.') return false;
      if (!Alpha(c) && !Digit(c) && kSpecial.find(c) == std::string_view::npos &&
          static_cast<unsigned char>(c) < 0x80) {
        return false;
      }
      prev = c;
    }
  }
  if (domain.front() == '[') {
    if (domain.back() != ']') return false;
    std::string_view lit = domain.substr(1, domain.size() - 2);
    if (lit.substr(0, 5) == "IPv6:") return Ipv6(lit.substr(5));
    return Ipv4(lit);
  }
  return Hostname(domain);
}

bool Uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < 36; ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return false;
    } else if (!Hex(s[i])) {
      return false;
    }
  }
  return true;
}

// RFC 3986 URI (absolute, with scheme); percent-encodings well formed.
bool Uri(std::string_view s) {
  if (s.empty() || !Alpha(s[0])) return false;
  size_t i = 1;
  while (i < s.size() && (Alpha(s[i]) || Digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')) ++i;
  if (i >= s.size() || s[i] != ':') return false;
  ++i;
  static const std::string_view kAllowed = "-._~!$&'()*+,;=:@/?#[]";
  std::string_view rest = s.substr(i);
  // Authority: "[" and "]" only around an IP literal host.
  size_t auth_end = 0;
  if (rest.substr(0, 2) == "//") {
    auth_end = rest.find_first_of("/?#", 2);
    if (auth_end == std::string_view::npos) auth_end = rest.size();
    std::string_view auth = rest.substr(2, auth_end - 2);
    size_t at = auth.rfind('@');
    std::string_view host = at == std::string_view::npos ? auth : auth.substr(at + 1);
    if (!host.empty() && host[0] == '[') {
      size_t close = host.find(']');
      if (close == std::string_view::npos) return false;
      std::string_view lit = host.substr(1, close - 1);
      if (lit.empty() || ((lit[0] != 'v' && lit[0] != 'V') && !Ipv6(lit))) return false;
      std::string_view after = host.substr(close + 1);
      if (!after.empty()) {
        if (after[0] != ':') return false;
        for (char c : after.substr(1)) if (!Digit(c)) return false;
      }
    } else {
      size_t colon = host.rfind(':');
      if (colon != std::string_view::npos) {
        for (char c : host.substr(colon + 1)) if (!Digit(c)) return false;
      }
      if (host.find_first_of("[]") != std::string_view::npos) return false;
    }
    if (at != std::string_view::npos && auth.substr(0, at).find_first_of("[]") != std::string_view::npos) {
      return false;
    }
  }
  bool in_frag = false;
  for (size_t j = 0; j < rest.size(); ++j) {
    char c = rest[j];
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '%') {
      if (j + 2 >= rest.size() || !Hex(rest[j + 1]) || !Hex(rest[j + 2])) return false;
      j += 2;
      continue;
    }
    if (c == '#') {
      if (in_frag) return false;
      in_frag = true;
      continue;
    }
    if ((c == '[' || c == ']') && j >= auth_end) return false;
    if (u >= 0x80 || u <= 0x20) return false;
    if (!Alpha(c) && !Digit(c) && kAllowed.find(c) == std::string_view::npos) return false;
  }
  return true;
}

}  // namespace

bool CheckSchemaFormat(SchemaFormat f, std::string_view s) {
  switch (f) {
    case SchemaFormat::kDateTime: return DateTime(s);
    case SchemaFormat::kDate: return Date(s);
    case SchemaFormat::kTime: return Time(s);
    case SchemaFormat::kEmail: return Email(s);
    case SchemaFormat::kUuid: return Uuid(s);
    case SchemaFormat::kIpv4: return Ipv4(s);
    case SchemaFormat::kIpv6: return Ipv6(s);
    case SchemaFormat::kUri: return Uri(s);
    case SchemaFormat::kHostname: return Hostname(s);
  }
  return false;
}

const char* SchemaFormatName(SchemaFormat f) {
  switch (f) {
    case SchemaFormat::kDateTime: return "date-time";
    case SchemaFormat::kDate: return "date";
    case SchemaFormat::kTime: return "time";
    case SchemaFormat::kEmail: return "email";
    case SchemaFormat::kUuid: return "uuid";
    case SchemaFormat::kIpv4: return "ipv4";
    case SchemaFormat::kIpv6: return "ipv6";
    case SchemaFormat::kUri: return "uri";
    case SchemaFormat::kHostname: return "hostname";
  }
  return "?";
}

}  // namespace vakt::bytecode
