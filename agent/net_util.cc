// IP, CIDR and gRPC peer parsing for the agent (net_util.h).
#include "agent/net_util.h"

#include <arpa/inet.h>

#include <cstring>

namespace vakt::agent {
namespace {

constexpr size_t kMaxAddressText = 64;  // longer than any IPv6 text form

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

bool IsV4Mapped(const std::array<uint8_t, 16>& b) {
  return std::memcmp(b.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
}

// Percent-decodes `in` (gRPC URI-encodes brackets and colons of IPv6
// peers). False on a bad escape.
bool PercentDecode(std::string_view in, std::string* out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool AllDigits(std::string_view s) {
  if (s.empty() || s.size() > 5) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

Result<IpAddress> ParseIp(std::string_view text) {
  if (text.empty() || text.size() > kMaxAddressText || text.find('\0') != std::string_view::npos) {
    return InvalidArgument("not an IP address: `" + std::string(text.substr(0, 80)) + "`");
  }
  char buf[kMaxAddressText + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip;
  in_addr v4;
  if (inet_pton(AF_INET, buf, &v4) == 1) {
    std::memcpy(ip.bytes.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
    std::memcpy(ip.bytes.data() + 12, &v4, 4);
    ip.is_v4 = true;
    return ip;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, buf, &v6) == 1) {
    std::memcpy(ip.bytes.data(), &v6, 16);
    ip.is_v4 = IsV4Mapped(ip.bytes);
    return ip;
  }
  return InvalidArgument("not an IP address: `" + std::string(text) + "`");
}

bool CidrSet::Contains(std::string_view ip) const {
  if (ranges_.empty()) return false;
  auto parsed = ParseIp(ip);
  return parsed.ok() && Contains(*parsed);
}

bool CidrSet::Contains(const IpAddress& ip) const {
  for (const Range& r : ranges_) {
    size_t full = r.prefix / 8;
    if (std::memcmp(ip.bytes.data(), r.base.bytes.data(), full) != 0) continue;
    unsigned rest = r.prefix % 8;
    if (rest != 0) {
      uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
      if ((ip.bytes[full] & mask) != r.base.bytes[full]) continue;
    }
    return true;
  }
  return false;
}

Result<CidrSet> ParseCidrs(const std::vector<std::string>& cidrs) {
  if (cidrs.size() > kMaxCidrs) {
    return ResourceExhausted("more than " + std::to_string(kMaxCidrs) + " CIDRs");
  }
  CidrSet set;
  set.ranges_.reserve(cidrs.size());
  for (const std::string& entry : cidrs) {
    std::string_view text = entry;
    std::string_view addr = text;
    int prefix = -1;
    if (size_t slash = text.find('/'); slash != std::string_view::npos) {
      addr = text.substr(0, slash);
      std::string_view len = text.substr(slash + 1);
      if (len.empty() || len.size() > 3) {
        return InvalidArgument("bad prefix length in CIDR `" + entry + "`");
      }
      prefix = 0;
      for (char c : len) {
        if (c < '0' || c > '9') return InvalidArgument("bad prefix length in CIDR `" + entry + "`");
        prefix = prefix * 10 + (c - '0');
      }
    }
    auto ip = ParseIp(addr);
    if (!ip.ok()) return InvalidArgument("bad address in CIDR `" + entry + "`");
    // A CIDR written as IPv4 counts its prefix over the 32 bits of IPv4.
    bool written_v4 = addr.find(':') == std::string_view::npos;
    int max = written_v4 ? 32 : 128;
    if (prefix < 0) prefix = max;
    if (prefix > max)
      return InvalidArgument("prefix length over " + std::to_string(max) + " in CIDR `" + entry +
                             "`");
    if (written_v4) prefix += 96;
    CidrSet::Range r{*ip, static_cast<uint8_t>(prefix)};
    // Host bits must be zero: "10.0.0.1/8" is more likely a typo than intent.
    for (int bit = prefix; bit < 128; ++bit) {
      if (r.base.bytes[bit / 8] & (0x80 >> (bit % 8))) {
        return InvalidArgument("CIDR `" + entry + "` has host bits set");
      }
    }
    set.ranges_.push_back(r);
  }
  return set;
}

Result<CidrSet> ParseCidrList(std::string_view list) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < list.size()) {
    while (i < list.size() && (list[i] == ',' || list[i] == ' ' || list[i] == '\t')) ++i;
    size_t start = i;
    while (i < list.size() && list[i] != ',' && list[i] != ' ' && list[i] != '\t') ++i;
    if (i > start) {
      if (parts.size() >= kMaxCidrs) {
        return ResourceExhausted("more than " + std::to_string(kMaxCidrs) + " CIDRs");
      }
      parts.emplace_back(list.substr(start, i - start));
    }
  }
  return ParseCidrs(parts);
}

Result<GrpcPeer> ParseGrpcPeer(std::string_view peer) {
  GrpcPeer out;
  if (peer.starts_with("unix:") || peer.starts_with("unix-abstract:")) {
    out.kind = GrpcPeer::Kind::kUnix;
    return out;
  }
  bool v4 = peer.starts_with("ipv4:");
  bool v6 = peer.starts_with("ipv6:");
  if (!v4 && !v6) return InvalidArgument("unsupported gRPC peer");
  if (peer.size() > 5 + 3 * kMaxAddressText) return InvalidArgument("gRPC peer too long");
  std::string rest;
  if (!PercentDecode(peer.substr(5), &rest)) return InvalidArgument("bad escape in gRPC peer");
  std::string_view r = rest;
  std::string_view addr, port;
  if (v4) {
    size_t colon = r.rfind(':');
    if (colon == std::string_view::npos) return InvalidArgument("gRPC peer without port");
    addr = r.substr(0, colon);
    port = r.substr(colon + 1);
  } else {
    if (!r.starts_with('[')) return InvalidArgument("IPv6 gRPC peer without brackets");
    size_t close = r.find(']');
    if (close == std::string_view::npos || close + 1 >= r.size() || r[close + 1] != ':') {
      return InvalidArgument("malformed IPv6 gRPC peer");
    }
    addr = r.substr(1, close - 1);
    port = r.substr(close + 2);
    if (size_t zone = addr.find('%'); zone != std::string_view::npos) addr = addr.substr(0, zone);
  }
  if (!AllDigits(port)) return InvalidArgument("bad port in gRPC peer");
  auto ip = ParseIp(addr);
  if (!ip.ok()) return ip.status();
  if (v4 != ip->is_v4 && v4) return InvalidArgument("ipv4 gRPC peer with an IPv6 address");
  out.kind = GrpcPeer::Kind::kIp;
  out.ip = std::string(addr);
  return out;
}

}  // namespace vakt::agent
