// Unit tests of the JSON Schema engine: exact numbers (json_number), every
// keyword positive and negative, error details, limits and the evaluation
// budget, hostile instances, the table loader against corrupted blobs, $ref
// cycles, file refs, OpenAPI 3.0/3.1 in JSON and YAML, strict mode, format
// assertion and compile-error messages (compiler/schema_compile,
// compiler/openapi, bytecode/schema).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "bytecode/json_number.h"
#include "bytecode/schema.h"
#include "compiler/schema_compile.h"

namespace vakt {
namespace {

using bytecode::LimitKind;
using bytecode::SchemaSet;
using bytecode::ValidationLimits;
using bytecode::ValidationOutcome;
using bytecode::ValidationResult;
using compiler::SchemaCompiler;
using compiler::SchemaOptions;

std::shared_ptr<const SchemaSet> Build(SchemaCompiler& sc) {
  auto bytes = sc.Build();
  EXPECT_TRUE(bytes.ok()) << bytes.status().ToString();
  if (!bytes.ok()) return nullptr;
  auto set = SchemaSet::Load(*bytes);
  EXPECT_TRUE(set.ok()) << set.status().ToString();
  return set.ok() ? *set : nullptr;
}

std::shared_ptr<const SchemaSet> CompileSchema(const std::string& schema, SchemaOptions opts = {}) {
  SchemaCompiler sc;
  Status st = sc.AddJsonText("s", schema, opts, "s.json");
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (!st.ok()) return nullptr;
  return Build(sc);
}

ValidationResult Check(const SchemaSet& set, const std::string& instance,
                       const ValidationLimits& limits = {}) {
  bytecode::ValidationScratch scratch;
  return bytecode::Validate(set, 0, instance, limits, scratch);
}

std::string CompileError(const std::string& schema, SchemaOptions opts = {}) {
  SchemaCompiler sc;
  Status st = sc.AddJsonText("s", schema, opts, "record.json");
  return st.ok() ? "" : st.message();
}

// ---------------------------------------------------------------------------
// Exact numbers.

bytecode::Decimal D(const std::string& s) {
  bytecode::Decimal d;
  EXPECT_TRUE(bytecode::ParseDecimal(s, &d)) << s;
  return d;
}

TEST(SchemaNumber, ParseAndCompare) {
  EXPECT_EQ(bytecode::CompareDecimal(D("1.0"), D("1")), 0);
  EXPECT_EQ(bytecode::CompareDecimal(D("9007199254740993"), D("9007199254740992")), 1);
  EXPECT_EQ(bytecode::CompareDecimal(D("-0.5"), D("-0.25")), -1);
  EXPECT_EQ(bytecode::CompareDecimal(D("1e3"), D("1000")), 0);
  EXPECT_EQ(bytecode::CompareDecimal(D("-0"), D("0")), 0);
  EXPECT_EQ(bytecode::CompareDecimal(bytecode::DecimalFromDouble(0.07), D("0.07")), 0);
  EXPECT_EQ(bytecode::CompareDecimal(bytecode::DecimalFromUint64(18446744073709551615ull),
                                     D("18446744073709551615")), 0);
  EXPECT_EQ(bytecode::CompareDecimal(bytecode::DecimalFromInt64(INT64_MIN),
                                     D("-9223372036854775808")), 0);
  bytecode::Decimal d;
  EXPECT_FALSE(bytecode::ParseDecimal("01", &d));
  EXPECT_FALSE(bytecode::ParseDecimal("1.", &d));
  EXPECT_FALSE(bytecode::ParseDecimal("1e999999999", &d));
  EXPECT_FALSE(bytecode::ParseDecimal(std::string(70, '1'), &d));
  EXPECT_TRUE(bytecode::ParseDecimal("1" + std::string(200, '0'), &d));
}

TEST(SchemaNumber, MultipleOfExact) {
  bool exact;
  EXPECT_TRUE(bytecode::IsMultipleOf(bytecode::DecimalFromDouble(0.07), D("0.01"), &exact));
  EXPECT_TRUE(exact);
  EXPECT_TRUE(bytecode::IsMultipleOf(bytecode::DecimalFromDouble(19.99), D("0.01"), &exact));
  EXPECT_FALSE(bytecode::IsMultipleOf(bytecode::DecimalFromDouble(0.075), D("0.01"), &exact));
  EXPECT_TRUE(bytecode::IsMultipleOf(bytecode::DecimalFromDouble(0.0003), D("0.0001"), &exact));
  EXPECT_FALSE(bytecode::IsMultipleOf(D("1e308"), D("0.123456789"), &exact));
  EXPECT_TRUE(bytecode::IsMultipleOf(D("1e308"), D("2"), &exact));
  EXPECT_TRUE(bytecode::IsMultipleOf(D("0"), D("3"), &exact));
}

TEST(SchemaNumber, ExactComparisonsInSchemas) {
  auto set = CompileSchema(R"({"maximum": 9007199254740992})");
  ASSERT_TRUE(set);
  EXPECT_TRUE(Check(*set, "9007199254740992").valid());
  EXPECT_FALSE(Check(*set, "9007199254740993").valid());  // 2^53 + 1: a double would say equal
  set = CompileSchema(R"({"exclusiveMinimum": 0.1})");
  EXPECT_FALSE(Check(*set, "0.1").valid());
  EXPECT_TRUE(Check(*set, "0.10000000000000001e0").valid() == false);  // same double as 0.1
  EXPECT_TRUE(Check(*set, "0.1000000000000001").valid());
  set = CompileSchema(R"({"multipleOf": 0.01})");
  EXPECT_TRUE(Check(*set, "19.99").valid());
  EXPECT_TRUE(Check(*set, "0.07").valid());
  EXPECT_FALSE(Check(*set, "0.075").valid());
  set = CompileSchema(R"({"type": "integer"})");
  EXPECT_TRUE(Check(*set, "1.0").valid());
  EXPECT_TRUE(Check(*set, "18446744073709551615").valid());
  EXPECT_FALSE(Check(*set, "1.5").valid());
  set = CompileSchema(R"({"minimum": 18446744073709551615})");
  EXPECT_TRUE(Check(*set, "18446744073709551615").valid());
  EXPECT_FALSE(Check(*set, "18446744073709551614").valid());
  // Beyond 64-bit integers: refused, never rounded.
  auto r = Check(*set, "123456789012345678901234567890");
  EXPECT_EQ(r.outcome, ValidationOutcome::kOverLimit);
  EXPECT_EQ(r.limit, LimitKind::kNumberRange);
  r = Check(*set, "1e400");
  EXPECT_EQ(r.limit, LimitKind::kNumberRange);
  r = Check(*set, "[01]");
  EXPECT_EQ(r.outcome, ValidationOutcome::kMalformed);
}

// ---------------------------------------------------------------------------
// Every keyword, valid and invalid.

struct Case {
  const char* schema;
  const char* instance;
  bool valid;
};

TEST(SchemaKeywords, EveryKeyword) {
  const Case kCases[] = {
      {R"({"type": "string"})", R"("x")", true},
      {R"({"type": "string"})", "1", false},
      {R"({"type": ["integer", "null"]})", "null", true},
      {R"({"type": ["integer", "null"]})", "1.5", false},
      {R"({"type": "number"})", "1", true},
      {R"({"type": "object"})", "[]", false},
      {R"({"type": "array"})", "[]", true},
      {R"({"type": "boolean"})", "false", true},
      {R"({"enum": [1, "a", {"b": [null]}]})", R"({"b": [null]})", true},
      {R"({"enum": [1, "a"]})", "1.0", true},
      {R"({"enum": [1, "a"]})", "true", false},
      {R"({"const": {"a": [1, 2]}})", R"({"a": [1.0, 2]})", true},
      {R"({"const": {"a": [1, 2]}})", R"({"a": [2, 1]})", false},
      {R"({"const": false})", "0", false},
      {R"({"multipleOf": 3})", "9", true},
      {R"({"multipleOf": 3})", "10", false},
      {R"({"minimum": 5})", "5", true},
      {R"({"minimum": 5})", "4.99", false},
      {R"({"maximum": 5})", "5.01", false},
      {R"({"exclusiveMinimum": 5})", "5", false},
      {R"({"exclusiveMaximum": 5})", "4.9", true},
      {R"({"exclusiveMaximum": 5})", "5", false},
      {R"({"minLength": 2})", "\"\u00e9\u00e9\"", true},  // two code points, four bytes
      {R"({"minLength": 3})", "\"\u00e9\u00e9\"", false},
      {R"({"maxLength": 2})", "\"\u00e9\u00e9\"", true},
      {R"({"maxLength": 1})", "\"ab\"", false},
      {R"({"pattern": "b+"})", R"("abbc")", true},   // unanchored, like ECMA-262
      {R"({"pattern": "^b+$"})", R"("abbc")", false},
      {R"({"pattern": "^\\p{Letter}+$"})", "\"\u00e9t\u00e9\"", true},
      {R"({"items": {"type": "integer"}})", "[1, 2]", true},
      {R"({"items": {"type": "integer"}})", "[1, \"2\"]", false},
      {R"({"prefixItems": [{"type": "string"}], "items": false})", R"(["a"])", true},
      {R"({"prefixItems": [{"type": "string"}], "items": false})", R"(["a", 1])", false},
      {R"({"prefixItems": [{"type": "string"}]})", R"([1])", false},
      {R"({"contains": {"const": 2}})", "[1, 2]", true},
      {R"({"contains": {"const": 2}})", "[1, 3]", false},
      {R"({"contains": {"const": 2}, "minContains": 2})", "[2, 2]", true},
      {R"({"contains": {"const": 2}, "minContains": 2})", "[2, 1]", false},
      {R"({"contains": {"const": 2}, "maxContains": 1})", "[2, 2]", false},
      {R"({"contains": {"const": 2}, "minContains": 0})", "[]", true},
      {R"({"minItems": 2})", "[1]", false},
      {R"({"maxItems": 1})", "[1]", true},
      {R"({"maxItems": 1})", "[1, 2]", false},
      {R"({"uniqueItems": true})", "[1, 2, {\"a\": 1}]", true},
      {R"({"uniqueItems": true})", "[1, {\"a\": 1, \"b\": 2}, {\"b\": 2, \"a\": 1.0}]", false},
      {R"({"uniqueItems": true})", "[1, 1.0]", false},
      {R"({"properties": {"a": {"type": "string"}}})", R"({"a": "x", "b": 1})", true},
      {R"({"properties": {"a": {"type": "string"}}})", R"({"a": 1})", false},
      {R"({"patternProperties": {"^x-": {"type": "integer"}}})", R"({"x-a": 1})", true},
      {R"({"patternProperties": {"^x-": {"type": "integer"}}})", R"({"x-a": "1"})", false},
      {R"({"properties": {"a": true}, "additionalProperties": false})", R"({"a": 1})", true},
      {R"({"properties": {"a": true}, "additionalProperties": false})", R"({"a": 1, "b": 2})", false},
      {R"({"patternProperties": {"^b": true}, "additionalProperties": {"type": "string"}})", R"({"b": 1, "c": "x"})", true},
      {R"({"required": ["a", "b"]})", R"({"a": 1, "b": 2})", true},
      {R"({"required": ["a", "b"]})", R"({"a": 1})", false},
      {R"({"required": ["a"]})", "[]", true},
      {R"({"dependentRequired": {"a": ["b"]}})", R"({"a": 1, "b": 2})", true},
      {R"({"dependentRequired": {"a": ["b"]}})", R"({"a": 1})", false},
      {R"({"dependentRequired": {"a": ["b"]}})", R"({"c": 1})", true},
      {R"({"dependentSchemas": {"a": {"required": ["b"]}}})", R"({"a": 1})", false},
      {R"({"dependentSchemas": {"a": {"required": ["b"]}}})", R"({"b": 1})", true},
      {R"({"propertyNames": {"maxLength": 2}})", R"({"ab": 1})", true},
      {R"({"propertyNames": {"maxLength": 2}})", R"({"abc": 1})", false},
      {R"({"minProperties": 1})", "{}", false},
      {R"({"maxProperties": 1})", R"({"a": 1, "b": 2})", false},
      {R"({"allOf": [{"minimum": 1}, {"maximum": 3}]})", "2", true},
      {R"({"allOf": [{"minimum": 1}, {"maximum": 3}]})", "4", false},
      {R"({"anyOf": [{"type": "string"}, {"minimum": 3}]})", "4", true},
      {R"({"anyOf": [{"type": "string"}, {"minimum": 3}]})", "2", false},
      {R"({"oneOf": [{"minimum": 3}, {"maximum": 5}]})", "2", true},
      {R"({"oneOf": [{"minimum": 3}, {"maximum": 5}]})", "4", false},
      {R"({"oneOf": [{"minimum": 3}, {"maximum": 1}]})", "2", false},
      {R"({"not": {"type": "string"}})", "1", true},
      {R"({"not": {"type": "string"}})", R"("a")", false},
      {R"({"if": {"minimum": 10}, "then": {"multipleOf": 2}, "else": {"multipleOf": 3}})", "12", true},
      {R"({"if": {"minimum": 10}, "then": {"multipleOf": 2}, "else": {"multipleOf": 3}})", "11", false},
      {R"({"if": {"minimum": 10}, "then": {"multipleOf": 2}, "else": {"multipleOf": 3}})", "9", true},
      {R"({"if": {"minimum": 10}, "then": {"multipleOf": 2}, "else": {"multipleOf": 3}})", "8", false},
      {R"({"properties": {"a": true}, "allOf": [{"properties": {"b": true}}], "unevaluatedProperties": false})", R"({"a": 1, "b": 2})", true},
      {R"({"properties": {"a": true}, "allOf": [{"properties": {"b": true}}], "unevaluatedProperties": false})", R"({"a": 1, "c": 2})", false},
      {R"({"anyOf": [{"properties": {"a": {"const": 1}}}, {"properties": {"b": true}}], "unevaluatedProperties": false})", R"({"a": 2, "b": 1})", false},
      {R"({"$ref": "#/$defs/t", "$defs": {"t": {"properties": {"x": true}}}, "unevaluatedProperties": false})", R"({"x": 1})", true},
      {R"({"prefixItems": [true], "unevaluatedItems": false})", "[1]", true},
      {R"({"prefixItems": [true], "unevaluatedItems": false})", "[1, 2]", false},
      {R"({"contains": {"const": 2}, "unevaluatedItems": false})", "[2, 2]", true},
      {R"({"contains": {"const": 2}, "unevaluatedItems": false})", "[2, 3]", false},
      {"true", "{}", true},
      {"false", "{}", false},
      {R"({"properties": {"a": false}})", R"({"a": null})", false},
      {R"({"$defs": {"p": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/p"}}})", R"({"a": "1"})", false},
      {R"({"$defs": {"p": {"$anchor": "pos", "minimum": 0}}, "items": {"$ref": "#pos"}})", "[1, -1]", false},
      {R"({"$id": "http://x.test/root", "$defs": {"p": {"$id": "p", "type": "string"}}, "$ref": "p"})", "1", false},
      {R"({"format": "ipv4"})", R"("not an ip")", true},  // format annotates unless asserted
      {R"({"unknownKeyword": {"type": "string"}})", "1", true},
      {R"({"default": 5, "title": "t", "description": "d", "examples": [1], "$comment": "c"})", "\"x\"", true},
  };
  for (const auto& c : kCases) {
    auto set = CompileSchema(c.schema);
    ASSERT_TRUE(set) << c.schema;
    auto r = Check(*set, c.instance);
    EXPECT_EQ(r.valid(), c.valid) << c.schema << " on " << c.instance << ": " << r.ToString();
    if (!c.valid) {
      EXPECT_EQ(r.outcome, ValidationOutcome::kInvalid) << c.schema;
    }
  }
}

TEST(SchemaKeywords, DynamicRef) {
  auto set = CompileSchema(R"({
    "$id": "https://example.test/tree", "$dynamicAnchor": "node", "type": "object",
    "properties": {"data": true, "children": {"type": "array", "items": {"$dynamicRef": "#node"}}},
    "$defs": {"strict": {"$id": "https://example.test/strict-tree", "$dynamicAnchor": "node",
                          "$ref": "tree", "unevaluatedProperties": false}}})");
  ASSERT_TRUE(set);
  EXPECT_TRUE(Check(*set, R"({"children": [{"daat": 1}]})").valid());
  SchemaCompiler sc;
  ASSERT_TRUE(sc.AddJsonText("s", R"({
    "$id": "https://example.test/strict-tree", "$dynamicAnchor": "node",
    "$ref": "tree", "unevaluatedProperties": false,
    "$defs": {"t": {"$id": "https://example.test/tree", "$dynamicAnchor": "node", "type": "object",
    "properties": {"data": true, "children": {"type": "array", "items": {"$dynamicRef": "#node"}}}}}})",
                             {}).ok());
  auto strict = Build(sc);
  ASSERT_TRUE(strict);
  EXPECT_FALSE(Check(*strict, R"({"children": [{"daat": 1}]})").valid());
  EXPECT_TRUE(Check(*strict, R"({"children": [{"data": 1}]})").valid());
}

TEST(SchemaKeywords, ErrorDetails) {
  auto set = CompileSchema(R"({"properties": {"items": {"type": "array", "items": {"properties": {"qty": {"type": "integer", "minimum": 1}}}}}})");
  ASSERT_TRUE(set);
  auto r = Check(*set, R"({"items": [{"qty": 2}, {"qty": 0}]})");
  EXPECT_EQ(r.outcome, ValidationOutcome::kInvalid);
  EXPECT_EQ(r.keyword, "minimum");
  EXPECT_EQ(r.instance_pointer, "/items/1/qty");
  EXPECT_EQ(r.schema_location, "s.json#/properties/items/items/properties/qty/minimum");
  EXPECT_EQ(r.message, "number is less than 1");
  EXPECT_EQ(r.ToString(), "invalid: minimum at /items/1/qty (s.json#/properties/items/items/properties/qty/minimum): number is less than 1");
  set = CompileSchema(R"({"required": ["a/b"], "properties": {"x~y": {"type": "string"}}})");
  r = Check(*set, R"({"x~y": 1, "a/b": 1})");
  EXPECT_EQ(r.keyword, "type");
  EXPECT_EQ(r.instance_pointer, "/x~0y");
  r = Check(*set, R"({})");
  EXPECT_EQ(r.keyword, "required");
  EXPECT_EQ(r.message, "required property `a/b` is missing");
  set = CompileSchema(R"({"anyOf": [{"type": "string"}, {"type": "integer"}]})");
  r = Check(*set, "1.5");
  EXPECT_EQ(r.keyword, "anyOf");
  EXPECT_EQ(r.instance_pointer, "");
}

TEST(SchemaKeywords, FormatAssertion) {
  SchemaOptions fa;
  fa.format_assertion = true;
  const std::pair<const char*, std::pair<const char*, const char*>> kFormats[] = {
      {"date-time", {"2024-02-29T12:00:00.5Z", "2023-02-29T12:00:00Z"}},
      {"date", {"2024-01-31", "2024-1-31"}},
      {"time", {"23:59:60Z", "24:00:00Z"}},
      {"email", {"anna@example.no", "anna@@example.no"}},
      {"uuid", {"2eb8aa08-aa98-11ea-b4aa-73b441d16380", "2eb8aa08aa9811eab4aa73b441d16380"}},
      {"ipv4", {"192.168.0.1", "192.168.0.01"}},
      {"ipv6", {"::ffff:192.168.0.1", "1:2:3:4:5:6:7:8:9"}},
      {"uri", {"https://example.no/a?b#c", "//example.no/relative"}},
      {"hostname", {"api.example.no", "-bad.example.no"}},
  };
  for (const auto& [name, cases] : kFormats) {
    auto set = CompileSchema(std::string(R"({"format": ")") + name + "\"}", fa);
    ASSERT_TRUE(set) << name;
    EXPECT_TRUE(Check(*set, std::string("\"") + cases.first + "\"").valid()) << name;
    auto r = Check(*set, std::string("\"") + cases.second + "\"");
    EXPECT_FALSE(r.valid()) << name << " " << cases.second;
    EXPECT_EQ(r.keyword, "format");
    EXPECT_TRUE(Check(*set, "12").valid()) << name;  // formats apply to strings only
  }
  EXPECT_EQ(CompileError(R"({"format": "credit-card"})", fa),
            "record.json: #/format: unknown format `credit-card` (asserted formats: date-time, "
            "date, time, email, uuid, ipv4, ipv6, uri, hostname)");
  EXPECT_EQ(CompileError(R"({"format": "credit-card"})"), "");  // an annotation otherwise
}

// ---------------------------------------------------------------------------
// Strict mode.

TEST(SchemaStrict, RefusesUnknownPropertiesEverywhere) {
  SchemaOptions strict;
  strict.strict = true;
  auto set = CompileSchema(R"({
    "type": "object",
    "properties": {"text": {"type": "string"},
                   "author": {"type": "object", "properties": {"id": {"type": "string"}}},
                   "meta": {"type": "object", "additionalProperties": true}},
    "allOf": [{"properties": {"tags": {"type": "array"}}}],
    "required": ["text"]})", strict);
  ASSERT_TRUE(set);
  EXPECT_TRUE(Check(*set, R"({"text": "a", "tags": [], "meta": {"anything": 1}})").valid());
  auto r = Check(*set, R"({"text": "a", "role": "admin"})");
  EXPECT_EQ(r.keyword, "unevaluatedProperties");
  EXPECT_EQ(r.instance_pointer, "/role");
  EXPECT_EQ(r.message, "unknown property `role` is not allowed (strict mode)");
  r = Check(*set, R"({"text": "a", "author": {"id": "x", "admin": true}})");
  EXPECT_EQ(r.instance_pointer, "/author/admin");
  // The same schema without strict mode is open.
  auto open = CompileSchema(R"({"type": "object", "properties": {"text": {"type": "string"}}})");
  EXPECT_TRUE(Check(*open, R"({"text": "a", "role": "admin"})").valid());
}

// ---------------------------------------------------------------------------
// Limits, the evaluation budget and hostile instances.

TEST(SchemaLimits, StructuralLimits) {
  auto set = CompileSchema("true");
  ASSERT_TRUE(set);
  ValidationLimits lim;
  lim.max_body_bytes = 10;
  EXPECT_EQ(Check(*set, R"({"a": "0123456789"})", lim).limit, LimitKind::kBodyBytes);
  lim = {};
  lim.max_depth = 3;
  EXPECT_TRUE(Check(*set, "[[[1]]]", lim).valid());
  EXPECT_EQ(Check(*set, "[[[[1]]]]", lim).limit, LimitKind::kDepth);
  // A policy cannot lift the depth beyond the recursion bound.
  lim.max_depth = 1000000;
  std::string deep(bytecode::kMaxValidationDepth + 1, '[');
  deep += std::string(bytecode::kMaxValidationDepth + 1, ']');
  EXPECT_EQ(Check(*set, deep, lim).limit, LimitKind::kDepth);
  // Alternating limits on one scratch reuse the parser.
  bytecode::ValidationScratch scratch;
  ValidationLimits shallow, deep_ok;
  shallow.max_depth = 2;
  deep_ok.max_depth = 10;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(bytecode::Validate(*set, 0, "[[[1]]]", shallow, scratch).limit, LimitKind::kDepth);
    EXPECT_TRUE(bytecode::Validate(*set, 0, "[[[1]]]", deep_ok, scratch).valid());
  }
  lim = {};
  lim.max_properties = 2;
  EXPECT_TRUE(Check(*set, R"({"a": 1, "b": 2})", lim).valid());
  EXPECT_EQ(Check(*set, R"([{"a": 1, "b": 2, "c": 3}])", lim).limit, LimitKind::kProperties);
  lim = {};
  lim.max_items = 2;
  EXPECT_EQ(Check(*set, R"({"x": [1, 2, 3]})", lim).limit, LimitKind::kItems);
  lim = {};
  lim.max_string_bytes = 4;
  EXPECT_TRUE(Check(*set, R"("abcd")", lim).valid());
  EXPECT_EQ(Check(*set, R"(["abcde"])", lim).limit, LimitKind::kStringLength);
  EXPECT_EQ(Check(*set, R"({"abcde": 1})", lim).limit, LimitKind::kStringLength);
}

TEST(SchemaLimits, EvaluationBudget) {
  // 2^30 paths through nested anyOfs that all fail: the budget stops it.
  std::string s = R"({"$ref": "#/$defs/l30", "$defs": {"l0": {"type": "string"})";
  for (int i = 1; i <= 30; ++i) {
    std::string prev = "{\"$ref\": \"#/$defs/l" + std::to_string(i - 1) + "\"}";
    s += ", \"l" + std::to_string(i) + "\": {\"anyOf\": [" + prev + ", " + prev + "]}";
  }
  s += "}}";
  SchemaCompiler sc;
  ASSERT_TRUE(sc.AddJsonText("s", s, {}).ok());
  auto set = Build(sc);
  ASSERT_TRUE(set);
  auto r = Check(*set, "1");
  EXPECT_EQ(r.outcome, ValidationOutcome::kOverLimit);
  EXPECT_EQ(r.limit, LimitKind::kEvaluations);
  // A $ref cycle that consumes no input fails closed, as does `not` of it.
  for (const char* cyc : {R"({"$ref": "#"})", R"({"not": {"$ref": "#"}})",
                          R"({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"anyOf": [{"$ref": "#/$defs/a"}]}}, "$ref": "#/$defs/a"})"}) {
    auto c = CompileSchema(cyc);
    ASSERT_TRUE(c) << cyc;
    r = Check(*c, "{}");
    EXPECT_EQ(r.outcome, ValidationOutcome::kOverLimit) << cyc;
    EXPECT_EQ(r.limit, LimitKind::kEvaluations) << cyc;
  }
  // The deepest instance allowed, through a recursive schema: bounded stack.
  auto rec = CompileSchema(R"({"items": {"$ref": "#"}, "properties": {"a": {"$ref": "#"}}})");
  ASSERT_TRUE(rec);
  ValidationLimits deep_lim;
  deep_lim.max_depth = bytecode::kMaxValidationDepth;
  std::string deep(bytecode::kMaxValidationDepth, '[');
  deep += std::string(bytecode::kMaxValidationDepth, ']');
  r = Check(*rec, deep, deep_lim);
  EXPECT_TRUE(r.valid() || r.limit == LimitKind::kEvaluations) << r.ToString();
  std::string shallow(100, '[');
  shallow += std::string(100, ']');
  EXPECT_TRUE(Check(*rec, shallow, deep_lim).valid());
  ValidationLimits lim;
  lim.max_evaluations = 3;
  auto small = CompileSchema(R"({"items": {"type": "integer"}})");
  EXPECT_EQ(Check(*small, "[1, 2, 3, 4, 5]", lim).limit, LimitKind::kEvaluations);
}

TEST(SchemaLimits, HostileInstances) {
  auto set = CompileSchema(R"({"type": "object", "properties": {"a": {"type": "object"}}})");
  ASSERT_TRUE(set);
  auto r = Check(*set, R"({"a": 1, "a": {}})");
  EXPECT_EQ(r.outcome, ValidationOutcome::kMalformed);
  EXPECT_EQ(r.message, "duplicate object key");
  r = Check(*set, R"({"a": {"x": 1, "\u0078": 2}})");  // the same key, escaped
  EXPECT_EQ(r.outcome, ValidationOutcome::kMalformed);
  std::string many = "{";
  for (int i = 0; i < 100; ++i) many += "\"k" + std::to_string(i % 99) + "\": 1,";
  many.back() = '}';
  EXPECT_EQ(Check(*set, many).outcome, ValidationOutcome::kMalformed);  // sorted path
  EXPECT_EQ(Check(*set, "{\"a\": \"\xff\xfe\"}").message, "invalid UTF-8");
  EXPECT_EQ(Check(*set, R"({"a": {"b": [1, 2)").outcome, ValidationOutcome::kMalformed);
  EXPECT_EQ(Check(*set, "").outcome, ValidationOutcome::kMalformed);
  EXPECT_EQ(Check(*set, "{} {}").outcome, ValidationOutcome::kMalformed);
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  r = Check(*set, deep);
  EXPECT_EQ(r.outcome, ValidationOutcome::kOverLimit);
  EXPECT_EQ(r.limit, LimitKind::kDepth);
  std::string deep_obj;
  for (int i = 0; i < 100000; ++i) deep_obj += "{\"a\":";
  deep_obj += "1" + std::string(100000, '}');
  EXPECT_EQ(Check(*set, deep_obj).limit, LimitKind::kDepth);
  std::string huge = "[" + std::string(5000, '9') + "]";
  EXPECT_NE(Check(*set, huge).outcome, ValidationOutcome::kValid);
  std::string big_array = "[";
  for (int i = 0; i < 20000; ++i) big_array += "1,";
  big_array.back() = ']';
  EXPECT_EQ(Check(*set, big_array).limit, LimitKind::kItems);
}

TEST(SchemaLimits, ScratchReuseAndElementApi) {
  auto set = CompileSchema(R"({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}})");
  ASSERT_TRUE(set);
  bytecode::ValidationScratch scratch;
  ValidationLimits lim;
  for (int i = 0; i < 1000; ++i) {
    std::string body = i % 2 ? R"({"id": "x"})" : R"({"id": 1})";
    EXPECT_EQ(bytecode::Validate(*set, 0, body, lim, scratch).valid(), i % 2 == 1);
  }
  simdjson::dom::parser parser;
  simdjson::dom::element e;
  ASSERT_EQ(parser.parse(std::string(R"({"id": "y"})")).get(e), simdjson::SUCCESS);
  EXPECT_TRUE(bytecode::ValidateElement(*set, 0, e, lim, scratch).valid());
  ASSERT_EQ(parser.parse(std::string(R"({"id": "y", "id": 2})")).get(e), simdjson::SUCCESS);
  EXPECT_EQ(bytecode::ValidateElement(*set, 0, e, lim, scratch).outcome, ValidationOutcome::kMalformed);
  lim.max_depth = 1;
  ASSERT_EQ(parser.parse(std::string(R"({"id": {"x": 1}})")).get(e), simdjson::SUCCESS);
  EXPECT_EQ(bytecode::ValidateElement(*set, 0, e, lim, scratch).limit, LimitKind::kDepth);
}

TEST(SchemaLimits, MutatedBodiesNeverCrash) {
  // Seeded byte mutations of a valid body against a schema using most
  // keywords: every result is one of the four outcomes, never a crash.
  auto set = CompileSchema(R"({"type": "object", "required": ["id"],
    "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}, "n": {"multipleOf": 0.01},
                   "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string"},
                            "contains": {"const": "x"}, "maxContains": 2},
                   "o": {"type": "object", "propertyNames": {"maxLength": 3}, "additionalProperties": {"type": "integer"},
                         "dependentSchemas": {"a": {"required": ["b"]}}}},
    "patternProperties": {"^x-": {"enum": [1, "one", null]}},
    "anyOf": [{"required": ["n"]}, {"required": ["tags"]}],
    "unevaluatedProperties": false})", SchemaOptions{true, true});
  ASSERT_TRUE(set);
  const std::string body = R"({"id": "abc", "n": 1.25, "tags": ["x", "y"], "o": {"a": 1, "b": 2}, "x-1": "one"})";
  ASSERT_TRUE(Check(*set, body).valid()) << Check(*set, body).ToString();
  bytecode::ValidationScratch scratch;
  uint64_t seed = 0x9e3779b97f4a7c15ULL;
  auto next = [&]() {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  const char kBytes[] = "{}[]\",:0123456789.-eE abcnulltrx\\\xff\xc3";
  int counts[4] = {0, 0, 0, 0};
  for (int i = 0; i < 20000; ++i) {
    std::string m = body;
    int edits = 1 + static_cast<int>(next() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = next() % m.size();
      switch (next() % 3) {
        case 0: m[pos] = kBytes[next() % (sizeof(kBytes) - 1)]; break;
        case 1: m.erase(pos, 1 + next() % 3); break;
        default: m.insert(pos, 1, kBytes[next() % (sizeof(kBytes) - 1)]); break;
      }
      if (m.empty()) m = "{";
    }
    auto r = bytecode::Validate(*set, 0, m, {}, scratch);
    ++counts[static_cast<int>(r.outcome)];
  }
  EXPECT_GT(counts[static_cast<int>(ValidationOutcome::kInvalid)], 0);
  EXPECT_GT(counts[static_cast<int>(ValidationOutcome::kMalformed)], 0);
}

// ---------------------------------------------------------------------------
// The loader against corrupted blobs.

TEST(SchemaLoader, RefusesCorruptedBlobs) {
  SchemaCompiler sc;
  ASSERT_TRUE(sc.AddJsonText("record", R"({
    "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
    "type": "object", "required": ["id"],
    "properties": {"id": {"type": "string", "pattern": "^[a-z]+$", "minLength": 1},
                   "n": {"multipleOf": 0.01, "maximum": 100},
                   "kind": {"enum": ["a", "b"]}, "tree": {"$ref": "#/$defs/node"},
                   "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true,
                            "contains": {"const": "x"}}},
    "patternProperties": {"^x-": true}, "additionalProperties": false,
    "dependentRequired": {"n": ["id"]}, "unevaluatedItems": false})",
                             {}).ok());
  ASSERT_TRUE(sc.AddJsonText("other", R"({"oneOf": [{"type": "string"}, {"not": {"type": "null"}}]})", {}).ok());
  auto bytes = sc.Build();
  ASSERT_TRUE(bytes.ok());
  const std::string good = *bytes;
  ASSERT_TRUE(SchemaSet::Load(good).ok());
  const std::string inst = R"({"id": "abc", "n": 1.25, "kind": "a", "tree": {"next": {}}, "tags": ["x"]})";
  bytecode::ValidationScratch scratch;
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(SchemaSet::Load(good.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(SchemaSet::Load(good + "x").ok());
  size_t loaded = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    for (unsigned char flip : {0x01, 0x80, 0xff}) {
      std::string bad = good;
      bad[i] = static_cast<char>(bad[i] ^ flip);
      auto set = SchemaSet::Load(bad);
      if (set.ok()) {
        // Still structurally valid: validating must not crash.
        ++loaded;
        for (uint32_t r = 0; r < (*set)->root_count(); ++r) {
          (void)bytecode::Validate(**set, r, inst, {}, scratch);
          (void)bytecode::Validate(**set, r, "[1, \"a\", {\"b\": null}]", {}, scratch);
        }
      }
    }
  }
  EXPECT_LT(loaded, good.size() * 3);
  auto set = SchemaSet::Load(good);
  ASSERT_TRUE(set.ok());
  EXPECT_EQ((*set)->root_count(), 2u);
  EXPECT_EQ((*set)->FindRoot("other"), std::optional<uint32_t>(1));
  EXPECT_EQ((*set)->FindRoot("nope"), std::nullopt);
  EXPECT_TRUE(bytecode::Validate(**set, 0, inst, {}, scratch).valid());
  // Counts of 0xffffffff are refused before any allocation.
  std::string huge = good;
  for (int field = 0; field < 7; ++field) {
    std::string h = good;
    uint32_t v = 0xffffffffu;
    std::memcpy(h.data() + 8 + 4 * field, &v, 4);
    EXPECT_FALSE(SchemaSet::Load(h).ok()) << field;
  }
}

// ---------------------------------------------------------------------------
// References: cycles, files, the reader.

TEST(SchemaRefs, RecursiveSchemaValidates) {
  auto set = CompileSchema(R"({"$defs": {"tree": {"type": "object", "required": ["v"],
    "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}}}},
    "$ref": "#/$defs/tree"})");
  ASSERT_TRUE(set);
  EXPECT_TRUE(Check(*set, R"({"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]})").valid());
  auto r = Check(*set, R"({"v": 1, "kids": [{"v": 2, "kids": [{"v": "3"}]}]})");
  EXPECT_EQ(r.instance_pointer, "/kids/0/kids/0/v");
}

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("vakt_schema_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path / "common");
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
  static inline int counter = 0;
};

TEST(SchemaRefs, FileRefsRelativeToTheReferringFile) {
  TempDir d;
  d.Write("common/types.json", R"({"$defs": {"id": {"type": "string", "minLength": 3},
                                           "pair": {"type": "array", "items": {"$ref": "#/$defs/id"}}}})");
  d.Write("common/self.json", R"({"type": "object", "properties": {"child": {"$ref": "self.json"}}, "required": ["x"]})");
  std::string root = d.Write("record.json", R"({"properties": {"id": {"$ref": "common/types.json#/$defs/id"},
    "ids": {"$ref": "common/types.json#/$defs/pair"}, "s": {"$ref": "common/self.json"}}})");
  SchemaCompiler sc;
  Status st = sc.AddFile("record", root, {});
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto set = Build(sc);
  ASSERT_TRUE(set);
  EXPECT_TRUE(Check(*set, R"({"id": "abc", "ids": ["xyz"], "s": {"x": 1, "child": {"x": 2}}})").valid());
  EXPECT_EQ(Check(*set, R"({"ids": ["ab"]})").instance_pointer, "/ids/0");
  EXPECT_EQ(Check(*set, R"({"s": {"x": 1, "child": {}}})").keyword, "required");
  // A missing file is an error naming the reference and the pointer.
  std::string bad = d.Write("bad.json", R"({"properties": {"a": {"$ref": "missing.json"}}})");
  SchemaCompiler sc2;
  st = sc2.AddFile("bad", bad, {});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("bad.json: #/properties/a/$ref: cannot load `missing.json`"), std::string::npos) << st.message();
}

TEST(SchemaRefs, ReaderServesFilesFromMemory) {
  std::map<std::string, std::string> files = {
      {"schemas/a.json", R"({"$ref": "b.json"})"},
      {"schemas/b.json", R"({"type": "integer"})"}};
  std::vector<std::pair<std::string, std::string>> calls;
  SchemaCompiler sc([&](const std::string& from, const std::string& path) -> Result<std::string> {
    calls.emplace_back(from, path);
    std::string key = path;
    if (!from.empty() && path.find('/') == std::string::npos) key = "schemas/" + path;
    auto it = files.find(key);
    if (it == files.end()) return NotFound("no " + key);
    return it->second;
  });
  ASSERT_TRUE(sc.AddFile("a", "schemas/a.json", {}).ok());
  auto set = Build(sc);
  ASSERT_TRUE(set);
  EXPECT_TRUE(Check(*set, "1").valid());
  EXPECT_FALSE(Check(*set, "\"1\"").valid());
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1], (std::pair<std::string, std::string>{"schemas/a.json", "b.json"}));
}

// ---------------------------------------------------------------------------
// Compile errors.

TEST(SchemaCompileErrors, FileAndPointer) {
  EXPECT_EQ(CompileError(R"({"properties": {"text": {"minLength": -1}}})"),
            "record.json: #/properties/text/minLength: must be a non-negative integer");
  EXPECT_EQ(CompileError(R"({"properties": {"text": {"type": "text"}}})"),
            "record.json: #/properties/text/type: must be a type name (null, boolean, object, "
            "array, number, string, integer) or a non-empty array of them");
  EXPECT_EQ(CompileError(R"({"items": [{"type": "string"}]})"),
            "record.json: #/items: must be a schema (draft 2020-12 uses prefixItems for tuples)");
  EXPECT_EQ(CompileError(R"({"allOf": []})"), "record.json: #/allOf: must be a non-empty array of schemas");
  EXPECT_EQ(CompileError(R"({"multipleOf": 0})"), "record.json: #/multipleOf: must be a number greater than 0");
  EXPECT_EQ(CompileError(R"({"$ref": "#/$defs/missing"})"),
            "record.json: #/$ref: `#/$defs/missing` points at nothing");
  EXPECT_EQ(CompileError(R"({"properties": {"a": 5}})"),
            "record.json: #/properties/a: a schema must be an object or a boolean");
  // Several errors are reported at once.
  std::string two = CompileError(R"({"minLength": "x", "maxLength": -2})");
  EXPECT_NE(two.find("#/minLength"), std::string::npos);
  EXPECT_NE(two.find("#/maxLength"), std::string::npos);
  EXPECT_NE(CompileError("{").find("record.json: not JSON"), std::string::npos);
  EXPECT_NE(CompileError(std::string(1000, '[') + std::string(1000, ']')).find("nested deeper"), std::string::npos);
}

TEST(SchemaCompileErrors, Re2IncompatiblePattern) {
  EXPECT_EQ(CompileError(R"({"properties": {"code": {"pattern": "^(a)\\1$"}}})").rfind(
                "record.json: #/properties/code/pattern: pattern `^(a)\\1$` is not supported by RE2", 0),
            0u);
  std::string look = CompileError(R"js({"patternProperties": {"^(?!x-)": true}})js");
  EXPECT_NE(look.find("record.json: #/patternProperties/^(?!x-): pattern `^(?!x-)` is not supported by RE2"),
            std::string::npos) << look;
}

TEST(SchemaCompileErrors, NamesAndBuild) {
  SchemaCompiler sc;
  EXPECT_FALSE(sc.Build().ok());  // nothing to build
  ASSERT_TRUE(sc.AddJsonText("a", "true", {}).ok());
  EXPECT_EQ(sc.AddJsonText("a", "true", {}).message(), "schema `a` is defined twice");
  EXPECT_FALSE(sc.AddJsonText("", "true", {}).ok());
}

}  // namespace
}  // namespace vakt
