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
//   kRelations u32 n; n x RelationRecord; then each relation's entry bytes,
//              back to back in record order (RelationRecord::bytes each).
//              Entries are variable-length, in strictly ascending key byte
//              order (so no key repeats):
//                u32 key length, key bytes,
//                u32 value count, value count x {u32 length, bytes}.
//              A string relation has exactly one value per key. The VM
//              indexes the keys in a hash table built once at load.
//   kSchemas   the JSON Schema set, exactly the blob described under "JSON
//              Schema tables" below (bytecode/schema.h loads it), or empty
//              when the policy declares no schema.
//   kBodies    u32 n; n x BodyRecord: the body checks CHECK_BODY runs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vakt::bytecode {

inline constexpr char kMagic[8] = {'V', 'A', 'K', 'T', 'B', 'N', 'D', 'L'};
// Version 2 added the issuer and auth sections (FAPI 2.0); version 3 the
// relations section, RELATION and the JSON body fields, and (before any
// version 3 bundle shipped) the schemas and bodies sections and CHECK_BODY.
inline constexpr uint16_t kCurrentVersion = 3;
inline constexpr uint16_t kOldestSupportedVersion = 3;
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
  kRelations = 13,
  kSchemas = 14,
  kBodies = 15,
};
inline constexpr uint32_t kSectionCount = 15;

// A body check (CHECK_BODY): a request body, or a response body for one
// status key, validated against schema root `root` of kSchemas. 36 bytes.
struct BodyRecord {
  uint32_t root;            // root index in the kSchemas set
  uint32_t rule;            // kRules index: the id and label reported on a deny
                            //   (status, error and description come from the
                            //   outcome, bytecode/body_check.h)
  uint32_t accept;          // string: other media types let through unchecked,
                            //   comma separated ("" = none)
  uint32_t max_bytes;       // body size limit (deny 413 on a request), >= 1
  uint32_t max_depth;       // 1..kMaxBodyDepth
  uint32_t max_properties;  // members of one object, >= 1
  uint32_t max_items;       // items of one array, >= 1
  uint32_t max_string;      // bytes of one string or key, >= 1
  uint16_t status;          // response: 100..599 exact, 1..5 a class ("4XX"),
                            //   0 default; request: 0
  uint8_t response;         // 0 request body, 1 response body
  uint8_t reserved;         // 0
};
inline constexpr uint32_t kMaxBodyDepth = 256;  // schema.h kMaxValidationDepth
inline constexpr uint32_t kMaxBodyGroup = 64;   // records one CHECK_BODY chooses among

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
  uint16_t flags;    // kRuleOwnership; other bits zero
};
inline constexpr uint16_t kRuleOwnership = 1;  // an `owns` rule (for tools and listings)

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

// Relation data (`relation NAME: string = "file.json"`): a table from
// string keys to a string or a list of strings. 16 bytes.
struct RelationRecord {
  uint32_t name;   // string: declared name, e.g. "healthcare.care_teams"
  uint32_t kind;   // RelationKind
  uint32_t count;  // entries, <= kMaxRelationEntries
  uint32_t bytes;  // length of its entry bytes in the section
};
enum class RelationKind : uint32_t {
  kString = 0,  // key -> string (exactly one value per entry)
  kList = 1,    // key -> list<string>
};
inline constexpr uint32_t kMaxRelations = 256;
inline constexpr uint32_t kMaxRelationEntries = 1u << 24;
inline constexpr uint32_t kMaxRelationKeyBytes = 4096;    // a key or one value
inline constexpr uint32_t kMaxRelationValues = 4096;      // values of one list entry
inline constexpr uint32_t kMaxRelationProbe = 64;         // hash probes per lookup

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
  kJson = 9,        // json: the body parsed as JSON (kMaxJsonBodyBytes,
                    //   kMaxJsonBodyDepth, no repeated member names);
                    //   a body that is not such JSON is an error
};
inline constexpr uint8_t kRequestFieldCount = 10;

// Response fields for LOAD_RESP (operand a); only in response programs.
enum class ResponseField : uint8_t {
  kStatus = 0,  // int
  kBody = 1,    // string
  kJson = 2,    // json: the body parsed as JSON (as RequestField::kJson)
};
inline constexpr uint8_t kResponseFieldCount = 3;
inline constexpr size_t kMaxJsonBodyBytes = 4u << 20;  // request.json / response.json
inline constexpr int kMaxJsonBodyDepth = 64;

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
  kRelation = 40,   // pop string key; a = 0: push relation c's value (string
                    //   relation: its string, missing -> error; list
                    //   relation: list<string>, missing -> empty list);
                    //   a = 1: push bool, the key is present
  kCheckBody = 41,  // body checks c .. c+b-1 (b >= 1; all request or all
                    //   response records, b == 1 for a request): a request
                    //   program runs record c on the request body; a
                    //   response program runs the record whose status key
                    //   matches the response status (exact, class, default;
                    //   none: nothing is checked). A failing body denies
                    //   with the record's rule and the outcome's status.
                    //   No stack effect.
};
inline constexpr uint8_t kOpCount = 42;

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

namespace vakt::bytecode {

// ===========================================================================
// JSON Schema tables
//
// A compiled set of JSON Schemas (draft 2020-12), loaded and checked by
// SchemaSet::Load (bytecode/schema.h). Every record is fixed-size and
// little-endian; the blob is, in this order:
//
//   SchemaBlobHeader
//   SchemaNode[node_count]          one per (sub)schema
//   SchemaKeyword[keyword_count]    each node owns a contiguous run
//   uint32_t lists[list_count]      child lists, referenced by (offset, count)
//   SchemaString[string_count]      (offset, length) into the pool
//   SchemaRoot[root_count]          named entry points
//   uint32_t regexes[regex_count]   string index of each RE2 pattern
//   uint32_t numbers[number_count]  string index of each exact decimal literal
//   char pool[pool_bytes]           string bytes
//
// and nothing after. kSchemaNone (0xffffffff) marks an absent index. Every
// index, offset and count is checked on load; a blob that fails any check is
// refused with kCorruption. Constants (enum/const values) are one JSON array,
// stored as the string `const_string` and parsed once on load.
// ===========================================================================

inline constexpr char kSchemaMagic[4] = {'V', 'K', 'S', 'C'};
inline constexpr uint16_t kSchemaVersion = 1;
inline constexpr uint32_t kSchemaNone = 0xffffffffu;

struct SchemaBlobHeader {
  char magic[4];            // kSchemaMagic
  uint16_t version;         // kSchemaVersion
  uint16_t flags;           // 0
  uint32_t node_count;      // >= 1
  uint32_t keyword_count;
  uint32_t list_count;      // uint32 words
  uint32_t string_count;
  uint32_t root_count;
  uint32_t regex_count;
  uint32_t number_count;
  uint32_t const_string;    // string index of the constants array, or kSchemaNone
  uint32_t pool_bytes;
};
static_assert(sizeof(SchemaBlobHeader) == 44);

enum class SchemaNodeKind : uint8_t {
  kFalse = 0,     // boolean schema `false`: nothing is valid
  kTrue = 1,      // boolean schema `true` or `{}`: everything is valid
  kKeywords = 2,  // the node's keywords, all of which must hold
};

// Node flags.
inline constexpr uint8_t kSchemaNodeResource = 1;  // starts a schema resource ($id or
                                                   // document root): pushed on the
                                                   // dynamic scope for $dynamicRef

struct SchemaNode {
  uint32_t first_keyword;   // keywords[first_keyword .. + keyword_count)
  uint16_t keyword_count;
  uint8_t kind;             // SchemaNodeKind
  uint8_t flags;            // kSchemaNode*
  uint32_t location;        // string: "file#/json/pointer" of the schema, for errors
  uint32_t dyn_anchors;     // lists offset of (name string, node) pairs: the
  uint32_t dyn_count;       //   $dynamicAnchors of the resource this node starts
};
static_assert(sizeof(SchemaNode) == 20);

// Keyword kinds, in evaluation order within a node (unevaluated* last).
// Operands a, b, c as commented; "list" is an offset into lists.
enum class SchemaKw : uint16_t {
  kType = 0,                 // a = type mask (kSchemaType*)
  kConst = 1,                // a = constant index
  kEnum = 2,                 // a = first constant index, b = count
  kMinimum = 3,              // a = number index
  kMaximum = 4,              // a = number index
  kExclusiveMinimum = 5,     // a = number index
  kExclusiveMaximum = 6,     // a = number index
  kMultipleOf = 7,           // a = number index (> 0)
  kMinLength = 8,            // a = code points
  kMaxLength = 9,            // a = code points
  kPattern = 10,             // a = regex index
  kFormat = 11,              // a = SchemaFormat (only when asserted)
  kMinItems = 12,            // a = count
  kMaxItems = 13,            // a = count
  kUniqueItems = 14,         // no operands
  kMinProperties = 15,       // a = count
  kMaxProperties = 16,       // a = count
  kRequired = 17,            // list a of b string indices
  kDependentRequired = 18,   // list a of b triples (name string, list offset, count)
  kPropertyNames = 19,       // a = node
  kProperties = 20,          // list a of b (name string, node) pairs, sorted by name
                             //   length, then bytes (SchemaNameLess)
  kPatternProperties = 21,   // list a of b (regex, node) pairs
  kAdditionalProperties = 22,  // a = node (for members matched by neither of the above)
  kDependentSchemas = 23,    // list a of b (name string, node) pairs
  kPrefixItems = 24,         // list a of b nodes
  kItems = 25,               // a = node, b = prefixItems count it starts after
  kContains = 26,            // a = node, b = minContains, c = maxContains (kSchemaNone: none)
  kRef = 27,                 // a = node
  kDynamicRef = 28,          // a = node (static target), b = anchor name string or kSchemaNone
  kAllOf = 29,               // list a of b nodes
  kAnyOf = 30,               // list a of b nodes
  kOneOf = 31,               // list a of b nodes
  kNot = 32,                 // a = node
  kIf = 33,                  // a = if node, b = then node, c = else node (kSchemaNone: absent)
  kUnevaluatedItems = 34,    // a = node
  kUnevaluatedProperties = 35,  // a = node; flags & 1: implied by strict mode
};
inline constexpr uint16_t kSchemaKwCount = 36;

// Type mask bits of kType.
inline constexpr uint32_t kSchemaTypeNull = 1, kSchemaTypeBoolean = 2, kSchemaTypeObject = 4,
                          kSchemaTypeArray = 8, kSchemaTypeNumber = 16, kSchemaTypeString = 32,
                          kSchemaTypeInteger = 64;

enum class SchemaFormat : uint32_t {
  kDateTime = 1, kDate = 2, kTime = 3, kEmail = 4, kUuid = 5,
  kIpv4 = 6, kIpv6 = 7, kUri = 8, kHostname = 9,
};
inline constexpr uint32_t kSchemaFormatMax = 9;

struct SchemaKeyword {
  uint16_t kind;   // SchemaKw
  uint16_t flags;
  uint32_t a, b, c;
};
static_assert(sizeof(SchemaKeyword) == 16);

struct SchemaString {
  uint32_t offset;  // into pool
  uint32_t length;
};
static_assert(sizeof(SchemaString) == 8);

struct SchemaRoot {
  uint32_t name;    // string index; names are unique
  uint32_t node;
};
static_assert(sizeof(SchemaRoot) == 8);

}  // namespace vakt::bytecode
