// Network helpers shared by the agent's decision interfaces: IP address and
// CIDR parsing for "trusted proxy" lists, and the peer strings gRPC reports
// ("ipv4:127.0.0.1:1234", "ipv6:[::1]:1234", "unix:/run/x.sock").
//
// Why: facts a proxy asserts about the client connection (TLS version and
// cipher in a header) may only be believed when the proxy itself is the
// one talking to us; both the Envoy ext_authz service and the HTTP
// forward-auth endpoint check the peer address against operator-configured
// CIDRs with this code.
//
// Addresses are held as 16 bytes; IPv4 is stored IPv4-mapped
// (::ffff:a.b.c.d), so "10.0.0.0/8" also matches "::ffff:10.1.2.3" and
// "::/0" matches every address. Parsing is strict (inet_pton: no leading
// zeros, no shorthand IPv4 forms); a CIDR with host bits set is refused as
// a likely typo. Contains() is O(number of CIDRs); a set holds at most
// kMaxCidrs entries. Thread-safety: a CidrSet is immutable after parsing.
// Tested by tests/agent_ext_authz_test.cc.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/status.h"

namespace vakt::agent {

inline constexpr size_t kMaxCidrs = 1024;

// An IPv4 or IPv6 address (IPv4 as IPv4-mapped IPv6).
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool is_v4 = false;  // written as IPv4 (or IPv4-mapped IPv6)
};

// Parses "192.0.2.1" or "2001:db8::1" (no brackets, no port, no zone).
Result<IpAddress> ParseIp(std::string_view text);

class CidrSet {
 public:
  CidrSet() = default;
  // True if `ip` (textual, as ParseIp takes it) lies in one of the ranges;
  // false for anything that does not parse.
  bool Contains(std::string_view ip) const;
  bool Contains(const IpAddress& ip) const;
  bool empty() const { return ranges_.empty(); }
  size_t size() const { return ranges_.size(); }

 private:
  friend Result<CidrSet> ParseCidrs(const std::vector<std::string>& cidrs);
  struct Range {
    IpAddress base;  // host bits zero
    uint8_t prefix;  // 0..128, over the 16-byte form
  };
  std::vector<Range> ranges_;
};

// Parses "10.0.0.0/8", "::1/128", "127.0.0.1" (a host: /32 or /128).
// Errors (kInvalidArgument) name the offending entry; more than kMaxCidrs
// entries is kResourceExhausted.
Result<CidrSet> ParseCidrs(const std::vector<std::string>& cidrs);
// The same for a comma- or space-separated list (a flag value).
Result<CidrSet> ParseCidrList(std::string_view list);

// What a gRPC peer string names.
struct GrpcPeer {
  enum class Kind : uint8_t { kIp, kUnix, kOther };
  Kind kind = Kind::kOther;
  std::string ip;  // kIp: the address without brackets, port or zone
};

// Parses grpc::ServerContext::peer(): "ipv4:ADDR:PORT", "ipv6:[ADDR]:PORT"
// (brackets possibly percent-encoded, "%5B::1%5D"), "unix:PATH" and
// "unix-abstract:NAME". Anything else, or a malformed address, is
// kInvalidArgument.
Result<GrpcPeer> ParseGrpcPeer(std::string_view peer);

}  // namespace vakt::agent
