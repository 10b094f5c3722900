// The Vakt bytecode bundle: the one header that defines it (after re2's
// prog.h and leveldb's log_format.h). The compiler writes this format, the
// verifier checks it, the VM runs it. docs/bytecode.md draws the layout.
//
// A bundle is untrusted until bundle.cc has parsed it and verifier.cc has
// accepted it: every count, index and offset below is checked before use.
//
// All integers are little-endian. The file is:
//
//   Header (kHeaderSize = 64 bytes)
//     [0..8)    magic "VAKTBNDL"
//     [8..10)   u16 format version (kCurrentVersion)
//     [10..12)  u16 flags (0; reserved)
//     [12..16)  u32 section count (== kSectionCount)
//     [16..24)  u64 total file size in bytes
//     [24..56)  SHA-256 over bytes [64..file size) (sections and payload)
//     [56..64)  reserved, zero
//   Section directory: kSectionCount entries of 12 bytes each
//     u32 section id (SectionId, in increasing order, each exactly once)
//     u32 offset from the start of the file
//     u32 length in bytes
//   Section payloads, in directory order, each 8-byte aligned.
//     The layout is canonical: the first section starts at the first 8-byte
//     boundary after the directory, each next one at the first 8-byte
//     boundary after the previous one, padding is zero, and the file ends
//     where the last section ends. A reader refuses any other arrangement.
//
// Section payloads (u32 counts first, then fixed-size records):
//   kStrings   u32 n; n x {u32 offset, u32 length} into the blob; then the blob.
//              Strings are arbitrary bytes; index 0 is always "".
//              Stored back to back in index order: string i starts where
//              string i-1 ends, and the blob is exactly their concatenation.
//   kInts      u32 n; n x i64.
//   kMeta      u32 name string index, u32 compiler version string index,
//              32 bytes SHA-256 of the sources, u32 route count,
//              u32 max route cost. The route count equals kRoutes' count.
//   kRegexes   u32 n; n x {u32 pattern string index}. RE2 syntax, anchored
//              by the compiler as written; compiled once when loaded.
//   kClaimPaths u32 n; n x {u32 first, u32 count} into the path-part list,
//              then u32 m; m x u32 string index (the parts, e.g. "cnf","jkt").
//              Path i's parts follow path i-1's; together they are all m.
//   kRules     u32 n; n x RuleRecord (a requirement's deny: id, status,
//              error code, message).
//   kRoutes    u32 n; n x RouteRecord.
//   kParams    u32 n; n x ParamRecord (route parameters, referenced by routes).
//   kTrie      u32 nodes; nodes x TrieNode; u32 edges; edges x TrieEdge;
//              u32 methods; methods x TrieMethod. Node 0 is the root.
//   kCode      u32 n; n x Instr (8 bytes each). Routes point into it.
//   kIssuers   u32 n; n x IssuerRecord: the token issuers the policy trusts,
//              each with its JWKS text (public keys, parsed when loaded).
//   kAuth      u32 n; n x AuthRecord: what `use fapi2` demands of a route
//              (RouteRecord::auth points here).
#pragma once

#include <cstddef>
#include <cstdint>

namespace vakt::bytecode {

inline constexpr char kMagic[8] = {'V', 'A', 'K', 'T', 'B', 'N', 'D', 'L'};
// Version 2 added the issuer and auth sections (FAPI 2.0).
inline constexpr uint16_t kCurrentVersion = 2;
inline constexpr uint16_t kOldestSupportedVersion = 2;
inline constexpr size_t kHeaderSize = 64;
inline constexpr size_t kDirEntrySize = 12;

// Hard limits a loader enforces whatever the bundle says.
inline constexpr size_t kMaxBundleBytes = 256u << 20;   // 256 MiB
inline constexpr uint32_t kMaxStack = 64;               // VM value stack slots
inline constexpr uint32_t kMaxRouteCost = 1u << 20;     // instructions per route program
inline constexpr uint32_t kMaxParams = 32;              // path parameters per route
inline constexpr uint32_t kMaxClaimPathParts = 16;
inline constexpr uint16_t kMinStatus = 100;
inline constexpr uint16_t kMaxStatus = 599;

enum class SectionId : uint32_t {
  kStrings = 1,
  kInts = 2,
  kMeta = 3,
  kRegexes = 4,
  kClaimPaths = 5,
  kRules = 6,
  kRoutes = 7,
  kParams = 8,
  kTrie = 9,
  kCode = 10,
  kIssuers = 11,
  kAuth = 12,
};
inline constexpr uint32_t kSectionCount = 12;

// Hard limits on the FAPI sections.
inline constexpr uint32_t kMaxIssuers = 64;
inline constexpr uint32_t kMaxLeewaySeconds = 300;
inline constexpr uint32_t kMaxDpopWindowSeconds = 300;
inline constexpr size_t kMaxJwksBytes = 1u << 20;

inline constexpr uint32_t kNone = 0xffffffffu;  // "no index" in u32 fields

// A requirement's deny, named by REQUIRE/DENY/RULE. 16 bytes.
struct RuleRecord {
  uint32_t id;       // string: rule id, e.g. "records.get_record.owner"
  uint32_t error;    // string: error code, e.g. "access_denied" ("" = none)
  uint32_t message;  // string: human-readable description
  uint16_t status;   // HTTP status, kMinStatus..kMaxStatus
  uint16_t flags;    // 0; reserved
};

// One route. 44 bytes.
struct RouteRecord {
  uint32_t name;           // string: e.g. "records.get_record"
  uint32_t method;         // string: "GET", "POST", ...
  uint32_t path_template;  // string: "/v1/patients/{patient_id}"
  uint32_t first_param;    // index into kParams
  uint32_t param_count;    // <= kMaxParams
  uint32_t request_code;   // first instruction of the request program
  uint32_t request_len;    // instructions in it (>= 1, ends in ALLOW or DENY)
  uint32_t response_code;  // first instruction of the response program
  uint32_t response_len;   // 0 = no response rules
  uint32_t cost;           // worst-case instructions (request + response)
  uint32_t auth = kNone;   // index into kAuth (`use fapi2`), or kNone
};

// A trusted token issuer. 24 bytes.
struct IssuerRecord {
  uint32_t name;      // string: declared name, e.g. "healthcare.main"
  uint32_t issuer;    // string: the exact `iss`
  uint32_t audience;  // string: must be in `aud`
  uint32_t jwks;      // string: JWKS JSON, public keys only (<= kMaxJwksBytes)
  uint32_t leeway;    // seconds of clock skew, <= kMaxLeewaySeconds
  uint16_t algs;      // allowed token algorithms: bit i = JwsAlg i (jose.h)
  uint16_t flags;     // kIssuerNotFapi; other bits zero
};
inline constexpr uint16_t kIssuerNotFapi = 1;  // the policy left the FAPI profile

// A route's FAPI 2.0 authentication (fapi_auth.h AuthPolicy). 16 bytes.
struct AuthRecord {
  uint32_t issuer;       // index into kIssuers
  uint32_t scope;        // string: required scopes, space-separated ("" none)
  uint32_t dpop_window;  // seconds a DPoP proof may be old, 1..kMaxDpopWindowSeconds
  uint8_t sender;        // SenderConstraint (fapi_auth.h), 0..3
  uint8_t tls;           // TlsRequirement (fapi_auth.h), 0..2
  uint8_t flags;         // kAuthDpopNonce; other bits zero
  uint8_t reserved;      // zero
};
inline constexpr uint8_t kAuthDpopNonce = 1;

// A path parameter: its name and optional shape. 8 bytes.
struct ParamRecord {
  uint32_t name;   // string
  uint32_t shape;  // regex index the whole segment must match, or kNone
};

// Route trie: literal segments first, then the single parameter child.
// Dispatch is one hash probe per segment: O(path length). 24 bytes.
struct TrieNode {
  uint32_t first_edge;   // index into edges
  uint32_t edge_count;   // literal children, sorted by segment bytes
  uint32_t param_child;  // node for a {parameter} segment, or kNone
  uint32_t param_shape;  // regex index the segment must match, or kNone
  uint32_t first_method; // index into methods
  uint32_t method_count; // routes ending here, sorted by method bytes
};
struct TrieEdge {   // 8 bytes
  uint32_t segment; // string: the literal segment (decoded, no '/')
  uint32_t child;   // node index (> the parent's index: the trie is acyclic)
};
struct TrieMethod {  // 8 bytes
  uint32_t method;   // string
  uint32_t route;    // route index
};

// Runtime value types, also the operand of LOAD_CLAIM / CONVERT.
enum class ValueType : uint8_t {
  kNull = 0,
  kBool = 1,
  kInt = 2,
  kString = 3,
  kDuration = 4,   // seconds
  kTimestamp = 5,  // unix seconds
  kList = 6,       // a list; its element type is the operand's `b` field
  kJson = 7,       // an unconverted JSON value
};
inline constexpr uint8_t kValueTypeCount = 8;

// Request fields for LOAD_REQ (operand a).
enum class RequestField : uint8_t {
  kMethod = 0,      // string
  kPath = 1,        // string: the normalised path (see request.h)
  kBody = 2,        // string: raw body bytes
  kTlsVersion = 3,  // string: "TLSv1.3", "TLSv1.2", ... ("" without TLS)
  kTlsCipher = 4,   // string: IANA or OpenSSL cipher name ("" without TLS)
  kTlsCertThumbprint = 5,  // string: base64url SHA-256 of the client cert DER ("" none)
  kTime = 6,        // timestamp: request time
  kQueryString = 7, // string: the raw query string after '?' ("" none)
  kRoute = 8,       // string: the matched route's name
};
inline constexpr uint8_t kRequestFieldCount = 9;

// Response fields for LOAD_RESP (operand a); only in response programs.
enum class ResponseField : uint8_t {
  kStatus = 0,  // int
  kBody = 1,    // string
};
inline constexpr uint8_t kResponseFieldCount = 2;

// Built-in functions for CALL (operand a); b is the argument count.
enum class Builtin : uint8_t {
  kStartsWith = 0,  // (string, string) -> bool
  kEndsWith = 1,    // (string, string) -> bool
  kContains = 2,    // (string, string) -> bool | (list, x) -> bool
  kLower = 3,       // (string) -> string (ASCII)
  kUpper = 4,       // (string) -> string (ASCII)
  kLen = 5,         // (string) -> int (bytes) | (list) -> int
  kSplit = 6,       // (string, string sep) -> list<string>
  kTrim = 7,        // (string) -> string (ASCII whitespace)
};
inline constexpr uint8_t kBuiltinCount = 8;

// Header/query/claim sources for LOAD_MULTI / HAS (operand a).
enum class Source : uint8_t {
  kHeader = 0,          // c = string index of the lower-case header name
  kQuery = 1,           // c = string index of the parameter name
  kResponseHeader = 2,  // c = string index of the lower-case header name
  kClaim = 3,           // c = claim path index
  kParam = 4,           // c = parameter index within the route
};
inline constexpr uint8_t kSourceCount = 5;

// Instructions are fixed-size: 8 bytes {op, a, b, c}. Programs are straight
// line code with forward jumps only, so each terminates within its length;
// the verifier proves stack depth is consistent at every join and never
// exceeds kMaxStack. "pop x" means the operand stack; "deny(r)" ends the
// program with rule r's deny; an evaluation error (type mismatch on JSON,
// missing value, overflow, ...) ends it with a deny by the rule of the next
// REQUIRE or DENY at or after the failing instruction (the compiler emits
// each condition right before its REQUIRE), else by the last RULE.
enum class Op : uint8_t {
  kNop = 0,         // does nothing
  kPushNull = 1,    // push null
  kPushBool = 2,    // push bool(a != 0)
  kPushInt = 3,     // push ints[c] typed as ValueType a (int, duration, timestamp)
  kPushStr = 4,     // push strings[c]
  kLoadReq = 5,     // push request field RequestField(a)
  kLoadResp = 6,    // push response field ResponseField(a)
  kLoadParam = 7,   // push path parameter c (string); c < route param count
  kLoadFirst = 8,   // push first value of Source(a) named c as string;
                    //   missing -> error. For kClaim: converted to ValueType b
                    //   (b = kList means list of strings), kJson unconverted.
  kLoadAll = 9,     // push list<string> of all values of Source(a) named c
                    //   (empty if absent); a in {kHeader, kQuery, kResponseHeader}
  kHas = 10,        // push bool: Source(a) named c is present
  kConvert = 11,    // pop json, push it converted to ValueType a (b: list elem)
  kField = 12,      // pop json object, push member strings[c] (missing -> error)
  kIndex = 13,      // pop int i, pop list or json array, push element i
  kEq = 14,         // pop y, pop x, push x == y (same type; json compares by value)
  kNe = 15,         // pop y, pop x, push x != y
  kLt = 16,         // pop y, pop x, push x < y (int, duration, timestamp, string)
  kLe = 17,
  kGt = 18,
  kGe = 19,
  kAdd = 20,        // pop y, pop x, push x + y (ints; string concat; ts + dur)
  kSub = 21,        // pop y, pop x, push x - y (ints; ts - ts = dur; ts - dur)
  kMul = 22,        // pop y, pop x, push x * y (overflow -> error)
  kDiv = 23,        // pop y, pop x, push x / y (zero or overflow -> error)
  kMod = 24,        // pop y, pop x, push x % y (zero -> error)
  kNeg = 25,        // pop x, push -x
  kNot = 26,        // pop bool x, push !x
  kIn = 27,         // pop container, pop x, push x in container
                    //   (list membership; substring when both are strings)
  kMatch = 28,      // pop string, push regexes[c] matches it (RE2 partial
                    //   match: unanchored unless the pattern has ^ and $)
  kCall = 29,       // pop b args, push Builtin(a)(args)
  kMakeList = 30,   // pop c values (c <= kMaxStack), push them as a list
  kJump = 31,       // pc = c (c > pc; pc and c count from the program start)
  kJumpIfFalse = 32,       // pop bool; if false pc = c (c > pc)
  kJumpIfFalseOrPop = 33,  // if top is false jump to c keeping it, else pop
  kJumpIfTrueOrPop = 34,   // if top is true jump to c keeping it, else pop
  kRule = 35,       // current rule = c (optional: errors default to it)
  kRequire = 36,    // pop bool; if false deny(c)
  kDeny = 37,       // deny(c); ends the program
  kAllow = 38,      // allow; ends the program
  kPop = 39,        // pop and discard
};
inline constexpr uint8_t kOpCount = 40;

struct Instr {
  Op op;
  uint8_t a;
  uint16_t b;
  uint32_t c;
};
static_assert(sizeof(Instr) == 8, "instructions are 8 bytes on disk");

// Returns the mnemonic of `op` ("PUSH_STR"), or "?" if unknown.
const char* OpName(Op op);

}  // namespace vakt::bytecode
